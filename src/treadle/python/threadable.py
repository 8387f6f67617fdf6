"""Which thread code runs in (``twisted.python.threadable``).

Twisted programs and their test suites compare thread ids to check that work ran in a
worker thread (a WSGI application) or back on the reactor's thread (``request.write``), and
ask :func:`isInIOThread` before touching the reactor from code that may run in either.
``reactor.run()`` registers its thread as the I/O thread, as Twisted's does. Where no thread
was registered (treadle serving on an asyncio loop its program runs itself),
:func:`isInIOThread` answers whether an asyncio loop is running in the calling thread:
that is the thread treadle's reactor serves from.

Twisted's locking helpers (``synchronize``, ``XLock``) predate :mod:`threading` as it is now
and have no counterpart.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["getThreadID", "ioThread", "isInIOThread", "registerAsIOThread"]

#: The id of the thread registered by :func:`registerAsIOThread` (None before).
ioThread: int | None = None


def getThreadID() -> int:
    """Return an id of the calling thread, unique among the threads alive.

    Returns:
        :func:`threading.get_ident` of the calling thread (an id may be reused once its
        thread has ended).
    """
    return threading.get_ident()


def registerAsIOThread() -> None:
    """Make the calling thread the I/O thread (``reactor.run()`` does)."""
    global ioThread
    ioThread = getThreadID()


def isInIOThread() -> bool:
    """Whether the calling thread is the I/O thread: the registered one, or, when none is,
    a thread with an asyncio loop running."""
    if ioThread is not None:
        return ioThread == getThreadID()
    return asyncio._get_running_loop() is not None
