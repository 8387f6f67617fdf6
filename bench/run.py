#!/usr/bin/env python3
"""Benchmark treadle against its peers: one command, one table.

    python bench/run.py                      # everything: ~26 minutes on a 2-core machine
    python bench/run.py --quick              # 1 round of 3 s each: a smoke test
    python bench/run.py --scenarios hello,post --servers treadle,uvicorn

What it does, in order:

1. ``bench/setup-peers.sh``: installs wrk and nginx from Debian when missing, and the Python peers
   (Twisted, aiohttp, uvicorn, granian) into ``bench/.venv-peers``. treadle itself runs from the
   Python that runs this script, where the repository is installed (``pip install -e .``).
2. For each round, each scenario and each server (rounds alternate: A B C D, A B C D, ...): start
   server pinned to core 0 (``taskset -c 0``), wait until its port accepts, check one response,
   warm it up with wrk, then measure with wrk pinned to core 1 (``taskset -c 1``); read the server's
   CPU time (``/proc/PID/stat`` utime+stime over the measured run) and peak RSS (``VmHWM`` in
   ``/proc/PID/status``), summed over the server's process tree; stop the server.
   The ``workers`` scenarios compare ``treadle web --workers 2`` with ``--workers 1``: a 2-process
   server needs two cores, so both variants run on cores 0 and 1 (0 and 2 when there is a third
   core), and wrk stays on core 1. ``workers`` serves the 1 KiB file, where wrk's own work is a
   large share of a request's; ``workers-template`` serves the template page (some 13 ms of CPU
   each), where it is negligible, so the second worker's core is the server's alone. The
   ``sessions`` scenario serves a visit counter with treadle's session stores (memory, SQLite, and
   Redis: a redis-server started beside it, on the same core, its CPU time counted with the
   server's) against Twisted's in-memory sessions.
3. Print one table of medians over the rounds (req/s, p50, p99, server CPU µs per request, peak RSS,
   and treadle's throughput as a multiple of each server's), then one "target" line per scenario.
4. Save ``bench/results/<timestamp>.json`` and ``bench/results/latest.json``, and draw
   ``bench/results/latest.png`` when matplotlib is importable (here or in the peers' venv).

Only loopback (127.0.0.1) is used. A server that cannot run a scenario is absent from its rows; a
server that is not installed (treadle before it can serve, granian without a wheel) is reported as
unavailable and the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import (  # beside this file: what run.py and protocols.py both use
    CLIENT_CPU,
    PEER_PYTHON,
    SERVER_CPU,
    VENV,
    memory_kib,
    process_tree,
    raise_nofile,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
APPS = BENCH / "apps"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"

HOST = "127.0.0.1"


def _workers_cpus() -> str:
    """Cores for the ``workers`` scenario: two for the server, both variants alike.

    A 2-worker server cannot be pinned to one core. With a third core the server gets cores 0
    and 2 and wrk keeps core 1 to itself; on a 2-core machine the server gets both cores and
    shares core 1 with wrk, which stays pinned there as in every scenario.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = list(range(os.cpu_count() or 1))
    others = [c for c in cpus if str(c) != CLIENT_CPU and str(c) != SERVER_CPU]
    if others:
        return f"{SERVER_CPU},{others[0]}"
    return f"{SERVER_CPU},{CLIENT_CPU}"


WORKERS_CPUS = _workers_cpus()
CLK_TCK = os.sysconf("SC_CLK_TCK")

HELLO = b"Hello, world!"
DELAYED_BODY = b"<html><body>Sorry to keep you waiting.</body></html>"
DELAY_S = 1.0
SMALL_FILE = "hello.txt"
SMALL_SIZE = 1024
LARGE_FILE = "large.bin"
LARGE_SIZE = 100 * 1024 * 1024
RPY_FILE = "hello.rpy"
RPY_SOURCE = """\
# A .rpy script without cache(): the server executes it again for every request.
from twisted.web.resource import Resource


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"Hello, world!"


resource = Hello()
"""
TEMPLATE_APP = "template_app.py"  # the template scenario's page, for treadle and Twisted alike
TEMPLATE_ROWS = 1000
TEMPLATE_RPY = "template.rpy"
# The workers-template scenario's script: the template page under `treadle web`, its resource
# built by the first request each worker serves and kept (cache()).
TEMPLATE_RPY_SOURCE = f"""\
# The template scenario's page, built by the first request each worker serves, then kept.
import sys

cache()
sys.path.insert(0, {str(APPS)!r})
from template_app import build  # noqa: E402

resource = build("treadle")[1].resource
"""
POST_HEAD = b"name=Hello%2C+world%21&filler="
POST_BODY = POST_HEAD + b"x" * (1024 - len(POST_HEAD))  # the same 1 KiB body as lua/post.lua
# Sessions made before the load of the sessions scenario: wrk sends their cookies in turn
# (lua/sessions.lua), so every request loads and stores one, and two requests in flight at once
# rarely share one (64 connections, 256 sessions).
SESSION_COUNT = 256

# A run where other processes (or the hypervisor) took this share of a core is flagged in the table.
NOISY = 0.10

SERVERS = [
    "treadle",
    "treadle-baseline",
    "treadle-w1",
    "treadle-w2",
    "treadle-sqlite",
    "treadle-redis",
    "twisted",
    "aiohttp",
    "uvicorn",
    "granian",
    "hypercorn",
    "nginx",
]
PYTHON_PEERS = ["twisted", "aiohttp", "uvicorn", "granian", "hypercorn"]
# An earlier treadle (--baseline PYTHON), measured wherever treadle is but in `workers`: before
# and after a change, side by side in one run.
BASELINE = "treadle-baseline"
# `treadle web --workers N` as a server of its own, measured only in the workers scenarios.
TREADLE_WORKERS = {"treadle-w1": 1, "treadle-w2": 2}
WORKERS_SCENARIOS = ("workers", "workers-template")
FILE_SCENARIOS = ("static", "static-100m", "rpy", *WORKERS_SCENARIOS)
# treadle's shared session stores as servers of their own, measured only in the `sessions`
# scenario (where `treadle` is the memory store, as in every other scenario).
TREADLE_STORES = {"treadle-sqlite": "sqlite", "treadle-redis": "redis"}


@dataclass(frozen=True)
class Scenario:
    """One workload: the same request mix sent to every server that can serve it."""

    name: str
    title: str
    path: str
    connections: int
    servers: tuple[str, ...]
    lua: str | None = None
    timeout_s: int = 5
    metric: str = "rps"  # what the ratio and the chart compare: "rps" or "mbps"
    expect: bytes | None = HELLO
    method: str = "GET"
    body: bytes | None = None
    # The server whose multiple of each row the ratio column shows (its req/s over the row's).
    reference: str = "treadle"
    # The cores the server is pinned to (taskset -c); wrk is always on CLIENT_CPU.
    server_cpus: str = SERVER_CPU
    # "wrk": measured here; "protocols": by bench/protocols.py's own load generators
    # (WebSocket frames, h2load, the Starlette app), reported in the same table and chart.
    driver: str = "wrk"
    # For a figure where fewer is better (bytes per idle connection): the ratio is inverted,
    # so "treadle x" > 1 still means treadle is ahead.
    lower_is_better: bool = False


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "hello",
            "hello: 13-byte render_GET, keep-alive, 64 connections",
            "/",
            64,
            ("treadle", "twisted", "aiohttp", "uvicorn", "granian", "nginx"),
        ),
        Scenario(
            "async",
            "async: NOT_DONE_YET + callLater(0) (asyncio.sleep(0) for ASGI/aiohttp)",
            "/",
            64,
            ("treadle", "twisted", "aiohttp", "uvicorn", "granian"),
        ),
        Scenario(
            "delayed",
            "delayed: 1 s deferLater response, 10,000 concurrent connections",
            "/",
            10_000,
            ("treadle", "twisted", "aiohttp", "uvicorn", "granian", "nginx"),
            expect=DELAYED_BODY,
        ),
        Scenario(
            "static",
            "static: 1 KiB file (treadle web --path / twistd web --path / nginx)",
            "/" + SMALL_FILE,
            64,
            ("treadle", "twisted", "aiohttp", "nginx"),
            expect=None,
        ),
        Scenario(
            "static-100m",
            "static-100m: 100 MiB file, 4 connections",
            "/" + LARGE_FILE,
            4,
            ("treadle", "twisted", "aiohttp", "nginx"),
            timeout_s=60,
            metric="mbps",
            expect=None,
        ),
        Scenario(
            "rpy",
            "rpy: .rpy script without cache(), re-executed per request",
            "/" + RPY_FILE,
            64,
            ("treadle", "twisted"),
        ),
        Scenario(
            "post",
            "post: 1 KiB urlencoded form, echo request.args[b'name'][0]",
            "/",
            64,
            ("treadle", "twisted", "aiohttp", "uvicorn", "granian"),
            lua="post.lua",
            method="POST",
            body=POST_BODY,
        ),
        Scenario(
            "pipelined",
            "pipelined: 16 pipelined GETs per connection (hello)",
            "/",
            64,
            ("treadle", "twisted", "aiohttp", "uvicorn", "granian", "nginx"),
            lua="pipeline.lua",
        ),
        Scenario(
            "template",
            "template: 1,000-row table (92 KB) through renderElement, Element + XMLString",
            "/",
            64,
            ("treadle", "twisted"),
            expect=None,  # checked by check_response: the doctype, 1,000 rows, the end
        ),
        Scenario(
            "workers",
            f"workers: 1 KiB file, treadle web --workers 2 against 1, 64 connections "
            f"(server on cores {WORKERS_CPUS}, wrk on core {CLIENT_CPU})",
            "/" + SMALL_FILE,
            64,
            ("treadle-w1", "treadle-w2"),
            expect=None,
            reference="treadle-w2",
            server_cpus=WORKERS_CPUS,
        ),
        Scenario(
            "workers-template",
            f"workers-template: the template page (about 13 ms of CPU each) from a .rpy, "
            f"treadle web --workers 2 against 1, 16 connections "
            f"(server on cores {WORKERS_CPUS}, wrk on core {CLIENT_CPU})",
            "/" + TEMPLATE_RPY,
            16,
            ("treadle-w1", "treadle-w2"),
            expect=None,  # checked by check_response, as the template scenario
            reference="treadle-w2",
            server_cpus=WORKERS_CPUS,
        ),
        Scenario(
            "sessions",
            f"sessions: visit counter (getSession, attribute +1), {SESSION_COUNT} session cookies "
            "in turn, 64 connections; treadle memory / sqlite / redis, Twisted in memory",
            "/",
            64,
            ("treadle", "treadle-sqlite", "treadle-redis", "twisted"),
            lua="sessions.lua",
            expect=None,  # checked by make_sessions: the count grows with the cookie
        ),
        Scenario(
            "websocket",
            "websocket: echo of 16-byte text messages, 64 connections x 8 in flight (msgs/s)",
            "/echo",
            64,
            ("treadle", "twisted", "aiohttp", "uvicorn"),
            driver="protocols",
        ),
        Scenario(
            "ws-idle",
            "ws-idle: memory per idle WebSocket connection, 10,000 open (bytes; fewer is better)",
            "/echo",
            10_000,
            ("treadle", "twisted", "aiohttp", "uvicorn"),
            metric="bytes_per_conn",
            driver="protocols",
            lower_is_better=True,
        ),
        Scenario(
            "h2",
            "h2: HTTP/2 over TLS (ALPN), h2load 16 connections x 10 streams, hello",
            "/",
            16,
            ("treadle", "twisted", "hypercorn"),
            driver="protocols",
        ),
        Scenario(
            "asgi",
            "asgi: one Starlette app (Route + PlainTextResponse) under each ASGI server",
            "/",
            64,
            ("treadle", "uvicorn", "granian", "hypercorn"),
            driver="protocols",
        ),
    ]
}
# What the figure of a scenario counts, where it is not requests per second.
UNITS = {"websocket": "msgs/s", "ws-idle": "bytes/conn", "static-100m": "MB/s"}
PROTOCOL_SCENARIOS = tuple(n for n, sc in SCENARIOS.items() if sc.driver == "protocols")

# Reported, never asserted: (scenario, peer, factor) means "treadle >= factor x peer".
TARGETS: list[tuple[str, str, float]] = [
    ("hello", "uvicorn", 2.0),
    ("hello", "granian", 1.5),
    ("hello", "twisted", 3.5),
    ("async", "granian", 1.5),
    ("static", "twisted", 10.0),
    ("static", "nginx", 0.5),
    ("rpy", "twisted", 15.0),
    ("pipelined", "granian", 2.0),
    ("template", "twisted", 3.0),
]


# --------------------------------------------------------------------------------------------
# Small helpers


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def port_is_free(port: int) -> bool:
    """True when nothing listens on the port and a server could bind it (with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.settimeout(0.2)
        if probe.connect_ex((HOST, port)) == 0:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


class Ports:
    """Hands out a different free port for every server start (below the ephemeral range)."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.next = 0

    def take(self) -> int:
        for _ in range(2000):
            port = self.base + self.next % 2000
            self.next += 1
            if port_is_free(port):
                return port
        raise RuntimeError(f"no free port in {self.base}..{self.base + 1999}")


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime, in clock ticks, summed over the processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs from /proc/stat; busy is user + nice + system."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system = int(fields[0]), int(fields[1]), int(fields[2])
    steal = int(fields[7]) if len(fields) > 7 else 0
    return user + nice + system, steal


def children_ticks() -> int:
    """CPU time of this process's reaped children (wrk), in clock ticks."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((usage.ru_utime + usage.ru_stime) * CLK_TCK)


# --------------------------------------------------------------------------------------------
# How each server is started


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    # A process the server needs, started before it and stopped after it, on the same cores,
    # its CPU time and memory counted with the server's (redis-server for treadle-redis).
    store: Launch | None = None
    store_port: int = 0


class Context:
    """What the launchers need: the static directory, the Pythons, availability of each server."""

    def __init__(self, workdir: Path, scenarios: list[str], baseline: str | None = None) -> None:
        self.baseline = baseline
        self.workdir = workdir
        self.docroot = workdir / "docroot"
        self.docroot.mkdir()
        (self.docroot / SMALL_FILE).write_bytes(
            bytes((i * 7 + 13) % 256 for i in range(SMALL_SIZE))
        )
        (self.docroot / RPY_FILE).write_text(RPY_SOURCE)
        (self.docroot / TEMPLATE_RPY).write_text(TEMPLATE_RPY_SOURCE)
        if "static-100m" in scenarios:
            chunk = os.urandom(1 << 20)
            with open(self.docroot / LARGE_FILE, "wb") as f:
                for _ in range(LARGE_SIZE >> 20):
                    f.write(chunk)
        self.nginx = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        self.echo_module = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
        self.unavailable: dict[str, str] = {}
        self.treadle_web_argv: list[str] = []
        self.redis_server = shutil.which("redis-server")
        # Set by main(): treadle-redis takes a second port for its redis-server.
        self.ports: Ports | None = None
        self.secret_file = workdir / "session-secret"
        self.secret_file.write_text(secrets.token_hex(32) + "\n")

    # treadle ---------------------------------------------------------------------------------
    def check_treadle(self) -> None:
        """Decide whether treadle can serve: resource API and `treadle web` are checked apart."""
        probe = (
            "from treadle.internet import reactor\n"
            "from treadle.web.resource import Resource\n"
            "from treadle.web.server import Site, NOT_DONE_YET\n"
        )
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["import failed"])[-1]
            self.unavailable["treadle"] = f"treadle API not importable: {last}"
        r = subprocess.run(
            [sys.executable, "-c", "import treadle._cli"], capture_output=True, text=True
        )
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["import failed"])[-1]
            self.unavailable["treadle-web"] = f"treadle._cli not importable: {last}"
        self.check_stores()
        script = Path(sysconfig.get_path("scripts")) / "treadle"
        if script.exists():
            self.treadle_web_argv = [str(script)]
        elif shutil.which("treadle"):
            self.treadle_web_argv = [shutil.which("treadle") or "treadle"]
        else:
            self.treadle_web_argv = [
                sys.executable,
                "-m",
                "treadle",
            ]

    def check_stores(self) -> None:
        """Decide whether treadle's session stores can be measured (the sessions scenario)."""
        probe = (
            "import inspect, sys\n"
            "from treadle.web.server import Site\n"
            "sys.exit('sessionStore' not in inspect.signature(Site.__init__).parameters)\n"
        )
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        if r.returncode != 0:
            self.unavailable["treadle-stores"] = "this treadle has no Site(sessionStore=...)"
        if not self.redis_server:
            self.unavailable["treadle-redis"] = (
                "redis-server is not installed (apt-get install redis-server): no Redis row"
            )
            return
        r = subprocess.run(
            [sys.executable, "-c", "import treadle.web._redis_store"], capture_output=True
        )
        if r.returncode != 0:
            self.unavailable["treadle-redis"] = (
                f"treadle's Redis store (hiredis) is not importable by {sys.executable}"
            )

    def check_peers(self) -> None:
        if not PEER_PYTHON.exists():
            for name in PYTHON_PEERS:
                self.unavailable[name] = f"{VENV} missing: run bench/setup-peers.sh"
            return
        for name, module in [
            ("twisted", "twisted.web"),
            ("aiohttp", "aiohttp"),
            ("uvicorn", "uvicorn"),
            ("granian", "granian"),
            ("hypercorn", "hypercorn"),
        ]:
            r = subprocess.run(
                [str(PEER_PYTHON), "-c", f"import {module}, uvloop"], capture_output=True, text=True
            )
            if r.returncode != 0:
                self.unavailable[name] = f"{module} not installed in {VENV}"
        if not self.nginx:
            self.unavailable["nginx"] = "nginx not installed (apt-get install nginx-light)"

    def availability(self, server: str, scenario: str) -> str | None:
        """Why ``server`` can't be measured now, or None when it can."""
        if server == BASELINE:
            return None if self.baseline else "no --baseline PYTHON given"
        if server in TREADLE_WORKERS or (server == "treadle" and scenario in FILE_SCENARIOS):
            return self.unavailable.get("treadle-web")
        if server in TREADLE_STORES:
            return (
                self.unavailable.get("treadle")
                or self.unavailable.get("treadle-stores")
                or self.unavailable.get(server)
            )
        if server == "nginx" and scenario == "delayed" and not self.echo_module.exists():
            return "needs Debian's libnginx-mod-http-echo for echo_sleep"
        return self.unavailable.get(server)

    # launchers ---------------------------------------------------------------------------------
    def launch(self, server: str, sc: Scenario, port: int) -> Launch:
        app_scenario = "hello" if sc.name == "pipelined" else sc.name
        file_scenario = sc.name in FILE_SCENARIOS
        listen = f"tcp:port={port}:interface={HOST}"
        web = [
            *self.treadle_web_argv,
            "web",
            "--path",
            str(self.docroot),
            "--listen",
            listen,
            "--no-access-log",
        ]
        if server in TREADLE_WORKERS:
            return Launch([*web, "--workers", str(TREADLE_WORKERS[server])])
        if sc.name == "template":
            return self.launch_template(server, port)
        if server in TREADLE_STORES:
            return self.launch_store(server, port)
        if server in ("treadle", BASELINE):
            # The baseline is the same launch with an earlier treadle's interpreter.
            python = sys.executable
            if server == BASELINE:
                assert self.baseline is not None
                python = self.baseline
                web = [python, "-m", "treadle", *web[len(self.treadle_web_argv) :]]
            if file_scenario:
                return Launch(web)
            return Launch(
                [
                    python,
                    str(APPS / "resources.py"),
                    "--impl",
                    "treadle",
                    "--scenario",
                    app_scenario,
                    "--port",
                    str(port),
                ]
            )
        if server == "twisted":
            if file_scenario:
                return Launch(
                    [
                        str(VENV / "bin" / "twistd"),
                        "-n",
                        "--pidfile=",
                        "--logfile=/dev/null",
                        "web",
                        "--path",
                        str(self.docroot),
                        "--listen",
                        listen,
                    ],
                    cwd=self.workdir,
                )
            return Launch(
                [
                    str(PEER_PYTHON),
                    str(APPS / "resources.py"),
                    "--impl",
                    "twisted",
                    "--scenario",
                    app_scenario,
                    "--port",
                    str(port),
                ]
            )
        if server == "aiohttp":
            extra = ["--path", str(self.docroot)] if file_scenario else []
            return Launch(
                [
                    str(PEER_PYTHON),
                    str(APPS / "aiohttp_app.py"),
                    "--scenario",
                    "static" if file_scenario else app_scenario,
                    "--port",
                    str(port),
                    *extra,
                ]
            )
        if server == "uvicorn":
            return Launch(
                [
                    str(PEER_PYTHON),
                    str(APPS / "asgi_app.py"),
                    "--scenario",
                    app_scenario,
                    "--port",
                    str(port),
                ]
            )
        if server == "granian":
            return Launch(
                [
                    str(VENV / "bin" / "granian"),
                    "--interface",
                    "asgi",
                    "--workers",
                    "1",
                    "--runtime-threads",
                    "1",
                    "--loop",
                    "uvloop",
                    "--http",
                    "1",
                    "--no-ws",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--backlog",
                    "4096",
                    # granian's default backpressure (backlog/workers) would cap the delayed
                    # scenario at 4096 requests in flight; the other servers have no such cap.
                    "--backpressure",
                    "20000",
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--working-dir",
                    str(APPS),
                    "asgi_app:app",
                ],
                env={"BENCH_SCENARIO": app_scenario},
                cwd=APPS,
            )
        if server == "nginx":
            conf_dir = Path(tempfile.mkdtemp(prefix="nginx-", dir=self.workdir))
            conf = conf_dir / "nginx.conf"
            conf.write_text(self.nginx_conf(sc, port, conf_dir))
            return Launch(
                [self.nginx or "nginx", "-p", str(conf_dir), "-c", str(conf), "-e", "stderr"],
                cwd=conf_dir,
            )
        raise ValueError(server)

    def launch_template(self, server: str, port: int) -> Launch:
        """The template page: one app file, run by treadle's Python or by the peers' Twisted."""
        pythons = {"treadle": sys.executable, BASELINE: self.baseline, "twisted": str(PEER_PYTHON)}
        python = pythons.get(server)
        if python is None:
            raise ValueError(f"{server} cannot serve the template scenario")
        impl = "twisted" if server == "twisted" else "treadle"
        return Launch([python, str(APPS / TEMPLATE_APP), "--impl", impl, "--port", str(port)])

    def launch_store(self, server: str, port: int) -> Launch:
        """The sessions page on treadle with a shared store: a fresh SQLite file, or a fresh
        redis-server on a port of its own (no persistence: what is measured is the round trip
        and the work on both sides, not a disk)."""
        app = [
            sys.executable,
            str(APPS / "resources.py"),
            "--impl",
            "treadle",
            "--scenario",
            "sessions",
            "--port",
            str(port),
            "--secret-file",
            str(self.secret_file),
            "--sessions",
        ]
        if TREADLE_STORES[server] == "sqlite":
            return Launch([*app, f"sqlite:{self.workdir}/sessions-{port}.sqlite3"])
        assert self.ports is not None and self.redis_server is not None
        redis_port = self.ports.take()
        redis_dir = Path(tempfile.mkdtemp(prefix="redis-", dir=self.workdir))
        redis = Launch(
            [
                self.redis_server,
                "--bind",
                HOST,
                "--port",
                str(redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(redis_dir),
                "--daemonize",
                "no",
                "--logfile",
                "",
            ],
            cwd=redis_dir,
        )
        url = f"redis://{HOST}:{redis_port}/0"
        return Launch([*app, url], store=redis, store_port=redis_port)

    def nginx_conf(self, sc: Scenario, port: int, prefix: Path) -> str:
        load = ""
        if sc.name in ("static", "static-100m"):
            location = f"location / {{ root {self.docroot}; }}"
        elif sc.name == "delayed":
            load = f"load_module {self.echo_module};"
            location = (
                f"location = / {{ echo_sleep {DELAY_S:g}; echo -n '{DELAYED_BODY.decode()}'; }}"
            )
        else:
            location = f"location = / {{ return 200 '{HELLO.decode()}'; }}"
        return f"""\
{load}
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {resource.getrlimit(resource.RLIMIT_NOFILE)[0]};
error_log stderr warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    default_type text/html;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen {HOST}:{port} backlog=4096;
        {location}
    }}
}}
"""


# --------------------------------------------------------------------------------------------
# One measurement


class Server:
    """A server process pinned to the server core(s), in its own process group."""

    def __init__(self, launch: Launch, log_path: Path, cpus: str = SERVER_CPU) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **launch.env}
        # `treadle web` reads its default --workers from WEB_CONCURRENCY: one set in the caller's
        # environment must not turn the single-process treadle rows into several processes.
        if "WEB_CONCURRENCY" not in launch.env:
            env.pop("WEB_CONCURRENCY", None)
        self.log_path = log_path
        self.log_file = open(log_path, "wb")  # noqa: SIM115 - open for the server's lifetime
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpus, *launch.argv],
            cwd=launch.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, port: int, deadline_s: float = 30.0) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with code {self.proc.returncode}: {self.log_tail()}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((HOST, port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"port {port} not accepting after {deadline_s:.0f} s: {self.log_tail()}")

    def wait_listeners(self, port: int, count: int, deadline_s: float = 30.0) -> None:
        """Wait until ``count`` sockets listen on the port (every worker of ``--workers``).

        The port accepts as soon as the first worker listens; the kernel spreads connections only
        among the sockets listening when they connect, so wrk must not start before the last one.
        """
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with code {self.proc.returncode}: {self.log_tail()}")
            if listening_sockets(port) >= count:
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"{listening_sockets(port)} of {count} workers listening after {deadline_s:.0f} s: "
            f"{self.log_tail()}"
        )

    def log_tail(self, lines: int = 3) -> str:
        self.log_file.flush()
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Children (granian's worker) may outlive the leader for a moment: end the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log_file.close()


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on ``HOST:port`` (from /proc/net/tcp)."""
    want = f"{socket.inet_aton(HOST)[::-1].hex().upper()}:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0
    return sum(1 for line in lines if line.split()[1] == want and line.split()[3] == "0A")


def check_response(sc: Scenario, port: int, docroot: Path) -> None:
    """One request before the load: the server must answer this scenario correctly."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if sc.body else {}
        conn.request(sc.method, sc.path, body=sc.body, headers=headers)
        resp = conn.getresponse()
        if sc.name == "static-100m":
            size = 0
            while chunk := resp.read(1 << 20):
                size += len(chunk)
            expect_size = LARGE_SIZE
        else:
            body = resp.read()
            size, expect_size = len(body), None
        if resp.status != 200:
            raise RuntimeError(f"check: status {resp.status} for {sc.method} {sc.path}")
        if expect_size is not None and size != expect_size:
            raise RuntimeError(f"check: {size} bytes instead of {expect_size}")
        expect = sc.expect
        if sc.path == "/" + SMALL_FILE:
            expect = (docroot / SMALL_FILE).read_bytes()
        if expect is not None and body != expect:
            raise RuntimeError(f"check: unexpected body {body[:60]!r}")
        if sc.name in ("template", "workers-template"):
            rows = body.count(b"<tr><td>")
            if not body.startswith(b"<!DOCTYPE html>\n<html>") or rows != TEMPLATE_ROWS:
                raise RuntimeError(f"check: template page with {rows} rows: {body[:60]!r}")
            if not body.rstrip().endswith(b"</html>"):
                raise RuntimeError(f"check: template page ends {body[-60:]!r}")
    finally:
        conn.close()


def make_sessions(port: int, count: int) -> list[str]:
    """Check the counter page of ``sessions`` and make ``count`` sessions for the load.

    A first session is visited twice: the count must go from 1 to 2, so the cookie is honoured
    and the session kept (stored, with a store). Returns the ``Cookie`` header values
    (``NAME=ID``) of the ``count`` new sessions, each visited once.
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        body, cookie = visit(conn, None)
        if body != b"1" or cookie is None:
            raise RuntimeError(f"check: first visit answered {body[:60]!r}, cookie {cookie!r}")
        body, again = visit(conn, cookie)
        if body != b"2":
            raise RuntimeError(f"check: second visit with the cookie answered {body[:60]!r}")
        if again is not None:
            raise RuntimeError(f"check: second visit got a new session cookie {again!r}")
        cookies = []
        for _ in range(count):
            body, cookie = visit(conn, None)
            if body != b"1" or cookie is None:
                raise RuntimeError(f"check: a new visit answered {body[:60]!r}, cookie {cookie!r}")
            cookies.append(cookie)
        return cookies
    finally:
        conn.close()


def count_visits(port: int, cookies: list[str]) -> int:
    """Visit each session once more and return the sum of their counts."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        return sum(int(visit(conn, cookie)[0]) for cookie in cookies)
    finally:
        conn.close()


def visit(conn: http.client.HTTPConnection, cookie: str | None) -> tuple[bytes, str | None]:
    """GET / (with ``cookie`` as the Cookie header); return the body and the ``NAME=ID`` of a
    session cookie set by the response, if any."""
    conn.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"check: status {resp.status}: {body[:120]!r}")
    set_cookie = resp.getheader("Set-Cookie")
    return body, set_cookie.split(";", 1)[0].strip() if set_cookie else None


def run_wrk(
    sc: Scenario,
    port: int,
    duration_s: int,
    connections: int,
    workdir: Path,
    script_args: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run wrk against the server; ``script_args`` go to the Lua script's ``init(args)``."""
    script = workdir / f"wrk-{sc.name}.lua"
    if not script.exists():
        parts = [(LUA / sc.lua).read_text()] if sc.lua else []
        parts.append((LUA / "report.lua").read_text())
        script.write_text("\n".join(parts))
    argv = [
        "taskset",
        "-c",
        CLIENT_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={sc.timeout_s}s",
        "-s",
        str(script),
        f"http://{HOST}:{port}{sc.path}",
    ]
    if script_args:
        argv += ["--", *script_args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + sc.timeout_s + 60)
    for line in r.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            return json.loads(line[len("WRK_RESULT ") :])
    raise RuntimeError(f"wrk failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}")


def scenario_duration(name: str, opts: argparse.Namespace) -> int:
    """Seconds measured: delayed runs longer (1 s per request), the 100 MiB file shorter."""
    if name == "delayed":
        return opts.delayed_duration
    if name == "static-100m":
        # Throughput of a few huge responses settles fast; half the time keeps the run short.
        return max(3, opts.duration // 2)
    return opts.duration


def measure(
    ctx: Context, sc: Scenario, server: str, port: int, opts: argparse.Namespace, log_path: Path
) -> dict[str, Any]:
    """Start, check, warm up, measure and stop one server; return the figures of this round."""
    duration = scenario_duration(sc.name, opts)
    connections = sc.connections
    if sc.name == "delayed":
        connections = opts.delayed_connections
    launch = ctx.launch(server, sc, port)
    store: Server | None = None
    srv: Server | None = None
    try:
        if launch.store is not None:
            store = Server(launch.store, log_path.with_suffix(".store.log"), sc.server_cpus)
            store.wait_ready(launch.store_port)
        srv = Server(launch, log_path, sc.server_cpus)
        srv.wait_ready(port)
        if server in TREADLE_WORKERS:
            srv.wait_listeners(port, TREADLE_WORKERS[server])
        script_args: list[str] = []
        cookies: list[str] = []
        if sc.name == "sessions":
            cookies = make_sessions(port, SESSION_COUNT)
            cookie_file = ctx.workdir / f"cookies-{port}.txt"
            cookie_file.write_text("\n".join(cookies) + "\n")
            script_args = [str(cookie_file)]
        else:
            check_response(sc, port, ctx.docroot)

        def tree() -> list[int]:
            assert srv is not None
            return srv.pids() + (store.pids() if store is not None else [])

        idle_rss = memory_kib(tree(), "VmRSS")
        warm_requests = 0
        if opts.warmup > 0:
            if sc.name == "delayed":
                # Warm up the code paths with a few connections, then let their requests finish:
                # 10,000 abandoned pending requests would still be firing during the measurement.
                run_wrk(sc, port, opts.warmup, 64, ctx.workdir)
                time.sleep(DELAY_S + 0.5)
            else:
                warm = run_wrk(sc, port, opts.warmup, connections, ctx.workdir, script_args)
                warm_requests = warm["requests"]
        pids = tree()
        ticks0 = cpu_ticks(pids)
        # The first process alone: with --workers N > 1 it is the supervisor, which serves
        # nothing, so its own CPU time is what supervising costs.
        supervisor0 = cpu_ticks([srv.proc.pid])
        store_ticks0 = cpu_ticks(store.pids()) if store is not None else 0
        busy0, steal0 = machine_ticks()
        wrk0 = children_ticks()
        wall0 = time.monotonic()
        wrk = run_wrk(sc, port, duration, connections, ctx.workdir, script_args)
        wall = time.monotonic() - wall0
        wrk_ticks = children_ticks() - wrk0
        busy1, steal1 = machine_ticks()
        pids = tree()
        ticks1 = cpu_ticks(pids)
        supervisor1 = cpu_ticks([srv.proc.pid])
        store_ticks1 = cpu_ticks(store.pids()) if store is not None else 0
        hwm = memory_kib(pids, "VmHWM")
        if srv.proc.poll() is not None:
            raise RuntimeError(f"server died during the run: {srv.log_tail()}")
        if store is not None and store.proc.poll() is not None:
            raise RuntimeError(f"the store's server died during the run: {store.log_tail()}")
        # Every visit counted once, whoever served it: the counts, less the visits made by
        # make_sessions (1 each) and count_visits (1 each), over the requests wrk completed.
        visits = count_visits(port, cookies) - 2 * len(cookies) if cookies else 0
    finally:
        if srv is not None:
            srv.stop()
        if store is not None:
            store.stop()
    seconds = wrk["duration_us"] / 1e6
    requests = wrk["requests"]
    errors = {k: v for k, v in wrk["errors"].items() if v}
    result: dict[str, Any] = {
        "status": "ok",
        "requests": requests,
        "duration_s": round(seconds, 3),
        "connections": connections,
        "rps": requests / seconds if seconds else 0.0,
        "mbps": wrk["bytes"] / seconds / 1e6 if seconds else 0.0,
        "p50_ms": wrk["latency_us"]["p50"] / 1000,
        "p90_ms": wrk["latency_us"]["p90"] / 1000,
        "p99_ms": wrk["latency_us"]["p99"] / 1000,
        "max_ms": wrk["latency_us"]["max"] / 1000,
        "cpu_us_per_req": (ticks1 - ticks0) / CLK_TCK * 1e6 / requests if requests else None,
        "cpu_s": (ticks1 - ticks0) / CLK_TCK,
        # Cores busy on average during the run: with the server on two cores (workers) they say
        # how the machine was shared, and whether wrk had a core of its own.
        "server_cores": (ticks1 - ticks0) / CLK_TCK / wall,
        "wrk_cores": wrk_ticks / CLK_TCK / wall,
        "idle_rss_kib": idle_rss,
        "peak_rss_kib": hwm,
        "errors": errors,
        # Share of one core used during the run by processes other than this server and wrk (other
        # work on the machine: it skews the figures), and stolen by the hypervisor.
        "other_load": max(0, (busy1 - busy0) - (ticks1 - ticks0) - wrk_ticks) / CLK_TCK / wall,
        "steal": (steal1 - steal0) / CLK_TCK / wall,
    }
    if TREADLE_WORKERS.get(server, 1) > 1:
        result["supervisor_cores"] = (supervisor1 - supervisor0) / CLK_TCK / wall
    if sc.lua == "pipeline.lua":
        # wrk times a whole batch of 16, and its latency correction (meant for one request per
        # round trip) overflows its histogram with pipelining: its percentiles mean nothing here.
        for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            result[key] = None
    if store is not None:
        # The store server's share of "cpu_us_per_req" (which counts the whole server side).
        result["store_cpu_us_per_req"] = (
            (store_ticks1 - store_ticks0) / CLK_TCK * 1e6 / requests if requests else None
        )
    if cookies:
        done = warm_requests + requests
        result["visits_counted"] = visits / done if done else None
    if sc.name == "delayed":
        result["per_connection"] = requests / connections
        result["ideal_per_connection"] = seconds / DELAY_S
        result["kib_per_pending"] = (hwm - idle_rss) / connections
    return result


# --------------------------------------------------------------------------------------------
# Summary, table, targets


NUMERIC = [
    "requests",
    "rps",
    "mbps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "cpu_us_per_req",
    "cpu_s",
    "server_cores",
    "wrk_cores",
    "idle_rss_kib",
    "peak_rss_kib",
    "per_connection",
    "bytes_per_conn",
    "ideal_per_connection",
    "kib_per_pending",
    "store_cpu_us_per_req",
    "supervisor_cores",
    "visits_counted",
    "duration_s",
    "other_load",
    "steal",
]


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rounds if r.get("status") == "ok"]
    if not ok:
        first = rounds[0] if rounds else {"status": "error", "reason": "not run"}
        return {"status": first["status"], "reason": first.get("reason", ""), "rounds_ok": 0}
    med: dict[str, Any] = {
        "status": "ok",
        "rounds_ok": len(ok),
        "rounds_failed": len(rounds) - len(ok),
    }
    for key in NUMERIC:
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            med[key] = statistics.median(values)
    errors: dict[str, int] = {}
    for r in ok:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    med["errors"] = errors
    failed = [r.get("reason", "") for r in rounds if r.get("status") != "ok"]
    if failed:
        med["reason"] = failed[0]
    return med


def fmt_int(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x / 1000:.2f}s"
    if x >= 10:
        return f"{x:.0f}ms"
    return f"{x:.2f}ms"


def ratio(summary: dict[str, dict[str, Any]], sc: Scenario, server: str) -> float | None:
    """The scenario's reference server's throughput over ``server``'s (treadle's, mostly)."""
    t, s = summary.get(sc.reference, {}), summary.get(server, {})
    if t.get("status") != "ok" or s.get("status") != "ok":
        return None
    if sc.lower_is_better:
        return s[sc.metric] / t[sc.metric] if t.get(sc.metric) else None
    denom = s.get(sc.metric) or 0
    return t[sc.metric] / denom if denom else None


def table(
    results: dict[str, dict[str, dict[str, Any]]], scenarios: list[str], servers: list[str]
) -> str:
    head = [
        "scenario",
        "server",
        "req/s",
        "p50",
        "p99",
        "CPU µs/req",
        "peak RSS",
        "treadle x",
        "notes",
    ]
    rows: list[list[str]] = []
    for name in scenarios:
        sc = SCENARIOS[name]
        for server in servers:
            listed = server in sc.servers or (server == BASELINE and "treadle" in sc.servers)
            if not listed or server not in results.get(name, {}):
                continue
            s = results[name][server]
            if s["status"] != "ok":
                rows.append(
                    [
                        name,
                        server,
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                        f"{s['status']}: {s.get('reason', '')}"[:90],
                    ]
                )
                continue
            r = ratio(results[name], sc, server)
            notes = []
            if sc.metric == "mbps":
                notes.append(f"{s['mbps']:,.0f} MB/s")
            if name == "delayed":
                notes.append(
                    f"{s['per_connection']:.1f}/{s['ideal_per_connection']:.1f} req/conn, "
                    f"{s['kib_per_pending']:.1f} KiB/pending"
                )
            if s.get("store_cpu_us_per_req") is not None:
                notes.append(f"redis-server {s['store_cpu_us_per_req']:.1f} µs/req of the CPU")
            if s.get("visits_counted") is not None:
                notes.append(f"visits counted {s['visits_counted']:.1%}")
            if sc.server_cpus != SERVER_CPU and s.get("server_cores") is not None:
                notes.append(
                    f"cores busy: server {s['server_cores']:.2f}, wrk {s.get('wrk_cores', 0):.2f}"
                )
            if s.get("supervisor_cores") is not None:
                notes.append(f"supervisor {s['supervisor_cores']:.3f} of a core")
            if s["errors"]:
                notes.append("errors " + ",".join(f"{k}={v}" for k, v in s["errors"].items()))
            noise = max(s.get("other_load", 0), s.get("steal", 0))
            if noise >= NOISY:
                notes.append(
                    f"NOISY: other load {s.get('other_load', 0):.0%}, "
                    f"steal {s.get('steal', 0):.0%} of a core"
                )
            if s.get("rounds_failed"):
                notes.append(f"{s['rounds_failed']} round(s) failed")
            rows.append(
                [
                    name,
                    server,
                    fmt_int(s[sc.metric]) if sc.metric != "mbps" else fmt_int(s["rps"]),
                    fmt_ms(s.get("p50_ms")),
                    fmt_ms(s.get("p99_ms")),
                    f"{s['cpu_us_per_req']:.1f}" if s.get("cpu_us_per_req") is not None else "-",
                    f"{s['peak_rss_kib'] / 1024:.1f} MiB" if s.get("peak_rss_kib") else "-",
                    f"{r:.2f}x" if r else "-",
                    "; ".join(notes),
                ]
            )
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)
    ]
    right = {2, 3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            out.append("")
        out.append(line(row))
        previous = row[0]
    return "\n".join(out)


def target_lines(results: dict[str, dict[str, dict[str, Any]]], scenarios: list[str]) -> list[str]:
    lines = []
    for name in scenarios:
        sc = SCENARIOS[name]
        summary = results.get(name, {})
        parts = []
        for t_name, peer, factor in TARGETS:
            if t_name != name:
                continue
            r = ratio(summary, sc, peer)
            verdict = "n/a" if r is None else f"{r:.2f}x {'met' if r >= factor else 'MISSED'}"
            parts.append(f"≥{factor:g}x {peer}: {verdict}")
        if sc.reference != "treadle":
            # A comparison of treadle with itself (workers): reported, with no target to meet.
            for server in sc.servers:
                if server == sc.reference or server not in summary:
                    continue
                r = ratio(summary, sc, server)
                verdict = "n/a" if r is None else f"{r:.2f}x"
                parts.append(f"{sc.reference} / {server}: {verdict} (reported, no target)")
        python_peers = [p for p in PYTHON_PEERS if summary.get(p, {}).get("status") == "ok"]
        if python_peers:
            pick = min if sc.lower_is_better else max
            best = pick(python_peers, key=lambda p: summary[p][sc.metric])
            r = ratio(summary, sc, best)
            verdict = "n/a" if r is None else f"{r:.2f}x {'met' if r >= 1.0 else 'MISSED'}"
            parts.append(f"≥ best Python peer ({best}): {verdict}")
        if parts:
            unit = UNITS.get(sc.name, "MB/s" if sc.metric == "mbps" else "req/s")
            lines.append(f"target {name} ({unit}): " + "; ".join(parts))
    return lines


def session_lines(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The sessions scenario's comparisons: each treadle store against Twisted's in-memory
    sessions (req/s), and what each shared store costs per request against treadle's memory
    sessions (server-side CPU, and req/s)."""
    summary = results.get("sessions")
    if not summary:
        return []
    ok = {n: s for n, s in summary.items() if s.get("status") == "ok"}
    treadles = [n for n in ("treadle", *TREADLE_STORES) if n in ok]
    lines = []
    twisted = ok.get("twisted")
    if twisted and treadles:
        parts = [f"{n} {ok[n]['rps'] / twisted['rps']:.2f}x" for n in treadles]
        lines.append("sessions: req/s over Twisted's (in memory): " + ", ".join(parts))
    memory = ok.get("treadle")
    if memory and memory.get("cpu_us_per_req") is not None:
        parts = []
        for name in TREADLE_STORES:
            row = ok.get(name)
            if not row or row.get("cpu_us_per_req") is None:
                continue
            extra = row["cpu_us_per_req"] - memory["cpu_us_per_req"]
            part = f"{name} {extra:+.1f} µs CPU/req"
            if row.get("store_cpu_us_per_req") is not None:
                own = row["store_cpu_us_per_req"]
                part += f" (treadle {extra - own:+.1f}, redis-server {own:+.1f})"
            part += f", req/s {row['rps'] / memory['rps'] - 1:+.0%}"
            parts.append(part)
        if parts:
            head = "sessions: store cost against treadle's memory sessions: "
            lines.append(head + "; ".join(parts))
    for name in TREADLE_STORES:
        if name in summary and name not in ok:
            lines.append(f"sessions: {name}: {summary[name].get('reason', 'not measured')}")
    return lines


def environment(ctx: Context) -> dict[str, Any]:
    def out(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (r.stdout + r.stderr).strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    versions = {}
    if PEER_PYTHON.exists():
        code = (
            "import importlib.metadata as m, json\nv={}\n"
            "for n in ['twisted','aiohttp','uvicorn','uvloop','httptools','granian']:\n"
            "    try: v[n]=m.version(n)\n    except Exception: pass\nprint(json.dumps(v))"
        )
        with contextlib.suppress(ValueError):
            versions = json.loads(out([str(PEER_PYTHON), "-c", code]) or "{}")
    treadle_version = out(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('treadle'))"]
    ).splitlines()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "treadle": treadle_version[-1] if treadle_version else "",
        "peers": versions,
        "nginx": out([ctx.nginx or "nginx", "-v"]),
        "redis-server": out([ctx.redis_server, "--version"]) if ctx.redis_server else "",
        "wrk": out(["wrk", "-v"]).splitlines()[0] if out(["wrk", "-v"]) else "",
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "somaxconn": out(["cat", "/proc/sys/net/core/somaxconn"]),
    }


def draw_chart(json_path: Path, png_path: Path) -> None:
    plot = BENCH / "plot.py"
    for python in (sys.executable, str(PEER_PYTHON)):
        if not Path(python).exists():
            continue
        r = subprocess.run([python, "-c", "import matplotlib"], capture_output=True)
        if r.returncode == 0:
            r = subprocess.run(
                [python, str(plot), str(json_path), str(png_path)],
                capture_output=True,
                text=True,
                env={**os.environ, "MPLBACKEND": "Agg"},
            )
            if r.returncode == 0:
                log(f"chart: {png_path}")
            else:
                log(f"chart: plot.py failed: {r.stderr.strip()[-300:]}")
            return
    log("chart: skipped (matplotlib is not importable; run bench/setup-peers.sh)")


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark treadle against Twisted Web, aiohttp, uvicorn, granian and nginx.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated scenarios")
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated servers")
    p.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds; the table shows medians"
    )
    p.add_argument(
        "--duration", type=int, default=10, help="seconds measured per server and scenario"
    )
    p.add_argument(
        "--warmup", type=int, default=2, help="seconds of wrk load before each measurement"
    )
    p.add_argument(
        "--delayed-duration",
        type=int,
        default=None,
        help="seconds measured in the delayed scenario (default: duration + 2)",
    )
    p.add_argument(
        "--delayed-connections",
        type=int,
        default=10_000,
        help="concurrent connections in the delayed scenario (lowered if RLIMIT_NOFILE is short)",
    )
    p.add_argument(
        "--ws-idle-connections",
        type=int,
        default=10_000,
        help="idle WebSocket connections opened in ws-idle (lowered if RLIMIT_NOFILE is short)",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: 1 round of 3 s, 1 s warm-up")
    p.add_argument(
        "--port-base", type=int, default=18000, help="first port tried (below the ephemeral range)"
    )
    p.add_argument("--no-setup", action="store_true", help="do not run bench/setup-peers.sh first")
    p.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="an interpreter with an earlier treadle installed: measured as treadle-baseline "
        "beside treadle, in the same rounds (e.g. a venv made from a git worktree)",
    )
    p.add_argument("--no-save", action="store_true", help="print the table only; write no results")
    p.add_argument(
        "--keep-logs", action="store_true", help="keep the servers' logs and the work dir"
    )
    opts = p.parse_args(argv)
    if opts.quick:
        opts.rounds, opts.duration, opts.warmup = 1, 3, 1
    if opts.delayed_duration is None:
        opts.delayed_duration = opts.duration + 2
    opts.scenario_list = [s.strip() for s in opts.scenarios.split(",") if s.strip()]
    named = [s.strip() for s in opts.servers.split(",") if s.strip()]
    for s in opts.scenario_list:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    for s in named:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}; choose from {', '.join(SERVERS)}")
    # `treadle` also selects its --workers variants (treadle-w1, treadle-w2), which only the
    # workers scenarios run, and its session stores (treadle-sqlite, treadle-redis), which only
    # the sessions scenario runs. Table order is fixed (treadle first), whatever the order named.
    # The baseline runs exactly when --baseline names its Python (the default --servers lists
    # it, and a row saying "no --baseline given" in every scenario would only be noise).
    opts.server_list = [
        s
        for s in SERVERS
        if (s in named and s != BASELINE)
        or ((s in TREADLE_WORKERS or s in TREADLE_STORES) and "treadle" in named)
        or (s == BASELINE and opts.baseline)
    ]
    return opts


def measure_protocol(server: str, scenario: str, opts: argparse.Namespace) -> dict[str, Any]:
    """One round of a ``protocols`` scenario, by bench/protocols.py, shaped as :func:`measure`'s."""
    import protocols  # beside this file; it imports this module's helpers

    popts = argparse.Namespace(
        duration=opts.duration,
        warmup=opts.warmup,
        connections=64,  # h2load opens a quarter of them, with 10 streams on each
        window=8,
        idle_connections=opts.ws_idle_connections,
    )
    figures = protocols.measure(server, scenario, popts)
    metric = SCENARIOS[scenario].metric
    result: dict[str, Any] = {
        "status": "ok",
        metric: figures["value"],
        "errors": {},
        "other_load": 0.0,
        "steal": 0.0,
    }
    if figures.get("peak_rss_kib"):
        result["peak_rss_kib"] = figures["peak_rss_kib"]
    failed = figures.get("failed") or figures.get("errors")
    if failed and failed != -1:
        result["errors"] = {"failed": failed}
    return result


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.monotonic()
    if not opts.no_setup:
        r = subprocess.run(["bash", str(BENCH / "setup-peers.sh")])
        if r.returncode != 0:
            log("setup-peers.sh failed: peers that are missing will be reported unavailable")
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            log(f"{tool} is not installed (bench/setup-peers.sh installs it)")
            return 2
    if (os.cpu_count() or 1) < 2:
        log("warning: fewer than 2 CPUs; server and wrk will share core 0")

    nofile = raise_nofile()
    if "delayed" in opts.scenario_list and nofile < opts.delayed_connections + 1024:
        lowered = max(64, nofile - 1024)
        log(f"RLIMIT_NOFILE is {nofile}: delayed scenario lowered to {lowered} connections")
        opts.delayed_connections = lowered
    if "ws-idle" in opts.scenario_list and nofile < opts.ws_idle_connections + 1024:
        lowered = max(64, nofile - 1024)
        log(f"RLIMIT_NOFILE is {nofile}: ws-idle lowered to {lowered} connections")
        opts.ws_idle_connections = lowered

    workdir = Path(tempfile.mkdtemp(prefix="treadle-bench-"))
    ctx = Context(workdir, opts.scenario_list, opts.baseline)
    ctx.check_treadle()
    ctx.check_peers()
    for name, reason in sorted(ctx.unavailable.items()):
        if name.split("-")[0] in opts.server_list:
            log(f"unavailable: {name}: {reason}")

    plan = [
        (name, server)
        for name in opts.scenario_list
        for server in opts.server_list
        if server in SCENARIOS[name].servers
        or (
            server == BASELINE
            and "treadle" in SCENARIOS[name].servers
            and SCENARIOS[name].driver == "wrk"
        )
    ]
    runnable = [(n, s) for n, s in plan if ctx.availability(s, n) is None]
    per = sum(
        scenario_duration(n, opts) + opts.warmup + (3 if n == "delayed" else 1) for n, _ in runnable
    )
    log(
        f"{len(runnable)} measurements per round x {opts.rounds} rounds: "
        f"about {per * opts.rounds / 60:.0f} min; work dir {workdir}"
    )

    ports = Ports(opts.port_base)
    ctx.ports = ports
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in opts.scenario_list}
    try:
        for rnd in range(1, opts.rounds + 1):
            for name, server in plan:
                sc = SCENARIOS[name]
                reason = ctx.availability(server, name)
                if reason is not None:
                    raw[name].setdefault(server, []).append(
                        {"status": "unavailable", "reason": reason}
                    )
                    continue
                port = ports.take()
                log_path = workdir / f"{name}-{server}-r{rnd}.log"
                t0 = time.monotonic()
                try:
                    if sc.driver == "protocols":
                        res = measure_protocol(server, name, opts)
                        raw[name].setdefault(server, []).append(res)
                        unit = UNITS.get(name, "req/s")
                        log(
                            f"round {rnd}/{opts.rounds}  {name:<12} {server:<10} "
                            f"{res[sc.metric]:>10,.0f} {unit}"
                        )
                        continue
                    res = measure(ctx, sc, server, port, opts, log_path)
                    msg = (
                        f"{res['rps']:>10,.0f} req/s  p99 {fmt_ms(res.get('p99_ms')):>7}  "
                        f"cpu {res['cpu_us_per_req'] or 0:6.1f} µs/req  "
                        f"rss {res['peak_rss_kib'] / 1024:6.1f} MiB"
                    )
                    if res["errors"]:
                        msg += f"  errors {res['errors']}"
                    if max(res["other_load"], res["steal"]) >= NOISY:
                        msg += (
                            f"  NOISY (other load {res['other_load']:.0%}, "
                            f"steal {res['steal']:.0%} of a core)"
                        )
                except Exception as exc:  # one failed server must not end the run
                    res = {"status": "error", "reason": str(exc)}
                    msg = f"ERROR {exc}"
                raw[name].setdefault(server, []).append(res)
                took = time.monotonic() - t0
                log(f"round {rnd}/{opts.rounds}  {name:<12} {server:<10} {msg}  ({took:.0f} s)")
    except KeyboardInterrupt:
        log("interrupted: summarizing what was measured")

    results = {
        name: {server: summarize(rounds) for server, rounds in per_server.items()}
        for name, per_server in raw.items()
    }
    elapsed = time.monotonic() - started
    print()
    print(
        f"treadle benchmark — median of {opts.rounds} round(s), {opts.duration} s each "
        f"(delayed {opts.delayed_duration} s), "
        f"server on core {SERVER_CPU}, wrk on core {CLIENT_CPU}"
        + (
            f" (workers: server on cores {WORKERS_CPUS})"
            if any(s in WORKERS_SCENARIOS for s in opts.scenario_list)
            else ""
        )
    )
    print("treadle x = treadle's req/s (MB/s for static-100m) divided by that server's", end="")
    if any(s in WORKERS_SCENARIOS for s in results):
        print("; in workers, treadle-w2's divided by that row's", end="")
    print("; in sessions, treadle is its memory sessions" if "sessions" in results else "")
    print()
    print(table(results, opts.scenario_list, opts.server_list))
    print()
    for line in target_lines(results, opts.scenario_list):
        print(line)
    for line in session_lines(results):
        print(line)
    noisy = sum(
        1
        for per_server in raw.values()
        for rounds in per_server.values()
        for r in rounds
        if r.get("status") == "ok" and max(r["other_load"], r["steal"]) >= NOISY
    )
    if noisy:
        print(
            f"\nwarning: in {noisy} measurement(s) other processes or the hypervisor took "
            f"≥{NOISY:.0%} of a core: those figures are skewed; rerun on a quiet machine."
        )
    print(f"\ntotal time {elapsed / 60:.1f} min")

    if not opts.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S") + ("-quick" if opts.quick else "")
        record = {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "quick": opts.quick,
            "config": {
                "rounds": opts.rounds,
                "duration_s": opts.duration,
                "warmup_s": opts.warmup,
                "delayed_duration_s": opts.delayed_duration,
                "delayed_connections": opts.delayed_connections,
                "scenarios": opts.scenario_list,
                "servers": opts.server_list,
                "server_cpu": SERVER_CPU,
                "client_cpu": CLIENT_CPU,
            },
            "environment": environment(ctx),
            "scenarios": {
                n: {
                    "title": SCENARIOS[n].title,
                    "metric": SCENARIOS[n].metric,
                    "reference": SCENARIOS[n].reference,
                    "unit": UNITS.get(n, "req/s"),
                    "lower_is_better": SCENARIOS[n].lower_is_better,
                    "server_cpus": SCENARIOS[n].server_cpus,
                    "connections": (
                        opts.delayed_connections if n == "delayed" else SCENARIOS[n].connections
                    ),
                }
                for n in opts.scenario_list
            },
            "results": results,
            "rounds": raw,
            "targets": target_lines(results, opts.scenario_list),
            "sessions": session_lines(results),
            "elapsed_s": round(elapsed, 1),
        }
        out = RESULTS / f"{stamp}.json"
        out.write_text(json.dumps(record, indent=1) + "\n")
        shutil.copyfile(out, RESULTS / "latest.json")
        log(f"results: {out} and {RESULTS / 'latest.json'}")
        draw_chart(RESULTS / "latest.json", RESULTS / "latest.png")

    if opts.keep_logs:
        log(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
