"""The HTTP client benchmark: a pooled ``Agent``, treadle's against Twisted's, on one server.

    python bench/client.py                      # 3 rounds, 5,000 requests, 50 in flight
    python bench/client.py --rounds 5 --requests 20000 --concurrency 100

One treadle server (``render_GET`` returning 13 bytes, no access log) runs pinned to core 0
for the whole run. Each round runs the same client program once under Twisted and once under
treadle (the import rule: only the package name differs), each in its own process pinned to
core 1, alternating which goes first. A client makes ``--concurrency`` requests at a time
through ``Agent(reactor, pool=HTTPConnectionPool(reactor))`` with ``maxPersistentPerHost``
raised to the concurrency (so every request in flight has a kept-alive connection), reads
every body with ``readBody``, warms up with ``--warmup`` requests, then times ``--requests``
more. The table shows the medians of requests per second and of client CPU time per request,
and the ratio treadle / Twisted.

The interpreter running this script must have both treadle and Twisted (the project's
``.venv`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
SRC = HERE.parents[1] / "src"


# -- the roles this file plays in its subprocesses ---------------------------------------------


def serve(port: int) -> None:
    """The server: treadle, one leaf answering 13 bytes."""
    from treadle.internet import reactor
    from treadle.web import resource, server

    class Hello(resource.Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            return b"Hello, world!"

    site = server.Site(Hello())
    site.log = lambda request: None  # type: ignore[method-assign]  # no access log
    reactor.listenTCP(port, site, interface="127.0.0.1", backlog=1024)
    reactor.run()


def client(impl: str, url: str, requests: int, warmup: int, concurrency: int) -> None:
    """The client, under ``impl`` (``twisted`` or ``treadle``): prints one JSON line."""
    import importlib

    reactor: Any = importlib.import_module(f"{impl}.internet.reactor")
    defer: Any = importlib.import_module(f"{impl}.internet.defer")
    web_client: Any = importlib.import_module(f"{impl}.web.client")

    pool = web_client.HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = concurrency
    agent = web_client.Agent(reactor, pool=pool)
    target = url.encode()
    result: dict[str, Any] = {}

    @defer.inlineCallbacks
    def worker(count: int) -> Any:
        for _ in range(count):
            response = yield agent.request(b"GET", target)
            body = yield web_client.readBody(response)
            if body != b"Hello, world!":
                raise RuntimeError(f"unexpected body {body!r}")

    def batch(total: int) -> Any:
        share, extra = divmod(total, concurrency)
        counts = [share + (1 if i < extra else 0) for i in range(concurrency)]
        return defer.gatherResults([worker(n) for n in counts if n])

    @defer.inlineCallbacks
    def main() -> Any:
        try:
            yield batch(warmup)
            wall, cpu = time.perf_counter(), time.process_time()
            yield batch(requests)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            result.update(requests=requests, seconds=wall, cpu_us=cpu / requests * 1e6)
            yield pool.closeCachedConnections()
        except Exception as e:  # reported on stdout; the harness fails loudly
            result["error"] = repr(e)
        finally:
            reactor.stop()

    reactor.callWhenRunning(main)
    reactor.run()
    print(json.dumps(result), flush=True)


# -- the harness -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int, argv: list[str]) -> list[str]:
    """``argv`` run on one core when ``taskset`` exists (2 cores: server 0, client 1)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > core:
        return ["taskset", "-c", str(core), *argv]
    return argv


def wait_until_listening(port: int, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the server did not listen on port {port} within {deadline} s")


def run_client(impl: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, str(HERE), "--role", "client", "--impl", impl, "--url", url]
    argv += ["--requests", str(args.requests), "--warmup", str(args.warmup)]
    argv += ["--concurrency", str(args.concurrency)]
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(
        pinned(1, argv), capture_output=True, text=True, env=env, timeout=600, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{impl} client failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    if "error" in result:
        raise SystemExit(f"{impl} client failed: {result['error']}\n{done.stderr[-3000:]}")
    return result


def versions() -> dict[str, str]:
    import twisted

    import treadle

    return {"treadle": treadle.__version__, "twisted": twisted.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--role", choices=["harness", "server", "client"], default="harness")
    parser.add_argument("--impl", choices=["twisted", "treadle"])
    parser.add_argument("--url")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.role == "server":
        serve(args.port)
        return
    if args.role == "client":
        client(args.impl, args.url, args.requests, args.warmup, args.concurrency)
        return

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(SRC))
    argv = [sys.executable, str(HERE), "--role", "server", "--port", str(port)]
    server = subprocess.Popen(pinned(0, argv), env=env, start_new_session=True)
    figures: dict[str, list[dict[str, Any]]] = {"twisted": [], "treadle": []}
    try:
        wait_until_listening(port)
        url = f"http://127.0.0.1:{port}/"
        for round_number in range(args.rounds):
            order = ["twisted", "treadle"] if round_number % 2 == 0 else ["treadle", "twisted"]
            for impl in order:
                result = run_client(impl, url, args)
                figures[impl].append(result)
                rps = result["requests"] / result["seconds"]
                print(f"round {round_number + 1}: {impl:8} {rps:9.0f} req/s", flush=True)
    finally:
        server.terminate()
        server.wait(10)

    print()
    print(f"{args.requests} requests, {args.concurrency} in flight, pooled Agent, {versions()}")
    print(f"{'client':10} {'req/s':>9} {'CPU µs/req':>11}")
    medians = {}
    for impl, results in figures.items():
        rps = statistics.median(r["requests"] / r["seconds"] for r in results)
        cpu = statistics.median(r["cpu_us"] for r in results)
        medians[impl] = rps
        print(f"{impl:10} {rps:9.0f} {cpu:11.1f}")
    print(f"treadle / Twisted: {medians['treadle'] / medians['twisted']:.2f}x")


if __name__ == "__main__":
    main()
