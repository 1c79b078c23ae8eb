#!/usr/bin/env bash
# Measures the packet-ring port: ping latency and 64-byte forwarding rate
# through a two-port L2 forwarder (forward.mjs) in throwaway namespaces, for
# each RX ring / TX mode, against the kernel's own bridge as the baseline.
#
#   bash native-bindings/bench/measure.sh [DIST]      (root; DIST defaults to ./dist)
#   REPEAT=3 SECONDS_PER_RUN=5 MODES="rxRing=v2 tx=sendmmsg,rxRing=v3 tx=sendmmsg" bash ...
#   LATENCY_ONLY=1 bash ...      (ping only, no trafgen)
#
# Numbers swing with whatever else the box runs: repeat, and compare runs
# made together.
#
#   client c0 ── f0 [forwarder, CPU 1] f1 ── s0 server
#   trafgen on the client's veth, pinned to CPU 0 (on veth the receiving
#   side's work runs on the sender's CPU, so this is the fair split).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIST="${1:-$ROOT/dist}"
[ -f "$DIST/src/io/ring-port.js" ] || { echo "measure: $DIST/src/io/ring-port.js missing: run npm run build" >&2; exit 1; }
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
REPEAT="${REPEAT:-1}"
MODES="${MODES:-}"
P="vrt-b$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n' | cut -c1-5)"
C="$P-c" F="$P-f" S="$P-s"
FWD_PID=""
cleanup() {
  [ -n "$FWD_PID" ] && kill "$FWD_PID" 2>/dev/null || true
  for n in "$C" "$F" "$S"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT

for n in "$C" "$F" "$S"; do
  ip netns add "$n"
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$n" link set lo up
done
ip -n "$C" link add c0 type veth peer name f0 netns "$F"
ip -n "$S" link add s0 type veth peer name f1 netns "$F"
ip -n "$C" addr add 10.77.0.1/24 dev c0
ip -n "$S" addr add 10.77.0.2/24 dev s0
for x in "$C c0" "$S s0" "$F f0" "$F f1"; do
  set -- $x
  ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true
  ip -n "$1" link set "$2" up
done
S_MAC=$(ip netns exec "$S" cat /sys/class/net/s0/address)
C_MAC=$(ip netns exec "$C" cat /sys/class/net/c0/address)
# 64-byte frames to the server's MAC but an address it does not own: its
# kernel drops them quietly (no forwarding, no ICMP).
CFG=$(mktemp /tmp/vrt-trafgen.XXXXXX)
trap 'cleanup; rm -f "$CFG"' EXIT
cat > "$CFG" <<CFGEOF
{ eth(da=$S_MAC, sa=$C_MAC, type=0x0800), ipv4(saddr=10.77.0.1, daddr=10.77.0.99, ttl=64), udp(sport=4000, dport=5000), fill(0x00, 18) }
CFGEOF

rx_packets() { ip netns exec "$S" cat /sys/class/net/s0/statistics/rx_packets; }
tx_packets() { ip netns exec "$C" cat /sys/class/net/c0/statistics/tx_packets; }

measure() { # LABEL
  local ping_out rtt before sent_before after sent_after
  ip netns exec "$C" ping -c 3 -i 0.1 -W 1 -q 10.77.0.2 >/dev/null || { echo "$1: no connectivity" >&2; return 1; }
  # warm-up: JIT-compile the forwarder's hot path before timing it
  ip netns exec "$C" timeout -s INT 1 trafgen -o c0 -i "$CFG" -P 1 -q >/dev/null 2>&1 || true
  ip netns exec "$C" ping -c 100 -i 0.002 -q 10.77.0.2 >/dev/null || true
  ping_out=$(ip netns exec "$C" taskset -c 0 ping -c 400 -i 0.005 -q 10.77.0.2 | tail -1)
  rtt=$(echo "$ping_out" | sed -E 's/.*= ([0-9.]+)\/([0-9.]+)\/([0-9.]+)\/([0-9.]+) ms/min \1 avg \2 max \3 ms/')
  if [ -n "${LATENCY_ONLY:-}" ]; then printf '%-34s ping rtt %s\n' "$1" "$rtt"; return 0; fi
  before=$(rx_packets); sent_before=$(tx_packets)
  ip netns exec "$C" timeout -s INT "$SECONDS_PER_RUN" trafgen -o c0 -i "$CFG" -P 1 -q >/dev/null 2>&1 || true
  sleep 0.2
  after=$(rx_packets); sent_after=$(tx_packets)
  awk -v l="$1" -v r="$rtt" -v d=$((after - before)) -v s=$((sent_after - sent_before)) -v t="$SECONDS_PER_RUN" \
    'BEGIN { printf "%-34s ping rtt %-32s offered %5.3f Mpps  delivered %5.3f Mpps\n", l, r, s / t / 1e6, d / t / 1e6 }'
}

# Kernel bridge baseline.
ip -n "$F" link add br0 type bridge
ip -n "$F" link set f0 master br0
ip -n "$F" link set f1 master br0
ip -n "$F" link set br0 up
sleep 1
for _ in $(seq "$REPEAT"); do measure "kernel bridge"; done
ip -n "$F" link del br0

ALL_MODES=("rxRing=v2 tx=sendmmsg" "rxRing=v2 tx=ring" "rxRing=v3 tx=sendmmsg" "rxRing=v3 tx=ring"
           "rxRing=v2 tx=sendmmsg bypass=1" "rxRing=v2 tx=ring bypass=1" "rxRing=v2 tx=sendmmsg busy=1")
if [ -n "$MODES" ]; then IFS=',' read -r -a ALL_MODES <<<"$MODES"; fi
for _ in $(seq "$REPEAT"); do for mode in "${ALL_MODES[@]}"; do
  OUT=$(mktemp /tmp/vrt-fwd.XXXXXX)
  ip netns exec "$F" taskset -c 1 node "$ROOT/native-bindings/bench/forward.mjs" "$DIST" f0 f1 $mode >"$OUT" 2>&1 &
  FWD_PID=$!
  for _ in $(seq 50); do grep -q ready "$OUT" && break; sleep 0.1; done
  measure "ring $mode"
  kill -TERM "$FWD_PID"; wait "$FWD_PID" 2>/dev/null || true; FWD_PID=""
  node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8").split("\n").filter(Boolean).pop());
    console.log("   f0: rx %d kernelDrops %d wakeups %d  f1: tx %d txFailed %d txBlocked %d", s[0].rxFrames, s[0].kernelDrops, s[0].rxWakeups, s[1].txFrames, s[1].txFailed, s[1].txBlocked)' "$OUT" || cat "$OUT"
  rm -f "$OUT"
done; done
