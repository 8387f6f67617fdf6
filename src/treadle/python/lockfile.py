"""``FilesystemLock``: a lock between processes, held as a symbolic link.

``twisted.python.lockfile`` ports to this module. The lock is a symbolic link at the lock's
path whose target is the holder's process id (a path that need not exist): creating a link
fails when one is there already, so taking the lock is atomic, and removing the link releases
it. A lock whose holder has died is taken over (:attr:`FilesystemLock.clean` then says so).

The on-disk form is Twisted's, so a treadle program and a Twisted program (``twistd``'s
own locks included) exclude each other through the same lock file.

Differences from Twisted, on purpose:

* A holder that exists but belongs to another user (the liveness probe answers ``EPERM``)
  holds the lock: :meth:`~FilesystemLock.lock` returns False where Twisted raises.
* A link whose target is not a process id (an unrelated link, or one cut short), or a plain
  file, at the lock's path is a lock held by somebody unknown: :meth:`~FilesystemLock.lock`
  returns False where Twisted raises.
* POSIX only (symbolic links): Twisted's Windows emulation with directories is not offered.
"""

from __future__ import annotations

import errno
import os

__all__ = ["FilesystemLock", "isLocked"]


def _holder_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # It exists; it is only somebody else's.
        return True
    return True


class FilesystemLock:
    """A mutex between processes (and between objects of one process) named by a path.

    Args:
        name: The path of the lock file (a symbolic link while the lock is held).

    Attributes:
        name: The path of the lock file.
        locked: True while this object holds the lock.
        clean: After a successful :meth:`lock`: True if the previous holder released it, False
            if it had died holding it. None before.
    """

    clean: bool | None = None
    locked: bool = False

    def __init__(self, name: str) -> None:
        self.name = name

    def lock(self) -> bool:
        """Try to take the lock, without waiting.

        The lock is held by the process, not by this object: a second object of the same
        process cannot take it either while the first holds it.

        Returns:
            True if it was taken; False if somebody (alive) holds it.

        Raises:
            OSError: The link could not be made or read for another reason than the lock
                being held (a missing directory, no permission, ...).
        """
        clean = True
        while True:
            try:
                os.symlink(str(os.getpid()), self.name)
            except FileExistsError:
                pass
            else:
                self.locked = True
                self.clean = clean
                return True
            try:
                target = os.readlink(self.name)
            except FileNotFoundError:
                # Released between our two calls: try again.
                continue
            except OSError as e:
                if e.errno == errno.EINVAL:
                    # A plain file, not a link: not a lock of ours to judge.
                    return False
                raise
            try:
                pid = int(target)
            except ValueError:
                return False
            if _holder_alive(pid):
                return False
            # The holder died without releasing it: remove its link and try again.
            try:
                os.remove(self.name)
            except FileNotFoundError:
                # Another process cleaned it up first; race it for the lock.
                continue
            clean = False

    def unlock(self) -> None:
        """Release the lock.

        Raises:
            ValueError: The lock is held by another process.
            OSError: There is no lock to release (``FileNotFoundError``) or it cannot be read.
        """
        target = os.readlink(self.name)
        if target != str(os.getpid()):
            raise ValueError(f"Lock {self.name!r} not owned by this process")
        os.remove(self.name)
        self.locked = False


def isLocked(name: str) -> bool:
    """Return whether the lock at ``name`` is held (by a live process, this one included).

    Args:
        name: The path of the lock file.

    Returns:
        True if it is held. The check takes and releases the lock when it is free, so a
        free lock may briefly look held to others.
    """
    probe = FilesystemLock(name)
    if probe.lock():
        probe.unlock()
        return False
    return True
