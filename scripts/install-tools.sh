#!/usr/bin/env bash
# Installs the real components the tests run against, cached outside the
# checkout under $HOARD_CACHE (default /var/cache/hoard) so a second run is fast.
# With the argument "bench" it also installs the FUSE peers the benchmarks
# compare against (s3fs, rclone), which the tests never need.
set -euo pipefail
HOARD_CACHE=${HOARD_CACHE:-/var/cache/hoard}
BIN=$HOARD_CACHE/bin
mkdir -p "$BIN"

# Pinned: resolved from @latest on 2026-11-25 (see docs/operations.md).
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

if [ ! -x "$BIN/minio" ] || [ "$(cat "$BIN/minio.version" 2>/dev/null)" != "$MINIO_VERSION" ]; then
  echo "install-tools: building MinIO $MINIO_VERSION (takes 5-14 minutes on 2 cores, once)"
  GOBIN="$BIN" go install "github.com/minio/minio@$MINIO_VERSION"
  echo "$MINIO_VERSION" > "$BIN/minio.version"
fi

CSI_SANITY_VERSION=v5.6.0
if [ ! -x "$BIN/csi-sanity" ] || [ "$(cat "$BIN/csi-sanity.version" 2>/dev/null)" != "$CSI_SANITY_VERSION" ]; then
  echo "install-tools: installing csi-sanity $CSI_SANITY_VERSION"
  GOBIN="$BIN" go install "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION"
  echo "$CSI_SANITY_VERSION" > "$BIN/csi-sanity.version"
fi

# helm: make test lints and renders deploy/helm/hoard (tests/chart).
HELM_VERSION=v4.3.2
if [ ! -x "$BIN/helm" ] || [ "$(cat "$BIN/helm.version" 2>/dev/null)" != "$HELM_VERSION" ]; then
  echo "install-tools: building helm $HELM_VERSION (a few minutes on 2 cores, once)"
  GOBIN="$BIN" CGO_ENABLED=0 go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$BIN/helm.version"
fi

# FUSE tools and the peers the benchmarks compare against, when we may install.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  command -v fusermount3 >/dev/null || missing+=(fuse3)
  /usr/bin/python3 -c "import torch" 2>/dev/null || missing+=(python3-torch)
  # tests/nodes and make faults make links lossy with iptables in a node's netns.
  command -v iptables >/dev/null || missing+=(iptables)
  if [ "${1:-}" = bench ]; then
    command -v s3fs >/dev/null || missing+=(s3fs)
    command -v rclone >/dev/null || missing+=(rclone)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-tools: apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null; }
  fi
fi
