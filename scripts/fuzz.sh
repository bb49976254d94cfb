#!/usr/bin/env bash
# make fuzz: the in-process fuzz (tests/test_fuzz.py) with many more examples on both backends, then a summary.
set -uo pipefail
cd "$(dirname "$0")/.."
export FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-100}
FUZZ_SUMMARY=$(mktemp)
export FUZZ_SUMMARY
trap 'rm -f "$FUZZ_SUMMARY"' EXIT

status=0
for backend in spatialite postgis; do
  TEST_BACKEND=$backend .venv/bin/pytest -q -p no:cacheprovider tests/test_fuzz.py "$@" || status=1
done

echo
echo "Fuzz summary: FUZZ_EXAMPLES=$FUZZ_EXAMPLES, FUZZ_SEED=${FUZZ_SEED:-default}"
printf '%-11s%-12s%10s%9s%10s%8s%8s\n' backend role operations cases failures errors seconds
cat "$FUZZ_SUMMARY"
exit $status
