"""MIME types of served files: the extension table and the ``Content-Type`` values.

:func:`loadMimeTypes` builds the table :attr:`treadle.web.static.File.contentTypes` starts from
(the stdlib's own table plus overrides for web formats), :func:`getTypeAndEncoding` reads a
file name against it as Twisted does, and :func:`content_type_value` adds
``; charset=utf-8`` to textual types. :mod:`treadle.web.static` re-exports the two Twisted names.
"""

from __future__ import annotations

import functools
import mimetypes
import os
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = [
    "CONTENT_ENCODINGS",
    "CONTENT_TYPES",
    "content_type_value",
    "getTypeAndEncoding",
    "loadMimeTypes",
]

# Types the stdlib table lacks or gets wrong for the web; they win over it.
_TYPE_OVERRIDES: Final = {
    ".js": "text/javascript",  # RFC 9239 made text/javascript the one registered type
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming insists on it
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".md": "text/markdown",
    ".flac": "audio/flac",
    # Source and text formats a browser should show rather than download or run.
    ".py": "text/plain",
    ".rpy": "text/plain",  # only reached when no processor is set: shown, never run
    ".conf": "text/plain",
    ".diff": "text/plain",
    ".patch": "text/plain",
    ".java": "text/plain",
    ".log": "text/plain",
}

# Types served as UTF-8 text when they name no charset themselves.
_TEXTUAL_APPLICATION_TYPES: Final = frozenset(("application/javascript", "application/json"))


def loadMimeTypes(
    mimetype_locations: Iterable[str] | None = None,
    init: Callable[[Any], object] = mimetypes.init,
) -> dict[str, str]:
    """Return the extension → MIME type table ``File`` uses.

    Built from a private :class:`mimetypes.MimeTypes` instance (the stdlib's own table, the
    same on every machine, plus the given ``mime.types`` files) and treadle's overrides for
    web formats. Unlike Twisted's, the global :mod:`mimetypes` state is left alone: the
    default ``init`` (:func:`mimetypes.init`, as in Twisted's signature) is not called.

    Args:
        mimetype_locations: Paths of ``mime.types``-style files read after the built-in
            table; later entries override earlier ones. Paths that are no file are skipped.
        init: Called as ``init(mimetype_locations)`` first, when it is not
            :func:`mimetypes.init` (Twisted's hook, used by tests to observe the call).

    Returns:
        A new dict such as ``{".html": "text/html", ...}`` (extensions lowercased).
    """
    if init is not mimetypes.init:
        init(mimetype_locations)
    # Files that do not exist are skipped, as mimetypes.init skips them.
    db = mimetypes.MimeTypes(tuple(p for p in mimetype_locations or () if os.path.isfile(p)))
    types = dict(db.types_map[False])
    types.update(db.types_map[True])
    types.update(_TYPE_OVERRIDES)
    return {ext.lower(): ctype for ext, ctype in types.items()}


#: The extension → MIME type table ``File`` and ``DirectoryLister`` start from.
CONTENT_TYPES: dict[str, str] = loadMimeTypes()
#: The extension → ``Content-Encoding`` table they start from.
CONTENT_ENCODINGS: dict[str, str] = {".gz": "gzip", ".bz2": "bzip2"}


def getTypeAndEncoding(
    filename: str,
    types: dict[str, str],
    encodings: dict[str, str],
    defaultType: str,
) -> tuple[str, str | None]:
    """Return ``(MIME type, content encoding or None)`` for a file name.

    ``archive.tar.gz`` gives the type of ``.tar`` and the encoding of ``.gz``, as in Twisted.
    Extensions compare case-insensitively; an unknown one gives ``defaultType``.
    """
    base, ext = os.path.splitext(filename)
    ext = ext.lower()
    encoding = encodings.get(ext)
    if encoding is not None:
        ext = os.path.splitext(base)[1].lower()
    return types.get(ext, defaultType), encoding


@functools.lru_cache(maxsize=256)
def content_type_value(ctype: str) -> bytes:
    """The ``Content-Type`` value for a MIME type: UTF-8 is declared for textual types."""
    lowered = ctype.lower()
    if "charset=" not in lowered and (
        lowered.startswith("text/") or lowered in _TEXTUAL_APPLICATION_TYPES
    ):
        ctype += "; charset=utf-8"
    return ctype.encode("latin-1")
