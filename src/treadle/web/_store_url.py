"""The session store a URL names (``Site(sessionStore=URL)``, ``treadle web --sessions URL``).

Accepted forms:

* ``memory:`` — sessions stay in each process's memory (no store);
* ``sqlite:`` — ``sessions.sqlite3`` in the runtime directory, shared by the workers of one
  machine; ``sqlite:/abs/path`` (or ``sqlite:///abs/path``) — that file;
* ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS),
  ``unix://[[user]:password@]/path/to/socket[?db=N]`` — Redis, shared by several machines.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from treadle.web._session_store import SessionStore
from treadle.web._sqlite_store import SQLiteStore

__all__ = ["ACCEPTED_FORMS", "open_store"]

#: Named in every error, so a typo is answered with what would have worked.
ACCEPTED_FORMS = (
    "memory:, sqlite:, sqlite:/absolute/path, redis://host:port/db, rediss://host:port/db, "
    "unix:///path/to/socket?db=N"
)
_PASSWORD_IN_NETLOC = re.compile(r"^([^:/?#]+://[^:/@?#]*:)[^@/?#]*@")
_PASSWORD_IN_QUERY = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)

#: The file ``sqlite:`` names inside the runtime directory.
SQLITE_FILE_NAME = "sessions.sqlite3"


def open_store(url: str, *, runtime_dir: str | None, max_sessions: int) -> SessionStore | None:
    """Make the session store ``url`` names (no connection is opened yet for Redis).

    Args:
        url: One of the forms in :data:`ACCEPTED_FORMS`.
        runtime_dir: The directory ``sqlite:`` puts its file in (None: there is none).
        max_sessions: The bound of the SQLite store (Redis is bounded by its own
            ``maxmemory``, and memory sessions by the site).

    Returns:
        The store, or None for ``memory:`` (the site keeps its sessions itself).

    Raises:
        ValueError: ``url`` is none of the accepted forms, or names a store that cannot be
            used (``sqlite:`` without a runtime directory, a relative path, a bad port...).
        OSError: The SQLite file cannot be created.
    """
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon:
        raise _bad(url, "it has no scheme")
    if scheme == "memory":
        if rest:
            raise _bad(url, "memory: takes nothing after the colon")
        return None
    if scheme == "sqlite":
        return _sqlite(url, runtime_dir, max_sessions)
    if scheme in ("redis", "rediss", "unix"):
        return _redis(f"{scheme}:{rest}", scheme)
    raise _bad(url, f"unknown scheme {scheme!r}")


def _sqlite(url: str, runtime_dir: str | None, max_sessions: int) -> SessionStore:
    parts = urlsplit(url)
    if parts.netloc:
        raise _bad(url, f"a SQLite file is local: {parts.netloc!r} cannot be a host")
    if parts.query or parts.fragment:
        raise _bad(url, "sqlite: takes no query or fragment")
    if not parts.path:
        if runtime_dir is None:
            raise _bad(url, "sqlite: without a path needs a runtime directory; name a file")
        path = os.path.join(runtime_dir, SQLITE_FILE_NAME)
    elif not os.path.isabs(parts.path):
        raise _bad(url, f"the SQLite path {parts.path!r} is not absolute")
    else:
        path = parts.path
    if not os.path.isdir(os.path.dirname(path)):
        raise _bad(url, f"the directory of {path!r} does not exist")
    return SQLiteStore(path, max_sessions)


def _redis(url: str, scheme: str) -> SessionStore:
    # Imported here: a site without Redis does not load the Redis client and hiredis.
    from treadle.web._redis_store import RedisStore

    parts = urlsplit(url)
    if scheme == "unix":
        if not parts.path:
            raise _bad(url, "unix:// needs the path of Redis's socket")
    else:
        if not parts.hostname:
            raise _bad(url, f"{scheme}:// needs a host")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise _bad(url, "the port is not a number from 0 to 65535") from None
        if parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise _bad(url, f"the database {parts.path.strip('/')!r} is not a number")
    try:
        return RedisStore(url)
    except ValueError as error:
        raise _bad(url, str(error)) from None


def _bad(url: str, problem: str) -> ValueError:
    # The URL may hold a password (before the host, or as a query option): never show it.
    shown = _PASSWORD_IN_QUERY.sub(r"\1***", _PASSWORD_IN_NETLOC.sub(r"\1***@", url))
    return ValueError(
        f"session store {shown!r} cannot be used: {problem.rstrip('.')}. "
        f"Accepted forms: {ACCEPTED_FORMS}"
    )
