"""systemd socket activation: the listening sockets a service manager passed to this process.

systemd (and compatible managers: s6, ``systemd-socket-activate``...) opens the sockets, then
starts the service with them as descriptors 3, 4, ... and says so in the environment:
``LISTEN_PID`` (the process they are meant for), ``LISTEN_FDS`` (how many) and, optionally,
``LISTEN_FDNAMES`` (colon-separated names, from ``FileDescriptorName=``). A ``systemd:``
endpoint description picks one of them by index or name.

The environment is read once per process, the first time a socket is asked for, and the three
variables are then removed so that child processes do not take the sockets for their own (as
``sd_listen_fds(1)`` does); the descriptors are marked close-on-exec for the same reason. A
process forked after that (a ``--workers`` worker) keeps what its parent read.

Better than Twisted's ``ListenFDs``: sockets are found by index even when the manager sets no
``LISTEN_FDNAMES`` (Twisted then finds none at all), and the environment is read when first
needed rather than when the module is imported.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Final

__all__ = ["ListenFDs", "address_family", "inherited_descriptor"]

#: The first descriptor a service manager passes (``SD_LISTEN_FDS_START``).
LISTEN_FDS_START: Final = 3

_VARIABLES: Final = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ListenFDs:
    """The descriptors (and their names) a service manager passed, as Twisted's ``ListenFDs``.

    Args:
        descriptors: The inherited descriptors, in order.
        names: Their names, in the same order (empty when the manager gave none).
    """

    def __init__(self, descriptors: Sequence[int], names: Sequence[str] = ()) -> None:
        self._descriptors = list(descriptors)
        self._names = list(names) if len(names) == len(descriptors) else []

    @classmethod
    def fromEnvironment(
        cls, environ: Mapping[str, str] | None = None, start: int | None = None
    ) -> ListenFDs:
        """Read what the environment says was passed to this very process.

        Args:
            environ: The environment (``os.environ`` when None). It is not modified.
            start: The first descriptor (3 when None, as systemd uses).

        Returns:
            The descriptors; none when ``LISTEN_PID`` is not this process's id (the variables
            were meant for a parent) or ``LISTEN_FDS`` is missing or not a count.
        """
        environ = os.environ if environ is None else environ
        start = LISTEN_FDS_START if start is None else start
        if environ.get("LISTEN_PID") != str(os.getpid()):
            return cls([])
        try:
            count = int(environ.get("LISTEN_FDS", ""))
        except ValueError:
            return cls([])
        if count < 0:
            return cls([])
        names = environ.get("LISTEN_FDNAMES", "")
        return cls(range(start, start + count), names.split(":") if names else ())

    def inheritedDescriptors(self) -> list[int]:
        """Return the inherited descriptors, in the order they were passed."""
        return list(self._descriptors)

    def inheritedNamedDescriptors(self) -> dict[str, int]:
        """Return ``{name: descriptor}`` (empty when the manager named none)."""
        if not self._names:
            return {}
        return dict(zip(self._names, self._descriptors, strict=True))


_inherited: ListenFDs | None = None


def _process_descriptors() -> ListenFDs:
    """The descriptors passed to this process, read (and the environment cleared) once."""
    global _inherited
    if _inherited is None:
        environ: MutableMapping[str, str] = os.environ
        _inherited = ListenFDs.fromEnvironment(environ)
        if environ.get("LISTEN_PID") == str(os.getpid()):
            for variable in _VARIABLES:
                environ.pop(variable, None)
        for fd in _inherited.inheritedDescriptors():
            with contextlib.suppress(OSError):  # a bad descriptor is reported when used
                os.set_inheritable(fd, False)
    return _inherited


def inherited_descriptor(index: int | None, name: str | None) -> int:
    """Return the descriptor passed at position ``index``, or under ``name``.

    Raises:
        ValueError: Nothing was passed to this process, or nothing at that index or name.
    """
    passed = _process_descriptors()
    descriptors = passed.inheritedDescriptors()
    if not descriptors:
        raise ValueError(
            "no socket was passed to this process by systemd "
            "(LISTEN_FDS and LISTEN_PID do not name it)"
        )
    if name is not None:
        named = passed.inheritedNamedDescriptors()
        if name not in named:
            known = ", ".join(sorted(named)) or "none (LISTEN_FDNAMES is not set)"
            raise ValueError(f"no socket named {name!r} was passed (names: {known})")
        return named[name]
    assert index is not None
    if index >= len(descriptors):
        count = len(descriptors)
        raise ValueError(
            f"no socket at index {index}: {count} socket{'s' if count != 1 else ''} "
            f"{'were' if count != 1 else 'was'} passed"
        )
    return descriptors[index]


def address_family(domain: str) -> socket.AddressFamily:
    """Return the family of a ``systemd:`` description's ``domain`` (``INET``...)."""
    family: socket.AddressFamily = getattr(socket, f"AF_{domain}")
    return family
