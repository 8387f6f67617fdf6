"""Directory listings: the HTML page :class:`treadle.web.static.File` shows for a directory.

:class:`DirectoryLister` and :func:`formatFileSize` keep their ``twisted.web.static`` names and
are re-exported there; the page itself is treadle's own (see :class:`DirectoryLister`).
"""

from __future__ import annotations

import html
import os
import stat
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote_to_bytes

from treadle.web._mime import CONTENT_ENCODINGS, CONTENT_TYPES, getTypeAndEncoding
from treadle.web.resource import Resource

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = ["DirectoryLister", "formatFileSize"]


def formatFileSize(size: int) -> str:
    """Return ``size`` bytes as Twisted's listings show it: whole units, rounded down.

    ``0`` → ``"0B"``, ``4567`` → ``"4K"``, ``8900000`` → ``"8M"``, ``1234567890000`` →
    ``"1149G"`` (gigabytes are the largest unit).
    """
    for unit, scale in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= scale:
            return f"{size // scale}{unit}"
    return f"{size}B"


def _size_label(size: int) -> str:
    """``size`` bytes for the listing page: ``"512 B"``, ``"1.5 KiB"``, ``"12 MiB"``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


_LISTING_STYLE: Final = """\
:root{color-scheme:light dark}
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;
max-width:60rem;padding:1rem}
h1{font-size:1.25rem;font-weight:600;overflow-wrap:anywhere}
table{width:100%;border-collapse:collapse}
th,td{padding:.45rem .5rem;text-align:left;border-bottom:1px solid #8884}
th{font-weight:600}
td.name{overflow-wrap:anywhere}
.size{text-align:right;white-space:nowrap}
.type{opacity:.7}
a{text-decoration:none}
a:hover,a:focus{text-decoration:underline}
@media (max-width:36rem){.type{display:none}body{padding:.5rem}}
"""


class DirectoryLister(Resource):
    """An HTML page listing a directory: directories first, then files, each sorted by name.

    Names are HTML-escaped and their links percent-encoded, so any file name is safe to
    show. The page is self-contained (inline style, no scripts or external assets), sent
    with a ``Content-Security-Policy`` that allows nothing else, and readable on a phone.

    Args:
        pathname: The directory to list.
        dirs: The entry names to show; None lists the directory when rendering.
        contentTypes: Extension → MIME type, for the type column.
        contentEncodings: Extension → content encoding, for the type column.
        defaultType: Type shown for unknown extensions.
    """

    def __init__(
        self,
        pathname: str,
        dirs: Sequence[str | bytes] | None = None,
        contentTypes: dict[str, str] = CONTENT_TYPES,
        contentEncodings: dict[str, str] = CONTENT_ENCODINGS,
        defaultType: str = "text/html",
    ) -> None:
        super().__init__()
        self.path = pathname
        self.dirs = dirs
        self.contentTypes = contentTypes
        self.contentEncodings = contentEncodings
        self.defaultType = defaultType

    def _entries(self) -> tuple[list[str], list[tuple[str, int, str]]]:
        """Return (directory names, (file name, size, type label)), both sorted."""
        if self.dirs is None:
            try:
                names: Iterable[str | bytes] = os.listdir(self.path)
            except OSError:
                names = []
        else:
            names = self.dirs
        directories: list[str] = []
        files: list[tuple[str, int, str]] = []
        for raw in names:
            name = os.fsdecode(raw)
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:  # undecodable on disk: cannot be linked or served
                continue
            try:
                st = os.stat(os.path.join(self.path, name))
            except (OSError, ValueError):
                continue  # vanished, or a dangling link
            if stat.S_ISDIR(st.st_mode):
                directories.append(name)
                continue
            ctype, encoding = getTypeAndEncoding(
                name, self.contentTypes, self.contentEncodings, self.defaultType
            )
            files.append((name, st.st_size, f"{ctype} ({encoding})" if encoding else ctype))
        directories.sort()
        files.sort()
        return directories, files

    def render_GET(self, request: Request) -> bytes:
        """Return the listing page."""
        directories, files = self._entries()
        # As Twisted's: the request's URI, percent-decoded (and escaped here).
        where = html.escape(unquote_to_bytes(request.uri).decode("utf-8", "replace"))
        rows = []
        if request.path not in (b"/", b""):
            rows.append(
                '<tr><td class="name"><a href="../">../</a></td>'
                '<td class="size"></td><td class="type">Parent directory</td></tr>'
            )
        for name in directories:
            href = quote(name, safe="") + "/"
            rows.append(
                f'<tr><td class="name"><a href="{href}">{html.escape(name)}/</a></td>'
                '<td class="size"></td><td class="type">Directory</td></tr>'
            )
        for name, size, label in files:
            href = quote(name, safe="")
            rows.append(
                f'<tr><td class="name"><a href="{href}">{html.escape(name)}</a></td>'
                f'<td class="size">{_size_label(size)}</td>'
                f'<td class="type">{html.escape(label)}</td></tr>'
            )
        page = (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>Directory listing for {where}</title>\n"
            f"<style>\n{_LISTING_STYLE}</style>\n</head>\n"
            f"<body>\n<h1>Directory listing for {where}</h1>\n<table>\n<thead><tr><th>Name</th>"
            '<th class="size">Size</th><th class="type">Type</th></tr></thead>\n<tbody>\n'
            + "\n".join(rows)
            + "\n</tbody>\n</table>\n</body>\n</html>\n"
        )
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(
            b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"
        )
        return page.encode("utf-8")

    def __repr__(self) -> str:
        return f"<DirectoryLister of {self.path!r}>"
