# hoard's image: one image for every role (controller, node plugin, mounter,
# worker, coordinator). Build: docker build --build-arg VERSION=$(git describe) .
#
# One recipe: the build stage runs `make rootfs`, which lays out the whole
# image filesystem (static bin/hoard, Debian's CA bundle, /etc/passwd with
# the nonroot user 65532); the final stage is that directory on scratch.
# `make image` packs the same `make rootfs` output with the config of the
# final stage below (internal/image reads this file) into a tarball, without
# a container engine: that is the image the e2e suite runs, and a test
# (internal/image) fails if this file uses anything it cannot follow.
ARG GO_VERSION=1.26.8
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The golang image is Debian's and carries ca-certificates: its bundle goes
# into the image.
RUN make rootfs ROOTFS=/rootfs VERSION=${VERSION} CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
COPY --from=build /rootfs /
LABEL org.opencontainers.image.title="hoard" \
      org.opencontainers.image.description="CSI driver and cluster-wide read cache for buckets" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# The node plugin and the mounter run as root (runAsUser: 0 in their pod
# specs: mount(2), /dev/fuse); every other role runs as this user.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/hoard"]
