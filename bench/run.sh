#!/usr/bin/env bash
# Load benchmark: ory-proxy beside nginx and beside talking to the app directly.
# Installs wrk and nginx-light from Debian if missing, builds release binaries, then runs
# bench/run.py (scenarios interleaved in rounds; medians reported). See bench/README.md.
#
#   bench/run.sh                      # defaults: 3 rounds, 8 s per run, c=64
#   ROUNDS=5 DURATION=10 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release --locked --bin ory-proxy --example bench_app --example bench_ory --example bench_latency --example bench_floor
exec python3 bench/run.py "$@"
