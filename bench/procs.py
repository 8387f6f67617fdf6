"""What bench/run.py and bench/protocols.py share: the cores, the peers' venv, /proc readings.

A module of its own so that neither script imports the other.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-peers"
PEER_PYTHON = VENV / "bin" / "python"
# The server runs pinned to core 0, the load generator to core 1.
SERVER_CPU = "0"
CLIENT_CPU = "1"


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE as far as allowed (children, servers and wrk, inherit it)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    try:
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    except OSError:
        nr_open = hard
    for want in (nr_open, 1 << 20, 1 << 17, 1 << 16):
        if want <= hard:
            break
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """The pid and all its descendants (granian runs its worker as a child process)."""
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def memory_kib(pids: list[int], key: str) -> int:
    """A /proc/PID/status value in KiB (VmRSS, VmHWM), summed over the processes."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith(key + ":"):
                total += int(line.split()[1])
                break
    return total
