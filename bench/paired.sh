#!/usr/bin/env bash
# Paired A/B of this build as shipped against the same build with RULES access rules
# (default 20), or against BASELINE_BIN: see bench/paired.py and bench/README.md.
#
#   bench/paired.sh                          # 10 rounds of 4 s
#   ROUNDS=20 bench/paired.sh
#   BASELINE_BIN=/tmp/old/ory-proxy bench/paired.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk taskset; do
    command -v "$tool" >/dev/null || { echo "needs $tool (bench/run.sh installs it)" >&2; exit 2; }
done
cargo build --release --locked --bin ory-proxy --example bench_app --example bench_ory
exec python3 bench/paired.py "$@"
