"""``installReactor`` and the connection-closed failures, as ``twisted.internet.main`` has them.

``twisted.internet.main`` ports to this module. treadle has one reactor of its own, on an
asyncio loop; :func:`installReactor` lets a program (or its tests) put another object in the
place of the global reactor, as Twisted's reactor modules and test helpers do: from then on
``from treadle.internet import reactor`` gives that object, and so do the places of treadle
that use the global reactor only when none is passed (``task.react``, a
``task.LoopingCall``'s clock, the global ``task.Cooperator``,
``defer.DeferredFilesystemLock``). treadle's servers and connections keep running on
treadle's reactor.

Installing is once per process, shared with the reactor installers (``asyncioreactor.install()``
and the others): the first succeeds, even after ``treadle.internet.reactor`` was imported
(treadle's own modules may import it early where Twisted's do not), and any later one raises
:class:`~treadle.internet.error.ReactorAlreadyInstalledError`.
"""

from __future__ import annotations

import sys
from typing import Any

import treadle.internet
from treadle.internet._install import install_once
from treadle.internet.error import ConnectionDone, ConnectionLost
from treadle.python.failure import Failure

__all__ = ["CONNECTION_DONE", "CONNECTION_LOST", "installReactor"]

#: The reason given to ``connectionLost`` of a connection closed cleanly.
CONNECTION_DONE: Failure = Failure(ConnectionDone())
#: The reason given to ``connectionLost`` of a connection that was cut off.
CONNECTION_LOST: Failure = Failure(ConnectionLost())


def installReactor(reactor: Any) -> None:
    """Make ``reactor`` the global reactor: what ``treadle.internet.reactor`` names.

    Args:
        reactor: The object to install (a reactor, or a fake one in tests).

    Raises:
        ReactorAlreadyInstalledError: A reactor was installed already (by this function or a
            reactor installer).
    """
    install_once(__name__, "installReactor")
    # The import system hands out the sys.modules entry; the package attribute serves
    # ``from treadle.internet import reactor`` once the module was imported.
    sys.modules["treadle.internet.reactor"] = reactor
    treadle.internet.reactor = reactor  # type: ignore[attr-defined]
