"""Twisted's ``twisted.python``: the ground floor every other package of treadle stands on.

It owns what is neither networking nor HTTP: :mod:`~treadle.python.failure` (exceptions with
their tracebacks, as Deferreds carry them), :mod:`~treadle.python.components` (interfaces and
adapters, on :mod:`zope.interface`), :mod:`~treadle.python.log` and
:mod:`~treadle.python.urlpath`.

May import: the standard library and third-party packages only — nothing else of treadle.
"""
