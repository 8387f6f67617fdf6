"""Twisted's import names inside ``.rpy`` scripts, and nowhere else.

A script written for ``twistd web --path`` starts with ``from twisted.web.resource import
Resource``; :func:`script_builtins` gives it the builtins under which that import is
:mod:`treadle.web.resource`, without shadowing a real Twisted for any other code.

The mechanism serves ``.tac`` files and plugin modules too, which live below the web layer,
so it is kept in :mod:`treadle.python._compat`; this module keeps the names the web layer (and
its tests) import.
"""

from __future__ import annotations

from treadle.python._compat import TwistedImporter, script_builtins, treadle_name

__all__ = ["TwistedImporter", "script_builtins", "treadle_name"]
