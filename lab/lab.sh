#!/usr/bin/env bash
# vipr lab: the article's network (client -- router -- switch -- web1..web4) in
# network namespaces. Everything lives inside namespaces named "${P}-*", so
# deleting them removes everything.
#
#   bash lab/lab.sh up     [--prefix P] [--kernel-router | --routers 2]
#   bash lab/lab.sh down   [--prefix P] | --all
#   bash lab/lab.sh status [--prefix P]
#   bash lab/lab.sh exec   [--prefix P] NAME cmd...      NAME: client router switch web1..web4
#                                                         (--routers 2: client upstream router1 router2 switch web1..web4)
#
#  client ns: eth0 10.0.0.2/24 + 10.0.0.254/24 ("upstream"), default via 10.0.0.1
#  router ns: up0 10.0.0.1/24 <-> client eth0; lan0 192.168.1.1/27 <-> switch
#  switch ns: br0 (STP off, forward_delay 0), ports p-router, p-web1..p-web4
#  webN ns:   eth0 192.168.1.(N+1)/27, default via 192.168.1.1,
#             lo: 192.168.1.33/32 .65/32 .97/32 .129/32, arp_ignore=1 arp_announce=2,
#             HTTP server lab/webserver.mjs on :80 of the VIPs and of eth0's address
#  Router: ip_forward=0 (vipr forwards) unless --kernel-router (kernel forwards,
#  with the article's four /27 routes and 192.168.1.0/24 unreachable).
#  IPv6 is disabled in every namespace (no RS/DAD/MLD noise on the wires).
#
# --routers 2: the router pair (README "Two routers"); the web servers and the
# switch as above, and
#  client ns:    eth0 10.1.0.2/24, default via 10.1.0.1 (the upstream)
#  upstream ns:  cl0 10.1.0.1/24 <-> client; br0 10.0.0.254/24 bridging p-router1,
#                p-router2; kernel forwarding with an L4 ECMP hash
#                (fib_multipath_hash_policy=1); BIRD: BGP (AS 65000, passive)
#                to both routers with BFD (50 ms x 3), `merge paths` into the
#                kernel: each VIP prefix via every router that announces it
#  routerN ns:   up0 10.0.0.N/24 <-> upstream br0; lan0 192.168.1.(28+N)/27 <->
#                switch; ip_forward=0 (vipr forwards); BIRD: BGP (AS 65001) to
#                10.0.0.254 with BFD, exporting the static protocol `vipr` that
#                includes the routes file vipr writes; keepalived: VRRPv3
#                192.168.1.1/27 on lan0 (VRID 11, adverts every 50 ms, router1
#                priority 150, router2 100, nopreempt), tracking the liveness link
#                vipr-alive and up0
#  Every engine runs inside its namespace with its config, control socket, pid
#  file and log in /run/vipr-lab/P/NODE/ (nothing in /etc, no syslog); vipr's
#  config for each router is /run/vipr-lab/P/NODE/vipr.yaml (vipr is started
#  by whoever uses the lab: test/lab/harness.ts, bench/redundancy.ts).
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WEBSERVER="$SCRIPT_DIR/webserver.mjs"
RUN_BASE=/run/vipr-lab
NAMES=(client router switch web1 web2 web3 web4)
PAIR_NAMES=(client upstream router1 router2 switch web1 web2 web3 web4)
# Every namespace a lab of either kind may have: `down` removes whichever exist.
ALL_NAMES=(client router upstream router1 router2 switch web1 web2 web3 web4)
WEBS=(web1 web2 web3 web4)
VIPS=(192.168.1.33 192.168.1.65 192.168.1.97 192.168.1.129)

PREFIX=vipr
KERNEL_ROUTER=0
ROUTERS=1
ALL=0
QUIET_DOWN=0

usage() {
  cat >&2 <<'EOF'
usage: bash lab/lab.sh up     [--prefix P] [--kernel-router | --routers 2]
       bash lab/lab.sh down   [--prefix P] | down --all
       bash lab/lab.sh status [--prefix P]
       bash lab/lab.sh exec   [--prefix P] NAME cmd...   (NAME: client router switch web1..web4;
                                                         with --routers 2: client upstream router1 router2 switch web1..web4)
prefix: ^[a-z][a-z0-9]{0,7}$ (default vipr)
EOF
  exit 2
}

die() { echo "lab.sh: $*" >&2; exit 1; }

ns() { echo "${PREFIX}-$1"; }
rundir() { echo "$RUN_BASE/$PREFIX"; }
web_ip() { echo "192.168.1.$(( ${1#web} + 1 ))"; }
web_mac() { printf '02:00:00:01:00:%02x' $(( ${1#web} + 1 )); }
ns_exists() { [ -e "/run/netns/$1" ]; }

# ---- failure handling during `up` -------------------------------------------
UP_IN_PROGRESS=0
fail() {
  echo "lab.sh: up failed (prefix $PREFIX): $*" >&2
  if [ "$UP_IN_PROGRESS" = 1 ]; then
    UP_IN_PROGRESS=0
    QUIET_DOWN=1 do_down >/dev/null 2>&1
  fi
  exit 1
}

# run CMD...: run a command, on failure tear down and exit with one line.
run() {
  local err
  if ! err=$("$@" 2>&1 >/dev/null); then
    err=$(printf '%s' "$err" | tr '\n' ' ' | sed 's/  */ /g; s/ $//')
    fail "'$*' -> ${err:-exit non-zero}"
  fi
}

# ip -n NS -batch with a here-doc on stdin
ipb() {
  local n=$1 err
  if ! err=$(ip -n "$n" -batch - 2>&1 >/dev/null); then
    err=$(printf '%s' "$err" | tr '\n' ' ' | sed 's/  */ /g; s/ $//')
    fail "ip -n $n -batch: ${err:-exit non-zero}"
  fi
}

sysctls() { local n=$1; shift; run ip netns exec "$n" sysctl -q -w "$@"; }

# ---- down -------------------------------------------------------------------
do_down() {
  local n pids left i
  local present=()
  for n in "${ALL_NAMES[@]}"; do
    ns_exists "$(ns "$n")" && present+=("$(ns "$n")")
  done
  # Kill every process in the lab's namespaces: TERM, short wait, then KILL.
  for n in "${present[@]}"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null
  done
  for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    left=0
    for n in "${present[@]}"; do
      pids=$(ip netns pids "$n" 2>/dev/null)
      [ -n "$pids" ] && left=1
    done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for n in "${present[@]}"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
  done
  # Web servers started by us (normally already gone with their namespace).
  if [ -d "$(rundir)" ]; then
    for f in "$(rundir)"/*.pid; do
      [ -f "$f" ] || continue
      local pid; pid=$(cat "$f" 2>/dev/null)
      # only kill it if it still looks like our web server
      if [ -n "$pid" ] && grep -qs "webserver.mjs" "/proc/$pid/cmdline" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null
      fi
    done
  fi
  local failed=()
  for n in "${present[@]}"; do
    if ! ip netns del "$n" 2>/dev/null; then
      sleep 0.2
      ip netns del "$n" 2>/dev/null || failed+=("$n")
    fi
  done
  rm -rf "$(rundir)"
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "lab.sh: down: could not delete namespaces: ${failed[*]}" >&2
    return 1
  fi
  [ "$QUIET_DOWN" = 1 ] || echo "lab $PREFIX down"
  return 0
}

do_down_all() {
  local d p rc=0
  [ -d "$RUN_BASE" ] || { echo "no labs"; return 0; }
  for d in "$RUN_BASE"/*/; do
    [ -f "$d/made" ] || continue
    p=$(basename "$d")
    [[ "$p" =~ ^[a-z][a-z0-9]{0,7}$ ]] || continue
    ( PREFIX=$p; do_down ) || rc=1
  done
  return $rc
}

# ---- up ---------------------------------------------------------------------
# veth A in NS1 <-> B in NS2, both created directly inside the namespaces.
veth() {
  local n1=$1 a=$2 mac_a=$3 n2=$4 b=$5 mac_b=$6
  run ip link add "$a" netns "$n1" address "$mac_a" type veth peer name "$b" netns "$n2" address "$mac_b"
}

# The web servers, the same in both kinds of lab: addresses and the VIPs on
# loopback, wire-like veths, the HTTP servers started and answering on every address.
webs_up() {
  local rd=$1 node=$2
  local W ip n
  for n in "${WEBS[@]}"; do
    W=$(ns "$n"); ip=$(web_ip "$n")
    sysctls "$W" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
    ipb "$W" <<EOF
addr add 192.168.1.33/32 dev lo
addr add 192.168.1.65/32 dev lo
addr add 192.168.1.97/32 dev lo
addr add 192.168.1.129/32 dev lo
addr add $ip/27 dev eth0
link set eth0 up
route add default via 192.168.1.1 dev eth0
EOF
    run ip netns exec "$W" ethtool -K eth0 tso off gso off gro off tx off
  done

  local listen
  listen=$(IFS=,; echo "${VIPS[*]}")
  for n in "${WEBS[@]}"; do
    W=$(ns "$n"); ip=$(web_ip "$n")
    # `ip netns exec` and setsid exec in place, so $! is node's pid.
    ip netns exec "$W" setsid "$node" "$WEBSERVER" --name "$n" --listen "$listen,$ip" --port 80 \
      </dev/null >"$rd/$n.log" 2>&1 &
    echo $! > "$rd/$n.pid"
  done

  # wait until every server answers on every address (from its own namespace)
  local deadline=$((SECONDS + 20)) a ok
  for n in "${WEBS[@]}"; do
    W=$(ns "$n"); ip=$(web_ip "$n")
    for a in "$ip" "${VIPS[@]}"; do
      ok=0
      while [ $SECONDS -lt $deadline ]; do
        if [ "$(ip netns exec "$W" curl -s --max-time 1 "http://$a/health" 2>/dev/null)" = ok ]; then
          ok=1; break
        fi
        if ! kill -0 "$(cat "$rd/$n.pid")" 2>/dev/null; then
          fail "web server $n exited: $(tail -n 1 "$rd/$n.log" 2>/dev/null)"
        fi
        sleep 0.05
      done
      [ "$ok" = 1 ] || fail "web server $n does not answer on $a:80"
    done
  done

}

do_up() {
  [[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "bad prefix '$PREFIX' (must match ^[a-z][a-z0-9]{0,7}\$)"
  command -v ip >/dev/null || die "ip (iproute2) not found"
  command -v ethtool >/dev/null || die "ethtool not found"
  command -v curl >/dev/null || die "curl not found"
  local node; node=$(command -v node) || die "node not found"
  [ -f "$WEBSERVER" ] || die "missing $WEBSERVER"
  [ "$(id -u)" = 0 ] || die "must run as root"

  QUIET_DOWN=1 do_down >/dev/null || die "could not remove leftovers of lab $PREFIX"

  UP_IN_PROGRESS=1
  trap 'fail "interrupted"' INT TERM HUP
  local rd; rd=$(rundir)
  mkdir -p "$rd" || fail "cannot create $rd"
  echo "$PREFIX" > "$rd/made" || fail "cannot write $rd/made"
  [ "$KERNEL_ROUTER" = 1 ] && echo kernel-router > "$rd/mode" || echo vipr > "$rd/mode"
  # The daemon's config for this lab: the article's network (lab/vipr.yaml) with
  # its control socket and state file inside the lab's run directory, so labs
  # with different prefixes never share them.
  # VIPR_LAB_WORKERS=N runs the lab's daemon with N data-plane workers (the test suite runs once more with 2).
  { sed "s/^  workers: 1\$/  workers: ${VIPR_LAB_WORKERS:-1}/" "$SCRIPT_DIR/vipr.yaml"
    printf '\n# Added by lab.sh for lab %s\ncontrol: { socket: %s/vipr.sock }\nstate: { file: %s/state.json }\n' "$PREFIX" "$rd" "$rd"
  } > "$rd/vipr.yaml" || fail "cannot write $rd/vipr.yaml"

  local C R S n N
  C=$(ns client); R=$(ns router); S=$(ns switch)
  for n in "${NAMES[@]}"; do
    run ip netns add "$(ns "$n")"
    # no IPv6 (router solicitations, DAD, MLD would put extra frames on the wires)
    sysctls "$(ns "$n")" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    run ip -n "$(ns "$n")" link set lo up
  done

  # --- links
  veth "$C" eth0 02:00:00:00:00:02 "$R" up0 02:00:00:00:00:01
  veth "$R" lan0 02:00:00:01:00:01 "$S" p-router 02:00:00:02:00:01
  for n in "${WEBS[@]}"; do
    N=${n#web}
    veth "$(ns "$n")" eth0 "$(web_mac "$n")" "$S" "p-$n" "$(printf '02:00:00:02:00:%02x' $((N + 1)))"
  done

  # --- switch
  ipb "$S" <<EOF
link add br0 address 02:00:00:02:00:00 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
link set p-router master br0
link set p-web1 master br0
link set p-web2 master br0
link set p-web3 master br0
link set p-web4 master br0
link set br0 up
link set p-router up
link set p-web1 up
link set p-web2 up
link set p-web3 up
link set p-web4 up
EOF
  # A switch switches: no bridge-netfilter (iptables on bridged frames), which
  # the sender's CPU would otherwise pay for on every frame (veth runs the
  # receiver's work on the sender's CPU). Per namespace; absent without br_netfilter.
  local knob
  for knob in iptables ip6tables arptables; do
    ip netns exec "$S" sysctl -qw "net.bridge.bridge-nf-call-$knob=0" 2>/dev/null || true
  done

  # --- router
  local fwd=0
  [ "$KERNEL_ROUTER" = 1 ] && fwd=1
  sysctls "$R" net.ipv4.ip_forward=$fwd \
    net.ipv4.conf.all.forwarding=$fwd net.ipv4.conf.default.forwarding=$fwd \
    net.ipv4.conf.up0.forwarding=$fwd net.ipv4.conf.lan0.forwarding=$fwd \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.up0.rp_filter=0 net.ipv4.conf.lan0.rp_filter=0
  ipb "$R" <<EOF
addr add 10.0.0.1/24 dev up0
addr add 192.168.1.1/27 dev lan0
link set up0 up
link set lan0 up
EOF
  if [ "$KERNEL_ROUTER" = 1 ]; then
    ipb "$R" <<EOF
route add 192.168.1.32/27 via 192.168.1.2 dev lan0
route add 192.168.1.64/27 via 192.168.1.3 dev lan0
route add 192.168.1.96/27 via 192.168.1.4 dev lan0
route add 192.168.1.128/27 via 192.168.1.5 dev lan0
route add unreachable 192.168.1.0/24
EOF
  fi

  # --- client
  ipb "$C" <<EOF
addr add 10.0.0.2/24 dev eth0
addr add 10.0.0.254/24 dev eth0
link set eth0 up
route add default via 10.0.0.1 dev eth0
EOF
  run ip netns exec "$C" ethtool -K eth0 tso off gso off gro off tx off

  webs_up "$rd" "$node"

  trap - INT TERM HUP
  UP_IN_PROGRESS=0
  local mode=vipr
  [ "$KERNEL_ROUTER" = 1 ] && mode="kernel-router"
  echo "lab $PREFIX up ($mode): namespaces ${PREFIX}-{client,router,switch,web1..web4}"
}

# ---- up --routers 2 -----------------------------------------------------------
# The engines' configs: what packaging/ has for a real pair, with the lab's
# addresses, and every path inside the lab's run directory.
upstream_bird_conf() {
  cat <<EOF
# BIRD on the upstream router (lab $PREFIX): BGP with BFD to both vipr routers,
# their routes merged into one ECMP route in the kernel.
router id 10.0.0.254;
protocol device { }
protocol kernel {
  ipv4 { import none; export all; };
  merge paths on;                 # one kernel route with a next hop per router (ECMP)
}
protocol bfd {
  interface "br0" { interval 50 ms; multiplier 3; };
}
template bgp vipr_router {
  local 10.0.0.254 as 65000;
  passive on;                     # the routers connect
  bfd on;                         # a router gone: its routes leave in 3 x 50 ms
  error wait time 1, 5;           # a session that comes back is used again within seconds
  ipv4 { import all; export none; };
}
protocol bgp router1 from vipr_router { neighbor 10.0.0.1 as 65001; }
protocol bgp router2 from vipr_router { neighbor 10.0.0.2 as 65001; }
EOF
}

router_bird_conf() {
  local i=$1 rdn=$2
  cat <<EOF
# BIRD on router$i (lab $PREFIX): announces what vipr writes to $rdn/bird-routes.conf.
router id 10.0.0.$i;
protocol device { }
# vipr's routes file: one static route per prefix it can serve, each via the
# liveness link; "check link" withdraws them all when vipr stops forwarding or dies.
protocol static vipr {
  ipv4;
  check link on;
  include "$rdn/bird-routes*.conf";
}
protocol bfd {
  interface "up0" { interval 50 ms; multiplier 3; };
}
protocol bgp upstream {
  local 10.0.0.$i as 65001;
  neighbor 10.0.0.254 as 65000;
  bfd on;
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 5;
  ipv4 { import none; export where proto = "vipr"; };
}
EOF
}

router_keepalived_conf() {
  local i=$1 priority=$2
  cat <<EOF
# keepalived on router$i (lab $PREFIX): the servers' gateway 192.168.1.1 by VRRPv3.
global_defs {
  router_id router$i
  vrrp_version 3
  dynamic_interfaces             # vipr-alive exists only while vipr runs
}
vrrp_instance gateway {
  state BACKUP
  nopreempt                      # an address that works stays where it is
  interface lan0
  virtual_router_id 11
  priority $priority
  advert_int 0.05                # 50 ms: the backup takes over 3 adverts after the master falls silent
  virtual_ipaddress {
    192.168.1.1/27 dev lan0
  }
  track_interface {
    vipr-alive                   # vipr's liveness link: down or gone -> FAULT, the address moves at once
    up0                          # no way to the clients: no use holding the servers' gateway
  }
}
EOF
}

# start_engine NODE NAME CMD...: an engine in NODE's namespace, its output in NODE/NAME.log.
start_engine() {
  local node=$1 name=$2; shift 2
  local rdn; rdn="$(rundir)/$node"
  ip netns exec "$(ns "$node")" setsid "$@" </dev/null >"$rdn/$name.log" 2>&1 &
  echo $! > "$rdn/$name.launcher"
}

do_up_pair() {
  [[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "bad prefix '$PREFIX' (must match ^[a-z][a-z0-9]{0,7}\$)"
  command -v ip >/dev/null || die "ip (iproute2) not found"
  command -v ethtool >/dev/null || die "ethtool not found"
  command -v curl >/dev/null || die "curl not found"
  { command -v bird && command -v birdc; } >/dev/null || die "bird/birdc not found (apt-get install bird2; scripts/setup.sh does)"
  command -v keepalived >/dev/null || die "keepalived not found (apt-get install keepalived; scripts/setup.sh does)"
  local node; node=$(command -v node) || die "node not found"
  [ -f "$WEBSERVER" ] || die "missing $WEBSERVER"
  [ "$(id -u)" = 0 ] || die "must run as root"

  QUIET_DOWN=1 do_down >/dev/null || die "could not remove leftovers of lab $PREFIX"

  UP_IN_PROGRESS=1
  trap 'fail "interrupted"' INT TERM HUP
  local rd; rd=$(rundir)
  mkdir -p "$rd/upstream" "$rd/router1" "$rd/router2" || fail "cannot create $rd"
  echo "$PREFIX" > "$rd/made" || fail "cannot write $rd/made"
  echo vipr-pair > "$rd/mode"

  local C U S n N i R rdn priority knob
  C=$(ns client); U=$(ns upstream); S=$(ns switch)
  for n in "${PAIR_NAMES[@]}"; do
    run ip netns add "$(ns "$n")"
    sysctls "$(ns "$n")" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    run ip -n "$(ns "$n")" link set lo up
  done

  # --- links
  veth "$C" eth0 02:00:00:00:00:02 "$U" cl0 02:00:00:00:00:fe
  for i in 1 2; do
    veth "$U" "p-router$i" "02:00:00:00:01:f$i" "$(ns "router$i")" up0 "02:00:00:00:01:0$i"
    veth "$(ns "router$i")" lan0 "02:00:00:01:00:f$i" "$S" "p-router$i" "02:00:00:02:00:f$i"
  done
  for n in "${WEBS[@]}"; do
    N=${n#web}
    veth "$(ns "$n")" eth0 "$(web_mac "$n")" "$S" "p-$n" "$(printf '02:00:00:02:00:%02x' $((N + 1)))"
  done

  # --- switch (as in the single-router lab, with two router ports)
  ipb "$S" <<EOF
link add br0 address 02:00:00:02:00:00 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
link set p-router1 master br0
link set p-router2 master br0
link set p-web1 master br0
link set p-web2 master br0
link set p-web3 master br0
link set p-web4 master br0
link set br0 up
link set p-router1 up
link set p-router2 up
link set p-web1 up
link set p-web2 up
link set p-web3 up
link set p-web4 up
EOF
  for knob in iptables ip6tables arptables; do
    ip netns exec "$S" sysctl -qw "net.bridge.bridge-nf-call-$knob=0" 2>/dev/null || true
    ip netns exec "$U" sysctl -qw "net.bridge.bridge-nf-call-$knob=0" 2>/dev/null || true
  done

  # --- upstream: a router (the kernel forwards, hashing on L4 ports), one segment to both vipr routers
  sysctls "$U" net.ipv4.ip_forward=1 net.ipv4.conf.all.forwarding=1 net.ipv4.conf.default.forwarding=1 \
    net.ipv4.fib_multipath_hash_policy=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  ipb "$U" <<EOF
link add br0 address 02:00:00:00:01:f0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
link set p-router1 master br0
link set p-router2 master br0
addr add 10.1.0.1/24 dev cl0
addr add 10.0.0.254/24 dev br0
link set cl0 up
link set p-router1 up
link set p-router2 up
link set br0 up
EOF
  # Wire-like: no super-frames from the kernel's offloads reach a router's packet socket.
  for n in cl0 p-router1 p-router2; do
    run ip netns exec "$U" ethtool -K "$n" tso off gso off gro off tx off
  done

  # --- routers: vipr forwards (the kernel does not); each has its own lan0 address, 192.168.1.1 is keepalived's
  for i in 1 2; do
    R=$(ns "router$i")
    sysctls "$R" net.ipv4.ip_forward=0 \
      net.ipv4.conf.all.forwarding=0 net.ipv4.conf.default.forwarding=0 \
      net.ipv4.conf.up0.forwarding=0 net.ipv4.conf.lan0.forwarding=0 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
      net.ipv4.conf.up0.rp_filter=0 net.ipv4.conf.lan0.rp_filter=0
    ipb "$R" <<EOF
addr add 10.0.0.$i/24 dev up0
addr add 192.168.1.$((28 + i))/27 dev lan0
link set up0 up
link set lan0 up
EOF
  done

  # --- client
  ipb "$C" <<EOF
addr add 10.1.0.2/24 dev eth0
link set eth0 up
route add default via 10.1.0.1 dev eth0
EOF
  run ip netns exec "$C" ethtool -K eth0 tso off gso off gro off tx off

  webs_up "$rd" "$node"

  # --- engines: BIRD on the upstream and on each router, keepalived on each router
  upstream_bird_conf > "$rd/upstream/bird.conf" || fail "cannot write $rd/upstream/bird.conf"
  start_engine upstream bird bird -f -c "$rd/upstream/bird.conf" -s "$rd/upstream/bird.ctl" -P "$rd/upstream/bird.pid"
  for i in 1 2; do
    rdn="$rd/router$i"
    router_bird_conf "$i" "$rdn" > "$rdn/bird.conf" || fail "cannot write $rdn/bird.conf"
    if [ "$i" = 1 ]; then priority=150; else priority=100; fi
    router_keepalived_conf "$i" "$priority" > "$rdn/keepalived.conf" || fail "cannot write $rdn/keepalived.conf"
    start_engine "router$i" bird bird -f -c "$rdn/bird.conf" -s "$rdn/bird.ctl" -P "$rdn/bird.pid"
    # -n: no fork; -l -G: log to the console (the log file), not the host's syslog; -P: VRRP only
    start_engine "router$i" keepalived keepalived -n -l -G -P -f "$rdn/keepalived.conf" \
      -p "$rdn/keepalived.pid" -r "$rdn/keepalived-vrrp.pid"
    # vipr's config for this router: the article's network, with the pair's sections
    { cat "$SCRIPT_DIR/vipr.yaml"
      printf '\n# Added by lab.sh for lab %s, router%s of the pair\n' "$PREFIX" "$i"
      printf 'control: { socket: %s/vipr.sock }\nstate: { file: %s/state.json }\n' "$rdn" "$rdn"
      printf 'liveness: { interface: vipr-alive }\n'
      printf 'bird: { socket: %s/bird.ctl, routesFile: %s/bird-routes.conf }\n' "$rdn" "$rdn"
      printf 'keepalived: { pidFile: %s/keepalived.pid }\n' "$rdn"
    } > "$rdn/vipr.yaml" || fail "cannot write $rdn/vipr.yaml"
  done

  # Up when both BGP sessions are established and keepalived has written its pid
  # file (its VRRP instance stays in FAULT until vipr's liveness link exists).
  local deadline=$((SECONDS + 30)) established f
  while :; do
    established=$(birdc -s "$rd/upstream/bird.ctl" show protocols 2>/dev/null | grep -c 'Established')
    [ "$established" = 2 ] && [ -s "$rd/router1/keepalived.pid" ] && [ -s "$rd/router2/keepalived.pid" ] && break
    for f in "$rd"/*/*.launcher; do
      kill -0 "$(cat "$f")" 2>/dev/null ||
        fail "$(basename "$(dirname "$f")") $(basename "$f" .launcher) exited: $(tail -n 2 "${f%.launcher}.log" 2>/dev/null | tr '\n' ' ')"
    done
    [ $SECONDS -lt $deadline ] || fail "BGP sessions not established within 30 s ($established of 2; see $rd/*/bird.log)"
    sleep 0.1
  done

  trap - INT TERM HUP
  UP_IN_PROGRESS=0
  echo "lab $PREFIX up (vipr-pair): namespaces ${PREFIX}-{client,upstream,router1,router2,switch,web1..web4}; vipr configs $rd/router{1,2}/vipr.yaml"
}

# ---- status -----------------------------------------------------------------
do_status() {
  local n N up=1 any=0 ip body
  local names=("${NAMES[@]}")
  [ "$(cat "$(rundir)/mode" 2>/dev/null)" = vipr-pair ] && names=("${PAIR_NAMES[@]}")
  for n in "${names[@]}"; do ns_exists "$(ns "$n")" && any=1; done
  if [ "$any" = 0 ]; then
    echo "lab $PREFIX: down"
    return 1
  fi
  for n in "${names[@]}"; do
    N=$(ns "$n")
    if ns_exists "$N"; then
      echo "== $N"
      ip -n "$N" -br addr 2>/dev/null | sed 's/^/   /'
      case $n in
        web*)
          ip=$(web_ip "$n")
          body=$(ip netns exec "$N" curl -s --max-time 2 "http://$ip/" 2>/dev/null)
          if [ "$body" = "$n" ]; then
            echo "   http://$ip/ answers: $body"
          else
            echo "   http://$ip/ NOT answering"; up=0
          fi
          ;;
        router)
          echo "   ip_forward=$(ip netns exec "$N" cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)"
          ;;
        upstream)
          birdc -s "$(rundir)/upstream/bird.ctl" show protocols 2>/dev/null | grep BGP | sed 's/^/   /'
          birdc -s "$(rundir)/upstream/bird.ctl" show route 2>/dev/null | grep -v '^BIRD' | sed 's/^/   /'
          ;;
      esac
    else
      echo "== $N: missing"
      up=0
    fi
  done
  if [ "$up" = 1 ]; then
    echo "lab $PREFIX: up ($(cat "$(rundir)/mode" 2>/dev/null || echo unknown))"
    return 0
  fi
  echo "lab $PREFIX: incomplete"
  return 1
}

# ---- exec -------------------------------------------------------------------
do_exec() {
  local name=$1; shift
  case " ${ALL_NAMES[*]} " in
    *" $name "*) ;;
    *) die "exec: unknown namespace name '$name' (client router switch web1..web4; a pair: client upstream router1 router2 switch web1..web4)";;
  esac
  [ $# -gt 0 ] || die "exec: no command given"
  ns_exists "$(ns "$name")" || die "exec: namespace $(ns "$name") does not exist (lab down?)"
  exec ip netns exec "$(ns "$name")" "$@"
}

# ---- argument parsing -------------------------------------------------------
CMD=""
EXEC_NAME=""
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) [ $# -ge 2 ] || usage; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    --kernel-router) KERNEL_ROUTER=1; shift ;;
    --routers) [ $# -ge 2 ] || usage; ROUTERS=$2; shift 2 ;;
    --routers=*) ROUTERS=${1#--routers=}; shift ;;
    --all) ALL=1; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) die "unknown option $1" ;;
    *)
      if [ -z "$CMD" ]; then CMD=$1; shift
      elif [ "$CMD" = exec ]; then EXEC_NAME=$1; shift; break
      else die "unexpected argument '$1'"
      fi
      ;;
  esac
done
if [ "$CMD" = exec ] && [ -z "$EXEC_NAME" ] && [ $# -gt 0 ]; then EXEC_NAME=$1; shift; fi
if [ "$CMD" = exec ] && [ "${1:-}" = "--" ]; then shift; fi

[ -n "$CMD" ] || usage
[[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "bad prefix '$PREFIX' (must match ^[a-z][a-z0-9]{0,7}\$)"

case $CMD in
  up)
    case $ROUTERS in
      1) do_up ;;
      2) [ "$KERNEL_ROUTER" = 0 ] || die "--kernel-router is for the single-router lab"; do_up_pair ;;
      *) die "--routers: 1 or 2, not '$ROUTERS'" ;;
    esac ;;
  down)
    [ "$(id -u)" = 0 ] || die "must run as root"
    if [ "$ALL" = 1 ]; then do_down_all; else do_down; fi ;;
  status) do_status ;;
  exec) [ -n "$EXEC_NAME" ] || usage; do_exec "$EXEC_NAME" "$@" ;;
  *) usage ;;
esac
