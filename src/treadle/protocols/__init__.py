"""Twisted's ``twisted.protocols``: reusable framing and connection policies.

- :mod:`~treadle.protocols.basic`: line, netstring and length-prefixed receivers, and
  ``FileSender``.
- :mod:`~treadle.protocols.policies`: ``TimeoutMixin``, wrapping factories, connection limits.

May import: :mod:`treadle.internet`, :mod:`treadle.logger` and :mod:`treadle.python`.
"""

__all__ = ["basic", "policies"]
