"""XML-RPC over HTTP: the :class:`XMLRPC` resource that publishes methods, and :class:`Proxy`.

``from twisted.web.xmlrpc import XMLRPC, Proxy`` ports as ``from treadle.web.xmlrpc import ...``.
Marshalling is the standard library's :mod:`xmlrpc.client` (``dumps``/``loads``), as in
Twisted, so the bytes a method's result turns into are the same under both.

A published method is an ``xmlrpc_<name>`` method of an :class:`XMLRPC` subclass. It may
return a plain value, a :class:`Fault`, a Deferred, a coroutine or other awaitable (Twisted
runs coroutines too, through ``maybeDeferred``), or a :class:`Handler`. Names containing
:attr:`XMLRPC.separator` are looked up in sub-handlers (``system.listMethods`` lives in the
``system`` sub-handler that :func:`addIntrospection` adds).

Where treadle does better than Twisted (each is listed in the README):

- A pending result is cancelled when the client disconnects (Twisted lets it run to the
  end and drops it), as treadle does for every awaitable a render returns.
- A :class:`Handler` returned by a method is waited for (Twisted tries to marshal the
  handler's Deferred and answers "Can't serialize output").
- :class:`Proxy` takes the URL, user and password as ``str`` or ``bytes`` (Twisted: bytes
  only), escapes the method name in the request body, and sends the port in ``Host`` when
  it is not the scheme's default (Twisted sends the bare host name).
"""

from __future__ import annotations

import asyncio
import base64
import io
import ssl
import xmlrpc.client as xmlrpclib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes, urlsplit
from xml.sax.saxutils import escape
from xmlrpc.client import Binary, Boolean, DateTime, Fault

from treadle.internet import defer, error
from treadle.logger import Logger
from treadle.python.failure import Failure
from treadle.web import resource, server
from treadle.web._client import HTTPConnectionPool, UpstreamConnectError, UpstreamError, _Connection

__all__ = [
    "FAILURE",
    "NOT_FOUND",
    "XMLRPC",
    "Binary",
    "Boolean",
    "DateTime",
    "Fault",
    "Handler",
    "NoSuchFunction",
    "Proxy",
    "XMLRPCIntrospection",
    "addIntrospection",
    "withRequest",
]

#: Fault code of a call to a procedure that does not exist (also ``XMLRPC.NOT_FOUND``).
NOT_FOUND = 8001
#: Fault code of a call that failed: bad input, an exception, a result that cannot be
#: marshalled (also ``XMLRPC.FAILURE``).
FAILURE = 8002

_F = TypeVar("_F", bound=Callable[..., Any])

_RESPONSE_TYPE = b"text/xml; charset=utf-8"


def withRequest(f: _F) -> _F:
    """Mark an ``xmlrpc_`` method as taking the HTTP request before its XML-RPC arguments.

    Example::

        @withRequest
        def xmlrpc_whoami(self, request):
            return request.getClientAddress().host

    Args:
        f: The method.

    Returns:
        ``f`` itself, with the attribute ``withRequest = True``.
    """
    f.withRequest = True  # type: ignore[attr-defined]
    return f


class NoSuchFunction(Fault):
    """The procedure a client called does not exist (its fault code is ``NOT_FOUND``)."""


class Handler:
    """State of a call in progress, for procedures written as a class rather than a method.

    Subclass it, override :meth:`run` to start the work, and fire :attr:`result` (a
    Deferred) with the procedure's result, a :class:`Fault`, or a failure. An ``xmlrpc_``
    method returns the instance: the response is sent when :attr:`result` fires.

    Args:
        resource: The :class:`XMLRPC` resource the call came to.
        *args: Passed to :meth:`run`.

    Attributes:
        resource: As given.
        result: The Deferred the answer comes from.
    """

    def __init__(self, resource: XMLRPC, *args: Any) -> None:
        self.resource = resource
        self.result: defer.Deferred[Any] = defer.Deferred()
        self.run(*args)

    def run(self, *args: Any) -> None:
        """Start the work; the default fails :attr:`result` with ``NotImplementedError``."""
        self.result.errback(NotImplementedError("Implement run() in subclasses"))


def _method_names(cls: type, prefix: str) -> list[str]:
    """Return the names after ``prefix`` of the functions named ``prefix...`` in ``cls``'s
    classes, base classes first (in declaration order) and each name once."""
    found: dict[str, None] = {}

    def visit(klass: type) -> None:
        for base in klass.__bases__:
            visit(base)
        for name, value in vars(klass).items():
            # Plain functions only: a staticmethod or any other attribute is not listed.
            if name.startswith(prefix) and len(name) > len(prefix) and _is_function(value):
                found[name[len(prefix) :]] = None

    visit(cls)
    return list(found)


def _is_function(value: object) -> bool:
    return type(value) is type(_is_function)


class XMLRPC(resource.Resource):
    """A leaf resource answering XML-RPC calls POSTed to it (other methods get 405).

    Publishes the ``xmlrpc_<name>`` methods of a subclass. A method's result is marshalled
    into the response; a :class:`Fault` (returned or raised) becomes a fault response; any
    other exception is logged and becomes ``Fault(FAILURE, "error")``, so no detail leaks
    to the client. An undecodable request body gets a ``FAILURE`` fault, an unknown
    procedure a ``NOT_FOUND`` one; the HTTP status is 200 in every case.

    Args:
        allowNone: Marshal ``None`` (the ``<nil/>`` extension) in results; without it a
            ``None`` result becomes a ``FAILURE`` fault "Can't serialize output".
        useDateTime: Hand ``dateTime.iso8601`` arguments to methods as
            :class:`datetime.datetime` rather than :class:`DateTime`.

    Attributes:
        NOT_FOUND: Fault code for an unknown procedure (8001); change it per class or instance
            if it clashes with yours.
        FAILURE: Fault code for a failed call (8002).
        separator: Joins a sub-handler's prefix and the procedure name (``"."``).
        subHandlers: Sub-handlers by prefix.
        allowNone, useDateTime: As given.
    """

    NOT_FOUND = NOT_FOUND
    FAILURE = FAILURE

    isLeaf = True
    separator = "."
    allowedMethods = (b"POST",)
    _log = Logger()

    def __init__(self, allowNone: bool = False, useDateTime: bool = False) -> None:
        super().__init__()
        self.subHandlers: dict[str, XMLRPC] = {}
        self.allowNone = allowNone
        self.useDateTime = useDateTime

    # -- sub-handlers and lookup ---------------------------------------------------------------

    def putSubHandler(self, prefix: str, handler: XMLRPC) -> None:
        """Publish ``handler``'s procedures under ``prefix`` + :attr:`separator`.

        Args:
            prefix: The prefix (without the separator); an existing one is replaced.
            handler: Any object with ``lookupProcedure`` (usually an :class:`XMLRPC`).
        """
        self.subHandlers[prefix] = handler

    def getSubHandler(self, prefix: str) -> XMLRPC | None:
        """Return the sub-handler published under ``prefix``, or None."""
        return self.subHandlers.get(prefix)

    def getSubHandlerPrefixes(self) -> list[str]:
        """Return the prefixes of every sub-handler."""
        return list(self.subHandlers)

    def lookupProcedure(self, procedurePath: str) -> Callable[..., Any]:
        """Return the callable that serves ``procedurePath``.

        A path containing :attr:`separator` is handed, without its first part, to the
        sub-handler named by that part. Otherwise the result is ``self.xmlrpc_<path>``.
        Override to publish procedures another way (and :meth:`listProcedures` with it).

        Args:
            procedurePath: The method name the client sent.

        Returns:
            The callable; it is called with the call's arguments (preceded by the request
            when it is marked :func:`withRequest`).

        Raises:
            NoSuchFunction: No sub-handler has the prefix, or no callable has the name.
        """
        if self.separator in procedurePath:
            prefix, rest = procedurePath.split(self.separator, 1)
            handler = self.getSubHandler(prefix)
            if handler is None:
                raise NoSuchFunction(self.NOT_FOUND, f"no such subHandler {prefix}")
            return handler.lookupProcedure(rest)
        function = getattr(self, f"xmlrpc_{procedurePath}", None)
        if not function:
            raise NoSuchFunction(self.NOT_FOUND, f"procedure {procedurePath} not found")
        if not callable(function):
            raise NoSuchFunction(self.NOT_FOUND, f"procedure {procedurePath} not callable")
        return function  # type: ignore[no-any-return]

    def listProcedures(self) -> list[str]:
        """Return the names of the procedures this resource publishes itself.

        The names of the class's (and its bases') ``xmlrpc_`` functions, without the prefix
        and without sub-handlers' procedures.
        """
        return _method_names(type(self), "xmlrpc_")

    # -- rendering -------------------------------------------------------------------------------

    def render_POST(self, request: server.Request) -> object:
        """Decode the call, run the procedure and answer with its result (maybe later).

        Returns:
            ``NOT_DONE_YET``: the response is written when the result is there.
        """
        request.content.seek(0, 0)
        request.setHeader(b"content-type", _RESPONSE_TYPE)
        try:
            args, procedure_path = xmlrpclib.loads(
                request.content.read(), use_datetime=self.useDateTime
            )
        except Exception as e:
            self._send(Fault(self.FAILURE, f"Can't deserialize input: {e}"), request)
            return server.NOT_DONE_YET
        try:
            function = self.lookupProcedure(procedure_path or "")
        except Fault as fault:
            self._send(fault, request)
            return server.NOT_DONE_YET
        self._call(function, args, request)
        return server.NOT_DONE_YET

    def _call(self, function: Callable[..., Any], args: tuple[Any, ...], request: Any) -> None:
        """Run ``function`` and send its outcome, unless the client went away first."""
        gone: list[Failure] = []
        if getattr(function, "withRequest", False):
            d = defer.maybeDeferred(function, request, *args)
        else:
            d = defer.maybeDeferred(function, *args)
        d.addCallback(self._unwrap_handler)

        def client_gone(reason: Failure) -> None:
            gone.append(reason)
            # treadle cancels what a render still waits for when its client disconnects.
            d.cancel()

        request.notifyFinish().addErrback(client_gone)

        def failed(failure: Failure) -> Fault | None:
            if gone:
                return None  # nobody to tell (and a cancellation is not an error)
            return self._fault_for(failure)

        d.addErrback(failed)
        d.addCallback(lambda result: None if gone else self._send(result, request))

    @staticmethod
    def _unwrap_handler(result: object) -> object:
        if isinstance(result, Handler):
            return result.result
        return result

    def _fault_for(self, failure: Failure) -> Fault:
        """Return the fault to send for a failed call; log it unless it is a Fault."""
        if isinstance(failure.value, Fault):
            return failure.value
        self._log.failure("", failure)
        return Fault(self.FAILURE, "error")

    def _send(self, result: object, request: Any) -> None:
        """Marshal ``result`` (a value or a Fault), write it and finish the request."""
        try:
            content = self._marshal(result)
            request.setHeader(b"content-length", b"%d" % len(content))
            request.write(content)
        except Exception:
            self._log.failure("")
        request.finish()

    def _marshal(self, result: object) -> bytes:
        params: Fault | tuple[Any, ...] = result if isinstance(result, Fault) else (result,)
        try:
            text = xmlrpclib.dumps(params, methodresponse=True, allow_none=self.allowNone)
        except Exception as e:
            fault = Fault(self.FAILURE, f"Can't serialize output: {e}")
            text = xmlrpclib.dumps(fault, methodresponse=True, allow_none=self.allowNone)
        return text.encode("utf-8")


class XMLRPCIntrospection(XMLRPC):
    """The ``system.*`` procedures of the XML-RPC introspection API, for another resource.

    ``methodHelp`` answers a procedure's ``help`` attribute, else its docstring, else
    ``""``. ``methodSignature`` answers its ``signature`` attribute (a list of lists
    ``[returnType, argType, ...]`` of XML-RPC type names), else ``""``.

    Args:
        parent: The :class:`XMLRPC` resource to describe.
    """

    def __init__(self, parent: XMLRPC) -> None:
        super().__init__()
        self._xmlrpc_parent = parent

    def xmlrpc_listMethods(self) -> list[str]:
        """Return the names of every procedure the server publishes, sub-handlers included."""
        names: list[str] = []
        pending: list[tuple[XMLRPC, str]] = [(self._xmlrpc_parent, "")]
        while pending:
            handler, prefix = pending.pop(0)
            names.extend(prefix + name for name in handler.listProcedures())
            pending.extend(
                (sub, prefix + name + handler.separator)
                for name in handler.getSubHandlerPrefixes()
                if (sub := handler.getSubHandler(name)) is not None
            )
        return names

    xmlrpc_listMethods.signature = [["array"]]  # type: ignore[attr-defined]

    def xmlrpc_methodHelp(self, method: str) -> str:
        """Return the documentation of the procedure named ``method``."""
        function = self._xmlrpc_parent.lookupProcedure(method)
        return getattr(function, "help", None) or getattr(function, "__doc__", None) or ""

    xmlrpc_methodHelp.signature = [["string", "string"]]  # type: ignore[attr-defined]

    def xmlrpc_methodSignature(self, method: str) -> list[list[str]] | str:
        """Return the type signatures of the procedure named ``method``, or ``""``.

        Each signature is ``[returnType, argType1, argType2, ...]``.
        """
        function = self._xmlrpc_parent.lookupProcedure(method)
        return getattr(function, "signature", None) or ""

    xmlrpc_methodSignature.signature = [  # type: ignore[attr-defined]
        ["array", "string"],
        ["string", "string"],
    ]


def addIntrospection(xmlrpc: XMLRPC) -> None:
    """Publish the introspection procedures (``system.listMethods``, ``system.methodHelp``,
    ``system.methodSignature``) on ``xmlrpc``, as its ``system`` sub-handler.

    Args:
        xmlrpc: The resource to describe.
    """
    xmlrpc.putSubHandler("system", XMLRPCIntrospection(xmlrpc))


# -- the client --------------------------------------------------------------------------------


def _as_bytes(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return value.encode("utf-8")


def _call_payload(method: str, args: Iterable[Any], allow_none: bool) -> bytes:
    """Return the ``methodCall`` document for ``method(*args)``."""
    params = xmlrpclib.dumps(tuple(args), allow_none=allow_none)
    return (
        '<?xml version="1.0"?>\n<methodCall>\n'
        f"<methodName>{escape(method)}</methodName>\n{params}</methodCall>\n"
    ).encode()


class Proxy:
    """A client calling the procedures of one XML-RPC server.

    Args:
        url: The server's URL (``str`` or ``bytes``), ``http`` or ``https``. User and
            password in it (``http://user:pass@host/RPC2``) are sent with Basic
            authentication, unless ``user``/``password`` are given.
        user: User name for Basic authentication (overrides the URL's).
        password: Password for Basic authentication (overrides the URL's).
        allowNone: Marshal ``None`` arguments (``<nil/>``); without it they raise
            ``TypeError`` from :meth:`callRemote`'s Deferred.
        useDateTime: Return ``dateTime.iso8601`` values as :class:`datetime.datetime`.
        connectTimeout: Seconds to wait for the connection to be made.
        reactor: Accepted for Twisted compatibility; calls run on the running loop.

    Attributes:
        user, password: bytes or None. host: bytes. port: int or None (the scheme's default).
        path: bytes (``b"/"`` when the URL has none). secure: True for ``https``.
        allowNone, useDateTime, connectTimeout: As given.
    """

    def __init__(
        self,
        url: str | bytes,
        user: str | bytes | None = None,
        password: str | bytes | None = None,
        allowNone: bool = False,
        useDateTime: bool = False,
        connectTimeout: float = 30.0,
        reactor: Any = None,
    ) -> None:
        text = url.decode("utf-8") if isinstance(url, bytes) else url
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http or https URL: {text!r}")
        self.user: bytes | None = _as_bytes(user if user is not None else _userinfo(parts.username))
        self.password: bytes | None = _as_bytes(
            password if password is not None else _userinfo(parts.password)
        )
        self.host: bytes = parts.hostname.encode("idna")
        self.port: int | None = parts.port
        path = parts.path + ("?" + parts.query if parts.query else "")
        self.path: bytes = path.encode("utf-8") or b"/"
        self.secure = parts.scheme == "https"
        self.allowNone = allowNone
        self.useDateTime = useDateTime
        self.connectTimeout = connectTimeout
        self._reactor = reactor

    def callRemote(self, method: str, *args: Any) -> defer.Deferred[Any]:
        """Call the remote procedure ``method`` with ``args``.

        May be called before the reactor runs: the call starts when it does.

        Args:
            method: The procedure name, e.g. ``"echo"`` or ``"system.listMethods"``.
            *args: Its arguments, marshallable by :mod:`xmlrpc.client`.

        Returns:
            A Deferred firing with the procedure's result. It fails with the server's
            :class:`Fault`; with ``ValueError(status, message)`` (both bytes) for a response
            whose status is not 200; with the connection error when the server cannot be
            reached or closes early; with ``TypeError`` for arguments that cannot be
            marshalled. Cancelling it closes the connection and fails it with
            ``CancelledError``.
        """
        try:
            payload = _call_payload(method, args, self.allowNone)
        except Exception:
            return defer.fail(Failure())
        # A task on the reactor's loop, not an eager coroutine: the call may be made before
        # the loop runs, and it opens a connection from its first line.
        reactor = self._reactor
        if reactor is None or not hasattr(reactor, "loop"):
            from treadle.internet import reactor
        loop = reactor.loop
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._call(payload), loop=loop))

    async def _call(self, payload: bytes) -> Any:
        code, phrase, body = await _post(
            self.host.decode("ascii"),
            self.port,
            self.secure,
            self.path,
            self._headers(len(payload)),
            payload,
            self.connectTimeout,
        )
        if code != 200:
            raise ValueError(b"%d" % code, phrase)
        # A fault raises Fault here; a response without params raises IndexError, as in
        # Twisted ("buggy servers giving empty responses").
        return xmlrpclib.loads(body, use_datetime=self.useDateTime)[0][0]

    def _headers(self, length: int) -> list[tuple[bytes, bytes]]:
        default_port = 443 if self.secure else 80
        host = self.host
        if b":" in host:  # an IPv6 literal
            host = b"[" + host + b"]"
        if self.port is not None and self.port != default_port:
            host += b":%d" % self.port
        headers = [
            (b"Host", host),
            (b"User-Agent", b"Twisted/XMLRPClib"),
            (b"Content-Type", b"text/xml; charset=utf-8"),
            (b"Content-Length", b"%d" % length),
        ]
        if self.user:
            credentials = self.user + b":" + (self.password or b"")
            headers.append((b"Authorization", b"Basic " + base64.b64encode(credentials)))
        return headers


def _userinfo(value: str | None) -> bytes | None:
    return None if value is None else unquote_to_bytes(value)


# -- the HTTP exchange -------------------------------------------------------------------------


class _CallPool(HTTPConnectionPool):
    """treadle's upstream HTTP client, one connection per call (as Twisted's Proxy), with a
    connect timeout and TLS for ``https``."""

    def __init__(self, tls: ssl.SSLContext | None, host: str, timeout: float) -> None:
        super().__init__(persistent=False)
        self._tls = tls
        self._server_hostname = host if tls is not None else None
        self._timeout = timeout

    async def _connect(self, key: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        connecting = loop.create_connection(
            lambda: _Connection(self, key),
            *key,
            ssl=self._tls,
            server_hostname=self._server_hostname,
        )
        try:
            _, conn = await asyncio.wait_for(connecting, self._timeout)
        except TimeoutError as e:
            raise _ConnectTimeout(f"no connection to {key[0]}:{key[1]}") from e
        except OSError as e:
            raise UpstreamConnectError(
                f"could not connect to {key[0]}:{key[1]}: {e.strerror or e}"
            ) from e
        return conn


class _ConnectTimeout(UpstreamConnectError):
    """The connection was not made within ``connectTimeout``."""


def _connect_error(e: UpstreamConnectError) -> Exception:
    """Return Twisted's exception for a connection that could not be made."""
    if isinstance(e, _ConnectTimeout):
        return error.TimeoutError(string=str(e))
    cause = e.__cause__
    if isinstance(cause, ConnectionRefusedError):
        return error.ConnectionRefusedError(string=str(e))
    if isinstance(cause, ssl.SSLError):
        return cause
    return error.ConnectError(string=str(e))


async def _post(
    host: str,
    port: int | None,
    secure: bool,
    path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    connect_timeout: float,
) -> tuple[int, bytes, bytes]:
    """POST ``body`` and return the response's status code, reason phrase and body."""
    tls = ssl.create_default_context() if secure else None
    pool = _CallPool(tls, host, connect_timeout)
    head = b"POST %s HTTP/1.1\r\n" % path
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    head += b"Connection: close\r\n\r\n"
    try:
        response = await pool.request(
            host, port or (443 if secure else 80), b"POST", head, io.BytesIO(body)
        )
    except UpstreamConnectError as e:
        raise _connect_error(e) from e
    except UpstreamError as e:
        raise error.ConnectionLost(str(e)) from e
    try:
        pieces = []
        while piece := await response.read():
            pieces.append(piece)
    except UpstreamError as e:
        raise error.ConnectionLost(str(e)) from e
    finally:
        response.release()
    return response.code, response.phrase, b"".join(pieces)
