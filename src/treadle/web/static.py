"""Static content: :class:`File` serves a file or a directory tree, :class:`Data` bytes in memory.

Names and behaviour follow ``twisted.web.static``: ``File(path)`` answers ``GET``/``HEAD``
for a file and walks a directory tree through ``getChild``; a directory requested without
its trailing slash is redirected to it; with the slash, the first existing ``indexNames``
entry is served, else a :class:`DirectoryLister` page. ``processors`` hands files with a
given extension (``.rpy``) to a callable instead of sending their bytes; it is empty by
default, so serving a tree never executes anything unless asked to.

Security. A path segment reaches :meth:`File.getChild` already percent-decoded (see
``server._postpath``), so ``..%2f`` arrives as ``../``. Every segment is first checked on
its own (:func:`~treadle.web._safe_paths.child_name`: no ``.``/``..``, no ``/``, ``\\``
or NUL, valid in the file system encoding; empty only as the last segment), then the
joined path is resolved with ``os.path.realpath`` and must stay under the real path of the
root (``os.path.commonpath``, as Starlette does), so a symbolic link leading out of the
tree is refused with 403 unless ``follow_symlinks=True``. Only regular files are opened
(never a FIFO or a device, which would block the loop), with ``O_NONBLOCK`` so that a file
swapped for a FIFO after the check cannot block either. What this cannot prevent: someone
who can write inside the served tree racing a link swap between the check and ``open``
(Python has no ``openat2``/``RESOLVE_BENEATH``).

HTTP. Responses carry ``Content-Type`` (from :mod:`treadle.web._mime`, with ``; charset=utf-8``
added to textual types), ``Last-Modified``, a strong ``ETag`` and ``Accept-Ranges: bytes``;
conditional requests (304) and ranges (206, 416) are decided by :mod:`treadle.web._conditional`.

Sending. To treadle's own :class:`~treadle.web.server.Request`, a body of at most
:data:`SMALL_BODY` bytes is read and returned from ``render_GET`` (one ``transport.write``,
no Task); a larger one is streamed by a task, zero-copy where the loop and transport allow,
as :mod:`treadle.web._sendfile` describes. Any other request (a test double such as
``DummyRequest``, a program's own ``IRequest``) is answered as Twisted answers it: the
status and ``Content-Length`` are set, a producer from :meth:`File.makeProducer` writes the
body through ``request.write`` and finishes, and ``render`` returns ``NOT_DONE_YET``.
Several ranges make a ``multipart/byteranges`` body laid out as Twisted's (quoted boundary,
a CRLF before the first delimiter, no ``Content-Encoding``).

Speed. A directory ``File`` remembers the children it made (a ``File`` per entry, or the
processor for it), keyed by segment, for entries that exist and are no link: a later request
for the same name costs one ``lstat``, which confirms the entry is still there and still no
link (anything else takes the full path above again), and is handed to the child's render as
its ``stat``. The requests of one turn of the event loop share that ``lstat`` (measured at 2 to
4 µs of a 15 µs request on a virtual machine): a file changed on disk is seen by the requests
handled from the loop's next turn on, or after a millisecond in a turn that lasts longer
(:meth:`~treadle.internet._timers.SoonBatch.turn`); a channel on a test clock, or a request of
another kind, has an ``lstat`` of its own. A small file's bytes are kept with their ``ETag``
and ``Last-Modified`` by (device, inode, size, mtime_ns), so a plain ``GET`` of it (no
``Range``, no validators) costs that one system call and no open, read or header validation;
its header fields are encoded once per file
(:class:`~treadle.web._request_core.PreparedFields`) and written as one block unless something
changes them before the head is sent.

Differences from Twisted: a directory without its slash gets ``301`` (Twisted: ``302``) with
a relative ``Location`` (``./name/``, query kept) that cannot be turned into an off-site
redirect; ``processors`` are looked up ignoring case on every platform (Twisted: Windows
only), so ``x.RPY`` is never served as source on a case-insensitive file system; index names
must be regular files; ``File.path`` is always text (Twisted keeps bytes as bytes);
``DirectoryLister`` renders ``GET``/``HEAD`` only, with its own HTML (no
``template``/``linePattern``); instance-level
``contentTypes``/``contentEncodings``/``forbidden`` are passed on to children by
``createSimilarFile``; children are reused between requests (Twisted makes a new ``File``
per request), so settings changed on a directory ``File`` after it served a child reach that
child only if the setting object is shared (``processors``, ``registry``) — configure before
serving, or subclass and override ``createSimilarFile`` (children are then made per request,
as in Twisted); a ``Range`` sent twice is ignored (Twisted honours the first); a segment
that is not valid in the file system encoding is a 404 without an error in the log.
Beyond Twisted: conditional requests, ``ETag``, ``If-Range``, ``follow_symlinks``.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Callable, Sequence
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import IO, Final
from urllib.parse import quote, urlsplit, urlunsplit

from treadle.internet._timers import SoonBatch
from treadle.python.filepath import FilePath
from treadle.web import http
from treadle.web._conditional import (
    MAX_RANGE_PARTS,
    http_date,
    if_range_holds,
    modified_at,
    not_modified,
    strong_etag,
)
from treadle.web._file_cache import CachedFile, small_files
from treadle.web._html import redirect_page
from treadle.web._listing import DirectoryLister, formatFileSize
from treadle.web._mime import (
    CONTENT_ENCODINGS,
    CONTENT_TYPES,
    content_type_value,
    getTypeAndEncoding,
    loadMimeTypes,
)
from treadle.web._registry import Registry
from treadle.web._request_core import PreparedFields, prepared_answer
from treadle.web._safe_paths import FS_ENCODING, Located, child_name, is_within, path_text
from treadle.web._sendfile import FileSender, read_exact
from treadle.web._static_producers import (
    MultipleRangeStaticProducer,
    NoRangeStaticProducer,
    SingleRangeStaticProducer,
    StaticProducer,
    declare_length,
    plan_body,
    producer_for,
)
from treadle.web.resource import ForbiddenResource, NoResource, Resource, ResourceLike
from treadle.web.server import NOT_DONE_YET, Request
from treadle.web.server import Request as ServerRequest

__all__ = [
    "MAX_RANGE_PARTS",
    "SMALL_BODY",
    "Data",
    "DirectoryLister",
    "File",
    "MultipleRangeStaticProducer",
    "NoRangeStaticProducer",
    "Registry",
    "SingleRangeStaticProducer",
    "StaticProducer",
    "addSlash",
    "formatFileSize",
    "getTypeAndEncoding",
    "loadMimeTypes",
]

#: Bodies up to this size are read whole and written at once (the fast path); larger ones
#: are streamed. 64 KiB is the transport's default high-water mark: one write fits it.
SMALL_BODY: Final = 64 * 1024
#: Children a directory ``File`` remembers (see :meth:`File.getChild`); past it they are
#: forgotten and met again. Only entries that exist are remembered, so clients cannot grow it.
MAX_CACHED_CHILDREN: Final = 1024
# Twisted's openForReading calls open(): when it was replaced, that is what is opened.
_FILEPATH_OPEN: Final = FilePath.open
#: Request headers that make a file's answer depend on more than the file.
_CONDITIONAL_HEADERS: Final = frozenset((b"if-none-match", b"if-modified-since", b"range"))

# -- resources ---------------------------------------------------------------------------------


def _render(resource: ResourceLike, request: Request) -> bytes:
    """Render an error page or listing inside another resource's render (they return bytes)."""
    body: bytes = resource.render(request)
    return body


class Data(Resource):
    """A resource answering ``GET``/``HEAD`` with fixed bytes held in memory.

    Args:
        data: The body.
        type: Its ``Content-Type``, sent as given (e.g. ``"text/plain; charset=utf-8"``).
    """

    def __init__(self, data: bytes, type: str | bytes) -> None:
        super().__init__()
        self.data = data
        self.type = type

    def render_GET(self, request: Request) -> bytes:
        """Return the data with ``Content-Type`` and ``Content-Length`` (no body for HEAD)."""
        ctype = self.type.encode("latin-1") if isinstance(self.type, str) else self.type
        request.setHeader(b"content-type", ctype)
        request.setHeader(b"content-length", b"%d" % len(self.data))
        if request.method == b"HEAD":
            return b""
        return self.data

    render_HEAD = render_GET


# What File.getChild remembers of an entry: its path, the File serving it or the processor
# to call for it (exactly one of the two), whether that processor takes ``stat=`` (decided
# once, not looked up on the processor per request), and the path encoded for lstat (given
# bytes, it does not encode the path on every request).
_KnownChild = tuple[
    str, "File | None", "Callable[[str, Registry], ResourceLike] | None", bool, bytes
]

# The fields a cached answer carries, and what they were built from: the cached contents,
# the File's type and its encoding (compared by identity: a change builds them again).
_Prepared = tuple[CachedFile, str | None, str | None, PreparedFields]

# content_type_value(ctype) per MIME type, as sent on every small-file answer (lowering and
# testing the type each time cost about as much as the rest of the header block).
_content_types: dict[str, bytes] = {}
_MAX_CONTENT_TYPES: Final = 256


def _content_type(ctype: str) -> bytes:
    """``content_type_value(ctype)``, remembered (the set of types a site serves is small)."""
    value = _content_types.get(ctype)
    if value is None:
        value = content_type_value(ctype)
        if len(_content_types) >= _MAX_CONTENT_TYPES:
            _content_types.clear()
        _content_types[ctype] = value
    return value


# Per File class: whether it reads a file the way File does (openForReading, getFileSize and
# open all File's own), so that a file's bytes may be served from the small-file cache.
# Decided once per class, as the class is first rendered: a class whose methods are
# replaced after that keeps the first verdict.
_reads_plainly: dict[type, bool] = {}
_MAX_CLASSES: Final = 256


def _decide_reads_plainly(cls: type[File]) -> bool:
    """Whether ``cls`` reads files as :class:`File` does; remembered in ``_reads_plainly``."""
    plainly = (
        cls.openForReading is File.openForReading
        and cls.getFileSize is File.getFileSize
        # An open() replaced on the instance is seen by openForReading on a first read
        # (whose result is then not cached); the instance's __dict__ is not read per
        # request, as that would slow every later attribute access on the File.
        and cls.open is _FILEPATH_OPEN
    )
    if len(_reads_plainly) >= _MAX_CLASSES:
        _reads_plainly.clear()
    _reads_plainly[cls] = plainly
    return plainly


class File(Resource, FilePath[str]):  # type: ignore[misc]  # children: see below
    """A file, or a directory tree, served from the file system.

    As in Twisted, a ``File`` is also a :class:`~treadle.python.filepath.FilePath` of its
    path (``exists()``, ``isdir()``, ``child(name)``, ``getContent()``...), with one name
    shadowed the same way: ``children`` is the resource's dict of static children, not
    ``FilePath.children()``. ``child(name)`` returns a plain ``FilePath`` (Twisted's too);
    ``getChild`` is what serves requests. ``FilePath`` answers cache a ``stat``: call
    ``restat()`` or ``changed()`` when the disk changes (serving never uses that cache).
    Like FilePaths, two ``File`` objects for the same path compare (and hash) equal.

    A ``File`` for a directory has a child for each entry (``getChild``), so one instance
    serves a whole tree. ``GET``/``HEAD`` are answered (any other method gets 405 with
    ``Allow: GET, HEAD``); see the module documentation for headers, ranges, conditional
    requests and how bytes are sent.

    Args:
        path: The file or directory to serve (made absolute): text, bytes, a path object,
            a ``FilePath``, or anything with a ``path`` attribute.
        defaultType: MIME type for files whose extension ``contentTypes`` does not know.
        ignoredExts: Extensions that may be left out of URLs: with ``(".html",)`` a request
            for ``about`` serves ``about.html`` when no ``about`` exists. ``"*"`` matches
            any extension.
        registry: Shared state for ``processors`` (a new :class:`Registry` if None).
        allowExt: Deprecated, as in Twisted: true means ``ignoredExts=["*"]``.
        follow_symlinks: Serve symbolic links that lead out of the tree (beyond Twisted).
            Off by default: such a link is answered 403.

    Attributes:
        path: Absolute path of the file or directory (text).
        processors: Extension → ``callable(path, registry)`` returning the resource that
            answers for such files (``{".rpy": ResourceScript}`` to run scripts). Empty by
            default. Matched ignoring case.
        indexNames: File names served for a directory URL; the first that is a regular file
            wins.
        contentTypes: Extension → MIME type (see :func:`loadMimeTypes`).
        contentEncodings: Extension → ``Content-Encoding`` (``.gz`` → ``gzip``).
        type: MIME type of this file (computed on first render when None).
        encoding: Content encoding of this file, or None.
        childNotFound: Resource rendered for a missing or refused child (404).
        forbidden: Resource rendered for an unreadable file or an escaping link (403).
    """

    contentTypes: dict[str, str] = CONTENT_TYPES
    contentEncodings: dict[str, str] = CONTENT_ENCODINGS
    processors: dict[str, Callable[[str, Registry], ResourceLike]] = {}
    indexNames: list[str] = ["index", "index.html", "index.htm", "index.rpy"]
    type: str | None = None
    encoding: str | None = None
    childNotFound: ResourceLike = NoResource("File not found.")
    forbidden: ResourceLike = ForbiddenResource()
    # Children met before (see getChild), and the lstat traversal took for a request.
    _children: dict[bytes, _KnownChild] | None = None
    # The lstat of each remembered entry for the requests of the loop's current turn.
    _seen: dict[bytes, tuple[SoonBatch, int, os.stat_result]] | None = None
    _lstat: tuple[list[bytes], os.stat_result] | None = None
    # The header fields of the cached answer last sent (see render_GET).
    _prepared: _Prepared | None = None

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | Located,
        defaultType: str = "text/html",
        ignoredExts: Sequence[str] | int = (),
        registry: Registry | None = None,
        allowExt: int = 0,
        *,
        follow_symlinks: bool = False,
    ) -> None:
        Resource.__init__(self)
        FilePath.__init__(self, path_text(path))
        self.defaultType = defaultType
        if isinstance(ignoredExts, int) or allowExt:
            warnings.warn(
                "ignoredExts should receive a list, not a boolean; allowExt is deprecated",
                DeprecationWarning,
                stacklevel=2,
            )
            self.ignoredExts: list[str] = ["*"] if (ignoredExts or allowExt) else []
        else:
            self.ignoredExts = list(ignoredExts)
        self.registry = registry if registry is not None else Registry()
        self.follow_symlinks = follow_symlinks
        # Real path of the tree's top, which children must resolve below: computed on first
        # use, so the Files made per request by createSimilarFile (which pass it on) skip it.
        self._root: str | None = None

    # -- Twisted's configuration helpers ----------------------------------------------------

    def ignoreExt(self, ext: str) -> None:
        """Let requests leave out extension ``ext`` (e.g. ``".html"``)."""
        self.ignoredExts.append(ext)

    def createSimilarFile(self, path: str) -> File:
        """Return a ``File`` for ``path`` configured like this one (same tree, same rules)."""
        f = self.__class__(path, self.defaultType, self.ignoredExts, self.registry)
        f.follow_symlinks = self.follow_symlinks
        f._root = self._root_path()
        f.processors = self.processors
        f.indexNames = self.indexNames[:]
        f.childNotFound = self.childNotFound
        for name in ("contentTypes", "contentEncodings", "forbidden"):
            if name in self.__dict__:
                setattr(f, name, self.__dict__[name])
        return f

    def listNames(self) -> list[str]:
        """Return the sorted entry names of this directory (empty for a file)."""
        try:
            return sorted(os.listdir(self.path))
        except OSError:
            return []

    def listEntities(self) -> list[File]:
        """Return a ``File`` for each entry of this directory."""
        return [self.createSimilarFile(os.path.join(self.path, n)) for n in self.listNames()]

    def directoryListing(self) -> DirectoryLister:
        """Return the :class:`DirectoryLister` page for this directory.

        Entries a request could not reach are left out: names not valid in the file system
        encoding and, unless ``follow_symlinks``, links leading out of the tree.
        """
        names = [
            name
            for name in self.listNames()
            if child_name(os.fsencode(name)) is not None
            and self._allowed(os.path.join(self.path, name))
        ]
        return DirectoryLister(
            self.path, names, self.contentTypes, self.contentEncodings, self.defaultType
        )

    # -- Twisted's hooks for subclasses (e.g. to decrypt on the fly) ------------------------

    def openForReading(self) -> IO[bytes]:
        """Open the file for reading (binary, unbuffered).

        ``O_NONBLOCK`` keeps ``open`` from blocking the loop if the path became a FIFO
        after it was checked; it changes nothing for regular files. When ``open`` was
        replaced (on the class or the instance), its file is used, as Twisted's
        ``openForReading`` calls ``open()``.
        """
        if self._opens_itself():
            opened: IO[bytes] = self.open()
            return opened
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        return os.fdopen(os.open(self.path, flags), "rb", buffering=0)

    def _opens_itself(self) -> bool:
        """True when ``open`` is not FilePath's own (a subclass or a test replaced it)."""
        bound = self.open
        return getattr(bound, "__func__", None) is not _FILEPATH_OPEN

    def getFileSize(self) -> int:
        """Return the size of the file in bytes."""
        return os.path.getsize(self.path)

    # -- traversal --------------------------------------------------------------------------

    def _allowed(self, path: str) -> bool:
        """True when ``path`` (joined from checked segments) resolves inside the tree."""
        if self.follow_symlinks:
            return True  # checked segments keep the unresolved path inside already
        return is_within(os.path.realpath(path), self._root_path())

    def _root_path(self) -> str:
        root = self._root
        if root is None:
            root = self._root = os.path.realpath(self.path)
        return root

    def _sibling_with_extension(self, path: str) -> str | None:
        """Twisted's ``siblingExtensionSearch``: ``path`` plus one of ``ignoredExts``."""
        for ext in self.ignoredExts:
            if ext == "*":
                directory, base = os.path.split(path)
                prefix = base + "."
                try:
                    names = sorted(os.listdir(directory))
                except OSError:
                    continue
                for name in names:
                    if name.startswith(prefix):
                        return os.path.join(directory, name)
            elif ext and os.path.lexists(path + ext):
                return path + ext
        return None

    def getChildWithDefault(self, path: bytes, request: Request) -> ResourceLike:
        """Return the static child ``path`` (``putChild``) if there is one, else ``getChild``'s.

        Resource's, with the case of an entry met before (see :meth:`getChild`) written out
        here: it runs for every request below a directory.
        """
        child = self.children.get(path)
        if child is not None:
            return child
        children = self._children
        if children is not None:
            known = children.get(path)
            if known is not None:
                # self._known_child(known, request) for the commonest entry, a file:
                # one lstat confirms it is still there and still no link.
                similar = known[1]
                if similar is not None:
                    try:
                        st = self._entry_lstat(known[4], request)
                    except (OSError, ValueError):
                        pass  # gone: getChild answers 404 or finds a sibling
                    else:
                        if not S_ISLNK(st.st_mode):
                            similar._lstat = None if request is None else (request.postpath, st)
                            return similar
                else:
                    found = self._known_child(known, request)
                    if found is not None:
                        return found
                # Entries are remembered only while getChild is File's own: this is it.
                return self._find_child(path, request)
        return self.getChild(path, request)

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """Return the resource for entry ``path`` of this directory.

        Args:
            path: One decoded path segment. ``b""`` (a URL ending in ``/``) gives the
                first existing index file, else the directory listing.
            request: The request being traversed.

        Returns:
            A ``File`` (via :meth:`createSimilarFile`), what a processor returns for the
            entry's extension, :attr:`childNotFound` for a missing entry or a refused
            segment (``..``, separators, NUL, undecodable bytes, ``.``, an empty segment
            that is not the last), or :attr:`forbidden` for a link out of the tree.

        Raises:
            TypeError: ``path`` is not bytes.
        """
        children = self._children
        if children is not None:
            known = children.get(path)
            if known is not None:
                found = self._known_child(known, request)
                if found is not None:
                    return found
        return self._find_child(path, request)

    def _find_child(self, path: bytes, request: Request) -> ResourceLike:
        """:meth:`getChild` for an entry not remembered, or one to check afresh."""
        if not isinstance(path, bytes):
            raise TypeError(f"path segment must be bytes, not {type(path).__name__}: {path!r}")
        if not os.path.isdir(self.path):
            return self.childNotFound
        if not path:
            if request is not None and request.postpath:
                return self.childNotFound  # "a//b": an empty segment inside the path
            return self._index_or_listing(request)
        name = child_name(path)
        if name is None:
            return self.childNotFound
        child = os.path.join(self.path, name)
        try:
            st: os.stat_result | None = os.lstat(child)
        except (OSError, ValueError):
            st = None
            found_path = self._sibling_with_extension(child)
            if found_path is None:
                return self.childNotFound
            child = found_path
        # A plain entry of a directory inside the tree is inside the tree (the segment was
        # checked above); only a symbolic link can lead out, so only links are resolved.
        is_link = st is None or stat.S_ISLNK(st.st_mode)
        if is_link and not self._allowed(child):
            return self.forbidden
        processor = self._processor_for(os.path.splitext(child)[1])
        similar = None if processor is not None else self.createSimilarFile(child)
        cls = type(self)
        if (
            not is_link
            and cls.createSimilarFile is File.createSimilarFile
            # getChildWithDefault answers remembered entries without calling getChild:
            # only when that is File's own, which would answer the same.
            and cls.getChild is File.getChild
        ):
            accepts_stat = bool(getattr(processor, "acceptsStat", False))
            known = (child, similar, processor, accepts_stat, os.fsencode(child))
            self._remember_child(path, known)
        if processor is not None:
            return processor(child, self.registry)
        assert similar is not None
        similar._hand_stat(request, None if is_link else st)
        return similar

    def _known_child(self, known: _KnownChild, request: Request) -> ResourceLike | None:
        """The child a cached entry stands for, or None when the slow path must decide.

        One ``lstat`` both confirms the entry is still there and that it is still no link
        (a link could have been swapped in); the walk and the checks of the first visit are
        not repeated. The result is handed to the child's render, which then needs no
        ``stat`` of its own.
        """
        path, similar, processor, accepts_stat, encoded = known
        try:
            st = self._entry_lstat(encoded, request)
        except (OSError, ValueError):
            return None  # gone: the slow path answers 404 or finds a sibling
        if stat.S_ISLNK(st.st_mode):
            return None
        if similar is not None:
            # similar._hand_stat(request, st), written out: this runs on every request.
            similar._lstat = None if request is None else (request.postpath, st)
            return similar
        assert processor is not None
        if accepts_stat:
            # A processor that says it takes the entry's stat (ResourceScript does) is
            # handed this lstat, which saves it a system call per request.
            return processor(path, self.registry, stat=st)  # type: ignore[call-arg]
        return processor(path, self.registry)

    def _entry_lstat(self, encoded: bytes, request: Request | None) -> os.stat_result:
        """The ``lstat`` of a remembered entry, one for the requests of a turn of the loop
        (see the module docstring)."""
        channel = getattr(request, "_http1", None)
        batch = getattr(channel, "call_soon", None)
        if type(batch) is not SoonBatch or not batch.on_loop:
            return os.lstat(encoded)
        turn = batch.turn()
        seen = self._seen
        if seen is None:
            seen = self._seen = {}
        else:
            known = seen.get(encoded)
            if known is not None and known[0] is batch and known[1] == turn:
                return known[2]
        st = os.lstat(encoded)
        if len(seen) >= MAX_CACHED_CHILDREN:
            seen.clear()
        seen[encoded] = (batch, turn, st)
        return st

    def _remember_child(self, segment: bytes, known: _KnownChild) -> None:
        children = self._children
        if children is None:
            children = self._children = {}
        elif len(children) >= MAX_CACHED_CHILDREN:
            children.clear()
        children[segment] = known

    def _processor_for(self, ext: str) -> Callable[[str, Registry], ResourceLike] | None:
        if not ext:
            return None
        processor = self.processors.get(ext)
        if processor is None:
            lowered = ext.lower()
            for key, value in self.processors.items():
                if key.lower() == lowered:
                    return value
        return processor

    def _index_or_listing(self, request: Request) -> ResourceLike:
        for index in self.indexNames:
            if os.path.isfile(os.path.join(self.path, index)):
                # Through getChild, so an index.rpy meets ``processors`` and the checks.
                return self.getChild(index.encode(FS_ENCODING), request)
        return self.directoryListing()

    # -- rendering --------------------------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        """Dispatch to ``render_<METHOD>`` as :meth:`Resource.render` does.

        GET, what files are asked for, is dispatched without the lookup by name.
        """
        if request.method == b"GET":
            return self.render_GET(request)
        result: bytes | int = Resource.render(self, request)
        return result

    def render_GET(self, request: Request) -> bytes | int:
        """Answer with the file (or part of it), a 304, a redirect or an error page.

        Returns:
            The body as bytes for small bodies, HEAD, 304 and errors; ``NOT_DONE_YET``
            when a large body is being streamed.
        """
        if self.type is None:
            self._find_type()
        # self._stat_for(request), written out: this runs on every request for a file.
        taken = self._lstat
        st = None
        if taken is not None:
            self._lstat = None
            if taken[0] is request.postpath:
                st = taken[1]
        if st is None:
            try:
                st = os.stat(self.path)
            except PermissionError:
                return _render(self.forbidden, request)
            except (OSError, ValueError):  # missing, ELOOP, ENAMETOOLONG, embedded NUL...
                return _render(self.childNotFound, request)
        mode = st.st_mode
        if not S_ISREG(mode):
            if S_ISDIR(mode):
                if request.path.endswith(b"/"):  # already the directory URL: no redirect loop
                    return _render(self._index_or_listing(request), request)
                return self.redirect(request)
            return _render(self.forbidden, request)
        cls = type(self)
        reads_plainly = _reads_plainly.get(cls)
        if reads_plainly is None:
            reads_plainly = _decide_reads_plainly(cls)
        cacheable = reads_plainly and st.st_size <= SMALL_BODY
        if cacheable:
            # small_files.get(self.path, st), written out: this runs on every request.
            entry = small_files.entries.get(self.path)
            if entry is not None and entry[0] == (
                st.st_dev,
                st.st_ino,
                st.st_size,
                st.st_mtime_ns,
            ):
                cached = entry[1]
                if isinstance(request, ServerRequest):
                    # A plain GET/HEAD (no validators, no Range) gets the headers _respond
                    # would set, in the same order, encoded once per file (_prepared_for).
                    prepared = self._prepared
                    if (
                        prepared is None
                        or prepared[0] is not cached
                        or prepared[1] is not self.type
                        or prepared[2] is not self.encoding
                    ):
                        prepared = self._prepared_for(cached)
                    # (For a GET the body is returned whole: the server frames it.)
                    answer = prepared_answer(
                        request, prepared[3], _CONDITIONAL_HEADERS, cached.body, cached.length
                    )
                    if answer is not None:
                        return answer
                return self._respond(request, io.BytesIO(cached.body), st)
        try:
            file = self.openForReading()
        except PermissionError:
            return _render(self.forbidden, request)
        except OSError:
            return _render(self.childNotFound, request)
        try:
            try:
                st = os.fstat(file.fileno())  # what was opened, not what was checked
            except (AttributeError, OSError, io.UnsupportedOperation):
                pass  # a subclass's file object without a descriptor: keep the stat above
            else:
                if not stat.S_ISREG(st.st_mode):
                    file.close()
                    return _render(self.forbidden, request)
                if cacheable and st.st_size <= SMALL_BODY:
                    body = read_exact(file, 0, st.st_size)
                    file.close()
                    small_files.put(self.path, st, body)
                    file = io.BytesIO(body)
            return self._respond(request, file, st)
        except BaseException:
            file.close()
            raise

    def _find_type(self) -> None:
        self.type, self.encoding = getTypeAndEncoding(
            os.path.basename(self.path),
            self.contentTypes,
            self.contentEncodings,
            self.defaultType,
        )

    def _hand_stat(self, request: Request | None, st: os.stat_result | None) -> None:
        """Keep the ``lstat`` traversal just took of this entry for ``request``'s render.

        Only a non-link entry's ``lstat`` is handed over (a link's describes the link), so it
        is the ``stat`` render needs, taken microseconds before. The request is recognised
        by its ``postpath`` list rather than held itself: a File that is walked through
        or never rendered keeps no request (nor its body) alive.
        """
        self._lstat = None if request is None or st is None else (request.postpath, st)

    def _stat_for(self, request: Request) -> os.stat_result | None:
        """The ``lstat`` :meth:`_hand_stat` kept for ``request``, if it is this request's."""
        taken = self._lstat
        if taken is None:
            return None
        self._lstat = None
        return taken[1] if taken[0] is request.postpath else None

    def _prepared_for(self, cached: CachedFile) -> _Prepared:
        """The header fields of a cached answer of this file, encoded once (see
        :class:`~treadle.web._request_core.PreparedFields`), remembered on this ``File``
        for as long as the cached contents and the file's type and encoding hold."""
        # In the order plan_body sets them: byte for byte _respond's answer.
        names: tuple[bytes, ...] = (b"etag", b"last-modified", b"accept-ranges", b"content-type")
        values: tuple[bytes, ...] = (
            cached.etag,
            cached.last_modified,
            b"bytes",
            _content_type(self.type or self.defaultType),
        )
        if self.encoding:
            names += (b"content-encoding",)
            values += (self.encoding.encode("latin-1"),)
        prepared = (cached, self.type, self.encoding, PreparedFields(names, values))
        self._prepared = prepared
        return prepared

    render_HEAD = render_GET

    def _respond(self, request: Request, file: IO[bytes], st: os.stat_result) -> bytes | int:
        """Set headers and produce the body; takes ownership of ``file``."""
        size = st.st_size
        if type(self).getFileSize is not File.getFileSize:
            size = self.getFileSize()
        mtime = modified_at(st)
        etag = strong_etag(st)
        request.setHeader(b"etag", etag)
        request.setHeader(b"last-modified", http_date(mtime))
        if not_modified(request, etag, mtime):
            file.close()
            request.setResponseCode(http.NOT_MODIFIED)
            return b""
        request.setHeader(b"accept-ranges", b"bytes")
        range_value = None
        if request.method == b"GET":  # Range is defined for GET only (§14.2)
            ranges = request.requestHeaders.getRawHeaders(b"range")
            if ranges is not None and len(ranges) == 1:
                if_range = request.requestHeaders.getRawHeaders(b"if-range")
                if if_range is None or if_range_holds(if_range[-1], etag, mtime):
                    range_value = ranges[0]
        plan = plan_body(request, size, range_value, *self._content_type_and_encoding())
        if request.method == b"HEAD":
            declare_length(request, plan)
            file.close()
            return b""
        if not isinstance(request, ServerRequest):
            # Another kind of request (a test double, a program's own): send it the way
            # Twisted does, all through request.write, with the status and length set.
            if plan.specs is None:
                request.setResponseCode(http.OK)
            declare_length(request, plan)
            producer_for(request, file, plan).start()
            return NOT_DONE_YET
        if not plan.pieces:  # 416: the server sends "Content-Length: 0" itself
            file.close()
            return b""
        if plan.length <= SMALL_BODY:
            # Returned whole: the server frames it with its length.
            try:
                return b"".join(
                    prefix + read_exact(file, offset, count)
                    for prefix, offset, count in plan.pieces
                )
            finally:
                file.close()
        declare_length(request, plan)
        if getattr(request, "_encoder", None) is None:
            request.write(b"")  # the head, framed by the explicit Content-Length
        # else: the encoder decides on the first real bytes (and drops the length).
        FileSender(request, file, plan.pieces).start()
        return NOT_DONE_YET

    def _content_type_and_encoding(self) -> tuple[bytes, bytes | None]:
        """This file's ``Content-Type`` and ``Content-Encoding`` header values."""
        encoding = self.encoding.encode("latin-1") if self.encoding else None
        return content_type_value(self.type or self.defaultType), encoding

    def makeProducer(self, request: Request, fileForReading: IO[bytes]) -> StaticProducer:
        """Set the status and ``Content-*`` headers for this file; return its producer.

        Twisted's hook: the producer (not started) sends the whole file, the range the
        request's ``Range`` header asks for, or several ranges as a multipart body, through
        ``request.write``, and finishes the request; ``producer.start()`` sets it going. An
        invalid ``Range`` is ignored (200 with the whole file); one no byte of the file
        satisfies gives 416 and an empty body. treadle's own rendering does not call it
        (it sends small files whole and large ones zero-copy).

        Args:
            request: The request to answer.
            fileForReading: The open file (see :meth:`openForReading`); the producer
                closes it.

        Returns:
            A :class:`NoRangeStaticProducer`, :class:`SingleRangeStaticProducer` or
            :class:`MultipleRangeStaticProducer`.
        """
        if self.type is None:
            self._find_type()
        ranges = request.requestHeaders.getRawHeaders(b"range")
        range_value = ranges[0] if ranges is not None and len(ranges) == 1 else None
        plan = plan_body(
            request, self.getFileSize(), range_value, *self._content_type_and_encoding()
        )
        if plan.specs is None:
            request.setResponseCode(http.OK)
        declare_length(request, plan)
        return producer_for(request, fileForReading, plan)

    def redirect(self, request: Request) -> bytes:
        """Answer ``301`` to the same URL with a trailing slash (query kept).

        ``Location`` is relative (``./name/?query``): it resolves against the request's
        own URL, so it is right behind any prefix or proxy and can never name another
        host (a path-absolute ``//evil/`` could).
        """
        segment = request.path.rsplit(b"/", 1)[-1]
        q = request.uri.find(b"?")
        query = request.uri[q:] if q >= 0 else b""
        location = (
            b"./"
            + quote(segment, safe="%!$&'()*+,;=:@-._~").encode("ascii")
            + b"/"
            + quote(query, safe="%!$&'()*+,;=:@-._~/?").encode("ascii")
        )
        request.setResponseCode(http.MOVED_PERMANENTLY)
        request.setHeader(b"location", location)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        # The page util.redirectTo sends (Twisted's), with this status and Location.
        return redirect_page(location)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r}>"


def addSlash(request: Request) -> bytes:
    """Return the request's URL with a ``/`` added to its path (query and fragment kept).

    Deprecated since Twisted 16.0.0, as there; kept for old code.
    """
    warnings.warn(
        "treadle.web.static.addSlash was deprecated in Twisted 16.0.0",
        DeprecationWarning,
        stacklevel=2,
    )
    parts = urlsplit(request.uri.decode("ascii"))
    return urlunsplit(parts._replace(path=parts.path + "/")).encode("ascii")
