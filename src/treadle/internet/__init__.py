"""Twisted's ``twisted.internet``: the reactor, Deferreds, connections and time, on asyncio.

It owns scheduling and connections: :mod:`~treadle.internet.reactor` (``from
treadle.internet import reactor`` gives the reactor, as in Twisted),
:mod:`~treadle.internet.defer`, :mod:`~treadle.internet.task`, :mod:`~treadle.internet.error`,
:mod:`~treadle.internet.address`, :mod:`~treadle.internet.base`,
:mod:`~treadle.internet.protocol` (protocols and factories), :mod:`~treadle.internet.interfaces`,
:mod:`~treadle.internet.endpoints`, :mod:`~treadle.internet.ssl` (on the standard library's
``ssl``), :mod:`~treadle.internet.threads`, :mod:`~treadle.internet.utils` (child processes),
:mod:`~treadle.internet.testing` (test doubles) and the reactor installers
(``epollreactor``, ``asyncioreactor``, ... which all keep treadle's loop). The transports
protocols talk to are in ``_transport`` and ``_connector``. It knows nothing of HTTP.

May import: :mod:`treadle.python` and :mod:`treadle.logger`; never :mod:`treadle.cred`,
:mod:`treadle.web` or the CLI.
"""
