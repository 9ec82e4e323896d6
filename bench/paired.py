#!/usr/bin/env python3
"""Paired A/B of two ory-proxy set-ups under the same load (see bench/README.md).

A is this build as shipped; B is the same build with RULES access rules loaded (default 20),
or BASELINE_BIN's binary when that is set. Both run side by side on the server core with one
app and one Ory emulator; each round runs wrk (c=64, DURATION s) against A and B back to back,
in alternating order, for an anonymous request and a session cache hit. The figure is the
median over the rounds of B/A within a round: drift of a shared machine between rounds
cancels. bench/run.sh's round ratios do that too, but its pairs can be several runs apart and
always run in the same order; here they run back to back, alternating, which resolves a few
percent. The servers, wrk and the rules come from bench/run.py.

    bench/paired.sh                          # RULES=20, 10 rounds of 4 s
    ROUNDS=20 DURATION=4 bench/paired.sh
    BASELINE_BIN=/tmp/old/ory-proxy bench/paired.sh
"""
import os, shutil, statistics, subprocess, sys, tempfile

import run as bench

ROUNDS = int(os.environ.get("ROUNDS", "10"))
bench.DURATION = int(os.environ.get("DURATION", "4"))
RULES = int(os.environ.get("RULES", "20"))
BASELINE = os.environ.get("BASELINE_BIN")
A_PORT, B_PORT = 3300, 3304


def measure(port, pid, headers):
    """req/s and the server's CPU µs per request of one wrk run."""
    t0 = bench.cpu_ticks([pid])
    r = bench.wrk(f"http://127.0.0.1:{port}/", bench.CONC, headers)
    if r["non2xx"] or r["sockerr"]:
        sys.exit(f"port {port}: {r['non2xx']} failed responses, socket errors: {r['sockerr']}")
    cpu = (bench.cpu_ticks([pid]) - t0) / bench.CLK * 1e6 / max(r["requests"], 1)
    return r["rps"], cpu


def main():
    tmp = tempfile.mkdtemp(prefix="ory-proxy-paired-")
    bench.TMPDIRS.append(tmp)
    app = bench.spawn([os.path.join(bench.REL, "examples", "bench_app"), "127.0.0.1:3100"],
                      stderr=subprocess.DEVNULL)
    bench.wait_port(3100, proc=app)
    ory_url, cookie = bench.start_ory(0, os.path.join(tmp, "whoami"))
    a = bench.start_proxy(A_PORT, ory_url, tmp)
    if BASELINE:
        b, b_name = bench.start_proxy(B_PORT, ory_url, tmp, binary=BASELINE), f"BASELINE_BIN ({BASELINE})"
    else:
        b = bench.start_proxy(B_PORT, ory_url, tmp, config=bench.rules_config(tmp, RULES))
        b_name = f"{RULES} access rules"
    kinds = [("anonymous", ()), ("session (cache hit)", (f"Cookie: {cookie}",))]
    pairs = {k: [] for k, _ in kinds}
    for r in range(ROUNDS):
        for kind, headers in kinds:
            order = [(A_PORT, a), (B_PORT, b)]
            if r % 2:
                order.reverse()
            got = {port: measure(port, p.pid, headers) for port, p in order}
            (ra, ca), (rb, cb) = got[A_PORT], got[B_PORT]
            pairs[kind].append((ra, rb, ca, cb))
            print(f"round {r} {kind}: A {ra:.0f} req/s {ca:.1f} us/req, B {rb:.0f} req/s "
                  f"{cb:.1f} us/req, B/A {rb / ra:.3f}", flush=True)
    lines = [f"B: {b_name}; A: this build as shipped. {ROUNDS} rounds of {bench.DURATION} s, "
             f"c={bench.CONC}, A and B back to back in alternating order; medians.", "",
             "| scenario | A req/s | B req/s | B/A req/s (median of pairs, min–max) "
             "| B/A CPU µs/req |", "|---|---|---|---|---|"]
    for kind, rows in pairs.items():
        ratios = [rb / ra for ra, rb, _, _ in rows]
        cpu = [cb / ca for _, _, ca, cb in rows]
        lines.append(f"| {kind} | {statistics.median(r[0] for r in rows):,.0f} "
                     f"| {statistics.median(r[1] for r in rows):,.0f} "
                     f"| {statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f}) "
                     f"| {statistics.median(cpu):.3f} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(bench.OUT, "paired.md"), "w") as f:
        f.write(text)
    print("\n" + text)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in bench.procs:
            p.terminate()
        for p in bench.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        for d in bench.TMPDIRS:
            shutil.rmtree(d, ignore_errors=True)
