"""What the reactor installers (``epollreactor``, ``asyncioreactor``...) share.

treadle has one reactor, on an asyncio loop, and it exists from the start; the installers are
there so that programs which pick a reactor before importing it run unchanged. The first
``install()`` of any of them succeeds (even after ``treadle.internet.reactor`` was imported:
treadle's own modules may import it early where Twisted's do not), and a later one raises
:class:`~treadle.internet.error.ReactorAlreadyInstalledError`, as installing twice does in
Twisted.
"""

from __future__ import annotations

import threading

from treadle.internet.error import ReactorAlreadyInstalledError

__all__ = ["install_once", "installed_by"]

_lock = threading.Lock()
_installed_by: list[str] = []


def install_once(name: str, function: str = "install") -> None:
    """Record that the installer ``name`` ran.

    Args:
        name: The installer's module, named in the error of a later install.
        function: The installing function of that module, for the same error.

    Raises:
        ReactorAlreadyInstalledError: An installer ran already.
    """
    with _lock:
        if _installed_by:
            raise ReactorAlreadyInstalledError(f"reactor already installed (by {_installed_by[0]})")
        _installed_by.append(f"{name}.{function}()")


def installed_by() -> str | None:
    """Return the installer that ran (``"treadle.internet.default.install()"``), or None."""
    return _installed_by[0] if _installed_by else None


def _forget() -> None:
    """Forget the installation (for tests only)."""
    with _lock:
        _installed_by.clear()
