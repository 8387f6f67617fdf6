"""A small Redis client for the session store: one connection, commands pipelined by itself.

The Redis session store (:mod:`treadle.web._redis_store`) sends two commands per request, a
read before the render and a save at the end. A general-purpose client spends far more on
each command (a connection pool, locks, a Task, command packing) than Redis spends running
it; this one does only what the store needs:

* **one connection per process**, opened by the first command (and again by the first one
  after it is lost), on TCP, TLS (``rediss://``) or a UNIX socket, then ``AUTH`` and
  ``SELECT`` as the URL asks;
* **automatic pipelining**: every command issued during one turn of the event loop goes out
  in one write at the end of that turn, and Redis answers them in order, so the replies are
  matched to their callers by position; with many requests in flight, one system call on
  each side carries the commands of all of them;
* **a Deferred per command**, firing with the reply (replies are parsed by hiredis), or
  failing with :class:`RedisError` (an error reply) or :class:`RedisConnectionError`. The
  caller may cancel it (the session store's deadline does): the reply still arrives in its
  turn and is dropped;
* **no retries and no reconnection loop**: a lost connection fails the commands waiting on
  it, and the next command opens a new one;
  :class:`~treadle.web._session_store.GuardedStore` owns deadlines and backoff;
* a **backstop timeout**: a connection that answers nothing for ``reply_timeout`` seconds
  while commands wait is closed, so a server that froze cannot keep a connection and its
  callers forever.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

from treadle.internet.defer import Deferred, fail
from treadle.python.failure import Failure

__all__ = [
    "RedisAddress",
    "RedisClient",
    "RedisConnectionError",
    "RedisError",
    "parse_redis_url",
]

#: Seconds to open a connection (and TLS handshake) before giving up.
CONNECT_TIMEOUT = 10.0
#: Seconds a connection with commands waiting may go without any reply before it is closed.
REPLY_TIMEOUT = 10.0
#: Query options a Redis URL may carry (as redis-py names them), besides ``ssl_*``.
_QUERY_OPTIONS = (
    "db",
    "username",
    "password",
    "client_name",
    "socket_timeout",
    "socket_connect_timeout",
    "protocol",
)
_SSL_OPTIONS = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_password",
    "ssl_check_hostname",
)
_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}

Arg = bytes | str | int | float
#: A command waiting for its reply: its Deferred, and what to pass the reply through first.
_Waiter = tuple[Deferred[Any], Callable[[Any], Any] | None]


class RedisError(Exception):
    """Redis answered a command with an error (``ERR ...``, ``WRONGPASS ...``...)."""


class RedisConnectionError(ConnectionError):
    """The connection to Redis could not be opened, or was lost before the reply came."""


@dataclass(frozen=True)
class RedisAddress:
    """Where a Redis server is and how to log in, as a URL gives them.

    Attributes:
        host: Host name or address (None with ``path``).
        port: TCP port.
        path: The UNIX socket's path (``unix://``), else None.
        ssl: The TLS context (``rediss://``), else None.
        username: For ``AUTH`` (Redis 6 ACLs), or None.
        password: For ``AUTH``, or None.
        db: The database ``SELECT`` picks (0 sends none).
        client_name: Sent with ``CLIENT SETNAME``, or None.
        connect_timeout: Seconds to connect.
        reply_timeout: Seconds without a reply before the connection is given up.
    """

    host: str | None
    port: int
    path: str | None
    ssl: ssl.SSLContext | None
    username: str | None
    password: str | None
    db: int
    client_name: str | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    reply_timeout: float = REPLY_TIMEOUT


def parse_redis_url(url: str) -> RedisAddress:
    """Read ``redis://``, ``rediss://`` and ``unix://`` URLs as redis-py reads them.

    ``redis://[[user]:password@]host[:port][/db][?options]``, ``rediss://...`` (TLS, checked
    against the system's certificate authorities unless ``ssl_*`` options say otherwise), and
    ``unix://[[user]:password@]/path/to/socket[?db=N]``. Options: ``db``, ``username``,
    ``password`` (the URL's user part wins), ``client_name``, ``socket_timeout``,
    ``socket_connect_timeout``, ``protocol`` (2 only) and, for ``rediss://``,
    ``ssl_cert_reqs`` (``none``, ``optional``, ``required``), ``ssl_ca_certs``,
    ``ssl_ca_path``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_password`` and
    ``ssl_check_hostname``.

    Raises:
        ValueError: The URL or one of its options is not understood (the message never holds
            the password).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
    options = _query_options(parts.query, tls=scheme == "rediss")
    db = _number(options, "db", int, 0)
    if scheme != "unix" and "db" not in options and parts.path.strip("/"):
        db = _number({"db": unquote(parts.path).strip("/")}, "db", int, 0)
    if _number(options, "protocol", int, 2) != 2:
        raise ValueError("Invalid value for 'protocol' in connection URL: only 2 (RESP2)")
    connect_timeout = _number(options, "socket_connect_timeout", float, CONNECT_TIMEOUT)
    reply_timeout = _number(options, "socket_timeout", float, REPLY_TIMEOUT)
    username = unquote(parts.username) if parts.username else options.get("username")
    password = unquote(parts.password) if parts.password else options.get("password")
    common: dict[str, Any] = {
        "username": username or None,
        "password": password or None,
        "db": db,
        "client_name": options.get("client_name"),
        "connect_timeout": connect_timeout,
        "reply_timeout": reply_timeout,
    }
    if scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// URL needs the path of the socket")
        return RedisAddress(None, 0, unquote(parts.path), None, **common)
    if not parts.hostname:
        raise ValueError(f"a {scheme}:// URL needs a host")
    port = parts.port or 6379
    context = _tls_context(options) if scheme == "rediss" else None
    return RedisAddress(unquote(parts.hostname), port, None, context, **common)


def _query_options(query: str, *, tls: bool) -> dict[str, str]:
    options = {name: values[0] for name, values in parse_qs(query).items() if values}
    accepted = _QUERY_OPTIONS + _SSL_OPTIONS if tls else _QUERY_OPTIONS
    for name in options:
        if name not in accepted:
            where = "" if tls or name not in _SSL_OPTIONS else " (TLS options need rediss://)"
            raise ValueError(
                f"unknown option {name!r} in the Redis URL{where}; accepted: {', '.join(accepted)}"
            )
    return options


def _number(options: dict[str, str], name: str, kind: type[Any], default: Any) -> Any:
    if name not in options:
        return default
    try:
        value = kind(options[name])
    except ValueError:
        raise ValueError(f"Invalid value for {name!r} in connection URL.") from None
    if value < 0 or (kind is float and value == 0):
        raise ValueError(f"Invalid value for {name!r} in connection URL.")
    return value


def _tls_context(options: dict[str, str]) -> ssl.SSLContext:
    reqs_name = options.get("ssl_cert_reqs", "required").lower().removeprefix("cert_")
    if reqs_name not in _CERT_REQS:
        raise ValueError("Invalid value for 'ssl_cert_reqs' in connection URL.")
    reqs = _CERT_REQS[reqs_name]
    check = options.get("ssl_check_hostname", "true" if reqs == ssl.CERT_REQUIRED else "false")
    if check.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("Invalid value for 'ssl_check_hostname' in connection URL.")
    context = ssl.create_default_context(
        cafile=options.get("ssl_ca_certs"), capath=options.get("ssl_ca_path")
    )
    context.check_hostname = check.lower() in ("true", "1", "yes")
    context.verify_mode = reqs
    if "ssl_certfile" in options:
        context.load_cert_chain(
            options["ssl_certfile"], options.get("ssl_keyfile"), options.get("ssl_password")
        )
    return context


def encode_command(args: Sequence[Arg]) -> bytes:
    """A command as RESP puts it on the wire: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = repr(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


#: Clients of this process, so a forked child drops the connections it inherited.
_CLIENTS: weakref.WeakSet[RedisClient] = weakref.WeakSet()


class RedisClient:
    """One pipelined connection to Redis, opened on demand (see the module).

    Use it from the event loop's thread only. After a ``fork``, the child's client forgets
    the parent's connection (without closing it) and opens its own.

    Args:
        address: Where Redis is (:func:`parse_redis_url`).
    """

    def __init__(self, address: RedisAddress) -> None:
        self.address = address
        self._transport: asyncio.Transport | None = None
        self._protocol: _RespProtocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        # Commands not written yet, and the Deferreds of every command without a reply, in
        # the order the commands go out.
        self._outgoing: list[bytes] = []
        self._waiting: deque[_Waiter | None] = deque()
        self._flush_scheduled = False
        self._replies_seen = 0
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed_waiters: list[asyncio.Future[None]] = []
        # The loop of the connection (asking asyncio for it costs a system call on 3.11).
        self._loop: asyncio.AbstractEventLoop = cast(asyncio.AbstractEventLoop, None)
        _CLIENTS.add(self)

    @property
    def connected(self) -> bool:
        """True while a connection is open (it may still be logging in)."""
        return self._transport is not None

    def call(self, *args: Arg) -> Deferred[Any]:
        """Send one command (with the others of this loop turn); a Deferred of its reply.

        Returns:
            A Deferred firing with the reply as hiredis gives it (bytes, int, None, lists),
            or failing with :class:`RedisError` or :class:`RedisConnectionError`.
        """
        return self.send(encode_command(args))

    def send(
        self,
        commands: bytes,
        count: int = 1,
        answer: int = -1,
        convert: Callable[[Any], Any] | None = None,
    ) -> Deferred[Any]:
        """Send ``count`` commands already encoded (:func:`encode_command`), one after the
        other; a Deferred of the reply to the one at index ``answer`` (the last by default),
        passed through ``convert`` first if given (an exception it raises fails the
        Deferred), which costs less than a callback.

        The other replies are dropped, errors included: send ``MULTI ... EXEC`` (whose
        ``EXEC`` fails when a queued command did) or commands whose failure does not matter.
        """
        if self._transport is None:
            if self._connecting is None:
                try:
                    self._connect()
                except Exception as error:  # no running loop, for one
                    return fail(RedisConnectionError(f"cannot connect to Redis: {error}"))
        elif not self._flush_scheduled and self._loop.is_closed():
            # Opened in a loop that has ended since (asyncio.run again): start afresh.
            self._forget_connection()
            return self.send(commands, count, answer, convert)
        reply: Deferred[Any] = Deferred()
        if count == 1:
            self._waiting.append((reply, convert))
        else:
            slots: list[_Waiter | None] = [None] * count
            slots[answer] = (reply, convert)
            self._waiting.extend(slots)
        self._outgoing.append(commands)
        if self._transport is not None and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return reply

    async def close(self) -> None:
        """Close the connection (commands still waiting fail); a later command reopens it."""
        connecting = self._connecting
        if connecting is not None:
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        transport = self._transport
        if transport is None:
            return
        if self._loop.is_closed():  # opened in a loop that has ended: nothing to wait for
            self._forget_connection()
            return
        closed = asyncio.get_running_loop().create_future()
        self._closed_waiters.append(closed)
        transport.close()
        await closed

    # -- the connection ----------------------------------------------------------------------

    def _connect(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        # Logging in goes first, ahead of the commands that made the connection open.
        for command in self._login_commands():
            reply: Deferred[Any] = Deferred()
            reply.addErrback(self._login_failed)
            self._waiting.append((reply, None))
            self._outgoing.append(command)
        self._connecting = loop.create_task(self._open(loop))

    def _login_commands(self) -> list[bytes]:
        address = self.address
        commands = []
        if address.password is not None:
            if address.username is not None:
                commands.append(encode_command((b"AUTH", address.username, address.password)))
            else:
                commands.append(encode_command((b"AUTH", address.password)))
        if address.db:
            commands.append(encode_command((b"SELECT", address.db)))
        if address.client_name:
            commands.append(encode_command((b"CLIENT", b"SETNAME", address.client_name)))
        return commands

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        address = self.address
        try:
            async with asyncio.timeout(address.connect_timeout):
                if address.path is not None:
                    transport, protocol = await loop.create_unix_connection(
                        lambda: _RespProtocol(self), address.path
                    )
                else:
                    transport, protocol = await loop.create_connection(
                        lambda: _RespProtocol(self),
                        address.host or "localhost",
                        address.port,
                        ssl=address.ssl,
                        server_hostname=address.host if address.ssl is not None else None,
                    )
        except asyncio.CancelledError:
            self._connecting = None
            self._fail_waiting(RedisConnectionError("the connection to Redis was closed"))
            raise
        except (OSError, TimeoutError, ssl.SSLError) as error:
            self._connecting = None
            reason = "no answer in time" if isinstance(error, TimeoutError) else str(error)
            self._fail_waiting(RedisConnectionError(f"cannot connect to Redis: {reason}"))
            return
        self._connecting = None
        self._transport = transport
        self._protocol = protocol
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport = self._transport
        if transport is None or not self._outgoing:
            return
        outgoing = self._outgoing
        self._outgoing = []
        transport.write(b"".join(outgoing) if len(outgoing) > 1 else outgoing[0])
        if self._watchdog is None:
            self._arm_watchdog()

    def _arm_watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(
            self.address.reply_timeout, self._check_progress, self._replies_seen
        )

    def _check_progress(self, seen_then: int) -> None:
        """Runs every ``reply_timeout`` while commands wait: no reply since then, give up."""
        self._watchdog = None
        if not self._waiting or self._transport is None:
            return
        if self._replies_seen == seen_then:
            self._abort(RedisConnectionError("Redis sent no reply in time"))
            return
        self._arm_watchdog()

    def _login_failed(self, failure: Any) -> None:
        self._abort(RedisConnectionError(f"cannot log in to Redis: {failure.value}"))

    def _abort(self, error: Exception) -> None:
        transport = self._transport
        if transport is not None:
            self._lost(error, self._protocol)
            transport.abort()

    # -- called by the protocol -------------------------------------------------------------

    def _replies(self, replies: list[Any]) -> None:
        waiting = self._waiting
        self._replies_seen += len(replies)
        for reply in replies:
            if not waiting:
                self._abort(RedisConnectionError("Redis sent a reply nobody asked for"))
                return
            waiter = waiting.popleft()
            if waiter is None:  # a reply to drop
                continue
            deferred, convert = waiter
            if deferred.called:  # its caller stopped waiting
                continue
            if isinstance(reply, hiredis.ReplyError):
                deferred.errback(RedisError(str(reply)))
            elif convert is None:
                deferred.callback(reply)
            else:
                try:
                    converted = convert(reply)
                except Exception:
                    deferred.errback(Failure())
                else:
                    deferred.callback(converted)
            if self._waiting is not waiting:  # a callback closed the connection
                return

    def _lost(self, error: Exception, protocol: _RespProtocol | None) -> None:
        """The connection of ``protocol`` ended (or is being aborted): fail what waits on it
        (unless that connection was already given up, and perhaps a new one opened)."""
        if self._transport is None or protocol is not self._protocol:
            return
        self._transport = None
        self._protocol = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._fail_waiting(error)
        for waiter in self._closed_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._closed_waiters.clear()

    def _fail_waiting(self, error: Exception) -> None:
        waiting = self._waiting
        self._waiting = deque()
        self._outgoing = []
        for waiter in waiting:
            if waiter is not None and not waiter[0].called:
                waiter[0].errback(error)

    def _forget_connection(self) -> None:
        """In a forked child: the parent's connection is not ours to use, nor to close."""
        self._transport = self._protocol = None
        self._connecting = None
        self._outgoing = []
        self._waiting = deque()
        self._flush_scheduled = False
        self._watchdog = None
        self._closed_waiters = []


class _RespProtocol(asyncio.Protocol):
    """Feeds what Redis sends to hiredis and hands the complete replies to the client."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            reply = reader.gets()
            if reply is False:
                return
            replies = [reply]
            while (reply := reader.gets()) is not False:
                replies.append(reply)
        except hiredis.ProtocolError as error:
            self._client._abort(RedisConnectionError(f"Redis sent something unreadable: {error}"))
            return
        self._client._replies(replies)

    def eof_received(self) -> bool:
        return False  # close the connection: Redis does not half-close

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc is not None else ""
        error = RedisConnectionError(f"the connection to Redis was lost{reason}")
        self._client._lost(error, self)


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._forget_connection()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
