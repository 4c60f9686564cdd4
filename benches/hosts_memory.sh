#!/usr/bin/env bash
# The RSS of a server answering from one large hosts file, for Hearth and (when installed)
# dnsmasq, side by side:
#
#   benches/hosts_memory.sh [LINES]        (default 100000)
#
# Two files of LINES lines: distinct addresses (`10.x.y.z hN.big.test`) and a blocklist (every
# name on 0.0.0.0). Each server is started on a loopback port with only that file, the file's
# last name is polled with `dig` until it answers, and VmRSS and VmHWM are read two seconds
# later. HEARTH_BIN=path measures another build (default: target/release/hearth, built here).
# Needs dig (bind9-dnsutils); dnsmasq is optional. Everything started is stopped on exit, and
# every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

lines=${1:-100000}
port=5391
work=$(mktemp -d /tmp/hearth-hosts-memory.XXXXXX)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

command -v dig >/dev/null || { echo "hosts_memory: dig is missing (apt-get install bind9-dnsutils)" >&2; exit 2; }
if [ -z "${HEARTH_BIN:-}" ]; then
    cargo build --release --locked --quiet
    HEARTH_BIN=target/release/hearth
fi

awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "10.%d.%d.%d h%d.big.test\n", int(i / 65536) % 256, int(i / 256) % 256, i % 256, i }' >"$work/distinct"
awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "0.0.0.0 ads%d.tracker%d.example.com\n", i, i % 977 }' >"$work/blocklist"

# measure NAME FILE COMMAND...: starts COMMAND, waits (at most 30 s) for FILE's last name to
# answer on $port, and prints RSS and peak RSS.
measure() {
    local name=$1 file=$2
    shift 2
    "$@" >"$work/log" 2>&1 &
    server=$!
    local last
    last=$(tail -1 "$file" | awk '{print $2}')
    local deadline=$((SECONDS + 30))
    until dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 "$last" A | grep -q .; do
        if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$server" 2>/dev/null; then
            echo "hosts_memory: $name did not answer $last; its log:" >&2
            cat "$work/log" >&2
            exit 1
        fi
        sleep 0.05
    done
    sleep 2
    local rss hwm
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$server/status")
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$server/status")
    printf '| %s | %s | %.1f | %.1f |\n' "$name" "$(basename "$file")" "$(echo "$rss / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)"
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
}

echo "| server | file ($lines lines) | RSS MB | peak RSS MB |"
echo "|---|---|---:|---:|"
for file in "$work/distinct" "$work/blocklist"; do
    cat >"$work/hearth.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
[resolve]
order = ["files"]
[files]
paths = ["$file"]
EOF
    measure hearth "$file" "$HEARTH_BIN" serve --config "$work/hearth.toml"
    if [ -x /usr/sbin/dnsmasq ]; then
        measure dnsmasq "$file" /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts \
            --addn-hosts="$file" --port="$port" --listen-address=127.0.0.1 --bind-interfaces \
            --user="$(id -un)" --pid-file=
    fi
done
