"""Profile a server under load with py-spy and print a text summary (no images).

    python bench/pyspy.py --url http://127.0.0.1:18080/hello.txt --title "static 1 KiB" \
        -- treadle web --path /tmp/site --listen tcp:18080:interface=127.0.0.1 --no-access-log

The command is started pinned to core 0, ``wrk -t1 -c64`` loads ``--url`` from core 1, and
after a warm-up ``py-spy record --format raw`` samples the server (``--native`` off, so the
stacks are Python frames). The summary lists the share of samples by innermost Python
function (self time) and by function anywhere on the stack (inclusive time), which is what
``bench/profiles/*.txt`` hold. py-spy must be installed (``pip install py-spy``) and allowed to
attach (root, or ``ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

SERVER_CPU = "0"
CLIENT_CPU = "1"


def wait_for_port(host: str, port: int, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {host}:{port} after {deadline_s:.0f} s")


# A raw py-spy line: "frame;frame;... count", each frame "function (file:line)".
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def function_of(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['func']} ({Path(match['file']).name})"


def summarize(raw: str, title: str, top: int) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [function_of(f) for f in stack.split(";") if f]
        # py-spy prefixes the thread ("process 123:...", "thread (0x...)"): not functions.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    lines = [f"{title}: {total} samples", "", "self (innermost Python function):"]
    for name, count in self_time.most_common(top):
        lines.append(f"  {100 * count / total:5.1f}%  {name}")
    lines += ["", "inclusive (anywhere on the stack):"]
    for name, count in inclusive.most_common(top):
        lines.append(f"  {100 * count / total:5.1f}%  {name}")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="what wrk requests")
    p.add_argument("--title", default="profile", help="first line of the summary")
    p.add_argument("--seconds", type=int, default=8, help="seconds sampled")
    p.add_argument("--warmup", type=int, default=2, help="seconds of load before sampling")
    p.add_argument("--rate", type=int, default=250, help="samples per second")
    p.add_argument("--top", type=int, default=25, help="rows per list")
    p.add_argument("--out", type=Path, help="write the summary here as well")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- the server command")
    opts = p.parse_args()
    command = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    if not command:
        p.error("give the server command after --")
    url = urlsplit(opts.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    server = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command], start_new_session=True)
    try:
        wait_for_port(host, port)
        wrk = subprocess.Popen(
            [
                "taskset",
                "-c",
                CLIENT_CPU,
                "wrk",
                "-t1",
                "-c64",
                f"-d{opts.warmup + opts.seconds + 2}s",
                opts.url,
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(opts.warmup)
        with tempfile.TemporaryDirectory() as tmp:
            raw_path = Path(tmp) / "raw.txt"
            subprocess.run(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(opts.seconds),
                    "--rate",
                    str(opts.rate),
                    "--format",
                    "raw",
                    "--output",
                    str(raw_path),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            raw = raw_path.read_text()
        wrk.wait()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    summary = summarize(raw, opts.title, opts.top)
    sys.stdout.write(summary)
    if opts.out is not None:
        opts.out.write_text(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
