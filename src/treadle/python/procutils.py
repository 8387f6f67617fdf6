"""Finding programs on ``PATH`` (``twisted.python.procutils``): :func:`which`.

A program that spawns a process by name looks it up first, as ``reactor.spawnProcess``
needs a path: ``spawnProcess(proto, which("git")[0], ["git", "status"])``.
"""

from __future__ import annotations

import os

__all__ = ["which"]


def which(name: str, flags: int = os.X_OK) -> list[str]:
    """Every file called ``name`` (or ``name`` with an extension of ``PATHEXT``) in the
    directories of ``PATH`` that :func:`os.access` allows with ``flags``, in ``PATH``'s
    order; empty when ``PATH`` is not set."""
    path = os.environ.get("PATH")
    if path is None:
        return []
    extensions = [e for e in os.environ.get("PATHEXT", "").split(os.pathsep) if e]
    found = []
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory, name)
        for option in (candidate, *(candidate + ext for ext in extensions)):
            if os.access(option, flags):
                found.append(option)
    return found
