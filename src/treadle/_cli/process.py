"""The running ``treadle web`` process: log handlers, pid file, signals and shutdown, and
the lifespan of an ``--asgi`` application around serving.

:func:`treadle._cli.main.serve` sets these up around ``reactor.run`` and undoes them after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

from treadle._cli.errors import StartupError
from treadle._cli.options import WebOptions
from treadle.internet import reactor
from treadle.internet._reactor import ListeningPort
from treadle.web.server import Site

__all__ = ["AppLifespan", "Logging", "PidFile", "Shutdown", "finish_loop"]

# The command's own logger keeps its name (treadle._cli.workers logs under it too).
log = logging.getLogger("treadle.cli")
access_log = logging.getLogger("treadle.access")


class Logging:
    """The process's log setup: errors to stderr, the access log where asked; undoable.

    Attributes:
        access_stream: Where the site writes its access log (standard output or the
            ``--logfile`` file), None with ``--no-access-log``; see :meth:`attach_access_log`.
    """

    def __init__(self, options: WebOptions) -> None:
        self._undo: list[tuple[logging.Logger, logging.Handler | None, int, bool]] = []
        self._owned_stream: IO[str] | None = None
        self._flush_access_log: Callable[[], None] | None = None
        self.access_stream: IO[str] | None = None
        errors = logging.StreamHandler(sys.stderr)
        errors.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        self._attach(root, errors, logging.INFO, root.propagate)
        # The site writes its lines itself (Site.logToStream: batched, no LogRecord per
        # request); the logger is silenced so that nothing else reports them twice.
        self._attach(access_log, None, logging.CRITICAL + 1, False)
        if not options.access_log:
            return
        if options.logfile == "-":
            self.access_stream = sys.stdout
            return
        try:
            self._owned_stream = open(options.logfile, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            self.close()
            raise StartupError(f"--logfile {options.logfile}: {e.strerror or e}") from None
        self.access_stream = self._owned_stream

    def attach_access_log(self, site: Site) -> None:
        """Have ``site`` write its access log where the options said (nothing if nowhere)."""
        if self.access_stream is not None:
            self._flush_access_log = site.logToStream(self.access_stream).flush

    def _attach(
        self, logger: logging.Logger, handler: logging.Handler | None, level: int, propagate: bool
    ) -> None:
        self._undo.append((logger, handler, logger.level, logger.propagate))
        if handler is not None:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate

    def close(self) -> None:
        """Detach and close the handlers, restore levels (main may be called in-process)."""
        for logger, handler, level, propagate in reversed(self._undo):
            if handler is not None:
                logger.removeHandler(handler)
                handler.close()
            logger.setLevel(level)
            logger.propagate = propagate
        self._undo.clear()
        if self._flush_access_log is not None:
            self._flush_access_log()  # the lines of the loop's last turn
            self._flush_access_log = None
        if self._owned_stream is not None:
            self._owned_stream.close()
            self._owned_stream = None
        self.access_stream = None


class PidFile:
    """The ``--pidfile`` file: written at start, unless another live process holds it.

    Raises:
        StartupError: Another running process wrote the file, or it cannot be written.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(path) as f:
                other = int(f.read().strip() or 0)
        except (OSError, ValueError):
            other = 0
        if other and other != os.getpid() and _process_exists(other):
            raise StartupError(
                f"--pidfile {path}: process {other} is running with this "
                "pidfile; is another server running?"
            )
        try:
            with open(path, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as e:
            raise StartupError(f"--pidfile {path}: {e.strerror or e}") from None

    def remove(self) -> None:
        """Remove the file (at exit); a file already gone is fine."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is someone else's
        return True
    return True


class AppLifespan:
    """The lifespan of an ``--asgi`` application (its ``ASGIResource``) around serving.

    :meth:`start` runs the start-up before the ports open; :meth:`stop` the shut-down, after
    the graceful drain; :meth:`stop_now` runs it in the end if the drain did not (serving
    never began, or the reactor stopped otherwise), unless a second signal cut things short
    (:meth:`skip`, as uvicorn's forced exit).
    """

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self._state = "new"  # -> "started" -> "stopped"

    def start(self) -> None:
        """Run the start-up on the reactor's loop (before it runs).

        Raises:
            StartupError: The start-up failed, timed out, or was interrupted.
        """
        from treadle.web.asgi import LifespanFailure

        try:
            reactor.loop.run_until_complete(self.resource.startup())
        except LifespanFailure as e:
            if e.details:  # the application's own account (a traceback): before our line
                log.error("%s", e.details)
            raise StartupError(str(e)) from None
        except KeyboardInterrupt:
            raise StartupError(
                f"ASGI application {self.resource.name}: interrupted during its lifespan start-up"
            ) from None
        self._state = "started"

    async def stop(self, timeout: float | None) -> bool:
        """Let the application's running calls end (``timeout`` seconds), then run its
        shut-down; return False (and log why) if the shut-down failed."""
        from treadle.web.asgi import LifespanFailure

        if self._state != "started":
            return True
        self._state = "stopped"
        try:
            await self.resource.shutdown(timeout)
        except LifespanFailure as e:
            log.error("%s%s", e, f"\n{e.details}" if e.details else "", exc_info=e.__cause__)
            return False
        return True

    def skip(self) -> None:
        """A second signal: the process stops without the shut-down."""
        self._state = "stopped"

    def stop_now(self) -> bool:
        """Run the shut-down now if it is due and the loop can still run it."""
        loop = reactor.loop
        if self._state != "started" or loop.is_closed() or loop.is_running():
            return True
        stopped: bool = loop.run_until_complete(self.stop(0.0))
        return stopped


class Shutdown:
    """Signal handling: the first signal drains gracefully, the second stops at once.

    With ``lifespan`` (an ``--asgi`` application), the drain ends with its shut-down: the
    calls still running (background tasks) get what is left of the grace period, and a
    failed shut-down makes the exit status 1.
    """

    def __init__(
        self,
        site: Site,
        ports: list[ListeningPort],
        grace: float,
        lifespan: AppLifespan | None = None,
    ) -> None:
        self.site = site
        self.ports = ports
        self.grace = grace
        self.lifespan = lifespan
        self.exit_code = 0
        self._draining: asyncio.Task[None] | None = None
        self._stopped = False

    def on_signal(self, signum: int) -> None:
        """Start the graceful drain on the first signal; on the second, stop at once."""
        name = signal.Signals(signum).name
        if self._draining is None:
            log.info(
                "%s: shutting down; %d open connection(s) have %gs to finish (signal "
                "again to stop at once)",
                name,
                len(self.site.connections),
                self.grace,
            )
            self._draining = asyncio.ensure_future(self._drain())
            return
        log.warning(
            "%s again: stopping now, cutting off %d connection(s)", name, len(self.site.connections)
        )
        self.exit_code = 128 + signum
        if self.lifespan is not None:
            self.lifespan.skip()
        self._draining.cancel()
        for channel in self.site.connections:
            channel.abort()
        self._stop_reactor()

    async def _drain(self) -> None:
        try:
            for port in self.ports:
                port.stopListening()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.grace
            drained = await self.site.shutdown(self.grace)
            if not drained:
                log.warning(
                    "grace period of %gs over: cut off the responses still running", self.grace
                )
            if self.lifespan is not None:
                left = max(0.0, deadline - loop.time())
                if not await self.lifespan.stop(left) and not self.exit_code:
                    self.exit_code = 1
        finally:
            # Whatever happened above, the process must not be left running.
            self._stop_reactor()

    def _stop_reactor(self) -> None:
        # Once only: the cancelled drain task stops it too as it unwinds, and a second stop()
        # would end the clean-up run of the loop after reactor.run() has returned.
        if not self._stopped and reactor.running:
            self._stopped = True
            reactor.stop()


@contextlib.contextmanager
def stop_signals_handled(on_signal: Callable[[int], object]) -> Iterator[None]:
    """While the reactor runs, SIGINT and SIGTERM call ``on_signal(signum)`` on its loop.

    The signals are held back until the reactor runs: before the handler is set, one would
    kill the process outright, and uvloop drops one that arrives after the handler is set
    but before the loop runs. Entered before the server starts listening, it covers the
    moment a process manager may signal as soon as the port accepts. (A worker of
    ``--workers`` starts with them blocked already, see :mod:`treadle._cli.workers`.)
    Everything is undone on leaving.
    """
    loop = reactor.loop
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    can_mask = hasattr(signal, "pthread_sigmask")  # not on Windows
    if can_mask:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, threads
            loop.add_signal_handler(signum, on_signal, signum)
            handled.append(signum)
    if can_mask:
        # When the reactor runs, not the loop: starting up (listening, an ASGI lifespan)
        # runs the loop for a moment, and a signal let through then would be dropped.
        reactor.callWhenRunning(signal.pthread_sigmask, signal.SIG_UNBLOCK, stop_signals)
    try:
        yield
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        if can_mask:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """After ``reactor.run`` returned: cancel the tasks left, let them unwind, close the loop."""
    if loop.is_closed():
        return
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    # One more turn lets cancelled tasks unwind and aborted transports report their loss.
    loop.run_until_complete(asyncio.gather(*pending, asyncio.sleep(0), return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def finish_loop(site: Site) -> None:
    """After ``reactor.run`` returned: drop the site's connections, then close the loop."""
    for channel in site.connections:
        channel.abort()
    sharing = site.sessionSharing
    if sharing is not None:
        # The store's connections or file, closed while the loop can still run.
        with contextlib.suppress(Exception):
            reactor.loop.run_until_complete(asyncio.wait_for(sharing.store.close(), 2))
    close_loop(reactor.loop)
