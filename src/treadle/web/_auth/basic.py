"""HTTP Basic authentication under Twisted's path (``twisted.web._auth.basic``).

The implementation is :class:`treadle.web.guard.BasicCredentialFactory`.
"""

from treadle.web.guard import BasicCredentialFactory

__all__ = ["BasicCredentialFactory"]
