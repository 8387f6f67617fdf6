"""The ASGI lifespan protocol: an application's start-up and shut-down around serving.

:class:`Lifespan` runs the application once with a ``lifespan`` scope for as long as the
server serves it: ``lifespan.startup`` is the first thing its ``receive()`` returns, and
``lifespan.shutdown`` the second, once :meth:`Lifespan.shutdown` asks for it. What the
application answers decides what follows (the ASGI lifespan specification, 2.0):

- ``lifespan.startup.complete``: serving may begin; the ``state`` dict the application filled
  in is copied (shallowly) into every request's scope;
- ``lifespan.startup.failed`` (with a ``message``), or an exception or a return before any
  answer when lifespan is required (``"on"``): start-up fails with :class:`LifespanFailure`;
- an exception or a return before any answer in ``"auto"`` mode: the application does not
  speak lifespan (a plain app asserting ``scope["type"] == "http"``, say); one informational
  line says so and serving goes on without it, as uvicorn does;
- at shut-down, ``lifespan.shutdown.complete`` ends it; ``lifespan.shutdown.failed``, an
  exception or a return before it is a :class:`LifespanFailure`.

Each phase is bounded by a timeout (hypercorn's 60 s by default): an application that never
answers is a failure too, and its lifespan call is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any, Final

from treadle.web._asgi_types import Application, Message

__all__ = ["LIFESPAN_MODES", "Lifespan", "LifespanFailure"]

error_log = logging.getLogger("treadle.error")

#: ``"auto"``: run the lifespan protocol when the application speaks it; ``"on"``: it must;
#: ``"off"``: never run it.
LIFESPAN_MODES: Final = ("auto", "on", "off")

# What the application has told so far (Lifespan.phase).
IDLE: Final = "idle"  # start-up not asked for yet
STARTING: Final = "starting"
RUNNING: Final = "running"  # start-up complete: serving
UNSUPPORTED: Final = "unsupported"  # "auto", and the application does not speak lifespan
FAILED: Final = "failed"
STOPPING: Final = "stopping"
STOPPED: Final = "stopped"

_STARTUP: Final = {"type": "lifespan.startup"}
_SHUTDOWN: Final = {"type": "lifespan.shutdown"}


class LifespanFailure(Exception):
    """The application's lifespan start-up or shut-down failed.

    The message, one line, names the application and says what happened: the ``message``
    of its ``lifespan.startup.failed``/``lifespan.shutdown.failed`` (its last line, when it
    has several: Starlette sends a whole traceback), the exception it raised (also the
    ``__cause__``), or the timeout it ran past.

    Attributes:
        details: The application's whole ``message`` when it had several lines, else "".
    """

    details = ""


class Lifespan:
    """One application's lifespan call.

    Args:
        app: The ASGI 3 application.
        name: How log lines and failures name it.
        mode: One of :data:`LIFESPAN_MODES`.
        timeout: Seconds each of start-up and shut-down may take (None: no limit).

    Attributes:
        state: The lifespan ``state`` dict (the ASGI ``state`` extension); requests get a
            shallow copy of it in their scope.
        phase: Where the protocol stands: ``"idle"``, ``"starting"``, ``"running"``,
            ``"unsupported"``, ``"failed"``, ``"stopping"`` or ``"stopped"``.
    """

    def __init__(self, app: Application, name: str, mode: str, timeout: float | None) -> None:
        if mode not in LIFESPAN_MODES:
            raise ValueError(f"lifespan must be one of {', '.join(LIFESPAN_MODES)}, not {mode!r}")
        self.app = app
        self.name = name
        self.mode = mode
        self.timeout = timeout
        self.state: dict[str, Any] = {}
        self.phase = IDLE if mode != "off" else UNSUPPORTED
        self._task: asyncio.Task[None] | None = None
        # Resolved by the application's answers (or its end): None, or the failure.
        self._started: asyncio.Future[LifespanFailure | None] | None = None
        self._stopped: asyncio.Future[LifespanFailure | None] | None = None
        # Set when shut-down is asked for: the application's second receive() returns then.
        self._stop_asked: asyncio.Future[None] | None = None
        self._received = 0

    @property
    def ready(self) -> bool:
        """Whether requests may be served: start-up completed, or the protocol is not spoken."""
        return self.phase in (RUNNING, UNSUPPORTED)

    # -- start-up --------------------------------------------------------------------------

    async def startup(self) -> None:
        """Run the application's start-up (once; later calls wait for the first one's end).

        Raises:
            LifespanFailure: The start-up failed or timed out (also on later calls).
        """
        if self.phase == IDLE:
            loop = asyncio.get_running_loop()
            self._started = loop.create_future()
            self._stopped = loop.create_future()
            self._stop_asked = loop.create_future()
            self.phase = STARTING
            scope = {
                "type": "lifespan",
                "asgi": {"version": "3.0", "spec_version": "2.0"},
                "state": self.state,
            }
            call = self.app(scope, self._receive, self._send)
            task = self._task = loop.create_task(call)  # type: ignore[arg-type]
            task.add_done_callback(self._ended)
        if self._started is None:
            return  # "off"
        failure = await self._wait(self._started, "start-up")
        if failure is not None:
            raise failure

    # -- shut-down -------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Run the application's shut-down, if its start-up completed (once).

        Raises:
            LifespanFailure: The shut-down failed or timed out.
        """
        if self.phase == RUNNING:
            self.phase = STOPPING
            assert self._stop_asked is not None
            if not self._stop_asked.done():
                self._stop_asked.set_result(None)
        elif self.phase != STOPPING:
            return
        assert self._stopped is not None
        failure = await self._wait(self._stopped, "shut-down")
        if failure is not None:
            raise failure

    # -- the application's side ----------------------------------------------------------------

    async def _receive(self) -> Message:
        self._received += 1
        if self._received == 1:
            return dict(_STARTUP)
        assert self._stop_asked is not None
        await asyncio.shield(self._stop_asked)
        if self._received == 2:
            return dict(_SHUTDOWN)
        # A third receive() has nothing to wait for: it waits until the call is cancelled.
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, message: Message) -> None:
        kind = message.get("type") if isinstance(message, MutableMapping) else None
        phase = self.phase
        if kind == "lifespan.startup.complete" and phase == STARTING:
            self.phase = RUNNING
            _settle(self._started, None)
        elif kind == "lifespan.startup.failed" and phase == STARTING:
            self.phase = FAILED
            _settle(self._started, self._failure("start-up", *_said(message)))
        elif kind == "lifespan.shutdown.complete" and phase in (STOPPING, RUNNING):
            # (While running: the call is being closed, or shut itself down, unasked.)
            self.phase = STOPPED
            _settle(self._stopped, None)
        elif kind == "lifespan.shutdown.failed" and phase in (STOPPING, RUNNING):
            self.phase = FAILED
            _settle(self._stopped, self._failure("shut-down", *_said(message)))
        else:
            raise RuntimeError(
                f"unexpected ASGI lifespan message {kind!r} (lifespan is {phase}); "
                "see the ASGI lifespan specification"
            )

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The application's lifespan call returned, raised or was cancelled."""
        self._task = None
        error = None if task.cancelled() else task.exception()
        phase = self.phase
        if phase == STARTING:
            if self.mode == "auto" and not task.cancelled():
                self.phase = UNSUPPORTED
                error_log.info(
                    "ASGI application %s does not speak the lifespan protocol (%s); "
                    "serving without start-up and shut-down",
                    self.name,
                    "it returned" if error is None else f"it raised {error!r}",
                )
                _settle(self._started, None)
                return
            self.phase = FAILED
            _settle(self._started, self._failure("start-up", _ending(task), cause=error))
        elif phase == STOPPING:
            self.phase = FAILED
            _settle(self._stopped, self._failure("shut-down", _ending(task), cause=error))
        elif phase == RUNNING and error is not None:
            # Crashed while serving: nothing to stop at shut-down any more.
            self.phase = STOPPED
            error_log.error(
                "ASGI application %s: its lifespan call raised while serving",
                self.name,
                exc_info=error,
            )
            _settle(self._stopped, None)
        elif phase == RUNNING:
            self.phase = STOPPED  # returned after start-up: shut-down has nothing to do
            _settle(self._stopped, None)

    # -- helpers ---------------------------------------------------------------------------

    async def _wait(
        self, answer: asyncio.Future[LifespanFailure | None], what: str
    ) -> LifespanFailure | None:
        """Wait for ``answer`` within the timeout; a timeout fails and cancels the call."""
        try:
            return await asyncio.wait_for(asyncio.shield(answer), self.timeout)
        except TimeoutError:
            failure = self._failure(what, f"no answer within {self.timeout:g} s")
            self.phase = FAILED
            _settle(answer, failure)
            if self._task is not None:
                self._task.cancel()
            return answer.result()

    def _failure(
        self, what: str, detail: str, details: str = "", cause: BaseException | None = None
    ) -> LifespanFailure:
        failure = LifespanFailure(f"ASGI application {self.name}: lifespan {what} failed: {detail}")
        failure.__cause__ = cause
        failure.details = details
        return failure


def _settle(
    future: asyncio.Future[LifespanFailure | None] | None, result: LifespanFailure | None
) -> None:
    if future is not None and not future.done():
        future.set_result(result)


def _said(message: Message) -> tuple[str, str]:
    """The one-line summary of a ``*.failed`` message, and the whole of it if longer."""
    text = str(message.get("message") or "").strip()
    if not text:
        return "the application reported a failure (no message)", ""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        return text, ""
    return lines[-1].strip(), text


def _ending(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return "its lifespan call was cancelled"
    error = task.exception()
    if error is None:
        return "its lifespan call returned without answering"
    return f"its lifespan call raised {error!r}"
