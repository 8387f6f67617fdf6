"""Twisted's ``twisted.internet``: the reactor, Deferreds and time, on an asyncio event loop.

It owns scheduling and connections: :mod:`~treadle.internet.reactor` (``from
treadle.internet import reactor`` gives the reactor, as in Twisted),
:mod:`~treadle.internet.defer`, :mod:`~treadle.internet.task`, :mod:`~treadle.internet.error`,
:mod:`~treadle.internet.address` and :mod:`~treadle.internet.base`. It knows nothing of HTTP.

May import: :mod:`treadle.python`; never :mod:`treadle.cred`, :mod:`treadle.web` or the CLI.
"""
