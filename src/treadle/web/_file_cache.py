"""The contents of small static files, kept in memory while the files are unchanged.

:class:`treadle.web.static.File` answers a plain ``GET`` of a small file from here: one
``stat`` of the file (which the traversal often took already) instead of open, read and
close, with the ``ETag`` and ``Last-Modified`` computed once.
"""

from __future__ import annotations

import os
from typing import Final, NamedTuple

from treadle.web._conditional import http_date, modified_at, strong_etag

__all__ = ["SMALL_FILE_CACHE_BYTES", "CachedFile", "SmallFileCache", "small_files"]


class CachedFile(NamedTuple):
    """A small file's bytes with the header values computed from the same ``stat``."""

    body: bytes
    etag: bytes
    last_modified: bytes
    length: bytes  # the Content-Length value


class SmallFileCache:
    """Contents of small files, reused while the file's identity, size and mtime hold.

    Serving a small file then costs one ``stat`` instead of open, fstat, read and close.
    A change to the file changes its ``st_mtime_ns`` (or size, or inode when replaced), so
    the next request reads it afresh; the bytes kept are bounded.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        #: Path -> ((device, inode, size, mtime_ns), contents): read by File.render_GET
        #: directly on its fast path (the same test as :meth:`get`). Never replaced.
        self.entries: dict[str, tuple[tuple[int, int, int, int], CachedFile]] = {}

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def get(self, path: str, st: os.stat_result) -> CachedFile | None:
        """The cached contents of ``path`` if ``st`` still describes them."""
        entry = self.entries.get(path)
        # _key(st), written out: this runs on every request for a small file.
        if entry is None or entry[0] != (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
            return None
        return entry[1]

    def put(self, path: str, st: os.stat_result, body: bytes) -> None:
        """Remember ``body`` as the contents of ``path`` described by ``st``."""
        if len(body) != st.st_size:
            return  # the file changed while being read
        old = self.entries.pop(path, None)
        if old is not None:
            self._size -= len(old[1].body)
        if self._size + len(body) > self._limit:
            self.entries.clear()
            self._size = 0
        cached = CachedFile(body, strong_etag(st), http_date(modified_at(st)), b"%d" % len(body))
        self.entries[path] = (self._key(st), cached)
        self._size += len(body)


#: Bytes of small files kept in memory (per process).
SMALL_FILE_CACHE_BYTES: Final = 8 * 1024 * 1024
small_files = SmallFileCache(SMALL_FILE_CACHE_BYTES)
