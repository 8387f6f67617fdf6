"""Twisted's ``twisted.python``: the ground floor every other package of treadle stands on.

It owns what is neither networking nor HTTP: :mod:`~treadle.python.failure` (exceptions with
their tracebacks, as Deferreds carry them), :mod:`~treadle.python.components` (interfaces and
adapters, on :mod:`zope.interface`), :mod:`~treadle.python.log`,
:mod:`~treadle.python.urlpath`, :mod:`~treadle.python.filepath`,
:mod:`~treadle.python.usage` (command-line options), :mod:`~treadle.python.threadpool`,
:mod:`~treadle.python.runtime` (``platform``), :mod:`~treadle.python.compat` and
:mod:`~treadle.python.reflect` (the helpers Twisted programs import from there), and
``_compat``, the ``twisted.X`` to ``treadle.X`` import rule that ``.rpy`` scripts, ``.tac``
files and plugins run under.

May import: the standard library and third-party packages only — nothing else of treadle,
except that :mod:`~treadle.python.log` builds on :mod:`treadle.logger` (which never imports it
back).
"""
