"""How ``spawnProcess`` starts a child and notices its end (helpers of :mod:`._process`).

:func:`popen_options` turns ``childFDs``/``usePTY`` into :class:`subprocess.Popen` options and
the pipes to the child; :func:`identity_options` does the same for ``uid``/``gid``;
:func:`watch_exit` calls back on the loop with the child's raw wait status once it exits. See
:mod:`treadle.internet._process` for why it is done this way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "UNKNOWN_STATUS",
    "ChildFDs",
    "check_args",
    "close_all",
    "identity_options",
    "popen_options",
    "watch_exit",
]

log = logging.getLogger("treadle.error")

#: The exit status reported when another part of the program reaped the child first, so its
#: real status is lost (asyncio reports 255 in the same case).
UNKNOWN_STATUS = 255 << 8

ChildFDs = Mapping[int, "str | int"]


def _open_pipes(child_fds: ChildFDs) -> tuple[dict[int, int], dict[int, tuple[int, str]]]:
    """Make the pipes ``child_fds`` asks for.

    Returns:
        ``fdmap``: the child's descriptor -> our descriptor that becomes it; ``ours``: the
        child's descriptor -> (our end of its pipe, ``"r"`` or ``"w"``).
    """
    fdmap: dict[int, int] = {}
    ours: dict[int, tuple[int, str]] = {}
    try:
        for child_fd, target in child_fds.items():
            if not isinstance(child_fd, int) or isinstance(child_fd, bool) or child_fd < 0:
                raise ValueError(f"childFDs keys must be descriptor numbers, not {child_fd!r}")
            if target in ("r", "w"):
                read_end, write_end = os.pipe()
                child_end, our_end = (
                    (write_end, read_end) if target == "r" else (read_end, write_end)
                )
                fdmap[child_fd] = child_end
                ours[child_fd] = (our_end, str(target))
            elif isinstance(target, int) and not isinstance(target, bool) and target >= 0:
                fdmap[child_fd] = target
            else:
                raise ValueError(
                    f"childFDs[{child_fd}] must be 'r', 'w' or a descriptor, not {target!r}"
                )
    except BaseException:
        close_all(fd for c, fd in fdmap.items() if c in ours)
        close_all(fd for fd, _ in ours.values())
        raise
    return fdmap, ours


def close_all(fds: Iterable[int]) -> None:
    """Close each of ``fds``, ignoring those already closed."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _arrange_child_fds(fdmap: dict[int, int]) -> None:
    """In the child, before exec: put each ``fdmap`` source at its number, close the rest.

    Runs as Popen's ``preexec_fn``. Descriptors Python opened are close-on-exec already; what
    else is inheritable and not asked for is closed, as Twisted does.
    """
    fdmap = dict(fdmap)
    for child in sorted(fdmap):
        source = fdmap[child]
        if source == child:
            os.set_inheritable(child, True)
            continue
        if child in fdmap.values():
            # ``child`` is still the source of another mapping: move it out of the way.
            moved = os.dup(child)
            for key, value in fdmap.items():
                if value == child:
                    fdmap[key] = moved
            source = fdmap[child]
        os.dup2(source, child)
    for fd in _open_descriptors():
        if fd not in fdmap:
            with contextlib.suppress(OSError):
                if os.get_inheritable(fd):
                    os.close(fd)


def _open_descriptors() -> list[int]:
    for folder in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return [int(name) for name in os.listdir(folder)]
    return list(range(min(os.sysconf("SC_OPEN_MAX"), 4096)))


def _take_controlling_terminal() -> None:
    """In the child, before exec: make the terminal on stdin the controlling one."""
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def popen_options(
    child_fds: ChildFDs | None, use_pty: Any
) -> tuple[dict[str, Any], dict[int, tuple[int, str]], list[int]]:
    """Return Popen's descriptor options, our pipe ends, and the child ends to close after."""
    if use_pty:
        if child_fds is not None:
            raise ValueError("Using childFDs is not supported with usePTY=True.")
        if isinstance(use_pty, (tuple, list)):
            master, slave = use_pty[0], use_pty[1]
        else:
            master, slave = os.openpty()
        options = {
            "stdin": slave,
            "stdout": slave,
            "stderr": slave,
            "start_new_session": True,
            "preexec_fn": _take_controlling_terminal,
        }
        return options, {1: (master, "rw")}, [slave]
    if child_fds is None:
        child_fds = {0: "w", 1: "r", 2: "r"}
    fdmap, ours = _open_pipes(child_fds)
    child_ends = [fdmap[child] for child in ours]
    extra = {child: source for child, source in fdmap.items() if child > 2}
    if all(child == source for child, source in extra.items()):
        # The common case: no preexec_fn, so Popen may use vfork or posix_spawn.
        stdio = [fdmap.get(i, subprocess.DEVNULL) for i in range(3)]
        return (
            {"stdin": stdio[0], "stdout": stdio[1], "stderr": stdio[2], "pass_fds": tuple(extra)},
            ours,
            child_ends,
        )
    devnull = os.open(os.devnull, os.O_RDWR)
    for i in range(3):
        fdmap.setdefault(i, devnull)

    def arrange() -> None:
        _arrange_child_fds(fdmap)

    return {"close_fds": False, "preexec_fn": arrange}, ours, [*child_ends, devnull]


def identity_options(uid: int | None, gid: int | None) -> dict[str, Any]:
    """Return Popen's options to run the child as ``uid``/``gid`` (none when both are None)."""
    if uid is None and gid is None:
        return {}
    options: dict[str, Any] = {"user": uid, "group": gid if gid is not None else os.getegid()}
    if uid is not None:
        import pwd

        with contextlib.suppress(KeyError):
            # As Twisted's switchUID: the user's supplementary groups too.
            name = pwd.getpwuid(uid).pw_name
            options["extra_groups"] = os.getgrouplist(name, options["group"])
    return options


def check_args(args: Sequence[Any]) -> list[Any]:
    """Return ``args`` as the child's argv list.

    Raises:
        TypeError: ``args`` is a single string.
        ValueError: ``args`` is empty (Twisted raises the same).
    """
    if isinstance(args, (str, bytes)):
        raise TypeError("args must be a sequence of arguments, not a single string")
    argv = list(args)
    if not argv:
        raise ValueError("args must not be empty: args[0] is the child's argv[0]")
    return argv


# -- noticing the exit -----------------------------------------------------------------------


def _reap(pid: int) -> int:
    """Return the raw wait status of the exited child ``pid``."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        log.warning("child process %d was reaped elsewhere; its exit status is unknown", pid)
        return UNKNOWN_STATUS
    return status


def watch_exit(loop: Any, pid: int, on_exit: Callable[[int], None]) -> None:
    """Call ``on_exit(status)`` on ``loop`` once the child ``pid`` has exited."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            pidfd = pidfd_open(pid)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.ESRCH):
                raise
        else:

            def exited() -> None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
                on_exit(_reap(pid))  # readable: it has exited, so waitpid returns at once

            loop.add_reader(pidfd, exited)
            return

    def wait() -> None:
        status = _reap(pid)
        with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
            loop.call_soon_threadsafe(on_exit, status)

    threading.Thread(target=wait, name=f"treadle-waitpid-{pid}", daemon=True).start()
