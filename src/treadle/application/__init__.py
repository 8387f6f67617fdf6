"""Twisted's ``twisted.application``: services, applications and ``.tac`` files.

:mod:`~treadle.application.service` holds the service tree (``Service``, ``MultiService``,
``Application``), :mod:`~treadle.application.internet` the services that listen, connect or
repeat a call while they run, and :mod:`~treadle.application.strports` services built from
endpoint descriptions. ``treadle run`` starts an application and stops it on a signal.

May import: :mod:`treadle.python`, :mod:`treadle.logger`, :mod:`treadle.internet` and
:mod:`treadle.protocols`; never :mod:`treadle.web` or the CLI.
"""
