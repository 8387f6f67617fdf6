"""Twisted's ``twisted.test``: only :mod:`~treadle.test.proto_helpers`, which test suites of
Twisted programs import. May import :mod:`treadle.internet` and below."""

__all__ = ["proto_helpers"]
