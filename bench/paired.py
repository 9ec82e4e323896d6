#!/usr/bin/env python3
"""Paired A/B of two ory-proxy set-ups under the same load (see bench/README.md).

A is this build as shipped; B is the same build with RULES access rules loaded (default 20),
or BASELINE_BIN's binary when that is set. Both run side by side on the server core with one
app and one Ory emulator; each round runs wrk (c=64, DURATION s) against A and B back to back,
in alternating order, for an anonymous request and a session cache hit. The figure is the
median over the rounds of B/A within a round: drift of a shared machine between rounds
cancels, which the medians of bench/run.sh's interleaved scenarios cannot do for a few
percent.

    bench/paired.sh                          # RULES=20, 10 rounds of 4 s
    ROUNDS=20 DURATION=4 bench/paired.sh
    BASELINE_BIN=/tmp/old/ory-proxy bench/paired.sh
"""
import os, re, statistics, subprocess, sys, tempfile, time, socket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
ROUNDS = int(os.environ.get("ROUNDS", "10"))
DURATION = int(os.environ.get("DURATION", "4"))
RULES = int(os.environ.get("RULES", "20"))
BASELINE = os.environ.get("BASELINE_BIN")
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
CLK = os.sysconf("SC_CLK_TCK")
OUT = os.path.join(ROOT, "target", "bench")
APP, A_PORT, B_PORT = 3100, 3300, 3304
procs = []


def spawn(args, **kw):
    p = subprocess.Popen(["taskset", "-c", SERVER_CPU] + args, **kw)
    procs.append(p)
    return p


def wait_port(port, proc):
    end = time.time() + 10
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"the server for port {port} exited (port already in use?)")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"nothing listens on {port}")


def rules_config(tmp, n):
    """`n` rules that the benchmark's path does not meet (as bench/run.py's RULES)."""
    path = os.path.join(tmp, f"rules-{n}.toml")
    with open(path, "w") as f:
        f.write('[access]\ndefault = "optional"\n')
        for i in range(n):
            f.write(f'\n[[access.rules]]\nname = "area{i}"\n'
                    f'paths = ["/area{i}", "/area{i}/*/edit", "/area{i}/**"]\n'
                    f'methods = []\nrequire = "session"\n')
    os.chmod(path, 0o600)
    return path


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wrk(port, pid, header):
    """req/s and the server's CPU µs per request of one run."""
    t0 = cpu_ticks(pid)
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c64", f"-d{DURATION}s"]
    if header:
        cmd += ["-H", header]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        sys.exit(f"port {port}: {bad.group(1)} failed responses")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, (cpu_ticks(pid) - t0) / CLK * 1e6 / max(n, 1)


def main():
    tmp = tempfile.mkdtemp(prefix="ory-proxy-paired-")
    app = spawn([os.path.join(REL, "examples", "bench_app"), f"127.0.0.1:{APP}"],
                stderr=subprocess.DEVNULL)
    wait_port(APP, app)
    ory = spawn([os.path.join(REL, "examples", "bench_ory"), "0", os.path.join(tmp, "whoami")],
                stdout=subprocess.PIPE, text=True)
    ory_url = ory.stdout.readline().strip().split("=", 1)[1]
    cookie = ory.stdout.readline().strip().split("=", 1)[1]
    env = dict(os.environ)
    env.pop("RUST_LOG", None)

    def proxy(port, binary, extra):
        log = open(os.path.join(tmp, f"proxy-{port}.log"), "w")
        p = spawn([binary, "--sdk-url", ory_url, "--port", str(port)] + extra
                  + [f"http://127.0.0.1:{APP}"], env=env, stderr=log, stdout=subprocess.DEVNULL)
        wait_port(port, p)
        return p

    ours = os.path.join(REL, "ory-proxy")
    a = proxy(A_PORT, ours, [])
    if BASELINE:
        b, b_name = proxy(B_PORT, BASELINE, []), f"BASELINE_BIN ({BASELINE})"
    else:
        b = proxy(B_PORT, ours, ["--config", rules_config(tmp, RULES)])
        b_name = f"{RULES} access rules"
    kinds = [("anonymous", None), ("session (cache hit)", f"Cookie: {cookie}")]
    pairs = {k: [] for k, _ in kinds}
    for r in range(ROUNDS):
        for kind, header in kinds:
            order = [(A_PORT, a), (B_PORT, b)]
            if r % 2:
                order.reverse()
            got = {port: wrk(port, p.pid, header) for port, p in order}
            (ra, ca), (rb, cb) = got[A_PORT], got[B_PORT]
            pairs[kind].append((ra, rb, ca, cb))
            print(f"round {r} {kind}: A {ra:.0f} req/s {ca:.1f} us/req, B {rb:.0f} req/s "
                  f"{cb:.1f} us/req, B/A {rb / ra:.3f}", flush=True)
    lines = [f"B: {b_name}; A: this build as shipped. {ROUNDS} rounds of {DURATION} s, c=64, "
             "A and B back to back in alternating order; medians.", "",
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
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "paired.md"), "w") as f:
        f.write(text)
    print("\n" + text)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
