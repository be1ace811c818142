# MinIO for the e2e suites (sourced by each test.sh): the server, with its
# request counters served without a token, and the bucket; signed requests;
# how many requests it served.
#
# Needs: RUN, MINIO_HOST (the address MinIO listens on), lib.sh and k8s.sh
# sourced.

E2E_MINIO_PORT=${E2E_MINIO_PORT:-29000}   # below the ephemeral port range
MINIO_USER=hoard-e2e
MINIO_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
MINIO_URL=http://$MINIO_HOST:$E2E_MINIO_PORT
BUCKET=hoard-e2e

# s3 METHOD PATH [curl args...]: a signed request to MinIO.
s3() {
  local method=$1 path=$2; shift 2
  curl -sS --max-time 120 --fail-with-body -X "$method" --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$MINIO_USER:$MINIO_PASSWORD" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$MINIO_URL/$path"
}

# minio_up: MinIO on $MINIO_URL (its console on the next port), with
# $BUCKET.
minio_up() {
  [ -x "$MINIO" ] || die "no MinIO at $MINIO: run make tools (scripts/install-tools.sh)"
  # Its request counters (minio_api_requests_total) served without a token:
  # the suites count the requests each step made.
  MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_PASSWORD MINIO_BROWSER=off MINIO_PROMETHEUS_AUTH_TYPE=public \
    start minio "$MINIO" server --quiet --address "$MINIO_HOST:$E2E_MINIO_PORT" \
    --console-address "$MINIO_HOST:$((E2E_MINIO_PORT + 1))" "$RUN/minio"
  # Live answers before MinIO serves requests (they get 503 until it has
  # initialized): wait until it is ready and the bucket is made.
  wait_for 60 MinIO http_ok "$MINIO_URL/minio/health/ready" || { running minio; return 1; }
  wait_for 30 "the bucket $BUCKET" s3 PUT "$BUCKET" || { s3 PUT "$BUCKET"; running minio; return 1; }
}

# minio_gets [API]: API requests (default GetObject) MinIO has served (its
# own counter).
minio_gets() {
  curl -sf --max-time 10 "$MINIO_URL/minio/metrics/v3/api/requests" |
    awk -v api="name=\"${1:-GetObject}\"" '/^minio_api_requests_total\{/ && index($0, api) {n += $2} END {printf "%d\n", n}'
}

# settled_gets: minio_gets once two readings a second apart agree.
settled_gets() {
  local a b i
  a=$(minio_gets)
  for i in $(seq 1 20); do
    sleep 1
    b=$(minio_gets)
    [ "$a" = "$b" ] && { echo "$b"; return 0; }
    a=$b
  done
  die "MinIO's GetObject count did not settle: $a"
}
