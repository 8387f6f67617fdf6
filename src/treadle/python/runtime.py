"""What the program runs on (``twisted.python.runtime``): :data:`platform` and friends.

Twisted programs and test suites ask ``platform.isWindows()`` or ``platformType == "posix"``
to pick a code path or skip a test; this module answers the same questions from
:mod:`os` and :mod:`sys`. ``seconds`` is :func:`time.time`, as in Twisted.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from time import time as seconds
from typing import Final

__all__ = [
    "Platform",
    "knownPlatforms",
    "platform",
    "platformType",
    "seconds",
    "shortPythonVersion",
]

#: Twisted's platform families by :data:`os.name` (``"nt"`` is ``"win32"``).
knownPlatforms: Final[dict[str, str]] = {
    "nt": "win32",
    "ce": "win32",
    "posix": "posix",
    "java": "java",
    "org.python.modules.os": "java",
}


def shortPythonVersion() -> str:
    """Return the running Python's version as ``"major.minor.micro"`` (e.g. ``"3.11.9"``)."""
    major, minor, micro = sys.version_info[:3]
    return f"{major}.{minor}.{micro}"


class Platform:
    """Answers questions about the operating system.

    Args:
        name: An :data:`os.name` value to describe instead of the running one (for tests).
        platform: A :data:`sys.platform` value to describe instead of the running one.
    """

    seconds = staticmethod(seconds)

    def __init__(self, name: str | None = None, platform: str | None = None) -> None:
        self.type: str | None = knownPlatforms.get(os.name if name is None else name)
        self._platform = sys.platform if platform is None else platform

    def isKnown(self) -> bool:
        """Return True when the platform family is one of :data:`knownPlatforms`' values."""
        return self.type is not None

    def getType(self) -> str | None:
        """Return the family: ``"posix"``, ``"win32"`` or ``"java"`` (None when unknown)."""
        return self.type

    def isMacOSX(self) -> bool:
        """Return True on macOS."""
        return self._platform == "darwin"

    def isWindows(self) -> bool:
        """Return True on Windows."""
        return self.type == "win32"

    def isWinNT(self) -> bool:
        """Return True on Windows (every supported Windows is NT-based); as :meth:`isWindows`."""
        return self.isWindows()

    def isVista(self) -> bool:
        """Return True on Windows 6.x (Vista, 7, 8, Server 2008/2012)."""
        getwindowsversion = getattr(sys, "getwindowsversion", None)
        return getwindowsversion is not None and getwindowsversion().major == 6

    def isLinux(self) -> bool:
        """Return True on Linux."""
        return self._platform.startswith("linux")

    def isDocker(self, _initCGroupLocation: str = "/proc/1/cgroup") -> bool:
        """Return True on Linux inside a Docker container (judged by init's control groups)."""
        if not self.isLinux():
            return False
        try:
            groups = Path(_initCGroupLocation).read_bytes()
        except OSError:
            return False
        # Each line is "id:controllers:path"; Docker puts its containers under /docker/.
        return any(
            len(fields) == 3 and fields[2].startswith(b"/docker/")
            for fields in (line.split(b":") for line in groups.splitlines())
        )

    def _supportsSymlinks(self) -> bool:
        # Twisted's name, which test suites call at import time to skip symlink tests.
        # Windows needs a privilege ordinary users lack, so it counts as having none.
        return not self.isWindows() and hasattr(os, "symlink")

    def supportsThreads(self) -> bool:
        """Return True: every Python treadle runs on has threads."""
        return threading is not None

    def supportsINotify(self) -> bool:
        """Return False: treadle has no inotify support (Twisted's ``twisted.internet.inotify``)."""
        return False


#: The running platform.
platform: Final = Platform()
#: The running platform's family (``"posix"``, ``"win32"``...), as :meth:`Platform.getType`.
platformType: Final = platform.getType()
