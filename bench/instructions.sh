#!/usr/bin/env bash
# Instructions per request under callgrind: a load figure that the machine's noise cannot move.
#
#     bench/instructions.sh                     # every scenario, 6 s of load each
#     SECONDS_EACH=10 bench/instructions.sh
#     BIN_DIR=/tmp/other/release bench/instructions.sh   # another build's binaries
#
# For each scenario the server runs under `valgrind --tool=callgrind` with counting off; after
# a warm-up, counting is switched on for a fixed wrk run (16 connections) and off again, and
# the instructions of every thread of the server process are divided by the requests wrk
# completed. The same build, inputs and environment give the same figure within about 1%
# whatever else the machine is doing, so it answers "did this change cost
# anything" where the req/s of bench/run.sh cannot (its rounds move by ±10% on a shared
# machine). It counts instructions, not time: a memset is counted per byte (`rep stosb`),
# SHA-256 runs its portable code (valgrind hides SHA-NI), and cache misses, system calls and
# context switches do not show. Compare scenarios of one run, never with bench/run.sh.
#
# Results land in target/bench/instructions.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-target/release}
SECONDS_EACH=${SECONDS_EACH:-6}
OUT=target/bench
mkdir -p "$OUT/callgrind"
for tool in valgrind callgrind_control wrk; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install valgrind wrk)" >&2; exit 2; }
done
if [ "$BIN_DIR" = target/release ]; then
    cargo build --release --locked --bin ory-proxy --example bench_app --example bench_ory --example bench_floor
fi
for port in 4100 4300; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use (a previous run still alive?)" >&2
        exit 2
    fi
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN_DIR/examples/bench_app" 127.0.0.1:4100 2>/dev/null &
PIDS+=($!)
"$BIN_DIR/examples/bench_ory" 0 "$TMP/whoami" > "$TMP/ory" &
PIDS+=($!)
for _ in $(seq 100); do [ "$(wc -l < "$TMP/ory")" -ge 2 ] && break; sleep 0.1; done
ORY=$(sed -n 's/^[^=]*=//p' "$TMP/ory" | sed -n 1p)
COOKIE=$(sed -n 's/^[^=]*=//p' "$TMP/ory" | sed -n 2p)
[ -n "$COOKIE" ] || { echo "the Ory emulator did not start" >&2; exit 1; }

# 20 access rules none of which the benchmark's path meets: bench/run.py's RULES=20.
RULES=$(cd bench && python3 -c 'import sys, run; print(run.rules_config(sys.argv[1], 20))' "$TMP")

# measure NAME CREDENTIAL(anon|session) RUST_LOG(-: the default) SERVER...
measure() {
    local name=$1 cred=$2 level=$3
    shift 3
    local hdr=()
    [ "$cred" = session ] && hdr=(-H "Cookie: $COOKIE")
    (
        if [ "$level" = - ]; then unset RUST_LOG; else export RUST_LOG=$level; fi
        exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind/$name.out" \
            "$@" > /dev/null 2> "$TMP/$name.vg"
    ) &
    local pid=$!
    PIDS+=("$pid")
    local up=
    for _ in $(seq 300); do
        if curl -s -o /dev/null "http://127.0.0.1:4300/"; then up=1; break; fi
        sleep 0.1
    done
    [ -n "$up" ] || { echo "$name: the server did not start (see $TMP/$name.vg)" >&2; exit 1; }
    wrk -t1 -c16 -d2s "${hdr[@]}" http://127.0.0.1:4300/ > /dev/null
    callgrind_control -i on "$pid" > /dev/null 2>&1
    wrk -t1 -c16 -d"${SECONDS_EACH}s" "${hdr[@]}" http://127.0.0.1:4300/ > "$TMP/$name.wrk"
    callgrind_control -i off "$pid" > /dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local n ir bad
    n=$(grep -oP '\d+(?= requests in)' "$TMP/$name.wrk")
    ir=$(grep -oP 'Collected : \K\d+' "$TMP/$name.vg")
    bad=$(grep -oP 'Non-2xx or 3xx responses: \K\d+' "$TMP/$name.wrk" || echo 0)
    [ "$bad" = 0 ] || { echo "$name: $bad failed responses" >&2; exit 1; }
    echo "$name $n $((ir / n))" >> "$TMP/results"
    printf '%-28s %7d requests %9d instructions/request\n' "$name" "$n" "$((ir / n))"
}

PROXY=("$BIN_DIR/ory-proxy" --sdk-url "$ORY" --port 4300)
APP=http://127.0.0.1:4100
measure floor anon - "$BIN_DIR/examples/bench_floor" 127.0.0.1:4300 "$APP"
measure anonymous anon - "${PROXY[@]}" "$APP"
measure anonymous-warn anon warn "${PROXY[@]}" "$APP"
measure session session - "${PROXY[@]}" "$APP"
measure session-warn session warn "${PROXY[@]}" "$APP"
measure anonymous-20-rules anon - "${PROXY[@]}" --config "$RULES" "$APP"
measure session-20-rules session - "${PROXY[@]}" --config "$RULES" "$APP"

python3 - "$TMP/results" "$OUT/instructions.md" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
ir = {name: int(v) for name, _, v in rows}
def r(a, b):
    return f"{ir[a] / ir[b]:.3f}"
lines = ["| scenario | requests | instructions/request | vs floor |", "|---|---|---|---|"]
lines += [f"| {n} | {c} | {int(v):,} | {r(n, 'floor')} |" for n, c, v in rows]
lines += ["", "| ratio | value |", "|---|---|",
          f"| access log on / RUST_LOG=warn, anonymous | {r('anonymous', 'anonymous-warn')} |",
          f"| access log on / RUST_LOG=warn, session | {r('session', 'session-warn')} |",
          f"| 20 rules / none, anonymous | {r('anonymous-20-rules', 'anonymous')} |",
          f"| 20 rules / none, session | {r('session-20-rules', 'session')} |",
          f"| session / anonymous | {r('session', 'anonymous')} |"]
text = "\n".join(lines) + "\n"
open(sys.argv[2], "w").write(text)
print(text)
EOF
