"""The authenticating resource wrapper under Twisted's path (``twisted.web._auth.wrapper``).

The implementations are :class:`treadle.web.guard.HTTPAuthSessionWrapper` and
:class:`treadle.web.guard.UnauthorizedResource`.
"""

from treadle.web.guard import HTTPAuthSessionWrapper, UnauthorizedResource

__all__ = ["HTTPAuthSessionWrapper", "UnauthorizedResource"]
