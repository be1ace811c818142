# load.sh MANIFEST (busybox sh, run in the e2e's model pods): loads a model
# as a server does, every shard at once, checking each shard's SHA-256;
# prints "loaded files=F bytes=B failed=X seconds=S" and then sleeps (the
# replica stays up).
m=$1
now() { awk '{print $1}' /proc/uptime; }
t0=$(now)
i=0
while read -r sum path; do
  echo "$sum  $path" >"/tmp/shard.$i"
  sha256sum -c "/tmp/shard.$i" >"/tmp/out.$i" 2>&1 &
  i=$((i + 1))
done <"$m"
wait
t1=$(now)
ok=$(cat /tmp/out.* | grep -c ': OK$')
bytes=$(awk '{print $2}' "$m" | xargs stat -c %s | awk '{s += $1} END {print s}')
echo "loaded files=$i bytes=$bytes failed=$((i - ok)) seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') "
cat /tmp/out.* | grep -v ': OK$' | head -5
exec sleep 3600
