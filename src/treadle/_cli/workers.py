"""``treadle web --workers N``: N server processes on the same ports, supervised.

The supervisor binds nothing it listens on: it reserves each TCP port (bound, never
listening, with ``SO_REUSEPORT``) so that ``tcp:0`` resolves to one real port shared by all
workers and a port in use is reported once, then forks the workers. Every worker listens on
the same ports with ``SO_REUSEPORT`` and the kernel spreads new connections among them;
nothing is passed between processes, so a worker serves exactly as a single process does.
A ``systemd:`` socket needs no reservation: it exists already, and every worker inherits it
across the fork and serves it, the kernel spreading connections among them.

The startup line is printed once every worker listens: each first worker writes its own line
to a pipe when its ports are open, and the supervisor waits for them (looking every 50 ms
for a worker that exited or a stop signal meanwhile). From then on supervision runs without
polling: SIGCHLD, SIGTERM and SIGINT are blocked and collected with ``sigwaitinfo``. A
worker that dies is replaced (unless workers keep dying right after starting, which means
they cannot start at all: then the supervisor gives up). The first SIGTERM/SIGINT is passed
to every worker, which drains its connections within the grace period; a second one is
passed on too, and the workers stop at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Final

from treadle._cli.listen import Endpoint, systemd_socket

if TYPE_CHECKING:
    from treadle._cli.options import WebOptions

__all__ = ["reserve_ports", "run_workers"]

log = logging.getLogger("treadle.cli")

#: A worker that exits within this many seconds of starting counts as failing to start.
_QUICK_DEATH: Final = 1.0
#: After this many quick deaths in a row the supervisor stops replacing workers.
_MAX_QUICK_DEATHS: Final = 5
_PR_SET_PDEATHSIG: Final = 1
_SIGNALS: Final = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def reserve_ports(options: WebOptions) -> tuple[WebOptions, list[socket.socket]]:
    """Bind (without listening) each TCP/TLS endpoint to fix its port for every worker.

    A ``systemd:`` endpoint needs no reservation (the socket exists and every worker
    inherits it); a duplicate of it stands in the list in its place, for the startup line.

    Returns:
        The options with ``port=0`` replaced by the reserved port, and the reserving
        sockets (keep them open while the workers run).

    Raises:
        OSError: A port cannot be bound (in use, bad interface).
        ValueError: A UNIX endpoint was given (one socket path cannot be shared this way).
        StartupError: systemd passed no socket a ``systemd:`` endpoint names.
    """
    reserved: list[socket.socket] = []
    endpoints: list[Endpoint] = []
    try:
        for endpoint in options.listen:
            if endpoint.kind == "systemd":
                # Already listening, and inherited by every worker: only looked at here,
                # through a duplicate, for the startup line.
                fd, family = systemd_socket(endpoint)
                reserved.append(socket.socket(family, socket.SOCK_STREAM, fileno=os.dup(fd)))
                endpoints.append(endpoint)
                continue
            if endpoint.kind == "unix":
                raise ValueError(
                    f"{endpoint.description}: --workers needs tcp, tcp6, ssl or systemd endpoints"
                )
            family = socket.AF_INET6 if ":" in endpoint.interface else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            reserved.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # With SO_REUSEPORT set first, a bind to port 0 may pick a port that another
            # process of ours already listens on and join it. Bound first, the port is truly
            # free; the option set afterwards still lets the workers bind beside us.
            if endpoint.port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            default = "::" if family == socket.AF_INET6 else "0.0.0.0"
            sock.bind((endpoint.interface or default, endpoint.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            endpoints.append(dataclasses.replace(endpoint, port=sock.getsockname()[1]))
    except BaseException:
        for sock in reserved:
            sock.close()
        raise
    return dataclasses.replace(options, listen=tuple(endpoints)), reserved


def run_workers(
    options: WebOptions,
    serve: Callable[[WebOptions, IO[str] | None, bool], int],
    announce: Callable[[], object] = lambda: None,
) -> int:
    """Fork ``options.workers`` processes running ``serve`` and supervise them.

    Args:
        options: Options whose ports were fixed by :func:`reserve_ports`.
        serve: Runs one worker: ``serve(options, out, reuse_port)`` returns its exit status.
        announce: Called once every worker listens (the startup line; a worker that
            exited first is not waited for): from then on a stop signal is passed on to
            them, never fatal to the supervisor itself.

    Returns:
        0 when every worker exited cleanly (drained after a signal); 1 when workers could
        not start; otherwise the last non-zero worker status (128 + N after a second
        signal N, as a single process).
    """
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    workers: dict[int, float] = {}
    quick_deaths = 0
    stopping = 0
    status = 0

    # Each first worker writes its start-up line here once it listens (serve() prints it
    # then): the supervisor announces the server only when all of them do.
    ready: list[int] = list(os.pipe())

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            # SIGTERM and SIGINT stay blocked until serve() runs its loop with their handlers
            # set: one passed on while this worker is still starting would otherwise kill it
            # outright (exit status -15) instead of draining it. serve() unblocks them.
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask | {signal.SIGTERM, signal.SIGINT})
            _die_with_parent()
            code = 1
            try:
                with _startup_output(ready) as out:
                    code = serve(options, out, True)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                os._exit(code)
        workers[pid] = time.monotonic()

    try:
        for _ in range(options.workers):
            spawn()
        os.close(ready[1])
        try:
            _wait_until_listening(ready[0], list(workers))
        finally:
            os.close(ready[0])
            ready.clear()  # workers started later write nowhere
        announce()
        while workers:
            info = signal.sigwaitinfo(_SIGNALS)
            if info.si_signo != signal.SIGCHLD:
                stopping += 1
                for pid in workers:
                    # The first signal drains; a second one makes the workers stop at once.
                    _kill(pid, info.si_signo)
                continue
            for pid, code in _reap(workers):
                started = workers.pop(pid)
                if stopping:
                    # Only how the workers end counts: one replaced earlier was handled.
                    status = code or status
                    continue
                if time.monotonic() - started < _QUICK_DEATH:
                    quick_deaths += 1
                else:
                    quick_deaths = 0
                if quick_deaths >= _MAX_QUICK_DEATHS:
                    log.error("workers keep exiting right after they start; giving up")
                    stopping = 1
                    for other in workers:
                        _kill(other, signal.SIGTERM)
                    status = 1
                    continue
                log.warning("worker %d exited with status %d; starting another", pid, code)
                spawn()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return status


def _startup_output(ready: list[int]) -> IO[str]:
    """Where a worker prints its startup line: the supervisor's pipe ``ready`` (read end,
    write end) for the first workers, nowhere for those started later (``ready`` empty)."""
    if not ready:
        return open(os.devnull, "w")
    os.close(ready[0])
    return os.fdopen(ready[1], "w")


def _wait_until_listening(fd: int, pids: list[int]) -> None:
    """Wait until each of the workers ``pids`` listens (wrote a line to ``fd``) or exited.

    So the startup line is true when printed: a client that connects on reading it is
    accepted, never refused by a port no worker listens on yet. A stop signal ends the
    wait (the supervision loop then handles it). While waiting, exits and signals are
    looked at every 50 ms: they are blocked, for ``sigwaitinfo``, and so cannot wake
    ``select``; a worker that exited is looked at without being reaped, which stays the
    supervision loop's to do.
    """
    stop = {signal.SIGTERM, signal.SIGINT}
    lines = 0
    while lines + sum(1 for pid in pids if _exited(pid)) < len(pids):
        if signal.sigpending() & stop:
            return
        readable, _, _ = select.select([fd], [], [], 0.05)
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:  # every worker closed its end: none is left to wait for
                return
            lines += chunk.count(b"\n")


def _exited(pid: int) -> bool:
    """Whether child ``pid`` has exited, leaving it to be reaped."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _die_with_parent() -> None:
    """Have the kernel send SIGTERM to this worker if the supervisor dies (Linux only).

    A supervisor killed with SIGKILL cannot pass anything on; without this its workers would
    keep serving, orphaned, on the ports.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _reap(workers: dict[int, float]) -> list[tuple[int, int]]:
    """Collect every exited child without blocking: ``[(pid, exit status)]``."""
    done = []
    while workers:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if pid in workers:
            done.append((pid, os.waitstatus_to_exitcode(raw)))
    return done


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
