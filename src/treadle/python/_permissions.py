"""Twisted's ``RWX`` and ``Permissions``: a file mode's permission bits, as
:meth:`FilePath.getPermissions <treadle.python.filepath.FilePath.getPermissions>` returns them.

Re-exported by :mod:`treadle.python.filepath`, where Twisted declares them.
"""

from __future__ import annotations

__all__ = ["RWX", "Permissions"]


class RWX:
    """Read, write and execute permission for one class of users (owner, group, other)."""

    def __init__(self, readable: bool, writable: bool, executable: bool) -> None:
        self.read = readable
        self.write = writable
        self.execute = executable

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RWX):
            return NotImplemented
        return (self.read, self.write, self.execute) == (other.read, other.write, other.execute)

    def __hash__(self) -> int:
        return hash((self.read, self.write, self.execute))

    def __repr__(self) -> str:
        return f"RWX(read={self.read}, write={self.write}, execute={self.execute})"

    def shorthand(self) -> str:
        """Return the permissions as ``ls -l`` shows them (``"rw-"``)."""
        return "".join(
            c if on else "-"
            for c, on in zip("rwx", (self.read, self.write, self.execute), strict=True)
        )


class Permissions:
    """The permission bits of a file mode, as :class:`RWX` for ``user``, ``group``, ``other``.

    Args:
        statModeInt: A mode (only the permission bits count).
    """

    def __init__(self, statModeInt: int) -> None:
        self.user, self.group, self.other = (
            RWX(
                bool(statModeInt & (4 << shift)),
                bool(statModeInt & (2 << shift)),
                bool(statModeInt & (1 << shift)),
            )
            for shift in (6, 3, 0)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Permissions):
            return NotImplemented
        return (self.user, self.group, self.other) == (other.user, other.group, other.other)

    def __hash__(self) -> int:
        return hash((self.user, self.group, self.other))

    def __repr__(self) -> str:
        return f"[{self.user} | {self.group} | {self.other}]"

    def shorthand(self) -> str:
        """Return the permissions as ``ls -l`` shows them (``"rwxr-xr-x"``)."""
        return self.user.shorthand() + self.group.shorthand() + self.other.shorthand()
