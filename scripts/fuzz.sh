#!/usr/bin/env bash
# Runs every `go test -fuzz` target of the repository for a bounded number
# of inputs each (FUZZTIME, default 5000x: about 1-2 s here), starting from
# the seeds in the code and in each package's testdata/fuzz. A failing
# input is written to testdata/fuzz/<Target>/ by go test; commit it with
# the fix. A count, not a duration: with a duration, Go before 1.27 can
# fail a target with a bare "context deadline exceeded" when the time runs
# out while a worker is mid-input (go.dev/issue/75804; it failed a CI run
# here on go1.26.8, FuzzListingNames, no input written).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5000x}
n=0
while IFS=: read -r file line; do
  target=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  echo "fuzz: $pkg $target ($FUZZTIME inputs)"
  "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  n=$((n + 1))
done < <(git ls-files '*_test.go' | xargs grep -H '^func Fuzz[A-Za-z0-9_]*(f \*testing.F)' | sort)
echo "fuzz: $n targets run for $FUZZTIME inputs each"
