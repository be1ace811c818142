// Package image makes hoard's container images without a container engine
// or a base image: a directory laid out by `make rootfs` (the static hoard
// binary, Debian's CA bundle, /etc/passwd with the nonroot user) becomes a
// one-layer image whose config (user, entrypoint, labels) is read from the
// final stage of the top-level Dockerfile, so the image `docker build`
// makes and the one the e2e suite imports come from one recipe. The e2e
// suite's small test images (pause, busybox) are made the same way from
// flags.
//
// Layers are written deterministically (name order, root-owned, dated the
// epoch); digests, config and the docker-archive tarball come from
// go-containerregistry. It never pulls or pushes.
package image
