""":func:`formatTrace`: show the path an event took (the ``log_trace`` key)."""

from __future__ import annotations

from typing import Any

__all__ = ["formatTrace"]


def _with_name(obj: object) -> str:
    name = getattr(obj, "name", None)
    return f"{obj} ({name})" if name is not None else f"{obj}"


def formatTrace(trace: list[tuple[Any, Any]]) -> str:
    """Return ``trace`` as an indented tree of who handed the event to whom.

    An event emitted with ``log_trace=[]`` collects ``(sender, receiver)`` pairs on its way:
    from the :class:`~treadle.logger.Logger` to its observer, from a publisher to each of its
    observers, from a filter to what it let the event through to.
    """
    lines: list[str] = []
    lineage: list[Any] = []
    for parent, child in trace:
        if not lineage or lineage[-1] is not parent:
            if any(ancestor is parent for ancestor in lineage):
                while lineage[-1] is not parent:
                    lineage.pop()
            else:
                if not lineage:
                    lines.append(f"{_with_name(parent)}\n")
                lineage.append(parent)
        lines.append("  " * len(lineage) + f"-> {_with_name(child)}\n")
    return "".join(lines)
