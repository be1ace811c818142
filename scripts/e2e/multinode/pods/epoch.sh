# epoch.sh MANIFEST READERS EPOCHS [PACE] (busybox sh, run in the e2e's
# reader pods): reads every file of MANIFEST ("sha256  path" lines) EPOCHS
# times, each epoch in a new shuffled order split over READERS parallel
# readers, as a training job's data loader does, checking each file's
# SHA-256; with PACE, each reader sleeps PACE seconds after each file.
# Prints a line per epoch ("epoch N: files=F ok=O failed=X seconds=S") and
# the first failures; exits 1 if any file failed.
m=$1 readers=$2 epochs=$3 pace=${4:-}
now() { awk '{print $1}' /proc/uptime; }
# reader I: checks the files of /tmp/part.I, one at a time.
reader() {
  while read -r line; do
    echo "$line" >"/tmp/one.$1"
    sha256sum -c "/tmp/one.$1" >>"/tmp/out.$1" 2>&1
    [ -z "$pace" ] || sleep "$pace"
  done <"/tmp/part.$1"
}
rc=0
e=1
while [ "$e" -le "$epochs" ]; do
  t0=$(now)
  shuf "$m" >/tmp/order
  n=$(wc -l </tmp/order)
  rm -f /tmp/out.*
  i=0
  while [ "$i" -lt "$readers" ]; do
    awk -v r="$readers" -v i="$i" 'NR % r == i' /tmp/order >"/tmp/part.$i"
    : >"/tmp/out.$i"
    reader "$i" &
    i=$((i + 1))
  done
  wait
  ok=$(cat /tmp/out.* | grep -c ': OK$')
  bad=$((n - ok))
  t1=$(now)
  echo "epoch $e: files=$n ok=$ok failed=$bad seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') "
  if [ "$bad" != 0 ]; then
    cat /tmp/out.* | grep -v ': OK$' | head -5
    rc=1
  fi
  e=$((e + 1))
done
exit "$rc"
