"""``Registry``: per-site storage that ``.rpy`` scripts share (``static.Registry`` in Twisted).

Besides arbitrary components, it holds the resources of scripts that called ``cache()``,
keyed by path and invalidated when the file's modification time or size changes, so an
edited script takes effect on its next request.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["Registry"]


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class Registry:
    """Shared state for the scripts of one site.

    ``getComponent(interface)``/``setComponent(interface, component)`` store one object per
    key (any hashable), as scripts use it to share a database pool or a counter.
    """

    def __init__(self) -> None:
        self._components: dict[Any, Any] = {}
        self._cached: dict[str, tuple[tuple[int, int] | None, Any]] = {}

    def getComponent(self, interface: Any, default: Any = None) -> Any:
        """Return the component stored under ``interface``, or ``default``."""
        return self._components.get(interface, default)

    def setComponent(self, interface: Any, component: Any) -> None:
        """Store ``component`` under ``interface``."""
        self._components[interface] = component

    def cachePath(self, path: str, rsrc: Any) -> None:
        """Remember ``rsrc`` as the resource of script ``path`` until the file changes."""
        self._cached[path] = (_stamp(path), rsrc)

    def getCachedPath(self, path: str) -> Any:
        """Return the cached resource of ``path``, or None if absent or the file changed."""
        entry = self._cached.get(path)
        if entry is None:
            return None
        if entry[0] != _stamp(path):
            del self._cached[path]
            return None
        return entry[1]
