"""Sessions in Redis, shared by every process on every machine that serves the site.

A session is one Redis hash, ``PREFIX + uid``: a field per session value plus an empty-named
*meta* field, so a session with no values still exists. Every key carries a TTL, so Redis
itself forgets idle sessions and no key outlives its session:

* ``load`` is ``HGETALL`` and ``PEXPIRE``, sent together: one round trip reads the session
  and slides its expiry;
* ``save`` is ``HDEL``, ``HSET`` and ``PEXPIRE`` inside ``MULTI``/``EXEC``: another process
  sees all of a save or none of it, and a save changing some fields leaves the others alone
  (last writer wins, per field).

The client is treadle's own (:mod:`treadle.web._redis_client`): one connection per process,
and every command issued in one turn of the event loop goes out in one write, so the loads
and saves of all the requests in flight share their system calls, on both sides. It takes
``redis://``, ``rediss://`` (TLS, with ``ssl_*`` query options) and ``unix://`` URLs, with
``AUTH`` and database selection, as redis-py does. It never retries on its own:
:class:`~treadle.web._session_store.GuardedStore` owns deadlines and backoff, and a retry
inside the client would only hide an outage behind slow answers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from treadle.internet.defer import Deferred
from treadle.web._redis_client import (
    RedisClient,
    RedisError,
    encode_command,
    parse_redis_url,
)

__all__ = ["RedisStore"]

#: Where session keys live, so one Redis can hold other data (or other sites, with another
#: prefix) beside them.
DEFAULT_PREFIX = b"treadle:session:"
#: The field every session hash has; application fields are never empty-named (they are
#: ``a:NAME``, ``k:KEY``... see :mod:`treadle.web._session_codec`).
META_FIELD = b""

_MULTI = encode_command((b"MULTI",))
_EXEC = encode_command((b"EXEC",))
_PEXPIRE = b"*3\r\n$7\r\nPEXPIRE\r\n"
#: HGETALL key, then PEXPIRE key milliseconds (see ``load``).
_LOAD = b"*2\r\n$7\r\nHGETALL\r\n$%d\r\n%b\r\n*3\r\n$7\r\nPEXPIRE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"


class RedisStore:
    """A :class:`~treadle.web._session_store.SessionStore` in Redis.

    Creating the store opens no connection: the first call does (after a ``fork``, the
    child opens its own).

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` or
            ``unix://[[user]:password@]/path/to/socket[?db=N]``, with the query options
            :func:`~treadle.web._redis_client.parse_redis_url` lists.
        prefix: Prepended to every session id to make its key.

    Raises:
        ValueError: The URL is not one this store understands.
    """

    #: Calls need no asyncio Task: they return Deferreds the client fires.
    runs_inline = True

    def __init__(self, url: str, *, prefix: bytes = DEFAULT_PREFIX) -> None:
        self.description = describe_url(url)
        self.prefix = prefix
        self._client = RedisClient(parse_redis_url(url))

    def load(self, uid: bytes, timeout: float) -> Deferred[dict[str, bytes] | None]:
        """Return the fields of session ``uid`` and push its expiry ``timeout`` s ahead.

        Returns:
            The fields (perhaps empty), or None when no such session exists or it expired.
        """
        key = self.prefix + uid
        ms = _ttl(timeout)
        commands = _LOAD % (len(key), key, len(key), key, len(ms), ms)
        return self._client.send(commands, 2, 0, _fields)

    def save(
        self,
        uid: bytes,
        changed: Mapping[str, bytes],
        removed: Collection[str],
        timeout: float,
    ) -> Deferred[None]:
        """Create the record if needed, set ``changed``, delete ``removed``, push its expiry."""
        key = self.prefix + uid
        bulk_key = b"$%d\r\n%b\r\n" % (len(key), key)
        parts = [_MULTI]
        if removed:
            parts.append(encode_command((b"HDEL", key, *removed)))
        # HSET key "" "" name value...: the meta field, then the changed fields.
        parts += (b"*%d\r\n$4\r\nHSET\r\n" % (4 + 2 * len(changed)), bulk_key, b"$0\r\n\r\n" * 2)
        for name, value in changed.items():
            data = name.encode()
            parts.append(b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(data), data, len(value), value))
        ms = _ttl(timeout)
        parts += (_PEXPIRE, bulk_key, b"$%d\r\n%b\r\n" % (len(ms), ms), _EXEC)
        count = 5 if removed else 4
        return self._client.send(b"".join(parts), count, -1, _executed)

    def delete(self, uid: bytes) -> Deferred[None]:
        """Forget session ``uid`` (nothing happens when it is unknown)."""
        return self._client.call(b"DEL", self.prefix + uid).addCallback(_nothing)

    def remaining(self, uid: bytes) -> Deferred[float | None]:
        """Seconds until session ``uid`` expires, or None when it is gone."""
        return self._client.call(b"PTTL", self.prefix + uid).addCallback(_seconds_left)

    async def close(self) -> None:
        """Close the connection (the store is not used afterwards)."""
        await self._client.close()


def _fields(stored: list[bytes]) -> dict[str, bytes] | None:
    if not stored:
        return None
    names = stored[::2]
    return {name.decode(): value for name, value in zip(names, stored[1::2], strict=True) if name}


def _executed(results: list[Any] | None) -> None:
    if results is None:  # EXEC gives nil only after a WATCH, which is never used here
        raise RedisError("the save transaction was discarded")
    for result in results:
        if isinstance(result, Exception):
            raise RedisError(str(result))


def _nothing(result: object) -> None:
    return None


def _seconds_left(left: int) -> float | None:
    if left == -2:  # no such key
        return None
    if left == -1:  # no TTL: not written by this store; it never expires by itself
        return math.inf
    return left / 1000


def describe_url(url: str) -> str:
    """How log lines name a Redis URL: scheme, user, host, port, database; never a password.

    Query options are left out too (``?password=...`` is one of them).
    """
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    db = parse_qs(parts.query).get("db", ["0"])[0]
    if parts.scheme == "unix":
        return f"unix://{user}{parts.path}?db={db}"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    path_db = parts.path.strip("/")
    return f"{parts.scheme}://{user}{host}:{port}/{path_db or db}"


@functools.lru_cache(maxsize=64)
def _ttl(seconds: float) -> bytes:
    """A TTL in milliseconds, as PEXPIRE's argument (sites use one or two timeouts)."""
    return b"%d" % _milliseconds(seconds)


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
