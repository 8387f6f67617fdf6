"""Which thread code runs in (``twisted.python.threadable``): :func:`getThreadID`.

Twisted programs and their test suites compare thread ids to check that work ran in a
worker thread (a WSGI application) or back on the reactor's thread (``request.write``).
Only that part of Twisted's module is here; its locking helpers (``synchronize``,
``XLock``) predate :mod:`threading` as it is now and have no counterpart.
"""

from __future__ import annotations

import threading

__all__ = ["getThreadID"]


def getThreadID() -> int:
    """Return an id of the calling thread, unique among the threads alive.

    Returns:
        :func:`threading.get_ident` of the calling thread (an id may be reused once its
        thread has ended).
    """
    return threading.get_ident()
