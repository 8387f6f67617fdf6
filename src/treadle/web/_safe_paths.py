"""Path safety for :class:`treadle.web.static.File`: which segments name a file, and where.

A path segment reaches ``File.getChild`` already percent-decoded, so ``..%2f`` arrives as
``../``. :func:`child_name` checks each segment on its own; :func:`is_within` checks that a
resolved path stays inside the served tree (``os.path.commonpath``, as Starlette does).
"""

from __future__ import annotations

import os
import sys
from typing import Final, Protocol

__all__ = ["FS_ENCODING", "WINDOWS", "Located", "child_name", "is_within", "path_text"]

WINDOWS: Final = os.name == "nt"
FS_ENCODING: Final = sys.getfilesystemencoding()


def child_name(segment: bytes) -> str | None:
    """Return the file name a (decoded) path segment stands for, or None if it must be refused.

    Refused: empty, ``.`` and ``..``; anything containing a separator (``/``, and ``\\`` on
    every platform, since a decoded ``%5C`` is one on Windows) or NUL; bytes that are not
    valid in the file system encoding; on Windows also drive or stream colons and trailing
    dots or spaces, which Windows strips (``"..."`` would name the parent).
    """
    if not segment or segment in (b".", b"..") or b"/" in segment or b"\\" in segment:
        return None
    if b"\x00" in segment:
        return None
    try:
        name = segment.decode(FS_ENCODING)
    except UnicodeDecodeError:
        return None
    if os.sep in name or (os.altsep is not None and os.altsep in name):
        return None
    if WINDOWS and (":" in name or name[-1] in ". "):
        return None
    return name


def is_within(path: str, root: str) -> bool:
    """True when the real path ``path`` is ``root`` or below it (both absolute, resolved)."""
    try:
        return os.path.commonpath((root, path)) == root
    except ValueError:  # different drives on Windows
        return False


class Located(Protocol):
    """Anything with a ``path``, as Twisted's path objects have (a ``FilePath`` does)."""

    @property
    def path(self) -> str | bytes:
        """The path, text or bytes."""
        ...


def path_text(path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | Located) -> str:
    """The text of a path given as text, bytes, a path object or anything with ``path``."""
    if isinstance(path, (str, bytes, os.PathLike)):
        return os.fsdecode(path)
    located = getattr(path, "path", None)
    if not isinstance(located, (str, bytes)):
        raise TypeError(f"File needs a path (str, bytes, os.PathLike or .path), not {path!r}")
    return os.fsdecode(located)
