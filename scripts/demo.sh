#!/usr/bin/env bash
# make demo: from a fresh machine to a mounted "bucket" and a warm read, with
# no Kubernetes, no etcd and no S3 server: a local directory plays the bucket
# (file:// source) and the cache is embedded in the mount process.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO_DIR:-/tmp/hoard-demo}
HOARD=bin/hoard

command -v fusermount3 >/dev/null || [ "$(id -u)" = 0 ] || {
  echo "demo: needs FUSE: run as root, or install fuse3 (apt-get install fuse3)"; exit 1; }
[ -e /dev/fuse ] || { echo "demo: /dev/fuse is missing: FUSE is not available here"; exit 1; }

mkdir -p "$DEMO/data/shards" "$DEMO/mnt"
if [ ! -f "$DEMO/data/shards/shard-3.bin" ]; then
  echo "demo: writing a 256 MiB dataset to $DEMO/data"
  for i in 0 1 2 3; do head -c $((64 << 20)) /dev/urandom > "$DEMO/data/shards/shard-$i.bin"; done
fi
"$HOARD" umount --lazy "$DEMO/mnt" 2>/dev/null || true

echo "demo: hoard mount file://$DEMO/data $DEMO/mnt --cache-dir $DEMO/cache"
"$HOARD" mount "file://$DEMO/data" "$DEMO/mnt" --cache-dir "$DEMO/cache" --cache-size 1GiB --log-level warn &
pid=$!
trap '"$HOARD" umount "$DEMO/mnt" 2>/dev/null || kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do mountpoint -q "$DEMO/mnt" && break; sleep 0.1; done
mountpoint -q "$DEMO/mnt" || { echo "demo: the mount did not come up"; exit 1; }

ls -l "$DEMO/mnt/shards"
drop() { [ "$(id -u)" = 0 ] && sync && echo 3 > /proc/sys/vm/drop_caches || true; }
read_all() { local s e; s=$(date +%s%N); cat "$DEMO"/mnt/shards/* > /dev/null; e=$(date +%s%N); echo "$(( (e - s) / 1000000 )) ms"; }
drop; t=$(read_all); echo "demo: first read (fills the cache):      256 MiB in ${t}"
"$HOARD" umount "$DEMO/mnt"; wait $pid || true
"$HOARD" mount "file://$DEMO/data" "$DEMO/mnt" --cache-dir "$DEMO/cache" --cache-size 1GiB --log-level warn &
pid=$!
for _ in $(seq 100); do mountpoint -q "$DEMO/mnt" && break; sleep 0.1; done
drop; t=$(read_all); echo "demo: after a remount, from hoard's cache: 256 MiB in ${t}"
cmp "$DEMO/mnt/shards/shard-2.bin" "$DEMO/data/shards/shard-2.bin" && echo "demo: bytes match the source"
if [ "${DEMO_KEEP:-0}" = 1 ]; then
  echo "demo: mounted on $DEMO/mnt until you press Ctrl-C (or run: $HOARD umount $DEMO/mnt)"
  wait $pid || true
else
  echo "demo: done; DEMO_KEEP=1 make demo keeps the mount up to explore"
fi
