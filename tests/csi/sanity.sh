#!/bin/sh
# sanity.sh runs the CSI conformance suite (csi-sanity v5.6.0) against hoard's
# controller and node service with a mounter, all backed by a MinIO started for
# the run: it is TestSanity in this directory, which 'make test' runs too.
# Needs root and /dev/fuse; csi-sanity and MinIO are looked up in
# $HOARD_CACHE/bin (default /var/cache/hoard/bin), see 'make tools'; without
# them the test is skipped unless HOARD_REQUIRE_ALL=1.
#
#   tests/csi/sanity.sh            # summary
#   tests/csi/sanity.sh -v         # every spec, passed and skipped
set -eu
cd "$(dirname "$0")/../.."
if ! [ -x "${HOARD_CSI_SANITY_BIN:-${HOARD_CACHE:-/var/cache/hoard}/bin/csi-sanity}" ] && ! command -v csi-sanity >/dev/null; then
	echo "installing csi-sanity into ${HOARD_CACHE:-/var/cache/hoard}/bin" >&2
	GOBIN="${HOARD_CACHE:-/var/cache/hoard}/bin" go install github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@v5.6.0
fi
exec go test -count=1 -run '^TestSanity$' "$@" ./tests/csi/
