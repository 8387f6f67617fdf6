"""Twisted's ``twisted.enterprise``: databases from the reactor.

- :mod:`~treadle.enterprise.adbapi`: ``ConnectionPool``, DB-API 2.0 calls run in a pool of
  threads, their results as Deferreds.

May import: :mod:`treadle.internet` and :mod:`treadle.python`.
"""

__all__ = ["adbapi"]
