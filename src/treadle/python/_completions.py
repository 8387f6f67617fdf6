"""Shell-completion metadata of :mod:`treadle.python.usage`: accepted, kept, not used.

Twisted programs declare ``compData = usage.Completions(...)`` with ``Complete*`` actions so
that Twisted can generate zsh completion. treadle generates none, but the classes exist (and
keep what they are given) so that such programs run unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "CompleteDirs",
    "CompleteFiles",
    "CompleteGroups",
    "CompleteHostnames",
    "CompleteList",
    "CompleteMultiList",
    "CompleteNetInterfaces",
    "CompleteUserAtHost",
    "CompleteUsernames",
    "Completer",
    "Completions",
]


class Completer:
    """What a shell could complete for an option (accepted for compatibility, unused).

    Args:
        descr: A description shown above the matches.
        repeat: Whether it completes more than one word.
    """

    _descr: str | None = None

    def __init__(self, descr: str | None = None, repeat: bool = False) -> None:
        if descr is not None:
            self._descr = descr
        self._repeat = repeat


class CompleteFiles(Completer):
    """Complete file names matching ``globPattern`` (unused by treadle)."""

    def __init__(self, globPattern: str = "*", **kw: Any) -> None:
        super().__init__(**kw)
        self._globPattern = globPattern


class CompleteDirs(Completer):
    """Complete directory names (unused by treadle)."""


class CompleteList(Completer):
    """Complete one of ``items`` (unused by treadle)."""

    def __init__(self, items: Iterable[str], **kw: Any) -> None:
        super().__init__(**kw)
        self._items = items


class CompleteMultiList(Completer):
    """Complete comma-separated ``items`` (unused by treadle)."""

    def __init__(self, items: Iterable[str], **kw: Any) -> None:
        super().__init__(**kw)
        self._items = items


class CompleteUsernames(Completer):
    """Complete user names (unused by treadle)."""


class CompleteGroups(Completer):
    """Complete group names (unused by treadle)."""

    _descr = "group"


class CompleteHostnames(Completer):
    """Complete host names (unused by treadle)."""


class CompleteUserAtHost(Completer):
    """Complete ``user``, ``host`` or ``user@host`` (unused by treadle)."""

    _descr = "host | user@host"


class CompleteNetInterfaces(Completer):
    """Complete network interface names (unused by treadle)."""


class Completions:
    """Shell-completion metadata for an Options class's ``compData`` (kept, not used).

    Args:
        descriptions: Option name → description replacing its help text.
        multiUse: Options that may be given more than once.
        mutuallyExclusive: Groups of options that exclude each other.
        optActions: Option name → :class:`Completer` (or a callable returning one).
        extraActions: Completers for the arguments that are not options.
    """

    def __init__(
        self,
        descriptions: dict[str, str] | None = None,
        multiUse: Sequence[str] = (),
        mutuallyExclusive: Sequence[Sequence[str]] = (),
        optActions: dict[str, Any] | None = None,
        extraActions: Sequence[Completer] = (),
    ) -> None:
        self.descriptions = descriptions or {}
        self.multiUse = list(multiUse)
        self.mutuallyExclusive = list(mutuallyExclusive)
        self.optActions = optActions or {}
        self.extraActions = list(extraActions)
