#!/usr/bin/env bash
# Builds the e2e suite's container images as docker-archive tarballs, without
# a registry or a container engine: pause (a static Go binary), busybox
# (Debian's busybox-static), csi-provisioner (the binary build.sh made) and
# hoard (a static build of cmd/hoard from this checkout). The first three are
# cached in $HOARD_CACHE/k8s/images; hoard is built into OUTDIR each run.
# Usage: images.sh OUTDIR   (prints the tarballs, one a line)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
out=${1:?usage: images.sh OUTDIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$IMAGE_CACHE" "$out"
# Bumped when the way an image is made changes, so that cached ones are remade.
format=2
find "$IMAGE_CACHE" -maxdepth 1 -name '*.tar' ! -name "*-$format.tar" -delete

# image TAR NAME ROOTFS CONFIG_JSON: writes a one-layer docker-archive image
# of ROOTFS named NAME (e.g. localhost/busybox:e2e) to TAR; CONFIG_JSON is
# its config's Entrypoint and/or Cmd.
image() {
  local tar=$1 name=$2 rootfs=$3 config=$4
  local work; work=$(mktemp -d "$out/.image.XXXXXX")
  chmod 755 "$rootfs"
  if [ -d "$rootfs/tmp" ]; then chmod 1777 "$rootfs/tmp"; fi
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" .
  local diff; diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  jq -n --arg diff "sha256:$diff" --argjson c "$config" '{
    architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
    config: ({Env: ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]} + $c),
    rootfs: {type: "layers", diff_ids: [$diff]}}' > "$work/config.json"
  local cfg; cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  mv "$work/config.json" "$work/$cfg.json"
  jq -n --arg cfg "$cfg.json" --arg name "$name" \
    '[{Config: $cfg, RepoTags: [$name], Layers: ["layer.tar"]}]' > "$work/manifest.json"
  tar -C "$work" -cf "$tar.tmp" manifest.json "$cfg.json" layer.tar
  mv "$tar.tmp" "$tar"
  rm -rf "$work"
}

# pause: the pod sandbox's process. Exits on SIGINT/SIGTERM, reaps children.
pause_tar=$IMAGE_CACHE/pause-$format.tar
if [ ! -f "$pause_tar" ]; then
  src=$(mktemp -d); trap 'rm -rf "$src"' EXIT
  mkdir -p "$src/rootfs"
  cat > "$src/main.go" <<'GO'
// pause holds a pod's namespaces open until it is told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  printf 'module pause\n\ngo 1.22\n' > "$src/go.mod"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o rootfs/pause .)
  image "$pause_tar" localhost/pause:e2e "$src/rootfs" '{"Entrypoint": ["/pause"]}'
  rm -rf "$src"; trap - EXIT
fi

busybox_tar=$IMAGE_CACHE/busybox-$(dpkg-query -W -f '${Version}' busybox-static | tr ':~+' '___')-$format.tar
if [ ! -f "$busybox_tar" ]; then
  root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
  echo 'root:x:0:' > "$root/etc/group"
  image "$busybox_tar" localhost/busybox:e2e "$root" '{"Cmd": ["sh"]}'
  rm -rf "$root"; trap - EXIT
fi

provisioner_tar=$IMAGE_CACHE/csi-provisioner-$PROVISIONER_VERSION-$format.tar
if [ ! -f "$provisioner_tar" ]; then
  root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/tmp"
  cp "$PROVISIONER_BIN/csi-provisioner" "$root/csi-provisioner"
  image "$provisioner_tar" "localhost/csi-provisioner:$PROVISIONER_VERSION" "$root" '{"Entrypoint": ["/csi-provisioner"]}'
  rm -rf "$root"; trap - EXIT
fi

# hoard, from this checkout: a new image every run; $HOARD_BIN (make e2e
# passes bin/hoard, a CGO_ENABLED=0 build) or a static build here.
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/tmp"
if [ -n "${HOARD_BIN:-}" ]; then
  cp "$HOARD_BIN" "$root/usr/local/bin/hoard"
else
  (cd "$repo" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-X hoard.dev/hoard/internal/buildinfo.Version=$(git describe --always --dirty 2>/dev/null || echo e2e)" \
    -o "$root/usr/local/bin/hoard" ./cmd/hoard)
fi
image "$out/hoard.tar" localhost/hoard:e2e "$root" '{"Entrypoint": ["/usr/local/bin/hoard"]}'

printf '%s\n' "$pause_tar" "$busybox_tar" "$provisioner_tar" "$out/hoard.tar"
