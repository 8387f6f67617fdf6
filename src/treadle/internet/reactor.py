"""The reactor of the process: ``from treadle.internet import reactor``.

As in Twisted, importing this module installs the reactor and puts the reactor object itself
in its place: after ``import treadle.internet.reactor`` the name
``treadle.internet.reactor`` is the :class:`~treadle.internet._reactor.Reactor` instance, and
``from treadle.internet import reactor`` gives that instance too.
"""

from __future__ import annotations

import sys
from typing import Any

from treadle.internet._reactor import reactor as _reactor


def __getattr__(name: str) -> Any:
    # Reached only through a reference to this module taken before the swap below
    # (importlib hands everyone else the instance); it behaves as the instance does.
    return getattr(_reactor, name)


sys.modules[__name__] = _reactor  # type: ignore[assignment]
