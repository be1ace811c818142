#!/usr/bin/env bash
# Builds the e2e suite's container images as docker-archive tarballs, without
# a registry or a container engine, with internal/image/mkimage
# (go-containerregistry): pause (a static Go binary), busybox (Debian's
# busybox-static), csi-provisioner (the binary build.sh made) and hoard,
# which is `make image`: the same `make rootfs` the Dockerfile runs, with
# the Dockerfile's config. The first three are cached in
# $HOARD_CACHE/k8s/images; hoard is built into OUTDIR each run.
# Usage: images.sh OUTDIR   (prints the tarballs, one a line; other suites,
# such as a multi-node one, call it the same way)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
out=${1:?usage: images.sh OUTDIR}
out=$(mkdir -p "$out" && cd "$out" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$IMAGE_CACHE"
# Bumped when the way an image is made changes, so that cached ones are remade.
format=3
find "$IMAGE_CACHE" -maxdepth 1 -name '*.tar' ! -name "*-$format.tar" -delete

mkimage=$out/.mkimage
(cd "$repo" && CGO_ENABLED=0 go build -o "$mkimage" ./internal/image/mkimage)

# image TAR NAME ROOTFS MKIMAGE_FLAGS...: a one-layer image of ROOTFS named
# NAME (e.g. localhost/busybox:e2e) in TAR.
image() {
  local tar=$1 name=$2 rootfs=$3; shift 3
  chmod 755 "$rootfs"
  if [ -d "$rootfs/tmp" ]; then chmod 1777 "$rootfs/tmp"; fi
  "$mkimage" --rootfs "$rootfs" --name "$name" --out "$tar" "$@"
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
  image "$pause_tar" localhost/pause:e2e "$src/rootfs" --entrypoint /pause
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
  image "$busybox_tar" localhost/busybox:e2e "$root" --cmd sh
  rm -rf "$root"; trap - EXIT
fi

provisioner_tar=$IMAGE_CACHE/csi-provisioner-$PROVISIONER_VERSION-$format.tar
if [ ! -f "$provisioner_tar" ]; then
  root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/tmp"
  cp "$PROVISIONER_BIN/csi-provisioner" "$root/csi-provisioner"
  image "$provisioner_tar" "localhost/csi-provisioner:$PROVISIONER_VERSION" "$root" --entrypoint /csi-provisioner
  rm -rf "$root"; trap - EXIT
fi

# hoard, from this checkout: a new image every run, the one recipe of the
# Dockerfile (make rootfs) packed by make image.
make -s -C "$repo" image ROOTFS="$out/rootfs" IMAGE=localhost/hoard:e2e IMAGE_TAR="$out/hoard.tar" >&2
rm -rf "$out/rootfs" "$mkimage"

printf '%s\n' "$pause_tar" "$busybox_tar" "$provisioner_tar" "$out/hoard.tar"
