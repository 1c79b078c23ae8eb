#!/usr/bin/env bash
# vipr demo: the article's network in namespaces (lab prefix "demo"), vipr
# routing it, and the client fetching each VIP through vipr.
#
#   bash scripts/demo.sh          (as root, from any directory)
#
# Prints which server answered each VIP, a ping and a traceroute through vipr,
# and the ICMP error for an unrouted address. Then the article's 5 AM page: a
# numbered stream of 20,000 packets/s goes to 192.168.1.33, web1's link goes
# down, vipr fails over to web2 on its own; web1 comes back and, after the
# 3 s hold-down, traffic moves back. It reports the gap, the packets lost, when
# the failback came and what it lost (node dist/bench/failover.js --scenario).
# Exits 0 only if every VIP was answered by the server its route points at and
# vipr failed over. Always removes the lab and stops vipr on the way out,
# Ctrl-C included. vipr's log: /tmp/vipr-demo.log (kept).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PREFIX=demo
CONFIG=/run/vipr-lab/demo/vipr.yaml # lab/vipr.yaml plus this lab's control socket and state file (written by lab.sh up)
LOG=/tmp/vipr-demo.log
PICTURE=/tmp/vipr-demo-failover.svg # per-server packets/s around the failure and the failback
READY_TIMEOUT=20
VIPS=(192.168.1.33 192.168.1.65 192.168.1.97 192.168.1.129)
ROUTES=(192.168.1.32/27 192.168.1.64/27 192.168.1.96/27 192.168.1.128/27)
EXPECT=(web1 web2 web3 web4)
UNROUTED=192.168.1.200

step() { echo "demo: $*"; }
die() { echo "demo: FAILED: $*" >&2; exit 1; }
client() { ip netns exec "$PREFIX-client" "$@"; }

bash scripts/setup.sh || die "setup failed"

# ---- cleanup, whatever happens ------------------------------------------------
VIPR_PID=""
LAB_UP=0
CLEANED=0
cleanup() {
  local rc=$? i
  [ "$CLEANED" = 1 ] && return
  CLEANED=1
  trap '' INT TERM   # a second Ctrl-C must not cut the cleanup short
  if [ -n "$VIPR_PID" ] && kill -0 "$VIPR_PID" 2>/dev/null; then
    step "stopping vipr (pid $VIPR_PID)"
    kill -TERM "$VIPR_PID" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$VIPR_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$VIPR_PID" 2>/dev/null; then
      step "vipr did not stop within 5 s, killing it"
      kill -KILL "$VIPR_PID" 2>/dev/null || true
    fi
    wait "$VIPR_PID" 2>/dev/null || true
  fi
  if [ "$LAB_UP" = 1 ]; then
    step "removing the lab"
    bash lab/lab.sh down --prefix "$PREFIX" >/dev/null || echo "demo: lab.sh down --prefix $PREFIX failed" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; step "interrupted"; exit 130' INT
trap 'step "terminated"; exit 143' TERM HUP

# ---- lab ------------------------------------------------------------------------
step "building the lab (namespaces $PREFIX-client, $PREFIX-router, $PREFIX-switch, $PREFIX-web1..4)"
LAB_UP=1 # from here on, clean up even a half-built lab
bash lab/lab.sh up --prefix "$PREFIX" >/dev/null || die "lab.sh up --prefix $PREFIX failed"

# ---- vipr -------------------------------------------------------------------------
step "starting vipr in $PREFIX-router: node dist/src/cli/main.js run --config $CONFIG (log $LOG)"
: >"$LOG"
# `ip netns exec` execs in place, so $! is node's pid
ip netns exec "$PREFIX-router" "$(command -v node)" dist/src/cli/main.js run --config "$CONFIG" \
  </dev/null >>"$LOG" 2>&1 &
VIPR_PID=$!

deadline=$((SECONDS + READY_TIMEOUT))
until grep -q '"msg":"ready:' "$LOG" 2>/dev/null; do
  if ! kill -0 "$VIPR_PID" 2>/dev/null; then
    wait "$VIPR_PID" 2>/dev/null && code=0 || code=$?
    VIPR_PID=""
    echo "---- last lines of $LOG" >&2
    tail -n 20 "$LOG" >&2
    die "vipr exited (status $code) before it was ready"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "---- last lines of $LOG" >&2
    tail -n 20 "$LOG" >&2
    die "vipr not ready after ${READY_TIMEOUT} s"
  fi
  sleep 0.1
done
step "vipr is ready: $(grep -m1 '"msg":"ready:' "$LOG" | sed 's/.*"msg":"\([^"]*\)".*/\1/')"

# ---- the first fetch also waits for vipr to resolve the gateways (ARP) ----------------
step "waiting for the first answer through vipr (ARP for the next hops)"
deadline=$((SECONDS + 5))
until client curl -s -o /dev/null --max-time 1 "http://${VIPS[0]}/" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || { step "no answer from ${VIPS[0]} within 5 s; fetching anyway"; break; }
  sleep 0.2
done

# ---- the table --------------------------------------------------------------------
step "fetching each VIP from the client (curl http://VIP/)"
echo
fmt='%-15s %-18s %-9s %-12s %s\n'
# shellcheck disable=SC2059
printf "$fmt" VIP route expected "answered by" result
bad=0
for i in "${!VIPS[@]}"; do
  vip=${VIPS[$i]}
  got=$(client curl -s --max-time 3 "http://$vip/" 2>/dev/null | tr -d '\r\n' || true)
  if [ "$got" = "${EXPECT[$i]}" ]; then
    result=ok
  else
    result=FAIL
    bad=$((bad + 1))
  fi
  # shellcheck disable=SC2059
  printf "$fmt" "$vip" "${ROUTES[$i]}" "${EXPECT[$i]}" "${got:-(none)}" "$result"
done
echo

# ---- ping, traceroute, unrouted ---------------------------------------------------------
vip=${VIPS[0]}
out=$(client ping -n -c 3 -i 0.2 -W 1 "$vip" 2>&1 || true)
loss=$(printf '%s\n' "$out" | grep -o '[0-9]* received' | head -n 1 || true)
loss=${loss:-0}
rtt=$(printf '%s\n' "$out" | sed -n 's|^rtt min/avg/max/mdev = [^/]*/\([^/]*\)/.*|\1|p')
echo "ping $vip: ${loss%% *}/3 replies${rtt:+, rtt avg $rtt ms}"

out=$(client traceroute -n -q 1 -w 1 -m 6 "$vip" 2>&1 || true)
hops=$(printf '%s\n' "$out" | awk 'NR > 1 { print $2 }' | paste -sd ' ' - | sed 's/ / -> /g')
echo "traceroute $vip: ${hops:-(no hops)}"

out=$(client ping -n -c 1 -W 2 "$UNROUTED" 2>&1 || true)
from=$(printf '%s\n' "$out" | sed -n 's/^From \([0-9.]*\) .*Destination Net Unreachable.*/\1/p' | head -n 1)
if [ -n "$from" ]; then
  echo "unrouted $UNROUTED: Destination Net Unreachable from $from"
else
  echo "unrouted $UNROUTED: no Destination Net Unreachable ($(printf '%s\n' "$out" | sed -n 2p | cut -c1-60))"
fi
echo

if [ "$bad" -ne 0 ]; then
  die "$bad of ${#VIPS[@]} VIPs not answered by their expected server (vipr log: $LOG)"
fi
step "all ${#VIPS[@]} VIPs answered by the server their route points at"

# ---- 5 AM: web1 drops off the network ------------------------------------------------------
# The article: "It's 5:00 AM on a Monday morning. You're awakened by a page ...
# One of three web servers has just dropped off the network." Here nobody is
# paged: vipr's health checks see it and move the route. The scenario runs the
# stream (lab/udp-stream.c) from the client and timestamping sinks in web1 and
# web2, takes web1's link down and up again, and counts every packet.
echo
step "5:00 AM, Monday: web1 is about to drop off the network"
[ -f dist/bench/failover.js ] || die "dist/bench/failover.js missing (npx tsc -p tsconfig.json)"
# exit status: 0 failed over and back, 3 failed over but did not move back, else no failover
rc=0
node dist/bench/failover.js --scenario "$PREFIX" --vipr-pid "$VIPR_PID" --kind link --lead 1000 --failure 1500 --tail 500 \
  --svg "$PICTURE" || rc=$?
echo
case $rc in
  0) step "web1 dropped off the network and nobody was paged: vipr failed over and back on its own" ;;
  3) step "vipr failed over, but traffic did not move back to web1 (see the report; vipr log: $LOG)" ;;
  *) die "vipr did not fail over web1's traffic (status $rc; vipr log: $LOG)" ;;
esac
