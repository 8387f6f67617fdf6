"""Twisted's ``asyncioreactor``: the reactor on an asyncio loop, which treadle's always is.

``asyncioreactor.install()`` keeps treadle's reactor and its loop. ``install(eventloop)``
makes the reactor run on ``eventloop`` (and makes it the thread's current loop) whenever no
other loop is running in the calling thread; treadle's reactor follows a running loop anyway,
so a program inside ``asyncio.run`` needs no installer at all.

The first ``install()`` of any installer succeeds; a second one raises
:class:`~treadle.internet.error.ReactorAlreadyInstalledError`, as in Twisted.
"""

from __future__ import annotations

import asyncio

from treadle.internet._install import install_once
from treadle.internet._reactor import Reactor, reactor

__all__ = ["AsyncioSelectorReactor", "install"]


def _check_loop(reactor: Reactor, eventloop: asyncio.AbstractEventLoop) -> None:
    if eventloop.is_closed():
        raise ValueError("cannot install a closed event loop")
    current = reactor._loop
    # What was scheduled on a loop the reactor already uses would be stranded there.
    if current is not None and current is not eventloop and not current.is_closed():
        raise RuntimeError(
            "the reactor already uses another event loop: install(eventloop) must come "
            "before the reactor is used"
        )


class AsyncioSelectorReactor(Reactor):
    """treadle's reactor under Twisted's name, optionally on a given loop.

    Args:
        eventloop: The loop to run on when none is running (treadle's own by default).
    """

    def __init__(self, eventloop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__()
        if eventloop is not None:
            _check_loop(self, eventloop)
            self._loop = eventloop


def install(eventloop: asyncio.AbstractEventLoop | None = None) -> None:
    """Keep treadle's reactor as the reactor of the process, on ``eventloop`` if given.

    Args:
        eventloop: The loop ``reactor.run()`` should drive (and the reactor should use while
            no other loop runs in the calling thread). None keeps treadle's own loop.

    Raises:
        ReactorAlreadyInstalledError: A reactor installer ran already.
        RuntimeError: The reactor already uses another loop (it was used before install).
        ValueError: ``eventloop`` is closed.
    """
    if eventloop is not None:
        _check_loop(reactor, eventloop)
    install_once(__name__)
    if eventloop is not None:
        reactor._loop = eventloop
        # So that asyncio code asking for the current loop gets the reactor's.
        asyncio.set_event_loop(eventloop)
