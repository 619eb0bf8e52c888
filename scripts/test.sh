#!/usr/bin/env bash
# The test command from the README: installs what is missing, checks formatting/lint/types, runs every
# test with the leak sanitizers, and ends with one line `tests: N passed, N failed[, N skipped]`.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure_deno.sh || exit 1
export NO_COLOR=1 RUST_BACKTRACE=0
bash scripts/install_test_deps.sh || echo "warning: could not install test dependencies" >&2
deno install --frozen >/dev/null || { echo "tests: 0 passed, 1 failed"; exit 1; }
status=0
if [ "${SKIP_CHECK:-}" != "1" ]; then
  deno task check || status=1
fi
log=$(mktemp)
DENO_JOBS="${DENO_JOBS:-2}" deno test -A --frozen --parallel --sanitize-ops --sanitize-resources "$@" 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}
[ "$test_status" = "0" ] || status=1
summary=$(grep -E '^(ok|FAILED) \| ' "$log" | tail -1)
rm -f "$log"
passed=$(sed -nE 's/.*\| ([0-9]+) passed.*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' <<<"$summary")
ignored=$(sed -nE 's/.*\| ([0-9]+) ignored.*/\1/p' <<<"$summary")
passed=${passed:-0}
failed=${failed:-0}
if [ "$status" != "0" ] && [ "$failed" = "0" ]; then failed=1; fi
if [ -n "$ignored" ] && [ "$ignored" != "0" ]; then
  echo "tests: ${passed} passed, ${failed} failed, ${ignored} skipped"
else
  echo "tests: ${passed} passed, ${failed} failed"
fi
exit "$status"
