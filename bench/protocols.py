"""Benchmarks of the newer protocols: WebSocket echo, idle WebSocket memory, a Starlette app.

    python bench/protocols.py                                   # every scenario, 3 rounds
    python bench/protocols.py --scenarios websocket --rounds 5 --duration 5
    python bench/protocols.py --scenarios ws-idle --idle-connections 10000

Scenarios (see bench/README.md, "Protocols"):

``websocket``  echo messages per second: ``ws_load.py echo`` (64 connections, 8 small text messages
               in flight on each) against ``apps/ws_app.py`` under treadle, Twisted, uvicorn +
               websockets and aiohttp;
``ws-idle``    memory per idle WebSocket connection: the server's RSS after ``ws_load.py idle``
               opened ``--idle-connections`` upgraded connections, less its RSS before, per
               connection;
``asgi``       ``apps/starlette_app.py`` (one Starlette ``Route``) under treadle (``treadle web
               --asgi``), uvicorn, granian and hypercorn, loaded by wrk (64 connections).

Each server runs pinned to core 0, the load generator to core 1, servers alternate within a round,
and the table gives the medians over the rounds and treadle's multiple of each row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import (  # the harness's helpers, beside this file
    CLIENT_CPU,
    PEER_PYTHON,
    SERVER_CPU,
    VENV,
    memory_kib,
    process_tree,
    raise_nofile,
)

BENCH = Path(__file__).resolve().parent
APPS = BENCH / "apps"
HOST = "127.0.0.1"
SCENARIOS = {
    "websocket": ("treadle", "twisted", "uvicorn", "aiohttp"),
    "ws-idle": ("treadle", "twisted", "uvicorn", "aiohttp"),
    "asgi": ("treadle", "uvicorn", "granian", "hypercorn"),
    "h2": ("treadle", "twisted", "hypercorn"),
}
UNITS = {"websocket": "msgs/s", "ws-idle": "bytes/conn", "asgi": "req/s", "h2": "req/s"}
TLS_DIR = Path(tempfile.mkdtemp(prefix="bench-tls-"))
CERT, KEY = TLS_DIR / "cert.pem", TLS_DIR / "key.pem"
_next_port = [19000 + os.getpid() % 500 * 2]


def free_port() -> int:
    while True:
        _next_port[0] += 1
        with socket.socket() as s:
            try:
                s.bind((HOST, _next_port[0]))
                return _next_port[0]
            except OSError:
                continue


def launch(server: str, scenario: str, port: int) -> tuple[list[str], Path]:
    """The command line (and working directory) of ``server`` in ``scenario``."""
    if scenario == "h2":
        return h2_launch(server, port)
    if scenario != "asgi":
        python = sys.executable if server == "treadle" else str(PEER_PYTHON)
        return [python, str(APPS / "ws_app.py"), "--impl", server, "--port", str(port)], BENCH
    app = "starlette_app:app"
    if server == "treadle":
        listen = f"tcp:port={port}:interface={HOST}"
        argv = [sys.executable, "-m", "treadle", "web", "--asgi", app, "--listen", listen]
        return [*argv, "--no-access-log"], APPS
    if server == "uvicorn":
        return [
            str(VENV / "bin" / "uvicorn"), app, "--host", HOST, "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            "--log-level", "warning", "--backlog", "4096",
        ], APPS  # fmt: skip
    if server == "granian":
        return [
            str(VENV / "bin" / "granian"), "--interface", "asgi", "--workers", "1",
            "--runtime-threads", "1", "--loop", "uvloop", "--http", "1", "--no-ws",
            "--host", HOST, "--port", str(port), "--backlog", "4096",
            "--log-level", "warning", "--no-access-log", "--working-dir", str(APPS), app,
        ], APPS  # fmt: skip
    if server == "hypercorn":
        return [
            str(VENV / "bin" / "hypercorn"), app, "--bind", f"{HOST}:{port}",
            "--worker-class", "uvloop", "--workers", "1", "--backlog", "4096",
            "--log-level", "warning",
        ], APPS  # fmt: skip
    raise ValueError(server)


def h2_launch(server: str, port: int) -> tuple[list[str], Path]:
    """TLS with ALPN: ``apps/h2_app.py`` for treadle and Twisted alike, hypercorn's ASGI hello."""
    if not CERT.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(KEY),
             "-out", str(CERT), "-days", "2", "-subj", "/CN=localhost"],
            check=True, capture_output=True,
        )  # fmt: skip
    if server == "hypercorn":
        return [
            str(VENV / "bin" / "hypercorn"), "asgi_app:hello", "--bind", f"{HOST}:{port}",
            "--worker-class", "uvloop", "--workers", "1", "--backlog", "4096",
            "--log-level", "warning", "--certfile", str(CERT), "--keyfile", str(KEY),
        ], APPS  # fmt: skip
    python = sys.executable if server == "treadle" else str(PEER_PYTHON)
    argv = [python, str(APPS / "h2_app.py"), "--impl", server, "--port", str(port)]
    return [*argv, "--cert", str(CERT), "--key", str(KEY)], APPS


def start(server: str, scenario: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv, cwd = launch(server, scenario, port)
    env = {**os.environ, "PYTHONPATH": str(APPS)}
    env.pop("WEB_CONCURRENCY", None)
    proc = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    scheme = "https" if scenario == "h2" else "http"
    context = ssl._create_unverified_context() if scenario == "h2" else None
    while True:
        try:
            url = f"{scheme}://{HOST}:{port}/"
            with urllib.request.urlopen(url, timeout=2, context=context) as r:
                if r.read() == b"Hello, world!":
                    return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{server} did not start: {err[-2000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def load_argv(mode: str, port: int, opts: argparse.Namespace) -> list[str]:
    argv = ["taskset", "-c", CLIENT_CPU, str(PEER_PYTHON), str(BENCH / "ws_load.py"), mode]
    return [*argv, "--port", str(port)]


def measure(server: str, scenario: str, opts: argparse.Namespace) -> dict:
    """Start ``server``, load it as ``scenario`` says, stop it: ``value`` is the figure, and
    ``peak_rss_kib`` the server's peak memory (VmHWM over its processes)."""
    proc, port = start(server, scenario)
    try:
        figures = load(proc, port, scenario, opts)
        figures["peak_rss_kib"] = memory_kib(process_tree(proc.pid), "VmHWM")
        return figures
    finally:
        stop(proc)


def load(proc: subprocess.Popen, port: int, scenario: str, opts: argparse.Namespace) -> dict:
    """The load of one measurement, against the server ``proc`` listening on ``port``."""
    if scenario == "websocket":
        argv = load_argv("echo", port, opts)
        argv += ["--connections", str(opts.connections), "--window", str(opts.window)]
        argv += ["--duration", str(opts.duration), "--warmup", str(opts.warmup)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
        return {"value": r["msgs_per_s"], "client cpu": r["client_cpu_share"]}
    if scenario == "ws-idle":
        time.sleep(0.5)
        before = memory_kib(process_tree(proc.pid), "VmRSS")
        argv = [*load_argv("idle", port, opts), "--connections", str(opts.idle_connections)]
        client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert client.stdout is not None and client.stdin is not None
        ready = json.loads(client.stdout.readline())
        time.sleep(1.0)
        after = memory_kib(process_tree(proc.pid), "VmRSS")
        client.stdin.close()
        client.wait(60)
        n = ready["ready"]
        return {"value": (after - before) * 1024 / n, "rss MiB": after / 1024, "conns": n}
    if scenario == "h2":
        return h2load(port, opts)
    wrk = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{opts.connections}"]
    url = f"http://{HOST}:{port}/"
    subprocess.run([*wrk, f"-d{opts.warmup}s", url], capture_output=True, check=True)
    out = subprocess.run([*wrk, f"-d{opts.duration}s", url], capture_output=True, text=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out.stdout)
    return {"value": rps, "errors": errors.group(0) if errors else ""}


def h2load(port: int, opts: argparse.Namespace) -> dict:
    """h2load over TLS: ``--connections`` / 4 connections, 10 streams in flight on each."""
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", "-t1", f"-c{max(1, opts.connections // 4)}"]
    argv += ["-m10", f"--warm-up-time={opts.warmup}", f"-D{opts.duration}"]
    out = subprocess.run([*argv, f"https://{HOST}:{port}/"], capture_output=True, text=True)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out.stdout)
    if rps is None or "Application protocol: h2" not in out.stdout:
        raise RuntimeError(f"h2load: {out.stdout[-1500:]} {out.stderr[-500:]}")
    failed = re.search(r"(\d+) failed", out.stdout)
    return {"value": float(rps.group(1)), "failed": int(failed.group(1)) if failed else -1}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--servers", default="treadle,twisted,uvicorn,aiohttp,granian,hypercorn")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument(
        "--window", type=int, default=8, help="WebSocket messages in flight per connection"
    )
    p.add_argument("--idle-connections", type=int, default=10_000)
    opts = p.parse_args()
    opts.duration = int(opts.duration) if opts.duration == int(opts.duration) else opts.duration
    opts.warmup = int(opts.warmup) if opts.warmup == int(opts.warmup) else opts.warmup
    nofile = raise_nofile()
    servers = opts.servers.split(",")
    record: dict = {"argv": sys.argv, "nofile": nofile, "scenarios": {}}
    for scenario in opts.scenarios.split(","):
        names = [s for s in SCENARIOS[scenario] if s in servers]
        rounds: dict[str, list[dict]] = {s: [] for s in names}
        for i in range(opts.rounds):
            order = names if i % 2 == 0 else names[::-1]
            for server in order:
                try:
                    rounds[server].append(measure(server, scenario, opts))
                except Exception as e:  # one server failing must not lose the others' figures
                    print(f"{scenario} {server} round {i + 1}: {e}", file=sys.stderr)
                print(
                    f"  {scenario} {server} round {i + 1}: {rounds[server][-1:]}", file=sys.stderr
                )
        unit = UNITS[scenario]
        medians = {s: statistics.median(r["value"] for r in v) for s, v in rounds.items() if v}
        record["scenarios"][scenario] = {"unit": unit, "medians": medians, "rounds": rounds}
        print(f"\n{scenario} ({unit}, median of {opts.rounds})")
        for s, m in medians.items():
            ref = medians.get("treadle")
            # treadle x > 1: treadle is better (more msgs or req/s, fewer bytes per connection)
            ratio = (m / ref if scenario == "ws-idle" else ref / m) if ref else float("nan")
            print(f"  {s:10} {m:12.1f}   treadle x {ratio:5.2f}")
    out = BENCH / "results" / f"protocols-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(record, indent=1))
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
