#!/usr/bin/env bash
# Runs the date-sensitive test suites at a month's, a year's and a leap day's end (npm run test:calendar).
#
# For each instant, the injected clocks of the tests (DAYMIND_TEST_NOW) stand at its last second, and
# the real clock, which servers and tools in child processes read, is moved by libfaketime (Debian's
# faketime package) to LEAD seconds before it, so that the run crosses midnight. Monotonic time is
# left alone: timers and timeouts behave as usual.
#
#   scripts/test-calendar.sh                 the date-sensitive suites at the three instants
#   scripts/test-calendar.sh test/plans.test.ts ...   these suites instead (all under libfaketime)
set -uo pipefail
cd "$(dirname "$0")/.."

lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)
if [ -z "$lib" ]; then
  echo "test:calendar needs libfaketime: apt-get install faketime" >&2
  exit 1
fi
lead=${LEAD:-20}

# plans, credits and quotas; history; reports and export; rotation and expiry; billing; the seed format; the clock.
faked=(
  test/clock.test.ts test/plans.test.ts test/redis/plans.test.ts test/cli/plans.test.ts test/examples/plans.test.ts
  test/redis/history.test.ts test/cli/report.test.ts test/cli/rotation.test.ts test/billing/export.test.ts
  test/billing/billing.test.ts test/middleware.test.ts test/redis/store.test.ts test/seed-format.test.ts
  test/examples/server.test.ts
)
# Suites with several processes writing one store file run on the injected clocks only: libfaketime
# moves the clock but not the times the kernel stamps on files, which file locks compare with the
# clock (under proper-lockfile, which the store used before, a live writer's lock looked months old
# and was taken from it, and counts were lost).
injected=(test/plans-multiprocess.test.ts test/usage/history.test.ts test/cli/cli.test.ts)
if [ $# -gt 0 ]; then
  faked=("$@")
  injected=()
fi

failed=0
for end in 2026-12-31T23:59:59Z 2027-04-30T23:59:59Z 2028-02-29T23:59:59Z; do
  offset=$(($(date -u -d "$end" +%s) + 1 - lead - $(date -u +%s)))
  echo "== injected clocks at $end; the real clock $lead s before the next midnight"
  if [ "$offset" -ge 0 ]; then fake="+${offset}s"; else fake="${offset}s"; fi
  # With JEST_JSON_DIR (CI), each run's results also go there as JSON.
  json=()
  [ -n "${JEST_JSON_DIR:-}" ] && json=(--json --outputFile="$JEST_JSON_DIR/calendar-$end.json")
  DAYMIND_TEST_NOW=$end FAKETIME=$fake DONT_FAKE_MONOTONIC=1 LD_PRELOAD="$lib" npx jest --silent "${json[@]}" "${faked[@]}" || failed=1
  if [ ${#injected[@]} -gt 0 ]; then
    [ -n "${JEST_JSON_DIR:-}" ] && json=(--json --outputFile="$JEST_JSON_DIR/calendar-injected-$end.json")
    DAYMIND_TEST_NOW=$end npx jest --silent "${json[@]}" "${injected[@]}" || failed=1
  fi
done
exit $failed
