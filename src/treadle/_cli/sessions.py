"""Where ``treadle web`` keeps sessions, and the runtime directory and secret that needs.

One process keeps sessions in memory, as ``twistd web`` does. With ``--workers N`` every
worker must see the same sessions, so by default they go to an embedded SQLite store in a
*runtime directory* that the supervisor creates before starting the workers and removes when
it exits; with ``--sessions redis://...`` they go to Redis, shared by several machines.

What goes to a store is signed with a secret: ``--secret-file`` names it (every machine
sharing a Redis must use the same one); without it, a secret is generated in the runtime
directory, which is enough for the workers of one machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import sqlite3
import tempfile
from typing import TYPE_CHECKING, Any

from treadle._cli.errors import StartupError

if TYPE_CHECKING:
    from treadle._cli.options import WebOptions

__all__ = ["RuntimeDir", "open_session_store", "read_secret", "sessions_url"]

log = logging.getLogger("treadle.error")

#: The fewest bytes a secret file may hold.
MIN_SECRET = 32


def sessions_url(options: WebOptions) -> str:
    """The store ``options`` ask for: ``--sessions``, else memory for one process and the
    embedded store for several."""
    if options.sessions is not None:
        return options.sessions
    return "memory:" if options.workers == 1 else "sqlite:"


def needs_runtime_dir(options: WebOptions) -> bool:
    """Whether serving ``options`` needs a runtime directory (a store file or a secret)."""
    url = sessions_url(options)
    if url.startswith("memory:"):
        return False
    return url == "sqlite:" or options.secret_file is None


class RuntimeDir:
    """A private directory (mode 0700) that lives as long as the server, then is removed.

    Created under ``$XDG_RUNTIME_DIR`` when set, else the system's temporary directory.
    """

    def __init__(self) -> None:
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        try:
            self.path = tempfile.mkdtemp(prefix="treadle-", dir=base)
        except OSError as error:
            raise StartupError(f"cannot create a runtime directory in {base}: {error}") from None

    def remove(self) -> None:
        """Remove the directory and what is in it."""
        shutil.rmtree(self.path, ignore_errors=True)

    def given_to(self, options: WebOptions) -> WebOptions:
        """``options`` with this directory as their runtime directory."""
        return dataclasses.replace(options, runtime_dir=self.path)


def read_secret(options: WebOptions) -> bytes:
    """The secret that signs stored sessions: ``--secret-file``'s, or one made in the
    runtime directory (kept there, so every worker reads the same one).

    Raises:
        StartupError: The file cannot be read or holds fewer than 32 bytes.
    """
    path = options.secret_file
    if path is None:
        assert options.runtime_dir is not None, "a runtime directory is made before serving"
        path = os.path.join(options.runtime_dir, "secret")
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(secrets.token_hex(32).encode("ascii"))
    try:
        with open(path, "rb") as file:
            secret = file.read().strip()
    except OSError as error:
        raise StartupError(f"--secret-file {path}: {error.strerror or error}") from None
    if len(secret) < MIN_SECRET:
        raise StartupError(
            f"--secret-file {path}: holds {len(secret)} bytes; a secret needs at least "
            f"{MIN_SECRET} (e.g. the output of: python -c 'import secrets; "
            "print(secrets.token_hex(32))')"
        )
    return secret


def open_session_store(options: WebOptions) -> dict[str, Any]:
    """The :class:`~treadle.web.server.Site` arguments for the sessions ``options`` ask for.

    Raises:
        StartupError: The store URL is malformed or the secret cannot be read.
    """
    url = sessions_url(options)
    kwargs: dict[str, Any] = {"maxSessions": options.max_sessions}
    if url.startswith("memory:"):
        if options.workers > 1:
            log.warning(
                "--sessions memory: with %d workers, each worker keeps its own sessions",
                options.workers,
            )
        return kwargs
    from treadle.web._store_url import open_store

    try:
        store = open_store(url, runtime_dir=options.runtime_dir, max_sessions=options.max_sessions)
    except (ValueError, OSError, sqlite3.Error) as error:
        # The message names the URL itself, with any password masked.
        raise StartupError(f"--sessions: {error}") from None
    if store is None:
        return kwargs
    kwargs["sessionStore"] = store
    kwargs["sessionSecret"] = read_secret(options)
    return kwargs
