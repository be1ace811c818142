#!/usr/bin/env bash
# Runs every `go test -fuzz` target of the repository for a bounded time
# each (FUZZTIME, default 3s), starting from the seeds in the code and in
# each package's testdata/fuzz. A failing input is written to
# testdata/fuzz/<Target>/ by go test; commit it with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-3s}
n=0
while IFS=: read -r file line; do
  target=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  echo "fuzz: $pkg $target ($FUZZTIME)"
  "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  n=$((n + 1))
done < <(git ls-files '*_test.go' | xargs grep -H '^func Fuzz[A-Za-z0-9_]*(f \*testing.F)' | sort)
echo "fuzz: $n targets run for $FUZZTIME each"
