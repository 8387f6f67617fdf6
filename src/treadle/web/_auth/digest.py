"""HTTP Digest authentication under Twisted's path (``twisted.web._auth.digest``).

The implementation is :class:`treadle.web.guard.DigestCredentialFactory`, which wraps
:class:`treadle.cred.credentials.DigestCredentialFactory`.
"""

from treadle.web.guard import DigestCredentialFactory

__all__ = ["DigestCredentialFactory"]
