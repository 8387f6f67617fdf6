"""Twisted's ``pollreactor``, so that programs choosing the poll() reactor run unchanged.

``pollreactor.install()`` keeps treadle's reactor and its asyncio loop (uvloop when installed,
whose libuv waits with epoll on Linux): there is one reactor, and it exists already. The
first ``install()`` of any installer succeeds; a second one raises
:class:`~treadle.internet.error.ReactorAlreadyInstalledError`, as in Twisted.
"""

from __future__ import annotations

from treadle.internet._install import install_once
from treadle.internet._reactor import Reactor

__all__ = ["PollReactor", "install"]


class PollReactor(Reactor):
    """treadle's reactor under Twisted's name of the poll() one (for ``isinstance`` and
    programs that build a reactor of their own)."""


def install() -> None:
    """Keep treadle's reactor as the reactor of the process (Twisted's installer signature).

    Raises:
        ReactorAlreadyInstalledError: A reactor installer ran already.
    """
    install_once(__name__)
