#!/usr/bin/env bash
# Builds the Kubernetes binaries and the external-provisioner the e2e suite
# runs, from the Go module proxy, into $HOARD_CACHE/k8s/<name>-<version>/bin.
# Also crictl (Debian 12 packages none). A cold build takes 5-10 minutes
# (Kubernetes) plus 2-3 (external-provisioner) on 2 cores, and about 5 GB of
# Go build cache; later runs find the binaries and return.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# scratch_build NAME VERSION MODULE GOVERSION STAGING_VERSION LDFLAGS PKG...:
# builds PKGs of MODULE@VERSION from a scratch module in
# $K8S_CACHE/NAME-VERSION/src that requires it and copies its replace
# directives (a dependency's replaces do not apply to the main module). Local
# ones (./staging/src/k8s.io/api) become the published module at
# STAGING_VERSION.
scratch_build() {
  local name=$1 version=$2 module=$3 goversion=$4 staging=$5 ldflags=$6; shift 6
  local dir=$K8S_CACHE/$name-$version
  local stamp=$dir/bin/.complete
  if [ -f "$stamp" ]; then
    return 0
  fi
  log "building $name $version from the module proxy (cold: many minutes; cached in $dir)"
  local start=$SECONDS
  mkdir -p "$dir/src"
  rm -rf "$dir/bin.tmp"
  GOFLAGS=-mod=mod go mod download "$module@$version"
  local gomod
  gomod=$(go mod download -json "$module@$version" | jq -r .GoMod)
  {
    echo "// Scratch module: builds $module@$version for hoard's e2e suite."
    echo "module hoard.dev/e2e-build/$name"
    echo
    echo "go $goversion"
    echo
    echo "require $module $version"
    echo
    echo "replace ("
    local old arrow new rest
    while read -r old arrow new rest; do
      case $new in
        ./*|../*)
          [ -n "$staging" ] || { log "local replace $old => $new in $module"; return 1; }
          echo "	$old => $old $staging" ;;
        *) echo "	$old => $new $rest" ;;
      esac
    done < <(replaces "$gomod")
    echo ")"
  } > "$dir/src/go.mod"
  echo 'package main' > "$dir/src/main.go"   # the module needs a package of its own
  echo 'func main() {}' >> "$dir/src/main.go"
  mkdir -p "$dir/bin.tmp"
  (cd "$dir/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$dir/bin.tmp/" "$@")
  rm -rf "$dir/bin"
  mv "$dir/bin.tmp" "$dir/bin"
  touch "$stamp"
  log "built $name $version in $((SECONDS - start))s"
}

exec 9>"$(mkdir -p "$K8S_CACHE" && echo "$K8S_CACHE/.build.lock")"
flock -w 3600 9 || die "another build holds $K8S_CACHE/.build.lock"

major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
kver=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kver+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
  kver+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
pkgs=()
for c in "${K8S_COMPONENTS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
scratch_build kubernetes "$K8S_VERSION" k8s.io/kubernetes 1.24.0 "$K8S_STAGING_VERSION" "-s -w$kver" "${pkgs[@]}"

scratch_build external-provisioner "$PROVISIONER_VERSION" github.com/kubernetes-csi/external-provisioner/v6 1.26.0 "" \
  "-s -w -X main.version=$PROVISIONER_VERSION" github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner

if [ ! -x "$CRICTL" ]; then
  log "installing crictl $CRICTL_VERSION"
  GOBIN=$(dirname "$CRICTL") CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
fi
