"""Test helpers for code built on :mod:`treadle.web`, as ``twisted.web.test`` offers them.

:mod:`treadle.web.test.requesthelper` holds ``DummyRequest`` and ``DummyChannel``, the doubles
users' own test suites import to render their resources without a server.
"""
