#!/usr/bin/env python3
"""Soak traffic for bench/soak.sh: mixed traffic against a running ory-proxy for a while,
with its RSS sampled every SAMPLE seconds, then a table. Standard library only.

Traffic, one thread each (closed loops on loopback):
  new sessions   Ory's browser login flow through the proxy (303s, CSRF cookie and token)
  returning      GET / with a session cookie: the app must see a JWT that verifies
  logouts        the browser logout flow for a session, then GET / must be anonymous
  anonymous      GET / without cookies
  uploads        POST /upload, 1 MiB
  downloads      GET /download, 1 MiB
  websockets     handshake through the proxy, an echo, a close
  control        every 30 s an edit of proxy.toml (a live key), every other time with SIGHUP;
                 every 60 s SIGUSR1 (key rotation)
"""

import argparse
import base64
import collections
import http.client
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

EMAIL = "demo@example.org"
PASSWORD = "demo-password-123"
MIB = 1024 * 1024


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = collections.Counter()
        self.errors = collections.Counter()
        self.samples = []  # first few error messages

    def good(self, kind):
        with self.lock:
            self.ok[kind] += 1

    def bad(self, kind, why):
        with self.lock:
            self.errors[kind] += 1
            if len(self.samples) < 12:
                self.samples.append(f"{kind}: {why}")


class Client:
    """One keep-alive connection to the proxy with a cookie jar; follows nothing."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = None
        self.jar = {}

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        headers.setdefault("Host", f"localhost:{self.port}")
        if self.jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                res = self.conn.getresponse()
                data = res.read()
                break
            except (http.client.HTTPException, ConnectionError, socket.timeout) as e:
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        for name, value in res.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                k, _, v = pair.partition("=")
                if "max-age=0" in value.lower() or v == "":
                    self.jar.pop(k.strip(), None)
                else:
                    self.jar[k.strip()] = v.strip()
        if res.getheader("connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return res.status, res, data

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def path_of(url):
    p = urllib.parse.urlsplit(url)
    return p.path + ("?" + p.query if p.query else "")


def login(c, base):
    """Ory's browser login flow through the proxy; leaves the session cookie in c.jar."""
    status, res, _ = c.request(
        "GET", "/.ory/self-service/login/browser?return_to=" + urllib.parse.quote(base + "/")
    )
    if status != 303:
        raise RuntimeError(f"login/browser: {status}")
    status, _, page = c.request("GET", path_of(res.getheader("location")))
    page = page.decode()
    action = re.search(r'<form id="flow" action="([^"]*)"', page)
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', page)
    if status != 200 or not action or not csrf:
        raise RuntimeError(f"login form: {status}")
    form = urllib.parse.urlencode(
        {"csrf_token": csrf.group(1), "method": "password", "identifier": EMAIL, "password": PASSWORD}
    )
    status, res, _ = c.request(
        "POST",
        path_of(action.group(1).replace("&amp;", "&")),
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    if status != 303 or not any(k.startswith("ory_kratos_session") for k in c.jar):
        raise RuntimeError(f"login submit: {status}")


def page(c):
    status, _, body = c.request("GET", "/")
    return status, body.decode(errors="replace")


def ws_echo(host, port, n):
    s = socket.create_connection((host, port), timeout=10)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("closed in the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        rest = head.split(b"\r\n\r\n", 1)[1]
        text = f"soak {n}".encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
        s.sendall(bytes([0x81, 0x80 | len(text)]) + mask + masked)
        while len(rest) < 2 + len(text):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("closed before the echo")
            rest += chunk
        if rest[0] != 0x81 or rest[2 : 2 + len(text)] != text:
            raise RuntimeError(f"bad echo {rest[:20]!r}")
        s.sendall(bytes([0x88, 0x80]) + os.urandom(4))
    finally:
        s.close()


def rss(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":")
                    out[k] = int(v.split()[0]) / 1024
    except OSError:
        pass
    return out.get("VmRSS", 0.0), out.get("VmHWM", 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--sample", type=float, default=10)
    ap.add_argument("--proxy-pid", type=int, required=True)
    ap.add_argument("--stack-pid", type=int, required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--report", required=True)
    args = ap.parse_args()

    host, port = "127.0.0.1", args.port
    base = f"http://localhost:{port}"
    stats = Stats()
    stop = threading.Event()
    sessions = collections.deque()  # cookie jars of signed-in sessions, for returning visits
    retiring = collections.deque()  # older ones, for the logout thread
    sessions_lock = threading.Lock()

    def loop(kind, body):
        def run():
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    body(n)
                    stats.good(kind)
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    stats.bad(kind, repr(e)[:200])
                    time.sleep(0.2)

        t = threading.Thread(target=run, name=kind, daemon=True)
        t.start()
        return t

    def new_session(n):
        c = Client(host, port)
        login(c, base)
        status, text = page(c)
        if status != 200 or not text.startswith("jwt " + EMAIL):
            raise RuntimeError(f"fresh session page: {status} {text[:80]}")
        with sessions_lock:
            sessions.append(c.jar.copy())
            while len(sessions) > 50:
                retiring.append(sessions.popleft())
            # Sessions the logout thread has not taken are simply forgotten (they expire).
            while len(retiring) > 100:
                retiring.popleft()
        c.close()
        time.sleep(0.05)

    returning = Client(host, port)

    def returning_session(n):
        with sessions_lock:
            if not sessions:
                time.sleep(0.1)
                return
            jar = sessions[n % len(sessions)]
        returning.jar = dict(jar)
        status, text = page(returning)
        if status != 200 or not text.startswith("jwt " + EMAIL):
            raise RuntimeError(f"returning: {status} {text[:80]}")

    def logout(n):
        with sessions_lock:
            jar = retiring.popleft() if retiring else None
        if jar is None:
            time.sleep(0.2)
            return
        c = Client(host, port)
        c.jar = dict(jar)
        status, _, body = c.request(
            "GET", "/.ory/self-service/logout/browser", headers={"Accept": "application/json"}
        )
        if status != 200:
            raise RuntimeError(f"logout/browser: {status}")
        url = json.loads(body)["logout_url"]
        status, _, _ = c.request("GET", path_of(url))
        if status != 303:
            raise RuntimeError(f"logout: {status}")
        c.jar = dict(jar)  # the old cookie, as a stale tab would send it
        status, text = page(c)
        if text != "anonymous":
            raise RuntimeError(f"after logout: {status} {text[:80]}")
        c.close()
        time.sleep(0.2)

    anon = Client(host, port)

    def anonymous(n):
        status, text = page(anon)
        if status != 200 or text != "anonymous":
            raise RuntimeError(f"anonymous: {status} {text[:80]}")

    up = Client(host, port)
    blob = os.urandom(MIB)

    def upload(n):
        status, _, body = up.request(
            "POST", "/upload", body=blob, headers={"Content-Type": "application/octet-stream"}
        )
        if status != 200 or body != str(MIB).encode():
            raise RuntimeError(f"upload: {status} {body[:80]!r}")

    down = Client(host, port)

    def download(n):
        status, _, body = down.request("GET", f"/download?bytes={MIB}")
        if status != 200 or len(body) != MIB:
            raise RuntimeError(f"download: {status} {len(body)} bytes")

    def websocket(n):
        ws_echo(host, port, n)
        time.sleep(0.02)

    with open(args.config) as f:
        config = f.read()

    def control():
        started = time.monotonic()
        edits = rotations = 0
        while not stop.wait(1):
            elapsed = time.monotonic() - started
            if elapsed >= 30 * (edits + 1):
                edits += 1
                origins = '["https://soak.example"]' if edits % 2 else "[]"
                text = config.replace("allowed_origins = []", f"allowed_origins = {origins}")
                tmp = args.config + ".tmp"
                with open(tmp, "w") as f:
                    f.write(text)
                os.replace(tmp, args.config)
                if edits % 2 == 0:
                    os.kill(args.proxy_pid, signal.SIGHUP)
                stats.good("reload")
            if elapsed >= 60 * (rotations + 1):
                rotations += 1
                os.kill(args.proxy_pid, signal.SIGUSR1)
                stats.good("rotation")

    threads = [
        loop("new-session", new_session),
        loop("returning", returning_session),
        loop("logout", logout),
        loop("anonymous", anonymous),
        loop("upload", upload),
        loop("download", download),
        loop("websocket", websocket),
        threading.Thread(target=control, name="control", daemon=True),
    ]
    threads[-1].start()

    rows = []
    started = time.monotonic()
    print(f"soak: {args.duration:.0f} s of mixed traffic, RSS every {args.sample:.0f} s", flush=True)
    while True:
        elapsed = time.monotonic() - started
        p_rss, p_hwm = rss(args.proxy_pid)
        s_rss, _ = rss(args.stack_pid)
        with stats.lock:
            total = sum(stats.ok.values())
            errors = sum(stats.errors.values())
        rows.append((elapsed, p_rss, p_hwm, s_rss, total, errors))
        print(
            f"  t={elapsed:6.0f}s  proxy RSS {p_rss:6.1f} MiB (peak {p_hwm:6.1f})  "
            f"stack RSS {s_rss:6.1f} MiB  done {total}  errors {errors}",
            flush=True,
        )
        if elapsed >= args.duration:
            break
        time.sleep(min(args.sample, max(0.0, args.duration - elapsed)) or args.sample)
    stop.set()
    for t in threads:
        t.join(timeout=35)

    lines = [
        "| t (s) | proxy RSS (MiB) | proxy peak RSS (MiB) | stack RSS (MiB) | operations | errors |",
        "|---|---|---|---|---|---|",
    ]
    for elapsed, p_rss, p_hwm, s_rss, total, errors in rows:
        lines.append(
            f"| {elapsed:.0f} | {p_rss:.1f} | {p_hwm:.1f} | {s_rss:.1f} | {total} | {errors} |"
        )
    lines.append("")
    lines.append("| operation | ok | errors |")
    lines.append("|---|---|---|")
    for kind in sorted(set(stats.ok) | set(stats.errors)):
        lines.append(f"| {kind} | {stats.ok[kind]} | {stats.errors[kind]} |")
    if stats.samples:
        lines.append("")
        lines.append("First errors:")
        lines.extend(f"- {s}" for s in stats.samples)
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    with open(args.report, "w") as f:
        f.write(report)
    return 1 if sum(stats.errors.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
