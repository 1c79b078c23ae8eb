#!/usr/bin/env bash
# vipr setup: install what a fresh Debian 12 box (root, Node 20+, npm, g++)
# lacks to build, test and demo vipr. Idempotent: silent when nothing is
# missing, one line per step it takes otherwise.
#
#   bash scripts/setup.sh          (from any directory)
#
# Steps: apt packages (libpcap for `cap`, clang/libbpf/libxdp for the XDP
# port, the lab's tools, systemd-analyze) -> npm ci when
# node_modules is missing or was installed from another package-lock.json
# (stamp: node_modules/.vipr-stamp) -> native addons present and loadable
# (else `npm rebuild cap raw-socket`) -> native-bindings built and current
# (else node-gyp rebuild) -> `npm run build` when a .ts file, the
# tsconfig or the lock changed since the last build (stamp: dist/.vipr-build-stamp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# systemd: its systemd-analyze verifies packaging/vipr.service (test/unit/packaging.test.ts)
APT_PACKAGES=(libpcap-dev clang llvm libbpf-dev libxdp-dev pkg-config ethtool iproute2 nftables curl iputils-ping traceroute tcpdump socat netsniff-ng net-tools hyperfine systemd bird2 keepalived)
# Engines the router-pair lab runs inside its namespaces only (lab/lab.sh up --routers 2):
# never as the host's services, so installing them must not start them.
ENGINE_SERVICES=(bird keepalived)
NPM_STAMP=node_modules/.vipr-stamp
BUILD_STAMP=dist/.vipr-build-stamp

die() { echo "setup: $*" >&2; exit 1; }
step() { echo "setup: $*"; }

LOG=$(mktemp /tmp/vipr-setup.XXXXXX)
trap 'rm -f "$LOG"' EXIT
# run_logged WHAT CMD...: run quietly; on failure show the tail of its output and stop.
run_logged() {
  local what=$1; shift
  if ! "$@" >"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    die "$what failed: $*"
  fi
}

# ---- preconditions ----------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, apt, raw sockets)"
command -v node >/dev/null 2>&1 || die "node not found: install Node.js 20 or newer"
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$NODE_MAJOR" -ge 20 ] 2>/dev/null || die "node $(node -v 2>/dev/null) is too old: need Node.js 20 or newer"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm alongside Node.js"

# ---- apt packages -----------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get to install them"
  step "apt-get update"
  run_logged "apt-get update" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  step "apt-get install ${missing[*]}"
  # Debian starts bird and keepalived on install (invoke-rc.d, or systemd):
  # a policy-rc.d that says no keeps them from running on this host with
  # /etc/bird/bird.conf. Put in place only for the install, and only when the
  # host has none of its own.
  POLICY=/usr/sbin/policy-rc.d
  policy_made=0
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# vipr setup: no service starts during this install\nexit 101\n' > "$POLICY"
    chmod 755 "$POLICY"
    policy_made=1
  fi
  install_rc=0
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >"$LOG" 2>&1 || install_rc=$?
  [ "$policy_made" = 1 ] && rm -f "$POLICY"
  if [ "$install_rc" != 0 ]; then
    tail -n 30 "$LOG" >&2
    die "apt-get install failed: ${missing[*]}"
  fi
  # A systemd host enables units at install: the lab's engines are not the host's services.
  if [ -d /run/systemd/system ]; then
    for svc in "${ENGINE_SERVICES[@]}"; do
      for p in "${missing[@]}"; do
        case "$p:$svc" in bird2:bird|keepalived:keepalived)
          systemctl disable --now "$svc.service" >/dev/null 2>&1 && step "disabled $svc.service (the lab runs its own, inside namespaces)" ;;
        esac
      done
    done
  fi
fi

# ---- node_modules -----------------------------------------------------------
[ -f package-lock.json ] || die "package-lock.json missing in $ROOT"
# The stamp covers the lock and the Node ABI (native addons are built for one).
want_stamp="$(sha256sum package-lock.json | cut -d' ' -f1) abi$(node -p process.versions.modules)"
have_stamp=$(cat "$NPM_STAMP" 2>/dev/null || true)
need_ci=0
if [ ! -d node_modules ]; then
  need_ci=1
elif [ -n "$have_stamp" ]; then
  [ "$have_stamp" = "$want_stamp" ] || need_ci=1
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # no stamp yet: trust npm's own record of the last install if it is newer than the lock
  need_ci=1
fi
if [ "$need_ci" = 1 ]; then
  step "npm ci (node_modules missing or out of date)"
  run_logged "npm ci" npm ci --no-audit --no-fund
  echo "$want_stamp" > "$NPM_STAMP"
elif [ "$have_stamp" != "$want_stamp" ]; then
  echo "$want_stamp" > "$NPM_STAMP"
fi

# ---- native addons ----------------------------------------------------------
native_ok() {
  [ -f node_modules/cap/build/Release/cap.node ] &&
    [ -f node_modules/raw-socket/build/Release/raw.node ] &&
    node -e 'require("cap"); require("raw-socket")' >/dev/null 2>&1
}
if ! native_ok; then
  step "npm rebuild cap raw-socket (native addons missing or not loadable)"
  run_logged "npm rebuild" npm rebuild cap raw-socket
  if ! native_ok; then
    node -e 'require("cap"); require("raw-socket")' 2>&1 | tail -n 5 >&2 || true
    die "native addons cap/raw-socket still missing or not loadable after npm rebuild (is g++/make/python3 installed?)"
  fi
fi

# vipr-native (native-bindings/: the packet-ring port, and the AF_XDP port
# with its XDP program, which needs clang, libbpf-dev and libxdp-dev from the
# apt step): `npm ci` builds it via its install script (approved in
# allowScripts); rebuild it here when either addon is missing, not loadable,
# or older than its sources (a C edit). Node-API is ABI-stable, so a Node
# upgrade needs no rebuild.
VIPR_NATIVE=native-bindings/build/Release/vipr_native.node
VIPR_XDP=native-bindings/build/Release/vipr_xdp.node
VIPR_LIVENESS=native-bindings/build/Release/vipr_liveness.node
vipr_native_ok() {
  [ -f "$VIPR_NATIVE" ] && [ -f "$VIPR_XDP" ] && [ -f "$VIPR_LIVENESS" ] &&
    [ -z "$(find native-bindings/binding.gyp native-bindings/src native-bindings/tools -newer "$VIPR_NATIVE" -print -quit 2>/dev/null)" ] &&
    node -e 'require("./native-bindings"); require("./native-bindings/xdp.js")' >/dev/null 2>&1
}
if ! vipr_native_ok; then
  step "building native-bindings (node-gyp rebuild)"
  # `npm run` puts npm's own node-gyp on PATH: nothing to download
  run_logged "native-bindings build" npm --prefix native-bindings run -s install
  if ! vipr_native_ok; then
    node -e 'require("./native-bindings"); require("./native-bindings/xdp.js")' 2>&1 | tail -n 5 >&2 || true
    die "native-bindings still missing or not loadable after node-gyp rebuild (are g++/make/python3, clang, libbpf-dev and libxdp-dev installed?)"
  fi
fi

# ---- TypeScript build -------------------------------------------------------
# Rebuild when dist or its stamp is missing, when any input is newer than the
# stamp, or when the set of .ts files changed (a file added or removed).
# test/fixtures: the benches import the fixtures they share with the tests.
ts_list=$(find src bench lab test/fixtures -name '*.ts' -type f 2>/dev/null | LC_ALL=C sort)
list_hash=$(printf '%s\n' "$ts_list" | sha256sum | cut -d' ' -f1)
need_build=0
if [ ! -f "$BUILD_STAMP" ] || [ "$(cat "$BUILD_STAMP" 2>/dev/null)" != "$list_hash" ]; then
  need_build=1
elif [ -n "$(find src bench lab test/fixtures -name '*.ts' -type f -newer "$BUILD_STAMP" -print -quit 2>/dev/null)" ]; then
  need_build=1
else
  for f in tsconfig.json package.json package-lock.json; do
    if [ -f "$f" ] && [ "$f" -nt "$BUILD_STAMP" ]; then need_build=1; break; fi
  done
fi
if [ "$need_build" = 1 ]; then
  step "npm run build (tsc)"
  rm -f "$BUILD_STAMP"
  # the stamp's mtime is the build's start, so an edit made during the build
  # still counts as newer next time
  mkdir -p dist
  echo "$list_hash" > "$BUILD_STAMP.new"
  if ! npm run -s build >"$LOG" 2>&1; then
    rm -f "$BUILD_STAMP.new"
    cat "$LOG" >&2
    die "build failed (tsc -p tsconfig.json): see the errors above"
  fi
  mv -f "$BUILD_STAMP.new" "$BUILD_STAMP"
fi
