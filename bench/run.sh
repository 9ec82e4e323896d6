#!/usr/bin/env bash
# Load benchmark: ory-proxy beside nginx, the identity-aware peers (nginx auth_request, with
# and without a whoami cache; Caddy forward_auth) and talking to the app directly, every
# server logging as shipped. Installs wrk, nginx-light and caddy from Debian if missing,
# builds release binaries, then runs bench/run.py (scenarios interleaved in rounds; medians
# reported). See bench/README.md.
#
#   bench/run.sh                      # defaults: 3 rounds, 8 s per run, c=64
#   ROUNDS=5 DURATION=10 bench/run.sh
#   bench/run.sh --quiet-logs         # access logs off everywhere
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ] || ! command -v caddy >/dev/null; then
  apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Caddy is a peer, not a requirement: without a Debian package, run.py skips it and says so.
if ! command -v caddy >/dev/null; then
  if apt-cache policy caddy 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "installing caddy"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq caddy >/dev/null
  else
    echo "no caddy package in this Debian: the Caddy forward_auth peer will be skipped"
  fi
fi
# Debian's packages start their services: the benchmark runs its own instances.
for svc in nginx caddy; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    echo "note: the system's $svc service is running; it may take CPU during the runs"
  fi
done

cargo build --release --locked --bin ory-proxy --example bench_app --example bench_ory --example bench_latency --example bench_floor
exec python3 bench/run.py "$@"
