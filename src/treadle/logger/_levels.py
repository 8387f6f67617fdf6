"""Log levels: :class:`LogLevel`, ordered from ``debug`` to ``critical``.

Twisted builds its levels with the ``constantly`` package; treadle uses an :class:`enum.Enum`
with the same surface (``LogLevel.info``, ``level.name``, ``LogLevel.levelWithName("info")``,
``LogLevel.iterconstants()``, ``LogLevel.lookupByName``, comparisons by severity), so no extra
dependency is needed and the levels pickle and hash like any enum member.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

__all__ = ["InvalidLogLevelError", "LogLevel"]


class InvalidLogLevelError(Exception):
    """A level was used that is not a :class:`LogLevel` (or a name that names none).

    Attributes:
        level: The offending level or name.
    """

    def __init__(self, level: object) -> None:
        super().__init__(str(level))
        self.level = level


class LogLevel(enum.Enum):
    """How severe an event is; members compare by severity (``debug < info < ... < critical``).

    Members:
        debug: Details of use to a developer diagnosing the software.
        info: Routine information: a connection opened, a service started.
        warn: Something deserves attention but nothing failed systemically (bad client input,
            a refused login).
        error: A systemic failure: an unhandled exception, a lost database.
        critical: Failures that must be handled at once: outage, data loss, errors whose
            consequences are unknown.
    """

    debug = 0
    info = 1
    warn = 2
    error = 3
    critical = 4

    @classmethod
    def levelWithName(cls, name: str) -> LogLevel:
        """Return the level called ``name``.

        Raises:
            InvalidLogLevelError: No level has that name.
        """
        try:
            return cls.lookupByName(name)
        except ValueError:
            raise InvalidLogLevelError(name) from None

    @classmethod
    def lookupByName(cls, name: str) -> LogLevel:
        """Return the level called ``name`` (``constantly``'s spelling).

        Raises:
            ValueError: No level has that name.
        """
        member = cls.__members__.get(name) if isinstance(name, str) else None
        if member is None:
            raise ValueError(name)
        return member

    @classmethod
    def iterconstants(cls) -> Iterator[LogLevel]:
        """Iterate over the levels from the least to the most severe."""
        return iter(cls)

    def _severity(self, other: Any) -> tuple[int, int] | None:
        if not isinstance(other, LogLevel):
            return None
        return self.value, other.value

    def __lt__(self, other: Any) -> bool:
        pair = self._severity(other)
        return NotImplemented if pair is None else pair[0] < pair[1]

    def __le__(self, other: Any) -> bool:
        pair = self._severity(other)
        return NotImplemented if pair is None else pair[0] <= pair[1]

    def __gt__(self, other: Any) -> bool:
        pair = self._severity(other)
        return NotImplemented if pair is None else pair[0] > pair[1]

    def __ge__(self, other: Any) -> bool:
        pair = self._severity(other)
        return NotImplemented if pair is None else pair[0] >= pair[1]

    def __repr__(self) -> str:
        return f"<LogLevel={self.name}>"

    __str__ = __repr__
