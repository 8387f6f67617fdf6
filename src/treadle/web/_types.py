"""The ``typing.Protocol`` classes modules of :mod:`treadle.web` name each other's types by.

A module low in the web layer that must name a type defined above it (the request the
resource layer renders, a resource that a server walks) names one of these instead of
importing upward. They are for type checkers only: programs declare and test with the
zope interfaces of :mod:`treadle.web.iweb` and :class:`treadle.web.resource.IResource`.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["ResourceLike"]


class ResourceLike(Protocol):
    """What the server needs from anything placed in a resource tree.

    ``Resource`` and its subclasses are such objects, and so is any object with these
    three members (Twisted's ``IResource``).
    """

    #: True when traversal stops here and the rest of the path stays in ``postpath``.
    isLeaf: bool

    def getChildWithDefault(self, name: bytes, request: Any) -> ResourceLike:
        """Return the child for path segment ``name``."""
        ...

    def render(self, request: Any) -> Any:
        """Render ``request``: bytes, ``NOT_DONE_YET``, or an awaitable/Deferred of bytes."""
        ...
