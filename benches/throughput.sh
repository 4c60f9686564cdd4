#!/usr/bin/env bash
# Throughput harness: Hearth side by side with Unbound, dnsdist, dnsmasq and NSD on loopback.
#
#   benches/throughput.sh [--quick] [--only SCENARIO[,SCENARIO...]] [--servers NAME[,NAME...]]
#                         [--duration S] [--repeat N] [--out FILE] [--keep]
#
# Scenarios: hit (cache hit), hosts (hosts-file answer), auth (authoritative zone), miss (cache
# miss, one pass over 100k names on a fresh server), loss (500 queries outstanding),
# crosscheck (hearth-loadgen and dnsperf at the same outstanding count), churn (forwarded cache
# hits while the cluster feed changes a Service every 100 ms, and without; the notes give the
# fast path's hit ratio), frontdoor (cache hits under three front-door policies, interleaved
# in rounds), flood (the rate limiter under a flood from 256 and 65,536 sources in 127/8),
# miss-tcp and miss-tls (cache misses forwarded over TCP and over DNS over TLS: Hearth with
# tcp:// and tls:// upstreams, Unbound with tcp-upstream and tls-upstream, against the same
# NSD; the notes count the TCP connections opened per 10,000 misses).
# rotate (cache hits on names with four addresses each, resolve.rotate off and on, in rounds).
# dnssec-hit and dnssec-miss (bench.test signed with ldns, from an NSD of its own: Hearth
# validating, Hearth not validating, and Unbound validating, all with bench.test's key as the
# trust anchor; cache hits, and one pass of misses).
# The long tail (issue 16), each name asked in turn over a set larger than the hot ones:
# auth-tail (all 100,000 names of bench.test: Hearth, NSD, Knot), hosts-tail (a 100,000-line
# hosts file: Hearth, dnsmasq), nx-tail (cluster-zone NXDOMAINs for 10,000 external names x 10
# namespaces, as ndots:5 search paths make them: Hearth and the reflector), hit-tail (cache hits
# over 1,000,000 cached names, from an NSD of their own: Hearth with the fast path held to 64 MiB
# and as configured by default, its table following the cache; Unbound). Each row notes the
# first (cold) pass's rate; then every server of the scenario is run again open-loop at half
# of the scenario's lowest peak, for p50 and p99 at the same rate (the "latency" table). Then
# auth-tail, hosts-tail and nx-tail run once more in rounds, the servers interleaved (A B C A B C
# ...), for ratios that a drifting machine does not tilt, and each server core's µs per answer
# (the "in rounds" table). auth-flood (a random-subdomain flood against bench.test: 1,000,000
# distinct names that do not exist, each asked once, one pass on a fresh server, in rounds:
# Hearth, NSD, Knot; what no table of earlier replies can answer).
# instructions (each server's own instructions per answer, counted under valgrind's callgrind:
# Hearth, NSD, Knot, over 20,000 names cold, warm and of the NX flood; a count the machine's
# state does not move, without the kernel's part).
# churn, frontdoor, flood, miss-tcp, miss-tls, rotate, dnssec-hit, dnssec-miss and
# instructions run only when named. --servers keeps only the named rows of each scenario (e.g.
# --only miss --servers hearth,unbound). See benches/README.md.
#
# Each server under test runs alone on CPU 1 (`taskset -c 1`); the load generator runs on
# CPU 0, and so does the NSD that forwarders use as their upstream. Everything listens on
# 127.0.0.1; every run is bounded in time; every process started here is stopped on exit.
# HEARTH_BIN=path runs another hearth binary (an older build, to compare) in Hearth's rows.
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

QUICK=0
ONLY="hit,hosts,auth,miss,loss,crosscheck,auth-tail,hosts-tail,nx-tail,hit-tail,auth-flood"
SERVERS=""
OUT=""
KEEP=0
DURATION=""
REPEAT=""
CMDLINE="benches/throughput.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --only) ONLY="${2:?--only needs a scenario}"; shift ;;
        --servers) SERVERS="${2:?--servers needs a server name}"; shift ;;
        --out) OUT="${2:?--out needs a file}"; shift ;;
        --duration) DURATION="${2:?--duration needs seconds}"; shift ;;
        --repeat) REPEAT="${2:?--repeat needs a count}"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option: $1" >&2; usage 2 >&2 ;;
    esac
    shift
done
for s in ${ONLY//,/ }; do
    case "$s" in hit|hosts|auth|miss|loss|crosscheck|churn|frontdoor|flood|miss-tcp|miss-tls|rotate|dnssec-hit|dnssec-miss|auth-tail|hosts-tail|nx-tail|hit-tail|auth-flood|instructions) ;; *) echo "unknown scenario: $s" >&2; exit 2 ;; esac
done
# frontdoor: rounds of its three configs, interleaved (--repeat, else 3); elsewhere, runs per cell.
ROUNDS=${REPEAT:-3}
REPEAT=${REPEAT:-1}
# Length of one measured run, in seconds (PEERS.md used 15 s, median of 3: --repeat 3).
[ -n "$DURATION" ] || DURATION=$([ "$QUICK" = 1 ] && echo 3 || echo 10)
WARM=$([ "$QUICK" = 1 ] && echo 1 || echo 3)
OUTSTANDING=200         # hearth-loadgen's queries in flight (cache hit, hosts, auth)
DNSPERF_ARGS=(-c 16 -q 500)   # as in PEERS.md
MISS_OUTSTANDING=100    # cache miss: both generators, as PEERS.md's dnsperf -c 4 -q 100
SERVER_CPU=1
CLIENT_CPU=0
PORT_BASE=${HEARTH_BENCH_PORT_BASE:-53530}
UPSTREAM_PORT=$PORT_BASE            # NSD, the upstream of every forwarder
PORT=$((PORT_BASE + 1))             # the server under test
ADMIN_PORT=$((PORT_BASE + 2))       # Hearth's /metrics (churn, frontdoor, flood)
UPSTREAM_TLS_PORT=$((PORT_BASE + 3)) # NSD's DNS over TLS (miss-tls)
TLS_NAME=upstream.bench.test        # the name in NSD's certificate
SIGNED_UPSTREAM_PORT=$((PORT_BASE + 4)) # NSD serving bench.test signed (dnssec-hit, dnssec-miss)
TAIL_UPSTREAM_PORT=$((PORT_BASE + 5))   # NSD serving tail.test, 1,000,000 names (hit-tail)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HEARTH="${HEARTH_BIN:-$ROOT/target/release/hearth}"
LOADGEN="$ROOT/target/release/hearth-loadgen"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- processes: every one started is recorded and stopped on exit --------------------------
# tree PID: PID and its descendants (NSD's first process becomes xfrd; the server is a grandchild).
tree() {
    local c
    echo "$1"
    for c in $(pgrep -P "$1" || true); do tree "$c"; done
}
PIDS=()
stop_pid() {
    local pid=$1 procs i p alive
    kill -0 "$pid" 2>/dev/null || return 0
    procs=$(tree "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    # Wait (at most 5 s, or $2 tenths of a second) for it and its descendants (NSD's main and
    # server processes).
    for i in $(seq "${2:-50}"); do
        alive=""
        for p in $procs; do kill -0 "$p" 2>/dev/null && alive+=" $p"; done
        [ -n "$alive" ] || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    [ -z "$alive" ] || kill -KILL $alive 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
WORK=""
POLICY_RC=""
cleanup() {
    local pid
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do stop_pid "$pid"; done
    [ -z "$POLICY_RC" ] || $SUDO rm -f "$POLICY_RC"
    if [ -n "$WORK" ]; then
        if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the peers and the binaries -----------------------------------------------------------
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
missing=()
for pair in unbound:/usr/sbin/unbound dnsmasq:/usr/sbin/dnsmasq nsd:/usr/sbin/nsd \
            dnsdist:/usr/bin/dnsdist dnsperf:/usr/bin/dnsperf ldnsutils:/usr/bin/ldns-signzone \
            knot:/usr/sbin/knotd; do
    [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # Keep the packages' own services (each would listen on port 53) from starting.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        POLICY_RC=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY_RC" >/dev/null
        $SUDO chmod +x "$POLICY_RC"
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    [ -z "$POLICY_RC" ] || { $SUDO rm -f "$POLICY_RC"; POLICY_RC=""; }
fi
command -v taskset >/dev/null || die "taskset (util-linux) is needed"
[ "$(nproc --all)" -ge 2 ] || die "needs 2 CPUs (server on CPU $SERVER_CPU, load on CPU $CLIENT_CPU)"

log "building hearth and hearth-loadgen (release)"
(cd "$ROOT" && cargo build --release --quiet &&
    cargo build --release --quiet --features loadgen --bin hearth-loadgen)

# --- 2. data ---------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hearth-bench.XXXXXX")
chmod 755 "$WORK"   # dnsmasq and unbound may read it after dropping privileges
mkdir -p "$WORK/zones"
log "generating data in $WORK"
# bench.test: SOA, NS, and 100,000 A records name0..name99999. TTLs are a day, so nothing
# expires during a run.
awk 'BEGIN {
    print "$ORIGIN bench.test.\n$TTL 86400"
    print "@ SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 864000 3600"
    print "@ NS ns.bench.test.\nns A 127.0.0.1"
    for (i = 0; i < 100000; i++)
        printf "name%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256
    # 1,000 names with four addresses each, for the rotate scenario.
    for (i = 0; i < 1000; i++)
        for (j = 0; j < 4; j++)
            printf "multi%d A 10.200.%d.%d\n", i, int(i / 64), (i % 64) * 4 + j
}' >"$WORK/zones/bench.test.zone"
awk 'BEGIN { for (i = 0; i < 1000; i++) printf "multi%d.bench.test A\n", i }' >"$WORK/hot-multi.txt"
# 1,000 hot names and all 100,000 as cold names, each scattered over the zone (i*97 and
# i*7919 modulo 100,000 are permutations).
awk 'BEGIN { for (i = 0; i < 1000; i++) printf "name%d.bench.test A\n", (i * 97) % 100000 }' >"$WORK/hot.txt"
awk 'BEGIN { for (i = 0; i < 100000; i++) printf "name%d.bench.test A\n", (i * 7919) % 100000 }' >"$WORK/cold.txt"
# A 10,000-line hosts file, and 1,000 of its names as the hot hosts names.
awk 'BEGIN { for (i = 0; i < 10000; i++) printf "10.99.%d.%d host%d.lan.test\n", int(i / 256), i % 256, i }' >"$WORK/hosts"
awk 'BEGIN { for (i = 0; i < 1000; i++) printf "host%d.lan.test A\n", (i * 97) % 10000 }' >"$WORK/hot-hosts.txt"
echo "name0.bench.test A" >"$WORK/probe-zone.txt"
echo "probe.bench.test A" >"$WORK/probe-miss.txt"   # in no query set: NXDOMAIN
echo "host0.lan.test A" >"$WORK/probe-hosts.txt"
# A CA and a certificate for NSD's DNS over TLS, made for this run (rustls refuses a self-signed
# CA certificate as a server's own, so the two are separate, as in real deployments).
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=bench CA" -keyout "$WORK/tls/ca.key" -out "$WORK/tls/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$TLS_NAME" \
    -keyout "$WORK/tls/server.key" -out "$WORK/tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n' "$TLS_NAME" >"$WORK/tls/ext.cnf"
openssl x509 -req -in "$WORK/tls/server.csr" -CA "$WORK/tls/ca.pem" -CAkey "$WORK/tls/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/tls/ext.cnf" -out "$WORK/tls/server.pem" 2>/dev/null
chmod 644 "$WORK/tls/"*

# --- 3. the servers --------------------------------------------------------------------------
nsd_conf() { # nsd_conf NAME PORT [TLS_PORT]
    local d="$WORK/$1" tls=""
    mkdir -p "$d"
    # With a TLS port: DNS over TLS there too (RFC 7858), with the run's certificate.
    [ -z "${3:-}" ] || tls="  ip-address: 127.0.0.1@$3
  tls-port: $3
  tls-service-key: \"$WORK/tls/server.key\"
  tls-service-pem: \"$WORK/tls/server.pem\"
  # Connections stay open between queries (the forwarders reuse them).
  tcp-count: 1000
  tcp-timeout: 120"
    cat >"$d/nsd.conf" <<EOF
server:
  ip-address: 127.0.0.1@$2
$tls
  port: $2
  server-count: 1
  zonesdir: "$WORK/zones"
  pidfile: "$d/nsd.pid"
  database: ""
  username: ""
  chroot: ""
  logfile: "$d/nsd.log"
  xfrdfile: "$d/xfrd.state"
  zonelistfile: "$d/zone.list"
  verbosity: 0
  hide-version: yes
  # Response rate limiting is on by default (200 q/s per source): every query here comes
  # from 127.0.0.1, so it would drop answers.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "bench.test"
  zonefile: "bench.test.zone"
EOF
    echo "$d/nsd.conf"
}

# signed_data: bench.test signed (NSEC, one ECDSA P-256 key, as a CSK), its DS as the trust
# anchor, and an NSD of its own serving it on $SIGNED_UPSTREAM_PORT (client CPU); once per run.
SIGNED_NSD=""
signed_data() {
    [ -z "$SIGNED_NSD" ] || return 0
    local d="$WORK/signed" key
    mkdir -p "$d/nsd"
    cp "$WORK/zones/bench.test.zone" "$d/bench.test.zone.unsigned"
    log "signing bench.test (100,000 names)"
    key=$(cd "$d" && ldns-keygen -a ECDSAP256SHA256 -k -r /dev/urandom bench.test)
    (cd "$d" && ldns-signzone -o bench.test. -f bench.test.zone bench.test.zone.unsigned "$key")
    cp "$d/$key.ds" "$d/anchor"
    chmod -R a+rX "$d"
    sed -e "s|^  zonesdir: .*|  zonesdir: \"$d\"|" -e "s|$WORK/nsd-signed-tmp|$d/nsd|g" \
        "$(nsd_conf nsd-signed-tmp "$SIGNED_UPSTREAM_PORT")" >"$d/nsd/nsd.conf"
    start "$CLIENT_CPU" nsd-signed "$SIGNED_UPSTREAM_PORT" "$WORK/probe-zone.txt" \
        /usr/sbin/nsd -d -c "$d/nsd/nsd.conf"
    SIGNED_NSD=$STARTED
}

# tail_data: the long tail's local data (issue 16), made once per run when first needed:
#   hosts-tail: a 100,000-line hosts file (t0..t99999.hosts.test) and all its names, scattered;
#   nx-tail: 10 namespaces with a Service each, and 10,000 external names x 10 namespaces as a
#     pod's ndots:5 search path makes them (api7.example7.com.ns3.svc.cluster.local), all
#     distinct and scattered: every one is NXDOMAIN.
# auth-tail asks cold.txt: all of bench.test's 100,000 names, scattered.
TAIL_DATA=""
tail_data() {
    [ -z "$TAIL_DATA" ] || return 0
    TAIL_DATA=1
    awk 'BEGIN { for (i = 0; i < 100000; i++)
        printf "10.%d.%d.%d t%d.hosts.test\n", 100 + int(i / 65536), int(i / 256) % 256, i % 256, i }' >"$WORK/hosts-tail"
    awk 'BEGIN { for (i = 0; i < 100000; i++) printf "t%d.hosts.test A\n", (i * 7919) % 100000 }' >"$WORK/tail-hosts.txt"
    echo "t0.hosts.test A" >"$WORK/probe-hosts-tail.txt"
    mkdir -p "$WORK/manifests-nx"
    local j
    for j in $(seq 0 9); do
        printf '%s\n' "apiVersion: v1" "kind: Service" "metadata: {name: web, namespace: ns$j}" \
            "spec: {clusterIP: 10.97.$j.1, ports: [{port: 80, protocol: TCP}]}" >"$WORK/manifests-nx/web-ns$j.yaml"
    done
    awk 'BEGIN { for (n = 0; n < 100000; n++) { k = (n * 7919) % 100000
        printf "api%d.example%d.com.ns%d.svc.cluster.local A\n", int(k / 10), int(k / 10) % 100, k % 10 } }' >"$WORK/tail-nx.txt"
    echo "web.ns0.svc.cluster.local A" >"$WORK/probe-nx.txt"
}

# tail_upstream: hit-tail's upstream, an NSD of its own (client CPU) serving tail.test with
# 1,000,000 A records, and the 1,000,000 names scattered; once per run.
TAIL_NSD=""
tail_upstream() {
    [ -z "$TAIL_NSD" ] || return 0
    local d="$WORK/tail-upstream"
    mkdir -p "$d/zones"
    awk 'BEGIN {
        print "$ORIGIN tail.test.\n$TTL 86400"
        print "@ SOA ns.tail.test. hostmaster.tail.test. 1 3600 600 864000 3600"
        print "@ NS ns.tail.test.\nns A 127.0.0.1"
        for (i = 0; i < 1000000; i++)
            printf "n%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256
    }' >"$d/zones/tail.test.zone"
    awk 'BEGIN { for (i = 0; i < 1000000; i++) printf "n%d.tail.test A\n", (i * 7919) % 1000000 }' >"$WORK/tail-hit.txt"
    echo "n0.tail.test A" >"$WORK/probe-tail.txt"
    chmod -R a+rX "$d"
    sed -e "s|^  zonesdir: .*|  zonesdir: \"$d/zones\"|" -e 's|bench\.test|tail.test|g' \
        "$(nsd_conf nsd-tail "$TAIL_UPSTREAM_PORT")" >"$d/nsd.conf"
    log "starting the tail.test upstream (1,000,000 names)"
    start "$CLIENT_CPU" nsd-tail "$TAIL_UPSTREAM_PORT" "$WORK/probe-tail.txt" /usr/sbin/nsd -d -c "$d/nsd.conf"
    TAIL_NSD=$STARTED
}

# knot_conf: Knot DNS serving bench.test on $PORT with one UDP worker (as NSD's one server).
knot_conf() {
    local d="$WORK/knot"
    mkdir -p "$d/db"
    cat >"$d/knot.conf" <<EOF
server:
    rundir: "$d"
    listen: 127.0.0.1@$PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$d/db"
log:
  - target: stderr
    any: warning
zone:
  - domain: bench.test
    storage: "$WORK/zones"
    file: "bench.test.zone"
    journal-content: none
    zonefile-sync: -1
EOF
    echo "$d/knot.conf"
}

unbound_conf() { # unbound_conf [tcp|tls|validate|tail]: how it asks the upstream (default: UDP)
    local upstream="forward-addr: 127.0.0.1@$UPSTREAM_PORT" transport="" modules="iterator"
    local msg_cache=128m rrset_cache=256m
    case "${1:-}" in
        # hit-tail: tail.test's 1,000,000 names, and caches large enough for all of them.
        tail) upstream="forward-addr: 127.0.0.1@$TAIL_UPSTREAM_PORT"
              msg_cache=1g rrset_cache=2g ;;
        # The signed bench.test, validated with its DS as the trust anchor.
        validate) modules="validator iterator"
                  upstream="forward-addr: 127.0.0.1@$SIGNED_UPSTREAM_PORT"
                  transport="  trust-anchor-file: \"$WORK/signed/anchor\"" ;;
        tcp) transport="  tcp-upstream: yes" ;;
        tls) transport="  tls-upstream: yes
  tls-cert-bundle: \"$WORK/tls/ca.pem\""
             upstream="forward-addr: 127.0.0.1@$UPSTREAM_TLS_PORT#$TLS_NAME" ;;
    esac
    cat >"$WORK/unbound.conf" <<EOF
server:
  interface: 127.0.0.1
  port: $PORT
  num-threads: 1
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$WORK"
  pidfile: "$WORK/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  # The upstream is on loopback.
  do-not-query-localhost: no
  # A forwarding cache: no DNSSEC validation (no trust anchor is configured either), except
  # in the dnssec scenarios.
  module-config: "$modules"
  # Large enough for every name of the runs (100k cold names; 1,000,000 in hit-tail).
  msg-cache-size: $msg_cache
  rrset-cache-size: $rrset_cache
  prefetch: no
  minimal-responses: yes
  qname-minimisation: no
  # test. is one of Unbound's default local zones (RFC 6761): let bench.test through.
  local-zone: "test." nodefault
$transport
remote-control:
  control-enable: no
forward-zone:
  name: "."
  $upstream
  forward-first: no
EOF
    echo "$WORK/unbound.conf"
}

dnsdist_conf() {
    cat >"$WORK/dnsdist.conf" <<EOF
setLocal("127.0.0.1:$PORT")
setSecurityPollSuffix("")
newServer({address="127.0.0.1:$UPSTREAM_PORT", checkName="bench.test.", checkType="SOA", mustResolve=true})
pc = newPacketCache(200000, {maxTTL=86400, minTTL=0, temporaryFailureTTL=60, staleTTL=60, dontAge=false})
getPool(""):setCache(pc)
EOF
    echo "$WORK/dnsdist.conf"
}

# The front door's variants (frontdoor, flood); each adds /metrics ([admin]) too:
#   open: [access] allowing everyone (the cheapest policy the config can express: there is no
#     "no policy"; 127.0.0.1 matches the first rule, the implicit 127.0.0.0/8);
#   loopback: [access] allowing 127.0.0.0/8 (the flood's sources);
#   rrl-never: [rate_limit] at 16,777,215 responses/s per prefix (the most it takes), nothing
#     exempt: it never limits, but does its whole work for every response;
#   rrl: [rate_limit] at 100 responses/s per /24, every 2nd limited reply slipped (TC=1).
# Without open or loopback there is no [access]: the built-in policy (loopback and private
# networks allowed) decides.
hearth_conf() { # hearth_conf NAME [hosts|hosts-tail] [zones] [cluster|nx] [open|loopback] [rrl-never|rrl] [admin] [tcp|tls] [rotate] [signed] [validate] [tail]
    local f="$WORK/hearth-$1.toml" paths="[]" zones="" front="" upstream="127.0.0.1:$UPSTREAM_PORT" tls_ca="" rotate="" dnssec=""
    local cache=$'capacity = 200000'
    shift
    # tail: tail.test's 1,000,000 names from their own NSD, and a cache that holds them all;
    # (The fast path's budget follows the cache's unless set: 512 MiB here.) tail-64m: the fast
    # path held to 64 MiB, about a fifth of the replies, so most hits take the general path.
    local fast_path=""
    case " $* " in *" tail "*) upstream="127.0.0.1:$TAIL_UPSTREAM_PORT"
        cache=$'capacity = 1100000\nmax_bytes = 1073741824' ;; esac
    case " $* " in *" tail-64m "*) fast_path="fast_path_memory = 67108864" ;; esac
    # signed: forward to the NSD serving bench.test signed; validate: and validate, with its DS.
    case " $* " in *" signed "*) upstream="127.0.0.1:$SIGNED_UPSTREAM_PORT" ;; esac
    case " $* " in *" validate "*)
        dnssec=$(printf '[dnssec]\nvalidate = true\ntrust_anchors = "%s"' "$WORK/signed/anchor") ;; esac
    case " $* " in *" rotate "*) rotate="rotate = true" ;; esac
    case " $* " in *" tcp "*) upstream="tcp://127.0.0.1:$UPSTREAM_PORT" ;; esac
    case " $* " in *" tls "*) upstream="tls://127.0.0.1:$UPSTREAM_TLS_PORT#$TLS_NAME"
        tls_ca="tls_ca = \"$WORK/tls/ca.pem\"" ;; esac
    case " $* " in *" hosts "*) paths="[\"$WORK/hosts\"]" ;; esac
    case " $* " in *" hosts-tail "*) paths="[\"$WORK/hosts-tail\"]" ;; esac
    case " $* " in *" nx "*) zones=$'[kubernetes]\nmanifests = "'"$WORK/manifests-nx"'"' ;; esac
    case " $* " in *" open "*) front+=$'[access]\nallow = ["0.0.0.0/0", "::/0"]\n' ;; esac
    case " $* " in *" loopback "*) front+=$'[access]\nallow = ["127.0.0.0/8"]\n' ;; esac
    case " $* " in *" rrl-never "*)
        front+=$'[rate_limit]\nresponses_per_second = 16777215\nexempt = []\n' ;; esac
    case " $* " in *" rrl "*)
        front+=$'[rate_limit]\nresponses_per_second = 100\nipv4_prefix = 24\nipv6_prefix = 56\nslip = 2\nexempt = []\n' ;; esac
    case " $* " in *" open "*|*" loopback "*|*" rrl"*|*" admin "*)
        front+=$(printf '[admin]\nlisten = "127.0.0.1:%s"' "$ADMIN_PORT") ;; esac
    case " $* " in *" zones "*) zones=$'[zones]\ndirectory = "'"$WORK/zones"'"' ;; esac
    # The cluster zone from a manifests directory polled every 100 ms, and /metrics.
    case " $* " in *" cluster "*)
        zones=$(printf '[zones]\nreload_interval = "100ms"\n[kubernetes]\nmanifests = "%s"\n[admin]\nlisten = "127.0.0.1:%s"' \
            "$WORK/manifests" "$ADMIN_PORT") ;;
    esac
    cat >"$f" <<EOF
[server]
listen = ["127.0.0.1:$PORT"]
$fast_path
[resolve]
order = ["files", "zones", "dns"]
$rotate
[files]
paths = $paths
[forward]
upstreams = ["$upstream"]
$tls_ca
[cache]
$cache
$zones
$front
$dnssec
EOF
    echo "$f"
}

DNSMASQ_BASE=(--keep-in-foreground --conf-file=/dev/null --pid-file --user=root
    --listen-address=127.0.0.1 --bind-interfaces --port="$PORT" --no-resolv --no-hosts
    --server="127.0.0.1#$UPSTREAM_PORT")

# server_cmd SERVER: the command line of a server under test (on $PORT).
server_cmd() {
    case "$1" in
        hearth)        echo "$HEARTH serve --config $(hearth_conf fwd)" ;;
        hearth-hosts)  echo "$HEARTH serve --config $(hearth_conf hosts hosts)" ;;
        hearth-zone)   echo "$HEARTH serve --config $(hearth_conf zone zones)" ;;
        hearth-churn)  echo "$HEARTH serve --config $(hearth_conf churn cluster)" ;;
        # frontdoor's three configs, and flood's.
        hearth-open)   echo "$HEARTH serve --config $(hearth_conf open open)" ;;
        hearth-default) echo "$HEARTH serve --config $(hearth_conf default admin)" ;;
        hearth-rrl-never) echo "$HEARTH serve --config $(hearth_conf rrl-never rrl-never)" ;;
        # Without [rate_limit] in the build (flood warns), the same without it.
        hearth-flood)  echo "$HEARTH serve --config $(hearth_conf flood loopback \
                           "$([ "$RATE_LIMIT" = 1 ] && echo rrl || echo admin)")" ;;
        hearth-flood-unlimited) echo "$HEARTH serve --config $(hearth_conf flood-unlimited loopback)" ;;
        unbound)       echo "/usr/sbin/unbound -d -c $(unbound_conf)" ;;
        # miss-tcp and miss-tls: the same forwarding, over TCP and over DNS over TLS.
        hearth-rotate) echo "$HEARTH serve --config $(hearth_conf rotate rotate)" ;;
        hearth-tcp)    echo "$HEARTH serve --config $(hearth_conf tcp tcp)" ;;
        hearth-tls)    echo "$HEARTH serve --config $(hearth_conf tls tls)" ;;
        unbound-tcp)   echo "/usr/sbin/unbound -d -c $(unbound_conf tcp)" ;;
        unbound-tls)   echo "/usr/sbin/unbound -d -c $(unbound_conf tls)" ;;
        # dnssec-hit and dnssec-miss: the signed bench.test, validated and not.
        hearth-dnssec) echo "$HEARTH serve --config $(hearth_conf dnssec signed validate)" ;;
        hearth-dnssec-off) echo "$HEARTH serve --config $(hearth_conf dnssec-off signed)" ;;
        unbound-dnssec) echo "/usr/sbin/unbound -d -c $(unbound_conf validate)" ;;
        # The long tail (issue 16).
        hearth-hosts-tail) echo "$HEARTH serve --config $(hearth_conf hosts-tail hosts-tail)" ;;
        hearth-nx)     echo "$HEARTH serve --config $(hearth_conf nx nx)" ;;
        hearth-hit-tail) echo "$HEARTH serve --config $(hearth_conf hit-tail tail)" ;;
        hearth-hit-tail-64m) echo "$HEARTH serve --config $(hearth_conf hit-tail-64m tail tail-64m)" ;;
        unbound-hit-tail) echo "/usr/sbin/unbound -d -c $(unbound_conf tail)" ;;
        dnsmasq-hosts-tail) echo "/usr/sbin/dnsmasq ${DNSMASQ_BASE[*]} --cache-size=10000 --addn-hosts=$WORK/hosts-tail" ;;
        knot)          echo "/usr/sbin/knotd -c $(knot_conf)" ;;
        dnsdist)       echo "/usr/bin/dnsdist --supervised --disable-syslog -C $(dnsdist_conf)" ;;
        dnsmasq)       echo "/usr/sbin/dnsmasq ${DNSMASQ_BASE[*]} --cache-size=10000" ;;
        dnsmasq-hosts) echo "/usr/sbin/dnsmasq ${DNSMASQ_BASE[*]} --cache-size=10000 --addn-hosts=$WORK/hosts" ;;
        # dnsmasq's documented limit is 10,000 names, and once its cache is full it slows to
        # ~10k q/s; 2.90 accepts more, so that a pass over 100k names is not measured full.
        dnsmasq-150k)  echo "/usr/sbin/dnsmasq ${DNSMASQ_BASE[*]} --cache-size=150000" ;;
        # The ceiling: recvmmsg, set QR, sendmmsg, no DNS work.
        reflector)     echo "$LOADGEN --reflect --server 127.0.0.1:$PORT --duration 3600" ;;
        nsd)           echo "/usr/sbin/nsd -d -c $(nsd_conf nsd-auth "$PORT")" ;;
        *) die "unknown server $1" ;;
    esac
}

# start CPU NAME PORT PROBEFILE CMD...: starts CMD pinned to CPU and waits (at most 30 s) until
# it answers the probe query; its pid is left in $STARTED (and in $PIDS, for the exit trap).
STARTED=""
start() {
    local cpu=$1 name=$2 port=$3 probe=$4 pid i out
    shift 4
    HEARTH_LOG=warn taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    for i in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || { tail -20 "$WORK/$name.log" >&2; die "$name exited at start"; }
        out=$("$LOADGEN" --server "127.0.0.1:$port" --queries "$probe" --once -q 1 \
            --duration 0.2 --timeout 0.2 2>/dev/null | grep '^sent=' || true)
        case " $out " in *" completed=1 "*) STARTED=$pid; return 0 ;; esac
        sleep 0.2
    done
    tail -20 "$WORK/$name.log" >&2
    die "$name did not answer on port $port within 30 s"
}

# --- 4. measuring ----------------------------------------------------------------------------
# field KEY LINE: the value of KEY in a key=value line.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# loadgen ARGS...: runs the generator pinned to the client CPU, bounded; prints its key=value line
# (with busy_cpu_pct: how busy the server CPU was over the generator's own run).
loadgen() {
    local out
    out=$(timeout -k 5 "${LOADGEN_LIMIT:-$((DURATION * 2 + 150))}" taskset -c "$CLIENT_CPU" "$LOADGEN" \
        --server "127.0.0.1:$PORT" --busy-cpu "$SERVER_CPU" "$@") || die "hearth-loadgen failed: $out"
    echo "$out" >>"$WORK/loadgen.log"
    grep '^sent=' <<<"$out"
}

# loadgen_median ARGS...: $REPEAT runs; prints the key=value line of the one with the median q/s.
loadgen_median() {
    local i lines=()
    for i in $(seq "$REPEAT"); do lines+=("$(loadgen "$@")"); done
    printf '%s\n' "${lines[@]}" | median_line
}
# median_line: of key=value lines on stdin, the one with the median qps.
median_line() {
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^qps=/) print substr($i, 5), $0 }' |
        sort -n -k1,1 | sed -n "$(((REPEAT + 1) / 2))p" | cut -d' ' -f2-
}

# dnsperf_run ARGS...: dnsperf pinned to the client CPU, bounded; prints "qps lost_pct avg_us".
dnsperf_run() {
    local out
    out=$(timeout -k 5 $((DURATION * 2 + 150)) taskset -c "$CLIENT_CPU" dnsperf \
        -s 127.0.0.1 -p "$PORT" "$@" 2>&1) || die "dnsperf failed: $out"
    echo "$out" >>"$WORK/dnsperf.log"
    awk '/Queries per second:/ { q = $4 }
         /Queries lost:/ { gsub(/[()%]/, "", $4); l = $4 }
         /Average Latency/ { a = $4 * 1e6 }
         END { printf "%.0f %s %.0f\n", q, l, a }' <<<"$out"
}

# rss_kb PID: the largest RSS among the process and its descendants (NSD answers from one).
rss_kb() {
    local p
    for p in $(tree "$1"); do ps -o rss= -p "$p" 2>/dev/null || true; done | sort -n | tail -1 | tr -d ' '
}

# busiest: how busy (percent) the busiest CPU was over the next second, from /proc/stat.
cpu_sample() { awk '/^cpu[0-9]/ { t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t }' /proc/stat; }
busiest() {
    local a b
    a=$(cpu_sample); sleep 1; b=$(cpu_sample)
    paste -d' ' <(echo "$a") <(echo "$b") |
        awk '{ d = $4 - $2; if (d > 0) { p = 100 * (1 - ($3 - $1) / d); if (p > m) m = p } } END { printf "%.0f\n", m }'
}
# wait_quiet: before a server starts, wait (at most a minute) until no CPU is more than 10% busy;
# other work on the machine (a build, a test suite) would be measured as the server's slowness.
BUSY_NOTE=""
wait_quiet() {
    local i b=0
    BUSY_NOTE=""
    for i in $(seq 30); do
        b=$(busiest)
        [ "$b" -le 10 ] && return 0
        [ "$i" != 1 ] || log "waiting for the machine to be quiet (a CPU is ${b}% busy)"
        sleep 1
    done
    log "warning: the machine stays busy (${b}%); this result is suspect"
    BUSY_NOTE="machine busy (${b}% before the run)"
}
# after_run: the same check right after a run, so that load that came during it is noted.
after_run() {
    local b
    b=$(busiest)
    [ "$b" -le 10 ] || BUSY_NOTE="${BUSY_NOTE:+$BUSY_NOTE, }machine busy (${b}% after the run)"
}
# core_ticks CPU: "idle total" jiffies of one CPU, from /proc/stat.
core_ticks() { awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t }' /proc/stat; }
# measured PID CMD...: runs CMD (output in $WORK/measured.out), leaving in $SRV_CPU and $GEN_CPU
# how busy the server's and the generators' CPUs were meanwhile, in percent, softirq and
# interrupt time included (with loopback traffic much of the work is done there, outside the
# processes' own threads). The generators' CPU also runs the upstream NSD. CMD is a `loadgen`
# run, and the server's figure is the generator's own reading (busy_cpu_pct): that covers the
# run alone, not the generator's reading of its query file before it (a second for a million
# names, in which the server idles; measured around the process, the auth-flood rows
# understated every server's cost per answer by a fifth, the faster server's the more).
SRV_CPU=""
GEN_CPU=""
busy_pct() { echo "$1 $2" | awk '{ d = $4 - $2; printf "%.0f", (d > 0 ? 100 * (1 - ($3 - $1) / d) : 0) }'; }
measured() {
    local pid=$1 g0 p t cpus
    shift
    g0=$(core_ticks "$CLIENT_CPU")
    "$@" >"$WORK/measured.out"
    SRV_CPU=$(field busy_cpu_pct "$(cat "$WORK/measured.out")")
    GEN_CPU=$(busy_pct "$g0" "$(core_ticks "$CLIENT_CPU")")
    # Every thread of the server still pinned to the server CPU: launch pinned them, but a
    # server that sets a thread's affinity later (Knot does for each UDP worker it starts)
    # would run that thread beside the generator. The row is marked, as a busy machine's is.
    for p in $(tree "$pid"); do
        for t in /proc/"$p"/task/*/status; do
            cpus=$(awk '/^Cpus_allowed_list/ { print $2 }' "$t" 2>/dev/null)
            [ -z "$cpus" ] || [ "$cpus" = "$SERVER_CPU" ] && continue
            BUSY_NOTE="${BUSY_NOTE:+$BUSY_NOTE, }a server thread may run on CPUs $cpus"
            return 0
        done
    done
}

EXTRA_NOTE=""
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# record SCENARIO SERVER KVLINE DNSPERF_QPS RSS_KB [EXPECTED_RCODE]
record() {
    local scen=$1 server=$2 kv=$3 dp=$4 rss=$5 expect=${6:-noerror} notes="" n completed k
    completed=$(field completed "$kv")
    for k in noerror nxdomain servfail refused other_rcode; do
        [ "$k" = "$expect" ] && continue
        n=$(field "$k" "$kv")
        if [ "${n:-0}" -gt 0 ] && [ "$completed" -gt 0 ]; then
            notes+="$(awk -v n="$n" -v c="$completed" 'BEGIN { printf "%.2f%%", 100 * n / c }') $k; "
        fi
    done
    n=$(field mismatched "$kv"); [ "${n:-0}" = 0 ] || notes+="$n mismatched; "
    n=$(field udp_rcvbuf_errors "$kv"); [ "${n:-0}" = 0 ] || notes+="$n rcvbuf drops; "
    [ -z "$BUSY_NOTE" ] || notes+="$BUSY_NOTE; "
    [ -z "$EXTRA_NOTE" ] || notes+="$EXTRA_NOTE; "
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$server" "$(field qps "$kv")" "$dp" \
        "$(field lat_p50_us "$kv")" "$(field lat_p99_us "$kv")" "$(field lost_pct "$kv")" \
        "$rss" "${SRV_CPU:-?}/${GEN_CPU:-?}" "${notes%; }" >>"$RESULTS"
    log "  $server: $(field qps "$kv") q/s (dnsperf ${dp:-—}), p50 $(field lat_p50_us "$kv") us, p99 $(field lat_p99_us "$kv") us, lost $(field lost_pct "$kv")%, RSS ${rss} KB, CPU server/generator ${SRV_CPU:-?}/${GEN_CPU:-?}% ${notes:+($notes)}"
}

# warm FILE: the cache fills from two passes and a short run.
warm() {
    loadgen --queries "$1" --once -q 50 >/dev/null
    loadgen --queries "$1" --once -q 50 >/dev/null
    loadgen --queries "$1" --duration "$WARM" -q "$OUTSTANDING" >/dev/null
}

# launch SERVER PROBE: waits for a quiet machine, starts SERVER on $PORT pinned to the server
# CPU, and waits until it answers PROBE; its pid is left in $STARTED. $WRAP, if set, is a
# command line SERVER runs under (valgrind, for the instructions scenario).
WRAP=""
launch() {
    local p
    wait_quiet
    # shellcheck disable=SC2046,SC2086 # the command lines are split on purpose
    start "$SERVER_CPU" "$1" "$PORT" "$2" $WRAP $(server_cmd "$1")
    # Every thread of it on the server CPU: Knot pins each UDP worker to a CPU of its own
    # choosing as it starts (worker i to CPU i), which would put its one worker beside the
    # generator. Threads started later inherit this.
    for p in $(tree "$STARTED"); do taskset -a -p -c "$SERVER_CPU" "$p" >/dev/null 2>&1 || true; done
}

# finish SCENARIO SERVER PID KV DNSPERF_QPS [EXPECTED_RCODE]: RSS, stop, quiet check, record.
finish() {
    local rss
    rss=$(rss_kb "$3")
    stop_pid "$3"
    after_run
    record "$1" "$2" "$4" "$5" "$rss" "${6:-noerror}"
}

# steady SCENARIO SERVER QUERIES PROBE: start, warm, measure with both generators, stop.
steady() {
    local scen=$1 server=$2 queries=$3 probe=$4 pid kv dp
    log "$scen: $server"
    launch "$server" "$probe"
    pid=$STARTED
    warm "$queries"
    measured "$pid" loadgen_median --queries "$queries" --duration "$DURATION" -q "$OUTSTANDING"
    kv=$(cat "$WORK/measured.out")
    dp=$(dnsperf_run -d "$queries" -l "$DURATION" "${DNSPERF_ARGS[@]}" | cut -d' ' -f1)
    finish "$scen" "$server" "$pid" "$kv" "$dp"
}

# tcp_opens: TCP connections opened on this machine so far (/proc/net/snmp ActiveOpens): the
# forwarders' connections to their upstream are all there is during a miss run, whatever the
# server (nothing else here opens TCP connections; a build or test suite elsewhere would).
tcp_opens() { awk '/^Tcp:/ { if (seen) { for (i = 1; i <= NF; i++) if (h[i] == "ActiveOpens") print $i } else { seen = 1; for (i = 1; i <= NF; i++) h[i] = $i } }' /proc/net/snmp; }

# miss SERVER [SCENARIO]: one pass over the 100k cold names on a fresh server, for each
# generator; the batched one makes $REPEAT passes, each on a fresh server, and the median pass
# is shown, with the TCP connections the server opened (from its start) per 10,000 misses in
# the notes.
miss() {
    local server=$1 scen=${2:-miss} pid kv dp i notes="" runs=() opens
    log "$scen: $server"
    launch "$server" "$WORK/probe-miss.txt"
    pid=$STARTED
    dp=$(dnsperf_run -d "$WORK/cold.txt" -n 1 -l 120 -c 4 -q "$MISS_OUTSTANDING" | cut -d' ' -f1)
    stop_pid "$pid"
    for i in $(seq "$REPEAT"); do
        # From before the start: a server that connects to its upstream as it starts (Hearth's
        # loop probe) reuses that connection for the misses.
        opens=$(tcp_opens)
        launch "$server" "$WORK/probe-miss.txt"
        pid=$STARTED
        [ -z "$BUSY_NOTE" ] || notes=$BUSY_NOTE
        measured "$pid" loadgen --queries "$WORK/cold.txt" --once -q "$MISS_OUTSTANDING" --duration 120
        opens=$(($(tcp_opens) - opens))
        runs+=("$(cat "$WORK/measured.out") srv_cpu=$SRV_CPU gen_cpu=$GEN_CPU tcp_opens=$opens")
        [ "$i" = "$REPEAT" ] || stop_pid "$pid"
    done
    kv=$(printf '%s\n' "${runs[@]}" | median_line)
    SRV_CPU=$(field srv_cpu "$kv")
    GEN_CPU=$(field gen_cpu "$kv")
    [ -n "$BUSY_NOTE" ] || BUSY_NOTE=$notes
    EXTRA_NOTE=$(awk -v o="$(field tcp_opens "$kv")" -v c="$(field completed "$kv")" \
        'BEGIN { if (c > 0) printf "%d TCP connections opened, %.1f per 10,000 misses", o, 10000 * o / c }')
    finish "$scen" "$server" "$pid" "$kv" "$dp"
    EXTRA_NOTE=""
}

# tail_passes SCENARIO QUERIES: two passes over every name of QUERIES on the server just
# started; prints the first (cold) pass's key=value line. hit-tail's first pass is 1,000,000
# cache misses: asked as the miss scenario asks them, and the generator gets up to 10 minutes.
tail_passes() {
    local first out=$OUTSTANDING
    [ "$1" != hit-tail ] || out=$MISS_OUTSTANDING
    first=$(LOADGEN_LIMIT=620 loadgen --queries "$2" --once -q "$out" --duration 600)
    LOADGEN_LIMIT=620 loadgen --queries "$2" --once -q "$OUTSTANDING" --duration 600 >/dev/null
    echo "$first"
}

# tail_run SCENARIO SERVER QUERIES PROBE EXPECTED_RCODE: the long tail. A fresh server, two
# passes over every name (the first is the cold one: its rate goes in the notes), then the
# measured runs asking every name in turn (median of --repeat), and dnsperf over the same file.
# The peak is kept for tail_latency.
TAIL_PEAKS="$WORK/tail-peaks.tsv"
tail_run() {
    local scen=$1 server=$2 queries=$3 probe=$4 expect=$5 pid kv dp first
    log "$scen: $server"
    launch "$server" "$probe"
    pid=$STARTED
    first=$(tail_passes "$scen" "$queries")
    measured "$pid" loadgen_median --queries "$queries" --duration "$DURATION" -q "$OUTSTANDING"
    kv=$(cat "$WORK/measured.out")
    dp=$(dnsperf_run -d "$queries" -l "$DURATION" "${DNSPERF_ARGS[@]}" | cut -d' ' -f1)
    EXTRA_NOTE="first pass $(field qps "$first") q/s"
    finish "$scen" "$server" "$pid" "$kv" "$dp" "$expect"
    EXTRA_NOTE=""
    printf '%s\t%s\t%s\n' "$scen" "$server" "$(field qps "$kv")" >>"$TAIL_PEAKS"
}

# tail_latency SCENARIO QUERIES PROBE SERVER...: each server again, fresh and warmed as in
# tail_run, then asked open-loop (--rate) at half the lowest peak any of them reached, so that
# p50 and p99 compare at one rate that every server can carry.
TAIL_LAT="$WORK/tail-latency.tsv"
tail_latency() {
    local scen=$1 queries=$2 probe=$3 rate s pid kv
    shift 3
    [ -s "$TAIL_PEAKS" ] || return 0
    rate=$(awk -F'\t' -v s="$scen" '$1 == s && $3 > 0 && (m == "" || $3 < m) { m = $3 } END { printf "%d", m / 2 }' "$TAIL_PEAKS")
    [ "${rate:-0}" -gt 0 ] || return 0
    for s in "$@"; do
        picked "$s" || continue
        log "$scen latency at $rate q/s: $s"
        launch "$s" "$probe"
        pid=$STARTED
        tail_passes "$scen" "$queries" >/dev/null
        kv=$(loadgen --queries "$queries" --rate "$rate" -q 4096 --duration "$DURATION" --timeout 1)
        stop_pid "$pid"
        after_run
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$s" "$rate" "$(field qps "$kv")" \
            "$(field lat_p50_us "$kv")" "$(field lat_p99_us "$kv")" "$(field lost_pct "$kv")" \
            "$BUSY_NOTE" >>"$TAIL_LAT"
        log "  $s at $rate q/s: p50 $(field lat_p50_us "$kv") us, p99 $(field lat_p99_us "$kv") us, lost $(field lost_pct "$kv")%"
    done
}

# tail_rounds SCENARIO QUERIES PROBE SERVER...: the servers again, interleaved in rounds (A B C,
# A B C, ...), each round one fresh start per server, warmed as tail_run warms it, and one
# measured run. tail_run measures each server's runs back to back, minutes away from its peer's;
# this machine's rate drifts by as much as ±15% over minutes (BENCHMARKS.md), so a ratio of two
# such peaks carries that drift. In rounds each server's run sits next to its peer's, and the
# table gives the ratio of the sums and each round's own. It also gives the server core's time
# per answer (busy % ÷ q/s, kernel included): what a server costs, whichever end of the loop was
# the bottleneck.
TAIL_ROUNDS="$WORK/tail-rounds.tsv"
tail_rounds() {
    local scen=$1 queries=$2 probe=$3 r s pid
    shift 3
    for r in $(seq "$ROUNDS"); do
        for s in "$@"; do
            picked "$s" || continue
            log "$scen round $r: $s"
            launch "$s" "$probe"
            pid=$STARTED
            tail_passes "$scen" "$queries" >/dev/null
            measured "$pid" loadgen --queries "$queries" --duration "$DURATION" -q "$OUTSTANDING"
            round_done "$scen" "$r" "$s" "$pid"
        done
    done
}

# round_done SCENARIO ROUND SERVER PID: after a measured run in rounds, stops the server and
# adds the run to the "in rounds" table; the run's key=value line is left in $ROUND_KV.
ROUND_KV=""
round_done() {
    ROUND_KV=$(cat "$WORK/measured.out")
    stop_pid "$4"
    after_run
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(field qps "$ROUND_KV")" "$SRV_CPU" \
        "$BUSY_NOTE" >>"$TAIL_ROUNDS"
    log "  $3: $(field qps "$ROUND_KV") q/s, server CPU ${SRV_CPU}%${BUSY_NOTE:+ ($BUSY_NOTE)}"
}

# auth_flood SERVER...: a random-subdomain flood against bench.test, the "water torture" an
# authoritative server meets: 1,000,000 distinct names that do not exist, each asked once, so
# that no server answers any from a table of earlier replies (Hearth's fast path stores a reply
# only on its query's second sight): every answer is the general path's. In rounds as
# tail_rounds runs them, each round one fresh start per server and one pass, into the "in
# rounds" table; each server's median pass also goes in the main table.
flood_data() {
    [ -s "$WORK/flood-nx.txt" ] || awk 'BEGIN { srand(16); for (i = 0; i < 1000000; i++)
        printf "r%d-%06x.bench.test A\n", i, int(rand() * 16777216) }' >"$WORK/flood-nx.txt"
}
auth_flood() {
    local r s pid kv rss
    flood_data
    for r in $(seq "$ROUNDS"); do
        for s in "$@"; do
            picked "$s" || continue
            log "auth-flood round $r: $s"
            launch "$s" "$WORK/probe-zone.txt"
            pid=$STARTED
            measured "$pid" loadgen --queries "$WORK/flood-nx.txt" --once -q "$OUTSTANDING" --duration 120
            rss=$(rss_kb "$pid")
            round_done auth-flood "$r" "$s" "$pid"
            echo "$ROUND_KV srv_cpu=$SRV_CPU gen_cpu=$GEN_CPU rss=$rss busy=${BUSY_NOTE:+1}" >>"$WORK/auth-flood-$s.runs"
        done
    done
    for s in "$@"; do
        [ -s "$WORK/auth-flood-$s.runs" ] || continue
        kv=$(REPEAT=$ROUNDS median_line <"$WORK/auth-flood-$s.runs")
        SRV_CPU=$(field srv_cpu "$kv")
        GEN_CPU=$(field gen_cpu "$kv")
        # Busy if any of this server's rounds was (the last run's note is no one else's).
        BUSY_NOTE=$(awk '/ busy=1/ { n++ } END { if (n) print "machine busy in " n " of the rounds" }' "$WORK/auth-flood-$s.runs")
        EXTRA_NOTE="one pass of 1,000,000 names asked once, on a fresh server: the median of $ROUNDS"
        record auth-flood "$s" "$kv" "" "$(field rss "$kv")" nxdomain
        EXTRA_NOTE=""
    done
}

# instructions SERVER...: each server's own instructions per answer, counted by callgrind, in
# three workloads of 20,000 names each: bench.test's names on their first sight ("cold": every
# answer from the general path), the same names on their third ("warm"), and 20,000 names of
# the NX flood. Each workload on a fresh server run under valgrind with counting off; counting
# is switched on for the measured pass only (`callgrind_control -i`), so start-up, zone loading
# and the warming passes are not counted. Every process of the server is counted (NSD's
# children too). Why: a count of instructions does not move with the machine's state, which
# moves every rate here by 10-20% from minute to minute, so it compares builds and servers
# exactly. What it leaves out is the kernel's part of each answer (the sockets), which is most
# of an answer's cost on loopback (the rounds' "server core µs/answer"), and it weighs every
# instruction alike (a cache miss is one instruction). The rates stay the measure; this says
# where a server's own code stands. Skipped, with a warning, without valgrind.
INSTR="$WORK/instructions.tsv"
instructions() {
    local n=20000 s w pid p q out answers total
    if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
        log "instructions: SKIPPED, valgrind is not installed (apt-get install valgrind)"
        return 0
    fi
    flood_data
    head -n "$n" "$WORK/cold.txt" >"$WORK/instr-zone.txt"
    head -n "$n" "$WORK/flood-nx.txt" >"$WORK/instr-flood.txt"
    for s in "$@"; do
        picked "$s" || continue
        for w in cold warm flood; do
            log "instructions $w: $s"
            rm -f "$WORK"/callgrind.*
            WRAP="valgrind --tool=callgrind --instr-atstart=no --trace-children=yes --callgrind-out-file=$WORK/callgrind.%p" \
                launch "$s" "$WORK/probe-zone.txt"
            pid=$STARTED
            q="$WORK/instr-zone.txt"
            [ "$w" != flood ] || q="$WORK/instr-flood.txt"
            if [ "$w" = warm ]; then
                for p in 1 2; do
                    LOADGEN_LIMIT=620 loadgen --queries "$q" --once -q 20 --timeout 2 --duration 600 >/dev/null
                done
            fi
            # shellcheck disable=SC2046
            callgrind_control -i on $(tree "$pid") >/dev/null 2>&1
            out=$(LOADGEN_LIMIT=620 loadgen --queries "$q" --once -q 20 --timeout 2 --duration 600)
            # shellcheck disable=SC2046
            callgrind_control -i off $(tree "$pid") >/dev/null 2>&1
            # Each process writes its counts as it exits: Hearth after its 5 s lameduck, and
            # slower under valgrind. A process killed first writes none.
            stop_pid "$pid" 600
            answers=$(field completed "$out")
            # Each process's file ends with its totals, counted while counting was on.
            total=$(awk '$1 == "totals:" { t += $2 } END { print t + 0 }' "$WORK"/callgrind.* 2>/dev/null || echo 0)
            [ "$total" -gt 0 ] || log "instructions $w: $s wrote no counts (killed before it exited?)"
            printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$w" "$answers" "$total" \
                "$(awk -v t="$total" -v a="$answers" 'BEGIN { if (a > 0) printf "%.0f", t / a }')" >>"$INSTR"
        done
    done
}

# loss SERVER QUERIES PROBE: 500 queries outstanding, the batched generator only.
loss() {
    local server=$1 queries=$2 probe=$3 pid kv
    log "loss: $server"
    launch "$server" "$probe"
    pid=$STARTED
    warm "$queries"
    measured "$pid" loadgen --queries "$queries" --duration "$DURATION" -q 500
    kv=$(cat "$WORK/measured.out")
    finish "loss@500" "$server" "$pid" "$kv" ""
}

# crosscheck SERVER: both generators closed-loop with 100 queries outstanding on one socket.
crosscheck() {
    local server=$1 pid kv dp
    log "crosscheck: $server"
    launch "$server" "$WORK/probe-zone.txt"
    pid=$STARTED
    warm "$WORK/hot.txt"
    measured "$pid" loadgen_median --queries "$WORK/hot.txt" --duration "$DURATION" -q 100
    kv=$(cat "$WORK/measured.out")
    dp=$(dnsperf_run -d "$WORK/hot.txt" -l "$DURATION" -c 1 -q 100 | cut -d' ' -f1)
    finish "crosscheck q=100" "$server" "$pid" "$kv" "$dp"
}

# --- 5. the runs -----------------------------------------------------------------------------
# The upstream NSD shares the client CPU: the server under test has CPU 1 to itself.
start "$CLIENT_CPU" nsd-upstream "$UPSTREAM_PORT" "$WORK/probe-zone.txt" \
    /usr/sbin/nsd -d -c "$(nsd_conf nsd-upstream "$UPSTREAM_PORT" "$UPSTREAM_TLS_PORT")"
NSD_UP=$STARTED
if "$LOADGEN" --server "127.0.0.1:$PORT" --queries "$WORK/probe-zone.txt" --once -q 1 \
    --duration 0.2 --timeout 0.3 | grep -q ' completed=1 '; then
    die "something already answers on 127.0.0.1:$PORT (set HEARTH_BENCH_PORT_BASE)"
fi
HIT=("$WORK/hot.txt" "$WORK/probe-zone.txt")
# write_service N: the cluster feed's one changing object, a Service whose address is N's.
write_service() {
    mkdir -p "$WORK/manifests"
    printf '%s\n' "apiVersion: v1" "kind: Service" "metadata: {name: churn, namespace: default}" \
        "spec: {clusterIP: 10.96.$(($1 / 250 % 250)).$(($1 % 250 + 1)), ports: [{port: 80, protocol: TCP}]}" \
        >"$WORK/manifests/.churn.tmp"
    mv "$WORK/manifests/.churn.tmp" "$WORK/manifests/churn.yaml"
}
# metric NAME: a sample of Hearth's /metrics in the churn scenario.
metric() {
    curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
# churn LABEL CHANGES: forwarded cache hits on the hot names with a cluster zone served from
# manifests; with CHANGES=1 a Service is rewritten every 100 ms meanwhile. The notes give the
# fast path's hit ratio over the measured run, and how many cluster zones were installed.
churn() {
    local label=$1 changes=$2 pid kv writer="" h0 m0 r0 h1 m1 r1
    log "churn: $label"
    write_service 0
    launch hearth-churn "$WORK/probe-zone.txt"
    pid=$STARTED
    warm "$WORK/hot.txt"
    if [ "$changes" = 1 ]; then
        (i=0; while :; do i=$((i + 1)); write_service "$i"; sleep 0.1; done) &
        writer=$!
        PIDS+=("$writer")
    fi
    h0=$(metric hearth_fast_path_hits_total); m0=$(metric hearth_fast_path_misses_total)
    r0=$(metric 'hearth_kubernetes_reloads_total{result="success"}')
    measured "$pid" loadgen --queries "$WORK/hot.txt" --duration "$DURATION" -q "$OUTSTANDING"
    h1=$(metric hearth_fast_path_hits_total); m1=$(metric hearth_fast_path_misses_total)
    r1=$(metric 'hearth_kubernetes_reloads_total{result="success"}')
    [ -z "$writer" ] || stop_pid "$writer"
    kv=$(cat "$WORK/measured.out")
    EXTRA_NOTE=$(awk -v h="$((h1 - h0))" -v m="$((m1 - m0))" -v r="$((r1 - r0))" \
        'BEGIN { printf "fast path %.2f%% hits (%d misses), %d cluster zones installed", 100 * h / (h + m), m, r }')
    finish churn "$label" "$pid" "$kv" ""
    EXTRA_NOTE=""
}

# counters: Hearth's request and rate-limit counters from /metrics, as name=value words, each
# summed over its labels (a counter the build does not have is absent).
counters() {
    curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '
        /^#/ { next }
        { k = $1; sub(/\{.*/, "", k); sum[k] += $2 }
        END { for (k in sum) if (k ~ /^hearth_(requests|responses|requests_unanswered|rate_limit_[a-z]+)_total$/)
                  printf "%s=%.0f ", k, sum[k] }'
}
# delta NAME BEFORE AFTER: how much counter NAME grew between two `counters` lines; empty if the
# build has no such counter.
delta() {
    local a b
    a=$(field "$1" "$2"); b=$(field "$1" "$3")
    [ -z "$b" ] || echo $((b - ${a:-0}))
}
# vm_rss PID: the process's resident memory (VmRSS), in KB.
vm_rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }

# rate_limit_supported: whether this build accepts [rate_limit] (`hearth check`); the rows that
# need it are skipped, with a warning, when it does not.
RATE_LIMIT=""
rate_limit_supported() {
    if [ -z "$RATE_LIMIT" ]; then
        if "$HEARTH" check --config "$(hearth_conf rrl-check rrl)" >"$WORK/rrl-check.log" 2>&1; then
            RATE_LIMIT=1
        else
            RATE_LIMIT=0
            log "warning: this build rejects [rate_limit] ($(head -1 "$WORK/rrl-check.log")): its rows are skipped"
        fi
    fi
    [ "$RATE_LIMIT" = 1 ]
}

# frontdoor ROUND SERVER: the hit load (1,000 hot forwarded names) on a fresh server with one of
# the front-door configs; one measured run. The rounds interleave the configs (A B C A B C ...),
# so that the VM's drift falls on all of them alike.
FRONTDOOR="$WORK/frontdoor.tsv"
frontdoor() {
    local round=$1 server=$2 pid kv c0 c1 limited
    log "frontdoor round $round: $server"
    launch "$server" "$WORK/probe-zone.txt"
    pid=$STARTED
    warm "$WORK/hot.txt"
    c0=$(counters)
    measured "$pid" loadgen --queries "$WORK/hot.txt" --duration "$DURATION" -q "$OUTSTANDING"
    c1=$(counters)
    kv=$(cat "$WORK/measured.out")
    limited=$(delta hearth_rate_limit_limited_total "$c0" "$c1")
    # With [rate_limit] (C), it must never have limited.
    [ "$server" != hearth-rrl-never ] || EXTRA_NOTE="rate limiter: ${limited:-?} limited"
    finish frontdoor "$server r$round" "$pid" "$kv" ""
    EXTRA_NOTE=""
    # The row just recorded: its q/s and notes, for the summary.
    tail -1 "$RESULTS" | awk -F'\t' -v s="$server" -v r="$round" -v OFS='\t' '{ print s, r, $3, $9, $10 }' >>"$FRONTDOOR"
}

# flood LABEL SERVER SOURCES RUNS LOADGEN-ARGS...: a fresh SERVER (hearth-flood: [rate_limit] at
# 100 responses/s per /24, slip 2, nothing exempt, and [access] allowing 127.0.0.0/8;
# hearth-flood-unlimited: the same without [rate_limit]), flooded RUNS times with one cached
# name from SOURCES addresses of 127.0.0.0/8 (hearth-loadgen --sources). Per run:
# what the server processed (its /metrics: requests, and of them limited, slipped, dropped),
# what came back to the generator, and the server's VmRSS before the first run and after each.
FLOOD="$WORK/flood.tsv"
flood() {
    local label=$1 server=$2 sources=$3 runs=$4 pid kv c0 c1 t0 t1 rss0 rss1 i secs req lim notes
    shift 4
    log "flood: $label"
    launch "$server" "$WORK/probe-zone.txt"
    pid=$STARTED
    rss0=$(vm_rss "$pid")
    for i in $(seq "$runs"); do
        c0=$(counters)
        t0=$(date +%s.%N)
        measured "$pid" loadgen --queries "$WORK/flood.txt" --sources "$sources" --duration "$DURATION" "$@"
        t1=$(date +%s.%N)
        c1=$(counters)
        rss1=$(vm_rss "$pid")
        kv=$(cat "$WORK/measured.out")
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        req=$(delta hearth_requests_total "$c0" "$c1")
        lim=$(delta hearth_rate_limit_limited_total "$c0" "$c1")
        notes=""
        [ "$(field mismatched "$kv")" = 0 ] || notes+="$(field mismatched "$kv") mismatched; "
        [ "$(field udp_rcvbuf_errors "$kv")" = 0 ] || notes+="$(field udp_rcvbuf_errors "$kv") rcvbuf drops; "
        [ "$(field unsent "$kv")" = 0 ] || notes+="$(field unsent "$kv") not sent in time; "
        [ -z "$BUSY_NOTE" ] || notes+="$BUSY_NOTE; "
        [ "$RATE_LIMIT" = 1 ] || [ "$server" != hearth-flood ] || notes+="no [rate_limit] in this build; "
        notes+="$(field sources_replied "$kv") of $sources sources answered"
        # rate PER-RUN-COUNT: per second of the run.
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$i" \
            "$(field offered_qps "$kv")" \
            "$(awk -v n="$req" -v s="$secs" 'BEGIN { if (n != "") printf "%.0f", n / s }')" \
            "$(awk -v n="$req" -v l="$lim" -v s="$secs" 'BEGIN { if (n != "") printf "%.0f", (n - l) / s }')" \
            "$(awk -v n="$lim" -v s="$secs" 'BEGIN { if (n != "") printf "%.0f", n / s }')" \
            "$(awk -v n="$(delta hearth_rate_limit_slipped_total "$c0" "$c1")" -v s="$secs" 'BEGIN { if (n != "") printf "%.0f", n / s }')" \
            "$(awk -v n="$(delta hearth_rate_limit_dropped_total "$c0" "$c1")" -v s="$secs" 'BEGIN { if (n != "") printf "%.0f", n / s }')" \
            "$(field qps "$kv")" "$(field truncated "$kv")" "$(field lost_pct "$kv")" \
            "$rss0" "$rss1" "$SRV_CPU/$GEN_CPU" "$notes" >>"$FLOOD"
        log "  run $i: server $(tail -1 "$FLOOD" | cut -f4) q/s (limited $(tail -1 "$FLOOD" | cut -f6)/s), generator $(field qps "$kv") replies/s, VmRSS $rss0 -> $rss1 KB, CPU server/generator $SRV_CPU/$GEN_CPU% ($notes)"
        printf '%s [%s run %s] %s\n' "$c0" "$label" "$i" "$c1" >>"$WORK/flood-counters.log"
    done
    stop_pid "$pid"
    after_run
}

# picked SERVER: whether --servers (if given) names SERVER.
picked() { [ -z "$SERVERS" ] || case ",$SERVERS," in *",$1,"*) true ;; *) false ;; esac; }
for scen in ${ONLY//,/ }; do
    case "$scen" in
        hit) for s in reflector hearth unbound dnsdist dnsmasq; do
                 picked "$s" || continue; steady hit "$s" "${HIT[@]}"; done ;;
        hosts) for s in hearth-hosts dnsmasq-hosts; do
                   picked "$s" || continue; steady hosts "$s" "$WORK/hot-hosts.txt" "$WORK/probe-hosts.txt"; done ;;
        auth) for s in hearth-zone nsd; do picked "$s" || continue; steady auth "$s" "${HIT[@]}"; done ;;
        miss) for s in hearth unbound dnsmasq dnsmasq-150k; do picked "$s" || continue; miss "$s"; done ;;
        rotate)
            for r in $(seq "$ROUNDS"); do
                for s in hearth hearth-rotate; do
                    picked "$s" || continue
                    steady "rotate r$r" "$s" "$WORK/hot-multi.txt" "$WORK/probe-zone.txt"
                done
            done ;;
        miss-tcp) for s in hearth-tcp unbound-tcp; do picked "$s" || continue; miss "$s" miss-tcp; done ;;
        miss-tls) for s in hearth-tls unbound-tls; do picked "$s" || continue; miss "$s" miss-tls; done ;;
        # Hits must stay at their unvalidated rate (the verdict is cached with the answer); the
        # miss pass shows what validation costs, with validation on and off side by side.
        # hearth-dnssec last of Hearth's rows: the table's "Hearth ÷ this" is its ratio.
        dnssec-hit) signed_data
            for s in hearth-dnssec-off hearth-dnssec unbound-dnssec; do
                picked "$s" || continue; steady dnssec-hit "$s" "${HIT[@]}"; done ;;
        dnssec-miss) signed_data
            for s in hearth-dnssec-off hearth-dnssec unbound-dnssec; do
                picked "$s" || continue; miss "$s" dnssec-miss; done ;;
        # The long tail: the peaks, then every server again at one rate for latency.
        # The reflector on the same names: what the generator and the kernel allow at most with
        # this query set (it answers NOERROR with no records, so its reply counts are its own).
        auth-tail) tail_data
            for s in hearth-zone nsd knot reflector; do
                picked "$s" || continue; tail_run auth-tail "$s" "$WORK/cold.txt" "$WORK/probe-zone.txt" noerror; done
            tail_latency auth-tail "$WORK/cold.txt" "$WORK/probe-zone.txt" hearth-zone nsd knot
            tail_rounds auth-tail "$WORK/cold.txt" "$WORK/probe-zone.txt" hearth-zone nsd knot reflector ;;
        hosts-tail) tail_data
            for s in hearth-hosts-tail dnsmasq-hosts-tail; do
                picked "$s" || continue
                tail_run hosts-tail "$s" "$WORK/tail-hosts.txt" "$WORK/probe-hosts-tail.txt" noerror; done
            tail_latency hosts-tail "$WORK/tail-hosts.txt" "$WORK/probe-hosts-tail.txt" hearth-hosts-tail dnsmasq-hosts-tail
            tail_rounds hosts-tail "$WORK/tail-hosts.txt" "$WORK/probe-hosts-tail.txt" hearth-hosts-tail dnsmasq-hosts-tail ;;
        nx-tail) tail_data
            # The reflector answers each query as it came (NOERROR, no records): the ceiling.
            for s in hearth-nx reflector; do
                picked "$s" || continue
                tail_run nx-tail "$s" "$WORK/tail-nx.txt" "$WORK/probe-nx.txt" \
                    "$([ "$s" = reflector ] && echo noerror || echo nxdomain)"; done
            tail_latency nx-tail "$WORK/tail-nx.txt" "$WORK/probe-nx.txt" hearth-nx reflector
            tail_rounds nx-tail "$WORK/tail-nx.txt" "$WORK/probe-nx.txt" hearth-nx reflector ;;
        hit-tail) tail_upstream
            # hearth-hit-tail-64m: the fast path held to 64 MiB (about a fifth of the 1,000,000
            # replies): what the general path gives over the tail. hearth-hit-tail is as
            # configured by default, its table following the 1 GiB cache (512 MiB; the RSS column
            # says what that costs). The ratio column is the default's (the last Hearth row).
            for s in hearth-hit-tail-64m hearth-hit-tail unbound-hit-tail reflector; do
                picked "$s" || continue
                tail_run hit-tail "$s" "$WORK/tail-hit.txt" "$WORK/probe-tail.txt" noerror; done
            tail_latency hit-tail "$WORK/tail-hit.txt" "$WORK/probe-tail.txt" hearth-hit-tail-64m hearth-hit-tail unbound-hit-tail ;;
        auth-flood) auth_flood hearth-zone nsd knot ;;
        instructions) instructions hearth-zone nsd knot ;;
        loss) for s in hearth unbound dnsdist dnsmasq hearth-zone nsd; do
                  picked "$s" || continue; loss "$s" "${HIT[@]}"; done ;;
        crosscheck) for s in dnsmasq hearth; do picked "$s" || continue; crosscheck "$s"; done ;;
        churn) churn "hearth (cluster still)" 0; churn "hearth (Service changed every 100 ms)" 1 ;;
        frontdoor)
            for r in $(seq "$ROUNDS"); do
                for s in hearth-open hearth-default hearth-rrl-never; do
                    picked "$s" || continue
                    [ "$s" != hearth-rrl-never ] || rate_limit_supported || continue
                    frontdoor "$r" "$s"
                done
            done ;;
        flood)
            echo "name0.bench.test A" >"$WORK/flood.txt"
            rate_limit_supported || log "warning: flooding a server without [rate_limit]"
            # 256 sources at 10x the limit each (1,000 q/s), open loop; then 65,536 sources (one
            # per /24) at the same offered rate, and as fast as the server answers, without
            # [rate_limit] (what many sources cost by themselves) and with it.
            flood "256 sources, 256,000 q/s offered (10x the limit each)" hearth-flood 256 1 \
                --rate 256000 -q 16384 --timeout 0.05
            flood "65,536 sources, 256,000 q/s offered" hearth-flood 65536 1 \
                --rate 256000 -q 16384 --timeout 0.05
            flood "65,536 sources, closed loop (1,000 in flight), no [rate_limit]" \
                hearth-flood-unlimited 65536 1 -q 1000 --timeout 0.05
            flood "65,536 sources, closed loop (1,000 in flight)" hearth-flood 65536 2 \
                -q 1000 --timeout 0.05 ;;
    esac
done
stop_pid "$NSD_UP"
[ -z "$SIGNED_NSD" ] || stop_pid "$SIGNED_NSD"
[ -z "$TAIL_NSD" ] || stop_pid "$TAIL_NSD"

# --- 6. the table ----------------------------------------------------------------------------
# Hearth's ratio to each peer in the same scenario, by the batched generator's q/s. Left out
# when no scenario wrote a row to it (--only instructions, --only frontdoor).
TABLE=""
[ ! -s "$RESULTS" ] || TABLE=$(awk -F'\t' '
    { row[NR] = $0; if ($2 ~ /^hearth/) h[$1] = $3 }
    END {
        print "| scenario | server | q/s (loadgen) | q/s (dnsperf) | p50 µs | p99 µs | lost % | RSS MB | CPU % srv/gen | Hearth ÷ this | notes |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        for (i = 1; i <= NR; i++) {
            split(row[i], f, "\t")
            ratio = (f[2] !~ /^hearth/ && (f[1] in h) && f[3] > 0) ? sprintf("%.2fx", h[f[1]] / f[3]) : ""
            printf "| %s | %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s |\n", f[1], f[2],
                f[3], f[4], f[5], f[6], f[7], f[8] / 1024, f[9], ratio, f[10]
        }
    }' "$RESULTS")
# frontdoor: each config's q/s per round, the sum over rounds, and its ratio to allow-all's.
if [ -s "$FRONTDOOR" ]; then
    TABLE+=$'\n\n'$(awk -F'\t' -v rounds="$ROUNDS" '
        BEGIN {
            label["hearth-open"] = "[access] allow 0.0.0.0/0, ::/0 (A)"
            label["hearth-default"] = "no [access]: the default policy (B)"
            label["hearth-rrl-never"] = "default + [rate_limit] never limiting (C)"
        }
        { if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
          q[$1, $2] = $3; sum[$1] += $3; cnt[$1]++ }
        END {
            printf "| front door | "; for (r = 1; r <= rounds; r++) printf "round %d | ", r; print "sum | ÷ A (sums) |"
            printf "|---|"; for (r = 1; r <= rounds; r++) printf "---:|"; print "---:|---:|"
            for (i = 1; i <= n; i++) {
                s = order[i]; printf "| %s | ", label[s]
                for (r = 1; r <= rounds; r++) printf "%s | ", ((s, r) in q) ? q[s, r] : "—"
                ratio = ("hearth-open" in sum && sum["hearth-open"] > 0 && cnt[s] == cnt["hearth-open"]) ? sprintf("%.3f", sum[s] / sum["hearth-open"]) : ""
                printf "%s | %s |\n", sum[s], ratio
            }
        }' "$FRONTDOOR")
fi
# flood: the rate limiter under a flood, from the server's counters and the generator's.
if [ -s "$FLOOD" ]; then
    TABLE+=$'\n\n'$(awk -F'\t' '
        BEGIN {
            print "| flood | run | offered q/s | server q/s | answered/s | limited/s | slipped/s | dropped/s | replies q/s (loadgen) | TC replies | lost % | VmRSS before → after, MB | CPU % srv/gen | notes |"
            print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
        }
        { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f → %.1f | %s | %s |\n",
              $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 / 1024, $13 / 1024, $14, $15 }' "$FLOOD")
fi
# The long tail's latency: every server of a scenario at one rate, half the lowest peak.
if [ -s "$TAIL_LAT" ]; then
    TABLE+=$'\n\n'$(awk -F'\t' '
        BEGIN {
            print "| long tail, latency | server | offered q/s | answered q/s | p50 µs | p99 µs | lost % | notes |"
            print "|---|---|---:|---:|---:|---:|---:|---|"
        }
        { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$TAIL_LAT")
fi
# instructions: each server's instructions per answer in each workload, and Hearth's as a
# fraction of each peer's.
if [ -s "$INSTR" ]; then
    TABLE+=$'\n\n'$(awk -F'\t' '
        BEGIN {
            print "| instructions per answer (callgrind, user space) | server | answers | instructions | per answer | Hearth ÷ this |"
            print "|---|---|---:|---:|---:|---:|"
        }
        { row[NR] = $0; if ($1 ~ /^hearth/) h[$2] = $5 }
        END {
            for (i = 1; i <= NR; i++) {
                split(row[i], f, "\t")
                ratio = (f[1] !~ /^hearth/ && (f[2] in h) && f[5] > 0) ? sprintf("%.2f", h[f[2]] / f[5]) : ""
                printf "| %s | %s | %s | %s | %s | %s |\n", f[2], f[1], f[3], f[4], f[5], ratio
            }
        }' "$INSTR")
fi
# The long tail in rounds: each server's q/s per round, the sums, Hearth's ratio to each peer
# (of the sums, and the lowest and highest of the rounds' own), and the server core's µs per
# answer (median of the rounds).
if [ -s "$TAIL_ROUNDS" ]; then
    TABLE+=$'\n\n'$(awk -F'\t' -v rounds="$ROUNDS" '
        BEGIN {
            printf "| long tail, in rounds | server | "
            for (r = 1; r <= rounds; r++) printf "round %d q/s | ", r
            print "sum | Hearth ÷ this (sums) | rounds: lowest, highest | server core µs/answer | notes |"
            printf "|---|---|"; for (r = 1; r <= rounds; r++) printf "---:|"; print "---:|---:|---|---:|---|"
        }
        # median of the n values in a[1..n]
        function median(a, n,   i, j, t) {
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        {
            k = $1 SUBSEP $3
            if (!(k in seen)) { seen[k] = 1; order[++n] = k; scen[n] = $1; srv[n] = $3 }
            q[k, $2] = $4; sum[k] += $4; cnt[k]++
            if ($4 > 0) cost[k, ++costs[k]] = $5 * 10000 / $4
            if ($6 != "") note[k] = note[k] (note[k] == "" ? "" : "; ") "round " $2 ": " $6
            if ($3 ~ /^hearth/) hearth[$1] = $3
        }
        END {
            for (i = 1; i <= n; i++) {
                k = order[i]; s = scen[i]; h = s SUBSEP hearth[s]
                printf "| %s | %s | ", s, srv[i]
                for (r = 1; r <= rounds; r++) printf "%s | ", ((k, r) in q) ? q[k, r] : "—"
                ratio = ""; spread = ""
                if ((s in hearth) && srv[i] != hearth[s] && sum[k] > 0 && cnt[k] == cnt[h]) {
                    ratio = sprintf("%.2fx", sum[h] / sum[k]); lo = ""; hi = ""
                    for (r = 1; r <= rounds; r++) if (((k, r) in q) && q[k, r] > 0 && ((h, r) in q)) {
                        x = q[h, r] / q[k, r]; if (lo == "" || x < lo) lo = x; if (hi == "" || x > hi) hi = x }
                    if (lo != "") spread = sprintf("%.2fx, %.2fx", lo, hi)
                }
                delete c; for (j = 1; j <= costs[k]; j++) c[j] = cost[k, j]
                printf "%s | %s | %s | %s | %s |\n", sum[k], ratio, spread,
                    costs[k] ? sprintf("%.2f", median(c, costs[k])) : "", note[k]
            }
        }' "$TAIL_ROUNDS")
fi
echo
echo "$TABLE"
if [ -n "$OUT" ]; then
    {
        echo
        echo "### $(date -u '+%Y-%m-%d %H:%M UTC'): \`$CMDLINE\`"
        echo
        echo "hearth $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)');" \
            "unbound $(unbound -V 2>/dev/null | awk 'NR == 1 { print $2 }'), nsd $(nsd -v 2>&1 | awk 'NR == 1 { print $3 }')," \
            "dnsmasq $(dnsmasq -v | awk 'NR == 1 { print $3 }'), dnsdist $(dnsdist --version 2>/dev/null | awk 'NR == 1 { print $2 }')," \
            "dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }'); $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r);" \
            "server on CPU $SERVER_CPU, generators on CPU $CLIENT_CPU; ${DURATION} s runs, median of $REPEAT;" \
            "hearth-loadgen -q $OUTSTANDING -b 32, dnsperf ${DNSPERF_ARGS[*]} (miss: both 100 outstanding, one pass)."
        echo
        echo "$TABLE"
    } >>"$OUT"
    log "appended to $OUT"
fi
