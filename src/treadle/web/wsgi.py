"""WSGI applications in a resource tree: ``WSGIResource(reactor, threadpool, application)``.

A :pep:`3333` container, as Twisted's ``twisted.web.wsgi``: the application (Flask, Django,
Bottle...) runs in a worker thread of ``threadpool`` and never on the event loop, so a slow
view does not delay other requests. ``WSGIResource`` is a leaf: the segments consumed to
reach it become ``SCRIPT_NAME``, the rest ``PATH_INFO``.

Threads and backpressure. :meth:`WSGIResource.render` builds the environ on the loop (the
request is only touched there), registers a streaming producer on the request and hands the
application to the pool. The worker calls the application and iterates its result; each
non-empty block is handed to the loop with ``call_soon_threadsafe`` and the worker waits
until the loop has written it *and* the transport has room: the producer's
``pauseProducing``/``resumeProducing`` (driven by the transport's water marks) clear and set
a :class:`threading.Event` the worker waits on. So a body of any size holds at most one
block plus the transport's buffer in memory, and a slow client slows the application down.
When the client leaves, ``stopProducing`` (or, for a request driven by hand, its
``notifyFinish`` failing) sets a flag the worker reads between blocks: the iteration stops
there, and a request still queued for a thread is never run. The result's ``close()`` is
called in every case, before the response ends (as in Twisted). A list or tuple result (its
length known) goes out in one write with a ``Content-Length``, as :pep:`3333` allows. A pool
that runs the application at once on the loop's own thread (as test suites' synchronous pools
do) gets its blocks written at once instead of waiting for a loop that cannot turn.

Errors. An exception from the application (or from the result's ``close()``) before the
status line is sent is answered with the site's 500 page and logged to ``treadle.error``;
after it, the connection is aborted (the client must not take a cut body for a whole one).
``start_response`` enforces :pep:`3333` with Twisted's messages: a second call needs
``exc_info`` (and re-raises it once the headers are sent), the status must be ``"NNN
Reason"``, headers a list of ``(str, str)`` tuples (another sequence passes with a
:class:`RuntimeWarning`, as in Twisted) in Latin-1 without line breaks or hop-by-hop names;
a violation raises ``TypeError``, ``ValueError`` or ``RuntimeError`` inside the application.
``Server`` and ``Date`` are always the server's. A body longer than the application's own
``Content-Length`` is cut to it, and a shorter one closes the connection, so that the next
response on a keep-alive connection is never read as part of this one. ``wsgi.errors``
makes error events shaped as Twisted's, one per complete line(s) written (see
:mod:`treadle.web._wsgi_environ`).

Differences from Twisted: ``threadpool`` may be a :class:`concurrent.futures.Executor` (or
None for a shared pool of :data:`DEFAULT_POOL_SIZE` threads) as well as an object with
Twisted's ``callInThread``; with treadle's reactor the loop is the one serving the request
(the reactor is used only when rendering outside a running loop; another ``reactor``
object's ``callFromThread`` is used as given, as in Twisted); writes wait for the transport
to drain, not just for the loop to take them; headers whose names contain ``_`` are left
out of the environ (they would be indistinguishable from their ``-`` twins, a
header-spoofing vector that nginx and gunicorn close the same way); ``Cookie`` fields are
joined with ``"; "`` (Twisted: ``","``, which runs two cookies into one); a chunked request,
which has no ``Content-Length``, gets the size of its body as ``CONTENT_LENGTH`` (the body
is buffered whole before the application runs, so no ``wsgi.input_terminated`` is needed,
whose unsized ``read()`` strict PEP 3333 readers reject); ``write`` raises
``ConnectionError`` once the client has left, so a producing loop stops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol

from zope.interface import implementer

from treadle.web._app_import import import_application
from treadle.web._wsgi_environ import ErrorStream, check_headers, environ_of
from treadle.web.resource import IResource
from treadle.web.server import NOT_DONE_YET

if TYPE_CHECKING:
    from treadle.web.resource import ResourceLike
    from treadle.web.server import Request

__all__ = ["DEFAULT_POOL_SIZE", "WSGIResource", "resource_from_name"]

error_log = logging.getLogger("treadle.error")

#: Threads of the shared pool used when ``WSGIResource`` gets no ``threadpool``: as many
#: WSGI requests run at once (Twisted's reactor pool defaults to 10 threads too). Further
#: requests wait in the pool's queue.
DEFAULT_POOL_SIZE: Final = 10

# How long a worker waits on the loop before checking that the loop still exists: a loop
# stopped or closed under a waiting worker must not leave the thread hanging forever.
_WAIT_SLICE: Final = 0.5

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Write = Callable[[bytes], None]
StartResponse = Callable[..., Write]
Application = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ThreadPool(Protocol):
    """Twisted's thread-pool shape, accepted as ``threadpool``."""

    def callInThread(self, func: Callable[..., object], *args: Any, **kw: Any) -> None:
        """Run ``func(*args, **kw)`` in a worker thread."""
        ...


class _Executor(Protocol):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...


_default_pool: ThreadPoolExecutor | None = None
_default_pool_lock = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    """Return the pool used when none is given, creating it on first use."""
    global _default_pool
    with _default_pool_lock:
        if _default_pool is None:
            _default_pool = ThreadPoolExecutor(DEFAULT_POOL_SIZE, thread_name_prefix="treadle-wsgi")
        return _default_pool


class _ClientGone(ConnectionError):
    """The client left (or the loop went away): stop producing the body."""


def _close(result: object) -> None:
    """Call ``result.close()`` when it has one (PEP 3333)."""
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _own_reactor() -> Any:
    """treadle's reactor, imported when first needed (as the other web modules do)."""
    from treadle.internet import reactor

    return reactor


class _Response:
    """One request's trip through the application.

    Methods named ``_on_loop``/``*Producing`` run on the event loop; the others run in the
    worker thread. They share only the two events and the ``_stopped`` flag.
    """

    def __init__(self, reactor: Any, own: bool, request: Request, application: Application) -> None:
        self.request = request
        self.application = application
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        # ``own``: the reactor is treadle's, which gives way to the loop serving the request.
        # Another (a test double, say) is used as given, as in Twisted.
        self._loop = loop if own else None
        self._loop_thread = threading.get_ident() if own and loop is not None else None
        self._call: Callable[..., object] = (
            loop.call_soon_threadsafe if own and loop is not None else reactor.callFromThread
        )
        self._inline = False  # the worker is the loop's own thread (a synchronous pool)
        self._errors = ErrorStream(request)
        self.environ = environ_of(request, self._errors)
        # The application names its own content type; none is added (as in Twisted).
        request.defaultContentType = None
        # Shared between the threads.
        self._stopped = False
        self._written = threading.Event()  # the loop took the last block
        self._room = threading.Event()  # the transport is below its high-water mark
        self._room.set()
        # Worker side.
        self._status: tuple[int, bytes] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._declared: int | None = None
        self._headers_sent = False
        # Loop side.
        self._started = False
        self._remaining: int | None = None
        # A channel stops its producer when the client leaves; a request driven by hand
        # only says so through notifyFinish (as in Twisted, which stops iterating on it).
        request.notifyFinish().addErrback(self._gone)

    def _gone(self, reason: object) -> None:
        self.stopProducing()

    # -- the producer the request pauses, resumes and stops (loop thread) --------------------

    def pauseProducing(self) -> None:
        """The transport is full: hold the worker before its next block."""
        self._room.clear()

    def resumeProducing(self) -> None:
        """The transport drained: let the worker go on."""
        self._room.set()

    def stopProducing(self) -> None:
        """The client left: make the worker stop at its next block."""
        self._stopped = True
        self._room.set()
        self._written.set()

    # -- worker thread ------------------------------------------------------------------------

    def run(self) -> None:
        """Call the application and deliver its body (in a worker thread)."""
        if self._stopped:
            return  # the client left while the request waited for a thread
        # A pool that runs work at once (tests use such) calls from the loop's thread: posting
        # to the loop and waiting for it would wait forever, so the loop's work is done here.
        self._inline = self._loop_thread == threading.get_ident()
        result: Iterable[bytes] | None = None
        try:
            result = self.application(self.environ, self.start_response)
            whole: bytes | None = None
            if isinstance(result, list | tuple) and not self._headers_sent:
                whole = self._joined(result)
            else:
                for block in result:
                    if type(block) is not bytes:
                        raise TypeError(
                            f"the application yielded {type(block).__name__}, not bytes"
                        )
                    if block:
                        self._send(block)
            # close() before the response ends (as Twisted): one that raises is an error of
            # the application, and the response is then cut short rather than passed whole.
            closing, result = result, None
            _close(closing)
            if whole is not None:
                self._send_whole(whole)
            else:
                self._end()
        except _ClientGone:
            pass
        except BaseException as exc:  # a worker thread has no caller to re-raise to
            self._fail(exc)
        finally:
            if result is not None:
                try:
                    _close(result)
                except BaseException:
                    error_log.exception("Error closing the WSGI result of %r", self.request)
            self._errors.flush()

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Write:
        """PEP 3333's ``start_response``.

        Raises:
            BaseException: ``exc_info``'s exception, when given after the headers were sent.
            TypeError, ValueError: The status or headers break PEP 3333's rules.
        """
        if exc_info is not None:
            try:
                if self._headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback (PEP 3333)
        # Called again without exc_info (PEP 3333 calls it an error): the new status and
        # headers replace the old ones if none were sent yet, as in Twisted.
        code, reason, encoded, declared = check_headers(status, headers)
        self._status = (code, reason)
        self._headers = encoded
        self._declared = declared
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write`` callable: send ``data`` now (waits while the client is slow).

        Raises:
            RuntimeError: ``start_response`` was not called yet.
            TypeError: ``data`` is not bytes.
            ConnectionError: The client has gone away.
        """
        if type(data) is not bytes:
            raise TypeError(f"Can only write bytes to a transport, not {data!r}")
        if data:
            self._send(data)
        elif self._status is None:
            raise RuntimeError("write() called before start_response")

    def _need_status(self) -> None:
        if self._status is None:
            raise RuntimeError("the application sent body bytes before calling start_response")

    def _send(self, block: bytes) -> None:
        self._need_status()
        if self._stopped:
            raise _ClientGone
        self._headers_sent = True
        if self._inline:
            self._write_on_loop(block)
        else:
            self._written.clear()
            self._post(self._write_on_loop, block)
            self._wait(self._written)
            self._wait(self._room)
        if self._stopped:
            raise _ClientGone

    def _joined(self, blocks: list[bytes] | tuple[bytes, ...]) -> bytes:
        for block in blocks:
            if type(block) is not bytes:
                raise TypeError(f"the application returned {type(block).__name__}, not bytes")
        self._need_status()
        return b"".join(blocks)

    def _send_whole(self, body: bytes) -> None:
        self._headers_sent = True
        self._post(self._whole_on_loop, body)

    def _end(self) -> None:
        self._need_status()
        self._headers_sent = True
        self._post(self._end_on_loop)

    def _fail(self, exc: BaseException) -> None:
        try:
            self._post(self._fail_on_loop, exc)
        except _ClientGone:
            error_log.error("WSGI application error after the loop stopped", exc_info=exc)

    def _post(self, func: Callable[..., None], *args: Any) -> None:
        if self._inline:
            func(*args)
            return
        try:
            self._call(func, *args)
        except RuntimeError:  # the loop is closed
            self._stopped = True
            raise _ClientGone from None

    def _wait(self, event: threading.Event) -> None:
        loop = self._loop
        while not event.wait(_WAIT_SLICE):
            if loop is not None and (loop.is_closed() or not loop.is_running()):
                self._stopped = True
                raise _ClientGone

    # -- loop thread ----------------------------------------------------------------------------

    def _body_allowed(self) -> bool:
        code = self.request.code
        return self.request.method != b"HEAD" and code >= 200 and code not in (204, 304)

    def _start_on_loop(self) -> None:
        """Put the application's status and headers on the response."""
        assert self._status is not None
        self._started = True
        request = self.request
        code, reason = self._status
        request.setResponseCode(code, reason or None)
        headers = request.responseHeaders
        for name, value in self._headers:
            headers.addRawHeader(name, value)
        if self._body_allowed():
            self._remaining = self._declared

    def _clip(self, block: bytes) -> bytes:
        """Cut ``block`` to what the declared Content-Length still allows."""
        remaining = self._remaining
        if remaining is None:
            return block
        if len(block) > remaining:
            error_log.warning(
                "WSGI application sent more than its Content-Length of %d; extra dropped (%r)",
                self._declared,
                self.request,
            )
            block = block[:remaining]
        self._remaining = remaining - len(block)
        return block

    def _write_on_loop(self, block: bytes) -> None:
        try:
            if not self._stopped:
                if not self._started:
                    self._start_on_loop()
                block = self._clip(block)
                if block:
                    self.request.write(block)
        except BaseException as exc:
            self._abandon(exc)
        finally:
            self._written.set()

    def _whole_on_loop(self, body: bytes) -> None:
        try:
            if self._stopped:
                return
            self._start_on_loop()
            if self._declared is None and self._body_allowed():
                self.request.setHeader(b"content-length", b"%d" % len(body))
            body = self._clip(body)
            if body:
                self.request.write(body)
            self._end_on_loop()
        except BaseException as exc:
            self._abandon(exc)

    def _end_on_loop(self) -> None:
        try:
            if self._stopped:
                return
            if not self._started:
                self._start_on_loop()
            request = self.request
            request.unregisterProducer()
            if self._remaining:
                error_log.error(
                    "WSGI application sent %d bytes less than its Content-Length; "
                    "closing the connection (%r)",
                    self._remaining,
                    request,
                )
                self._stopped = True
                request.loseConnection()
                return
            request.finish()
        except BaseException as exc:
            self._abandon(exc)

    def _fail_on_loop(self, exc: BaseException) -> None:
        self._stopped = True
        request = self.request
        request.unregisterProducer()
        if not request.finished:
            # A 500 page before the head is sent, an aborted connection after; logged.
            request.processingFailed(exc)

    def _abandon(self, exc: BaseException) -> None:
        """Something failed on the loop side: stop the worker and fail the request."""
        self.stopProducing()
        try:
            self.request.processingFailed(exc)
        except Exception:
            error_log.exception("Error failing %r", self.request)


@implementer(IResource)
class WSGIResource:
    """A leaf resource that answers every request below it with a WSGI application.

    Args:
        reactor: The reactor (Twisted's signature). With treadle's, blocks are handed to the
            loop serving each request (the reactor is used only when rendering outside a
            running loop); any other object's ``callFromThread`` is used as it is, as in
            Twisted (test doubles that run calls at once, say).
        threadpool: Where the application runs: a :class:`concurrent.futures.Executor`
            (``ThreadPoolExecutor(20)``), an object with Twisted's ``callInThread``, or
            None for a shared pool of :data:`DEFAULT_POOL_SIZE` threads.
        application: The PEP 3333 application callable.
    """

    isLeaf = True

    def __init__(
        self,
        reactor: Any,
        threadpool: ThreadPool | _Executor | None,
        application: Application,
    ) -> None:
        self._reactor = reactor
        self._own_reactor = reactor is None or reactor is _own_reactor()
        self._threadpool = threadpool
        self._application = application

    def render(self, request: Request) -> int:
        """Start the application for ``request`` in the pool; the response follows later.

        Returns:
            ``NOT_DONE_YET``.
        """
        response = _Response(self._reactor, self._own_reactor, request, self._application)
        request.registerProducer(response, True)
        pool: Any = self._threadpool if self._threadpool is not None else _shared_pool()
        submit = getattr(pool, "submit", None)
        if submit is not None:
            submit(response.run)
        else:
            pool.callInThread(response.run)
        return NOT_DONE_YET

    def getChildWithDefault(self, name: bytes, request: Request) -> ResourceLike:
        """Never called for a leaf.

        Raises:
            RuntimeError: Always, as in Twisted.
        """
        raise RuntimeError("Cannot get ResourceLike children from WSGIResource")

    def putChild(self, path: bytes, child: ResourceLike) -> None:
        """A WSGI application has no resource children.

        Raises:
            RuntimeError: Always, as in Twisted.
        """
        raise RuntimeError("Cannot put ResourceLike children under WSGIResource")


def resource_from_name(name: str, threadpool: ThreadPool | _Executor | None = None) -> WSGIResource:
    """Import the WSGI application ``name`` and wrap it in a :class:`WSGIResource`.

    Args:
        name: ``"package.module:application"`` (the attribute may be dotted:
            ``"app:server.wsgi"``) or ``"package.module.application"``.
        threadpool: As for :class:`WSGIResource` (None: the shared pool).

    Returns:
        A resource serving the application.

    Raises:
        ValueError: ``name`` has neither form, or the module has no such attribute.
        ImportError: The module cannot be imported.
        TypeError: The attribute is not callable.
    """
    found = import_application(name, "WSGI", "application")
    from treadle.internet import reactor

    return WSGIResource(reactor, threadpool, found)
