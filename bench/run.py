#!/usr/bin/env python3
"""Drives the load benchmark (see bench/README.md). Called by bench/run.sh after the build.

Servers (app, nginx, ory-proxy, the Ory emulator) are pinned to one core and wrk to the other,
so they do not fight for a core; scenarios run interleaved in rounds so machine drift hits all
of them alike; the table reports medians. CPU cost is the server process's own utime+stime
over the run divided by the requests it served.

After the wrk rounds, a fixed-rate section: examples/bench_latency offers LAT_RATE req/s over
LAT_CONC connections (open loop, latency from each request's scheduled send time), so the
latency the proxy adds over direct can be read at equal load, below saturation.
"""
import argparse, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
from urllib.parse import urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "8"))
CONC = int(os.environ.get("CONC", "64"))
BIG_CONC = int(os.environ.get("BIG_CONC", "256"))
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
LAT_RATE = int(os.environ.get("LAT_RATE", "10000"))
LAT_CONC = int(os.environ.get("LAT_CONC", "64"))
CLK = os.sysconf("SC_CLK_TCK")
OUT = os.path.join(ROOT, "target", "bench")
os.makedirs(OUT, exist_ok=True)

procs = []
# Log files of the servers, emptied after each run (they would fill the disk otherwise).
logs = []
QUIET = False
TMPDIRS = []


def spawn(args, **kw):
    p = subprocess.Popen(["taskset", "-c", SERVER_CPU] + args, **kw)
    procs.append(p)
    return p


def wait_port(port, deadline=10.0, proc=None):
    end = time.time() + deadline
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"the server for port {port} exited (port already in use?)")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    sys.exit(f"nothing listens on {port}")


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # nginx's cache loader exits a minute after start
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def log_file(tmp, name):
    """A log file for a server's output, opened for appending (so emptying it works)."""
    path = os.path.join(tmp, name)
    logs.append(path)
    return open(path, "a")


def empty_logs():
    for path in logs:
        try:
            os.truncate(path, 0)
        except OSError:
            pass


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def to_ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url, conc, headers=()):
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conc}", f"-d{DURATION}s", "--latency", url]
    for h in headers:
        cmd[5:5] = ["-H", h]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict((p, to_ms(v, u)) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": total, "p50": lat.get("50"), "p99": lat.get("99"),
            "non2xx": int(errors.group(1)) if errors else 0, "sockerr": sock.group(1) if sock else ""}


def fixed_rate(url, headers=()):
    """One open-loop run of examples/bench_latency at LAT_RATE req/s over LAT_CONC connections
    for DURATION s (its first second is warm-up, not recorded)."""
    cmd = ["taskset", "-c", LOAD_CPU, os.path.join(REL, "examples", "bench_latency"), url,
           str(LAT_CONC), str(LAT_RATE), str(DURATION)] + list(headers)
    p = subprocess.run(cmd, capture_output=True, text=True)
    line = next((l for l in p.stdout.splitlines() if l.startswith("rate=")), None)
    if line is None:
        sys.exit(f"bench_latency {url} failed (exit {p.returncode}): {p.stderr.strip()}")
    res = {k: float(v) for k, v in (kv.split("=", 1) for kv in line.split())}
    # The load generator's own lateness on idle connections (stderr): large values mean the
    # load core was disturbed, not the server.
    lag = re.search(r"own send delay .*: p99 ([\d.]+) ms", p.stderr)
    res["client_lag_p99"] = float(lag.group(1)) if lag else float("nan")
    return res


def start_ory(delay_ms, stats):
    p = spawn([os.path.join(REL, "examples", "bench_ory"), str(delay_ms), stats], stdout=subprocess.PIPE, text=True)
    url = p.stdout.readline().strip().split("=", 1)[1]
    cookie = p.stdout.readline().strip().split("=", 1)[1]
    return url, cookie


def whoami_count(stats):
    try:
        with open(stats) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def start_proxy(port, ory_url, tmp, rust_log=None, binary=None, config=None):
    """ory-proxy as shipped (its default level, the access log on, stderr to a file), or with
    `rust_log` as RUST_LOG. PROXY_RUST_LOG overrides both. `binary` replaces the build's own
    (BASELINE_BIN: another commit's binary, for before/after in the same run)."""
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    level = os.environ.get("PROXY_RUST_LOG", rust_log)
    if level:
        env["RUST_LOG"] = level
    cmd = [binary or os.path.join(REL, "ory-proxy"), "--sdk-url", ory_url, "--port", str(port)]
    if config:
        cmd += ["--config", config]
    p = spawn(cmd + ["http://127.0.0.1:3100"],
              env=env, stderr=log_file(tmp, f"ory-proxy-{port}.log"), stdout=subprocess.DEVNULL)
    wait_port(port, proc=p)
    return p


def rules_config(tmp, n):
    """A proxy.toml with `n` access rules that the benchmark's paths do not meet (each needs a
    session under its own prefix, with a `*` and a `**` glob)."""
    path = os.path.join(tmp, f"rules-{n}.toml")
    with open(path, "w") as f:
        f.write('[access]\ndefault = "optional"\n')
        for i in range(n):
            f.write(f'\n[[access.rules]]\nname = "area{i}"\npaths = ["/area{i}", "/area{i}/*/edit", "/area{i}/**"]\n'
                    f'methods = []\nrequire = "session"\n')
    os.chmod(path, 0o600)
    return path


def first_200_ms(ory_url):
    """Time from exec to the first 200 served (JWT on)."""
    port = 3390
    env = dict(os.environ, RUST_LOG="warn")
    t0 = time.perf_counter()
    p = subprocess.Popen([os.path.join(REL, "ory-proxy"), "--sdk-url", ory_url, "--port", str(port), "http://127.0.0.1:3100"],
                         env=env, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), 0.5)
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                if s.recv(12).endswith(b"200"):
                    return (time.perf_counter() - t0) * 1000
            except OSError:
                time.sleep(0.0005)
            if time.perf_counter() - t0 > 10:
                return float("nan")
    finally:
        p.terminate()
        p.wait()


def port_busy(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


PROXY_BUFFERS = """      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 64k;
      proxy_buffers 16 64k;
      proxy_busy_buffers_size 128k;"""


def start_nginx(tmp, name, upstreams, servers, extra_http=""):
    """One nginx (master + one worker) with its own prefix; returns its pids (master and
    children, for the CPU count)."""
    prefix = os.path.join(tmp, name)
    os.makedirs(prefix, exist_ok=True)
    access = "access_log off;" if QUIET else f"access_log {prefix}/access.log combined buffer=64k flush=1s;"
    if not QUIET:
        logs.append(f"{prefix}/access.log")
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  {access}
  upstream app {{ server 127.0.0.1:3100; keepalive 128; }}
{upstreams}
{extra_http}
{servers}
}}
""")
    p = spawn(["nginx", "-c", conf, "-p", prefix])
    ports = [int(x) for x in re.findall(r"listen 127\.0\.0\.1:(\d+)", servers)]
    for port in ports:
        wait_port(port, proc=p)
    children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    return [p.pid] + [int(x) for x in children]


def nginx_auth_server(port, ory_upstream, cached):
    """nginx asking Ory's whoami about every request (auth_request), or keeping whoami's
    answer for 10 s per session cookie (Kratos forbids caching: its headers are ignored)."""
    cache = """
      proxy_cache whoami;
      proxy_cache_key $cookie_ory_kratos_session;
      proxy_cache_valid 200 10s;
      proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;""" if cached else ""
    return f"""  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      auth_request /.whoami;
      proxy_pass http://app;
{PROXY_BUFFERS}
    }}
    location = /.whoami {{
      internal;
      proxy_pass http://{ory_upstream}/sessions/whoami;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";{cache}
    }}
  }}
"""


def ory_upstreams(ory0, ory2):
    return "\n".join(f"  upstream {name} {{ server {urlsplit(url).netloc}; keepalive 64; }}"
                     for name, url in (("ory0", ory0), ("ory2", ory2)))


def start_caddy(tmp, ory0, ory2):
    """Caddy's forward_auth to whoami on every request (Debian's caddy package); None when
    caddy is not installed."""
    if shutil.which("caddy") is None:
        print("caddy is not installed (Debian's caddy package): the Caddy forward_auth peer is skipped",
              flush=True)
        return None
    home = os.path.join(tmp, "caddy")
    os.makedirs(home, exist_ok=True)
    sites = []
    for port, ory in ((3230, ory0), (3231, ory2)):
        log = "" if QUIET else f"""
  log {{
    output file {home}/access-{port}.log
  }}"""
        if not QUIET:
            logs.append(f"{home}/access-{port}.log")
        sites.append(f"""http://127.0.0.1:{port} {{
  bind 127.0.0.1{log}
  forward_auth {urlsplit(ory).netloc} {{
    uri /sessions/whoami
  }}
  reverse_proxy 127.0.0.1:3100
}}
""")
    conf = os.path.join(home, "Caddyfile")
    with open(conf, "w") as f:
        f.write("{\n  admin off\n  auto_https off\n}\n" + "\n".join(sites))
    env = dict(os.environ, HOME=home, XDG_DATA_HOME=home, XDG_CONFIG_HOME=home)
    p = spawn(["caddy", "run", "--config", conf, "--adapter", "caddyfile"], env=env,
              stdout=subprocess.DEVNULL, stderr=log_file(home, "caddy.log"))
    for port in (3230, 3231):
        wait_port(port, proc=p)
    return p


def main():
    global QUIET
    ap = argparse.ArgumentParser(description="Load benchmark; see bench/README.md")
    ap.add_argument("--quiet-logs", action="store_true",
                    help="access logs off everywhere (ory-proxy at RUST_LOG=warn, nginx and Caddy without access_log)")
    QUIET = ap.parse_args().quiet_logs
    ports = (3100, 3200, 3210, 3211, 3220, 3221, 3230, 3231, 3300, 3301, 3302, 3303, 3304, 3310, 3390)
    busy = [p for p in ports if port_busy(p)]
    if busy:
        sys.exit(f"ports already in use: {busy} (a previous run still alive?)")
    tmp = tempfile.mkdtemp(prefix="ory-proxy-bench-")
    # nginx's workers run as nobody when started by root: they must reach their cache.
    os.chmod(tmp, 0o755)
    TMPDIRS.append(tmp)
    app = spawn([os.path.join(REL, "examples", "bench_app"), "127.0.0.1:3100"], stderr=subprocess.DEVNULL)
    wait_port(3100, proc=app)
    stats0, stats2 = os.path.join(tmp, "ory0"), os.path.join(tmp, "ory2")
    ory0, cookie0 = start_ory(0, stats0)
    ory2, cookie2 = start_ory(2, stats2)

    nginx_pids = start_nginx(tmp, "nginx", "", f"""  server {{
    listen 127.0.0.1:3200 backlog=4096;
    location / {{
      proxy_pass http://app;
{PROXY_BUFFERS}
    }}
  }}
""")
    # The identity-aware peers: each its own process, on the same core.
    upstreams = ory_upstreams(ory0, ory2)
    auth_pids = start_nginx(tmp, "nginx-auth", upstreams,
                            nginx_auth_server(3210, "ory0", False) + nginx_auth_server(3211, "ory2", False))
    cache_pids = start_nginx(tmp, "nginx-cache", upstreams,
                             nginx_auth_server(3220, "ory0", True) + nginx_auth_server(3221, "ory2", True),
                             f"  proxy_cache_path {tmp}/nginx-cache/whoami keys_zone=whoami:10m inactive=60s;")
    caddy = start_caddy(tmp, ory0, ory2)

    # The stack's floor: actix-web + awc forwarding and nothing else (examples/bench_floor.rs).
    floor = spawn([os.path.join(REL, "examples", "bench_floor"), "127.0.0.1:3310", "http://127.0.0.1:3100"],
                  stderr=subprocess.DEVNULL)
    wait_port(3310, proc=floor)
    proxy = start_proxy(3300, ory0, tmp, "warn" if QUIET else None)
    proxy2 = start_proxy(3301, ory2, tmp, "warn" if QUIET else None)
    # The same build with the access log off, for its cost (as shipped only).
    quiet = None if QUIET else start_proxy(3302, ory0, tmp, "warn")
    # The same build with RULES access rules loaded, none of which matches the benchmark's
    # paths: every request is matched against all of them and falls to the default.
    rules = int(os.environ.get("RULES", "0"))
    ruled = start_proxy(3304, ory0, tmp, "warn" if QUIET else None, config=rules_config(tmp, rules)) if rules else None
    # Another build of ory-proxy (e.g. the commit before a change), beside this one in the same run.
    baseline_bin = os.environ.get("BASELINE_BIN")
    baseline = start_proxy(3303, ory0, tmp, "warn" if QUIET else None, baseline_bin) if baseline_bin else None

    s0, s2 = [f"Cookie: {cookie0}"], [f"Cookie: {cookie2}"]
    scenarios = [
        ("direct", "http://127.0.0.1:3100/", [], [app.pid], None, CONC),
        ("nginx", "http://127.0.0.1:3200/", [], nginx_pids, None, CONC),
        ("floor: actix-web + awc", "http://127.0.0.1:3310/", [], [floor.pid], None, CONC),
        ("ory-proxy anonymous", "http://127.0.0.1:3300/", [], [proxy.pid], None, CONC),
    ]
    if quiet is not None:
        scenarios.append(("ory-proxy anonymous, RUST_LOG=warn", "http://127.0.0.1:3302/", [], [quiet.pid], None, CONC))
    scenarios += [
        ("ory-proxy session (cache hit)", "http://127.0.0.1:3300/", s0, [proxy.pid], stats0, CONC),
        ("nginx auth_request, whoami cached 10 s", "http://127.0.0.1:3220/", s0, cache_pids, stats0, CONC),
        ("nginx auth_request", "http://127.0.0.1:3210/", s0, auth_pids, stats0, CONC),
    ]
    if caddy is not None:
        scenarios.append(("Caddy forward_auth", "http://127.0.0.1:3230/", s0, [caddy.pid], stats0, CONC))
    if ruled is not None:
        scenarios += [
            (f"ory-proxy anonymous, {rules} rules", "http://127.0.0.1:3304/", [], [ruled.pid], None, CONC),
            (f"ory-proxy session (cache hit), {rules} rules", "http://127.0.0.1:3304/", s0, [ruled.pid], stats0, CONC),
        ]
    if baseline is not None:
        scenarios += [
            ("BASELINE_BIN anonymous", "http://127.0.0.1:3303/", [], [baseline.pid], None, CONC),
            ("BASELINE_BIN session (cache hit)", "http://127.0.0.1:3303/", s0, [baseline.pid], stats0, CONC),
        ]
    scenarios += [
        ("ory-proxy session, Ory 2 ms away", "http://127.0.0.1:3301/", s2, [proxy2.pid], stats2, CONC),
        ("nginx auth_request, whoami cached 10 s, Ory 2 ms away", "http://127.0.0.1:3221/", s2, cache_pids, stats2, CONC),
        ("nginx auth_request, Ory 2 ms away", "http://127.0.0.1:3211/", s2, auth_pids, stats2, CONC),
    ]
    if caddy is not None:
        scenarios.append(("Caddy forward_auth, Ory 2 ms away", "http://127.0.0.1:3231/", s2, [caddy.pid], stats2, CONC))
    scenarios += [
        ("direct /big", "http://127.0.0.1:3100/big", [], [app.pid], None, BIG_CONC),
        ("nginx /big", "http://127.0.0.1:3200/big", [], nginx_pids, None, BIG_CONC),
        ("floor /big", "http://127.0.0.1:3310/big", [], [floor.pid], None, BIG_CONC),
        ("ory-proxy /big", "http://127.0.0.1:3300/big", [], [proxy.pid], None, BIG_CONC),
    ]
    if baseline is not None:
        scenarios.append(("BASELINE_BIN /big", "http://127.0.0.1:3303/big", [], [baseline.pid], None, BIG_CONC))
    results = {s[0]: [] for s in scenarios}
    # Warm-up: connection pools, the session cache, page cache.
    for name, url, headers, pids, stats, conc in scenarios:
        subprocess.run(["wrk", "-t1", "-c8", "-d1s", url] + sum((["-H", h] for h in headers), []), capture_output=True)
    empty_logs()
    for r in range(ROUNDS):
        for name, url, headers, pids, stats, conc in scenarios:
            c0, w0 = cpu_ticks(pids), whoami_count(stats) if stats else 0
            res = wrk(url, conc, headers)
            time.sleep(1.2)  # let the stats file and the buffered access logs catch up
            c1, w1 = cpu_ticks(pids), whoami_count(stats) if stats else 0
            res["cpu_us"] = (c1 - c0) / CLK * 1e6 / max(res["requests"], 1)
            res["whoami_per_1k"] = (w1 - w0) * 1000 / max(res["requests"], 1) if stats else None
            results[name].append(res)
            empty_logs()
            print(f"round {r + 1} {name}: {res['rps']:.0f} req/s p50 {res['p50']:.3f} ms p99 {res['p99']:.3f} ms "
                  f"cpu {res['cpu_us']:.1f} us/req errors {res['non2xx']} {res['sockerr']}", flush=True)

    # Fixed-rate latency: the same servers at an equal offered load below saturation.
    lat_names = ["direct", "nginx", "floor: actix-web + awc", "ory-proxy anonymous", "ory-proxy session (cache hit)"]
    lat_scenarios = [s for s in scenarios if s[0] in lat_names]
    lat = {name: [] for name, *_ in lat_scenarios}
    for r in range(ROUNDS):
        for name, url, headers, *_ in lat_scenarios:
            res = fixed_rate(url, headers)
            lat[name].append(res)
            print(f"round {r + 1} fixed-rate {name}: {res['rate']:.0f} req/s p50 {res['p50_ms']:.3f} ms "
                  f"p99 {res['p99_ms']:.3f} ms p99.9 {res['p999_ms']:.3f} ms max {res['max_ms']:.3f} ms "
                  f"errors {res['errors']:.0f} non-2xx {res['non2xx']:.0f} "
                  f"(client lag p99 {res['client_lag_p99']:.3f} ms)", flush=True)

    rss_kib = hwm_kib(proxy.pid)
    floor_rss_kib = hwm_kib(floor.pid)
    nginx_rss_kib = sum(hwm_kib(p) for p in nginx_pids)
    startup = statistics.median(first_200_ms(ory0) for _ in range(5))

    def med(name, key):
        vals = [r[key] for r in results[name] if r[key] is not None]
        return statistics.median(vals) if vals else None

    lines = ["| scenario | req/s | p50 ms | p99 ms | vs direct | vs nginx | CPU µs/req (server) | whoami/1k req |",
             "|---|---|---|---|---|---|---|---|"]
    for name, *_ in scenarios:
        base = "direct /big" if "/big" in name else "direct"
        ng = "nginx /big" if "/big" in name else "nginx"
        rps = med(name, "rps")
        w = med(name, "whoami_per_1k")
        lines.append(f"| {name} | {rps:.0f} | {med(name, 'p50'):.3f} | {med(name, 'p99'):.3f} | "
                     f"{rps / med(base, 'rps'):.2f} | {rps / med(ng, 'rps'):.2f} | {med(name, 'cpu_us'):.1f} | "
                     f"{'' if w is None else f'{w:.2f}'} |")
    failed = sum(r["non2xx"] for v in results.values() for r in v)
    lines.append("")
    lines.append(f"peak RSS (VmHWM) after all runs incl. /big at c={BIG_CONC}: ory-proxy {rss_kib / 1024:.1f} MiB, "
                 f"nginx master+worker {nginx_rss_kib / 1024:.1f} MiB, floor {floor_rss_kib / 1024:.1f} MiB")
    lines.append(f"exec → first 200 (JWT on), median of 5: {startup:.1f} ms")
    lines.append(f"non-2xx responses over all runs: {failed}")
    lines.append(f"logs: {'off (--quiet-logs)' if QUIET else 'as shipped: ory-proxy at its default level (access log on), nginx access_log buffer=64k flush=1s, Caddy log to a file; all to files'}")
    lines.append(f"rounds {ROUNDS}, {DURATION} s per run, c={CONC} (/big c={BIG_CONC}), wrk -t1 on cpu {LOAD_CPU}, servers on cpu {SERVER_CPU}")

    def ratio(a, b, key="rps"):
        """(ratio of the medians, median of the rounds' ratios). The second pairs each run
        with its partner of the same round, minutes apart at most, so the machine's drift
        between rounds cancels."""
        if a not in results or b not in results:
            return None
        ma, mb = med(a, key), med(b, key)
        rounds = [x[key] / y[key] for x, y in zip(results[a], results[b]) if x[key] and y[key]]
        return (ma / mb if ma is not None and mb else None,
                statistics.median(rounds) if rounds else None)

    lines.append("")
    lines.append("| target | ratio of medians | median of round ratios | goal |")
    lines.append("|---|---|---|---|")
    targets = [
        ("access log on vs RUST_LOG=warn, req/s", ratio("ory-proxy anonymous", "ory-proxy anonymous, RUST_LOG=warn"), ">= 0.95"),
        ("session (cache hit, Ory 2 ms) vs nginx auth_request cached, req/s",
         ratio("ory-proxy session, Ory 2 ms away", "nginx auth_request, whoami cached 10 s, Ory 2 ms away"), ">= 1.0"),
        ("anonymous vs actix-web + awc floor, req/s", ratio("ory-proxy anonymous", "floor: actix-web + awc"), ">= 0.95"),
        ("session cache hit vs anonymous, req/s", ratio("ory-proxy session (cache hit)", "ory-proxy anonymous"), ">= 0.9"),
        (f"/big p99 vs nginx (c={BIG_CONC})", ratio("ory-proxy /big", "nginx /big", "p99"), "<= 1.5"),
        (f"/big req/s vs nginx (c={BIG_CONC})", ratio("ory-proxy /big", "nginx /big"), ">= 1.0"),
    ]
    if rules:
        targets += [
            (f"anonymous with {rules} rules vs without, req/s",
             ratio(f"ory-proxy anonymous, {rules} rules", "ory-proxy anonymous"), ">= 0.97"),
            (f"session cache hit with {rules} rules vs without, req/s",
             ratio(f"ory-proxy session (cache hit), {rules} rules", "ory-proxy session (cache hit)"), ">= 0.97"),
        ]
    if "BASELINE_BIN anonymous" in results:
        targets += [
            ("anonymous vs BASELINE_BIN, req/s", ratio("ory-proxy anonymous", "BASELINE_BIN anonymous"), "(before/after)"),
            ("session cache hit vs BASELINE_BIN, req/s",
             ratio("ory-proxy session (cache hit)", "BASELINE_BIN session (cache hit)"), "(before/after)"),
            ("/big req/s vs BASELINE_BIN", ratio("ory-proxy /big", "BASELINE_BIN /big"), "(before/after)"),
        ]
    def show(v):
        return "n/a" if v is None else f"{v:.2f}"

    for what, got, goal in targets:
        of_medians, of_rounds = got if got is not None else (None, None)
        lines.append(f"| {what} | {show(of_medians)} | {show(of_rounds)} | {goal} |")

    def lmed(name, key):
        return statistics.median(r[key] for r in lat[name])

    lines.append("")
    lines.append(f"| scenario (fixed rate {LAT_RATE} req/s, c={LAT_CONC}) | p50 ms | p99 ms | p99.9 ms | added p99 vs direct ms |")
    lines.append("|---|---|---|---|---|")
    direct_p99 = lmed("direct", "p99_ms")
    for name in lat:
        added = "" if name == "direct" else f"{lmed(name, 'p99_ms') - direct_p99:+.3f}"
        lines.append(f"| {name} | {lmed(name, 'p50_ms'):.3f} | {lmed(name, 'p99_ms'):.3f} | "
                     f"{lmed(name, 'p999_ms'):.3f} | {added} |")
    lat_runs = [r for v in lat.values() for r in v]
    slowest = min(r["rate"] for r in lat_runs)
    lines.append("")
    lines.append(f"fixed rate: open loop (examples/bench_latency on cpu {LOAD_CPU}), latency from each request's "
                 f"scheduled send time to the end of the body, first 1 s of each {DURATION} s run discarded; "
                 f"lowest achieved rate {slowest:.0f} req/s; errors {sum(r['errors'] for r in lat_runs):.0f}, "
                 f"non-2xx {sum(r['non2xx'] for r in lat_runs):.0f}")
    if slowest < 0.95 * LAT_RATE:
        lines.append(f"WARNING: a fixed-rate run fell under 95% of {LAT_RATE} req/s: that server was saturated "
                     f"and its latencies are queueing; lower LAT_RATE")
    table = "\n".join(lines)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=5)
            except Exception:
                p.kill()
        for d in TMPDIRS:
            shutil.rmtree(d, ignore_errors=True)
