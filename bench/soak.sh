#!/usr/bin/env bash
# Soak test, by hand only (never in CI): DURATION seconds (default 600) of mixed traffic on
# loopback through the release ory-proxy binary, in front of the demo's Ory emulator and an app
# with uploads, downloads and a WebSocket (examples/soak_stack.rs). New and returning
# sessions, logouts, anonymous visits, 1 MiB uploads and downloads, WebSocket echoes; every
# 30 s an edit of proxy.toml (every other one with SIGHUP), every 60 s a key rotation
# (SIGUSR1). The proxy's RSS (and the stack's) is sampled every SAMPLE seconds (default 10) and
# printed as a table, also written to target/soak/results.md. Exits non-zero when any
# operation failed.
#
#   bench/soak.sh                   # 10 minutes
#   DURATION=120 bench/soak.sh      # 2 minutes
#   PORT=4800 bench/soak.sh         # another proxy port (default 4700)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-600}
sample=${SAMPLE:-10}
port=${PORT:-4700}

cargo build --release --locked --bin ory-proxy --example soak_stack

work=$(mktemp -d)
stack_pid=
proxy_pid=
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    [ -n "$stack_pid" ] && kill "$stack_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

target/release/examples/soak_stack "$port" >"$work/stack.out" 2>"$work/stack.err" &
stack_pid=$!
for _ in $(seq 200); do
    grep -q '^APP=' "$work/stack.out" 2>/dev/null && break
    sleep 0.05
done
ory=$(sed -n 's/^ORY=//p' "$work/stack.out")
app=$(sed -n 's/^APP=//p' "$work/stack.out")
[ -n "$ory" ] && [ -n "$app" ] || { cat "$work/stack.err"; echo "soak: the stack did not start" >&2; exit 1; }

# The keys file's directory must be the proxy's own (it refuses one others can write).
mkdir -m 700 "$work/keys"
cat >"$work/proxy.toml" <<EOF
application_url = "$app"
sdk_url = "$ory"
port = $port
log_level = "warn"

[cors]
allowed_origins = []

[jwt]
ttl = "1m"
keys_file = "$work/keys/jwks.json"

[session]
cache_ttl = "10s"
EOF

target/release/ory-proxy -c "$work/proxy.toml" >"$work/proxy.out" 2>&1 &
proxy_pid=$!
for _ in $(seq 200); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/.ory/proxy/health/ready" && break
    sleep 0.05
done

mkdir -p target/soak
status=0
python3 bench/soak.py --port "$port" --duration "$duration" --sample "$sample" \
    --proxy-pid "$proxy_pid" --stack-pid "$stack_pid" --config "$work/proxy.toml" \
    --report target/soak/results.md || status=$?
if ! kill -0 "$proxy_pid" 2>/dev/null; then
    echo "soak: the proxy died" >&2
    status=1
fi
echo "proxy warnings and errors:"
grep -E ' (WARN|ERROR) ' "$work/proxy.out" | sed -E 's/^\[[0-9TZ:.-]+ /[/' | sort | uniq -c |
    sort -rn | head -20 || echo "  none"
exit "$status"
