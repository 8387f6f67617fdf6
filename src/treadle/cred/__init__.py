"""Twisted's ``twisted.cred``: who a client is, and what it may reach once that is known.

It owns :mod:`~treadle.cred.error`, :mod:`~treadle.cred.credentials`,
:mod:`~treadle.cred.portal` and :mod:`~treadle.cred.checkers`; :mod:`treadle.web.guard` puts
them behind HTTP authentication.

May import: :mod:`treadle.internet` and :mod:`treadle.python`; never :mod:`treadle.web`.
"""
