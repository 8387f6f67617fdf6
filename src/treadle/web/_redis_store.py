"""Sessions in Redis, shared by every process on every machine that serves the site.

A session is one Redis hash, ``PREFIX + uid``: a field per session value plus an empty-named
*meta* field, so a session with no values still exists. Every key carries a TTL, so Redis
itself forgets idle sessions and no key outlives its session:

* ``load`` is ``HGETALL`` and ``PEXPIRE`` pipelined: one round trip reads the session and
  slides its expiry;
* ``save`` is ``HDEL``, ``HSET`` and ``PEXPIRE`` inside ``MULTI``/``EXEC``: another process
  sees all of a save or none of it, and a save changing some fields leaves the others alone
  (last writer wins, per field).

The client is redis-py's asyncio one, built by ``from_url``, so ``redis://``, ``rediss://``
(TLS, with its ``ssl_*`` query options) and ``unix://`` URLs all work. It never retries on its
own: :class:`~treadle.web._session_store.GuardedStore` owns deadlines and backoff, and a retry
inside the client would only hide an outage behind slow answers. Connections per process
are bounded, and a call that finds them all busy waits for one (within the guard's deadline)
rather than failing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from urllib.parse import parse_qs, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.typing import EncodableT, FieldT

__all__ = ["RedisStore"]

#: Where session keys live, so one Redis can hold other data (or other sites, with another
#: prefix) beside them.
DEFAULT_PREFIX = b"treadle:session:"
#: The field every session hash has; application fields are never empty-named (they are
#: ``a:NAME``, ``k:KEY``... see :mod:`treadle.web._session_codec`).
META_FIELD = b""
#: Connections one process opens at most. Each serves one command at a time; far more than
#: a worker needs at once, few enough that a stalled Redis cannot make a worker open
#: thousands.
MAX_CONNECTIONS = 64
#: Seconds a socket operation may take, a backstop under the guard's shorter deadline.
SOCKET_TIMEOUT = 10.0


class RedisStore:
    """A :class:`~treadle.web._session_store.SessionStore` in Redis.

    Creating the store opens no connection: the first call does (each process, after any
    ``fork``, must create its own store).

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` or
            ``unix://[[user]:password@]/path/to/socket[?db=N]``, with redis-py's query options.
        prefix: Prepended to every session id to make its key.

    Raises:
        ValueError: The URL is not one redis-py accepts.
    """

    def __init__(self, url: str, *, prefix: bytes = DEFAULT_PREFIX) -> None:
        self.description = describe_url(url)
        self.prefix = prefix
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=None,  # the guard's deadline bounds the wait for a free connection
            retry=Retry(NoBackoff(), 0),
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )
        self._redis: Redis = Redis.from_pool(pool)

    async def load(self, uid: bytes, timeout: float) -> dict[str, bytes] | None:
        """Return the fields of session ``uid`` and push its expiry ``timeout`` s ahead.

        Returns:
            The fields (perhaps empty), or None when no such session exists or it expired.
        """
        key = self.prefix + uid
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(key)
            pipe.pexpire(key, _milliseconds(timeout))
            stored, _ = await pipe.execute()
        if not stored:
            return None
        return {name.decode(): value for name, value in stored.items() if name != META_FIELD}

    async def save(
        self,
        uid: bytes,
        changed: Mapping[str, bytes],
        removed: Collection[str],
        timeout: float,
    ) -> None:
        """Create the record if needed, set ``changed``, delete ``removed``, push its expiry."""
        key = self.prefix + uid
        values: dict[FieldT, EncodableT] = {META_FIELD: b""}
        values.update((name.encode(), value) for name, value in changed.items())
        async with self._redis.pipeline(transaction=True) as pipe:
            if removed:
                pipe.hdel(key, *(name.encode() for name in removed))
            pipe.hset(key, mapping=values)
            pipe.pexpire(key, _milliseconds(timeout))
            await pipe.execute()

    async def delete(self, uid: bytes) -> None:
        """Forget session ``uid`` (nothing happens when it is unknown)."""
        await self._redis.delete(self.prefix + uid)

    async def remaining(self, uid: bytes) -> float | None:
        """Seconds until session ``uid`` expires, or None when it is gone."""
        left: int = await self._redis.pttl(self.prefix + uid)
        if left == -2:  # no such key
            return None
        if left == -1:  # no TTL: not written by this store; it never expires by itself
            return math.inf
        return left / 1000

    async def close(self) -> None:
        """Close the connections (the store is not used afterwards)."""
        await self._redis.aclose()


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


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
