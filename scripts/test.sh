#!/usr/bin/env bash
# vipr tests: setup, then every vitest project (unit and lab) in one run,
# then one closing line "N passed, N failed[, N skipped]".
#
#   bash scripts/test.sh                       all tests
#   bash scripts/test.sh test/unit             extra arguments go to `vitest run`
#   bash scripts/test.sh --project lab
#
# Stale labs (left by crashed runs) are removed before and after the run,
# never while tests run, and never a lab someone else may be using (see
# "stale labs" below; VIPR_TEST_CLEAN_ALL=1 = `lab/lab.sh down --all`). Two
# runs of this script take turns (lock /run/vipr-test.lock).
# Env: VIPR_TEST_JSON=FILE keeps the JSON report there.
# Exit status: 0 only when vitest ran and no test failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { echo "test: $*"; }
closing_fail() { echo "0 passed, 1 failed"; exit 1; }

# ---- setup --------------------------------------------------------------------
if ! bash scripts/setup.sh; then
  say "setup failed (see above); no test ran"
  closing_fail
fi

# Vitest runs TypeScript without checking its types: check every file (tests too) first.
if ! typecheck=$(node_modules/.bin/tsc -p tsconfig.test.json 2>&1); then
  printf '%s\n' "$typecheck"
  say "type errors (tsc -p tsconfig.test.json); no test ran"
  closing_fail
fi

VITEST=node_modules/.bin/vitest
[ -x "$VITEST" ] || { say "$VITEST missing after setup"; closing_fail; }

# ---- one run at a time ----------------------------------------------------------
LOCK=/run/vipr-test.lock
exec 9>"$LOCK"
if ! flock -n 9; then
  say "another scripts/test.sh is running; waiting for it (lock $LOCK)"
  flock 9
fi

# ---- stale labs -----------------------------------------------------------------
# Other people may run lab tests (or the demo) on this machine at the same
# time, so a lab is removed only when it is known to be stale:
#  - it was made during a run of this script (its processes carry
#    VIPR_TEST_OWNER) and that run is over (this one, after its tests; or one
#    that died), or
#  - nothing runs in it and it is older than a minute, or
#  - it is older than VIPR_LAB_STALE_MINUTES (default 30) with no live owner.
# VIPR_TEST_CLEAN_ALL=1 removes every lab instead (`lab/lab.sh down --all`).
STALE_MIN=${VIPR_LAB_STALE_MINUTES:-30}
proc_start() { cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null; }
OWNER="$$:$(proc_start $$)"
RUN_BASE=/run/vipr-lab
LAB_NODES=(client router upstream router1 router2 switch web1 web2 web3 web4)

# owner_alive "PID:START": is that test.sh run still going (and not this one after its tests)?
owner_alive() {
  local pid=${1%%:*} start=${1#*:}
  [ "$1" = "$OWNER" ] && return 1
  [ -n "$pid" ] && [ "$(proc_start "$pid")" = "$start" ]
}

# lab_is_stale PREFIX: 0 if stale; prints why
lab_is_stale() {
  local p=$1 n pid owner="" npids=0 age
  for n in "${LAB_NODES[@]}"; do
    for pid in $(ip netns pids "$p-$n" 2>/dev/null); do
      npids=$((npids + 1))
      if [ -z "$owner" ]; then
        owner=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^VIPR_TEST_OWNER=//p' | head -n 1)
      fi
    done
  done
  age=$(( $(date +%s) - $(stat -c %Y "$RUN_BASE/$p/made" 2>/dev/null || date +%s) ))
  if [ -n "$owner" ]; then
    owner_alive "$owner" && return 1
    echo "its test run is over"; return 0
  fi
  if [ "$npids" = 0 ] && [ "$age" -ge 60 ]; then echo "nothing runs in it"; return 0; fi
  if [ "$age" -ge $((STALE_MIN * 60)) ]; then echo "up $((age / 60)) min with no owner"; return 0; fi
  echo "lab $p (up ${age}s, maybe in use by someone else) left alone; remove it with: bash lab/lab.sh down --prefix $p"
  return 1
}

labs_down() {
  local when=$1 out rc=0 d p why
  if [ "${VIPR_TEST_CLEAN_ALL:-0}" = 1 ]; then
    out=$(bash lab/lab.sh down --all 2>&1) || rc=$?
    if [ "$rc" != 0 ]; then
      say "removing labs $when failed: $(printf '%s' "$out" | tr '\n' ' ')"
    elif [ -n "$out" ] && [ "$out" != "no labs" ]; then
      say "removed labs $when: $(printf '%s' "$out" | tr '\n' ' ')"
    fi
    return 0
  fi
  [ -d "$RUN_BASE" ] || return 0
  for d in "$RUN_BASE"/*/; do
    [ -f "$d/made" ] || continue
    p=$(basename "$d")
    [[ "$p" =~ ^[a-z][a-z0-9]{0,7}$ ]] || continue
    if why=$(lab_is_stale "$p"); then
      if out=$(bash lab/lab.sh down --prefix "$p" 2>&1); then
        say "removed stale lab $p $when ($why)"
      else
        say "removing stale lab $p $when failed: $(printf '%s' "$out" | tr '\n' ' ')"
      fi
    elif [ -n "$why" ] && [ "$when" = "before the run" ]; then
      say "$why"
    fi
  done
  return 0
}

JSON=${VIPR_TEST_JSON:-$(mktemp /tmp/vipr-vitest.XXXXXX.json)}
rm -f "$JSON"
CLEANED=0
cleanup() {
  if [ "$CLEANED" = 0 ]; then
    CLEANED=1
    labs_down "after the run"
  fi
}
trap_exit() {
  cleanup
  [ -n "${VIPR_TEST_JSON:-}" ] || rm -f "$JSON"
}
# On Ctrl-C bash first waits for vitest (which runs its own teardown), then
# the trap removes whatever it left.
trap trap_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

labs_down "before the run"

# ---- tests ----------------------------------------------------------------------
vitest_rc=0
# 9>&-: the lock's fd must not leak into vitest and the lab processes it starts
VIPR_TEST_OWNER=$OWNER "$VITEST" run --reporter=default --reporter=json --outputFile.json="$JSON" "$@" 9>&- ||
  vitest_rc=$?
if [ "$vitest_rc" != 0 ] && [ "$vitest_rc" -ge 128 ]; then
  say "vitest was killed (exit $vitest_rc)"
fi

# The whole suite (no arguments): the lab tests once more with two data-plane
# worker threads (PACKET_FANOUT between them), so both shapes stay correct.
reports=("$JSON" "$vitest_rc")
if [ "$#" = 0 ] && [ "${VIPR_TEST_SKIP_WORKERS2:-0}" != 1 ] && [ "$vitest_rc" -lt 128 ]; then
  JSON2=$(mktemp /tmp/vipr-vitest.XXXXXX.json)
  rm -f "$JSON2"
  say "the lab tests again with two data-plane workers (VIPR_LAB_WORKERS=2)"
  labs_down "between the runs"
  rc2=0
  VIPR_LAB_WORKERS=2 VIPR_TEST_OWNER=$OWNER "$VITEST" run --project lab --reporter=default --reporter=json --outputFile.json="$JSON2" 9>&- || rc2=$?
  reports+=("$JSON2" "$rc2")
  [ "$rc2" = 0 ] || vitest_rc=$rc2
fi

# cleanup first, so the closing line is the last one printed
cleanup
trap - EXIT

summary_rc=0
node scripts/summarize-vitest.mjs "${reports[@]}" || summary_rc=$?
[ -n "${VIPR_TEST_JSON:-}" ] || rm -f "$JSON"
[ -z "${JSON2:-}" ] || rm -f "$JSON2"
if [ "$vitest_rc" != 0 ] || [ "$summary_rc" != 0 ]; then
  exit 1
fi
exit 0
