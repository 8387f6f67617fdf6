"""Twisted's ``twisted.python.filepath``: :class:`FilePath`, a path that only goes down.

``FilePath("/srv/www").child(name)`` refuses a ``name`` that would leave the directory
(``..``, a separator, NUL) with :class:`InsecurePath`, so a name from a request can be used
safely. A FilePath holds text or bytes as it was given (``FilePath(b"/x")`` is in bytes
mode), made absolute; methods that take a name return a FilePath in that name's mode.
``stat`` results are cached until :meth:`FilePath.changed` or :meth:`FilePath.restat`.

Differences from Twisted (each one closes a hole or a surprise):

- ``child`` also refuses names holding NUL; ``preauthChild`` and ``segmentsFrom`` compare
  whole path segments (Twisted's prefix test let ``/a/b`` accept ``../bc``, i.e. ``/a/bc``).
- ``setContent`` syncs the new file to disk before renaming it over the old one, and
  removes it if writing fails.
- ``walk`` refuses every cycle of symbolic links with :class:`LinkError` (Twisted only
  noticed a link back to an ancestor).
- ``globChildren`` reads glob characters in the directory's own path literally.
- A text and a bytes FilePath are unequal rather than raising :class:`TypeError`.
- A FilePath is :class:`os.PathLike`: ``open(fp)``, ``os.stat(fp)`` work.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import glob
import os
import sys
from collections.abc import Callable, Iterator
from stat import S_IMODE, S_ISBLK, S_ISDIR, S_ISREG, S_ISSOCK
from typing import IO, Any, AnyStr, Generic, TypeVar

from treadle.python._permissions import RWX, Permissions

__all__ = [
    "RWX",
    "FilePath",
    "InsecurePath",
    "LinkError",
    "Permissions",
    "UnlistableError",
]

_IS_WINDOWS = sys.platform == "win32"
_CREATE_FLAGS = os.O_EXCL | os.O_CREAT | os.O_RDWR | getattr(os, "O_BINARY", 0)
#: Bytes copied at a time by :meth:`FilePath.copyTo`.
_COPY_CHUNK = 64 * 1024

OtherAnyStr = TypeVar("OtherAnyStr", str, bytes)


class InsecurePath(Exception):
    """A name would lead out of the directory it was asked of."""


class LinkError(Exception):
    """Symbolic links go round in a cycle."""


class UnlistableError(OSError):
    """This path cannot be listed because it does not exist or is not a directory.

    It is the :class:`OSError` that said so, under a type of its own.

    Attributes:
        originalException: The original :class:`OSError`.
    """

    def __init__(self, originalException: OSError) -> None:
        super().__init__(*originalException.args)
        self.filename = originalException.filename
        self.originalException = originalException


def _coerce(like: str | bytes, value: str | bytes, encoding: str | None = None) -> Any:
    """``value`` as the same type as ``like`` (file-system encoding, surrogateescape)."""
    if isinstance(like, bytes):
        if isinstance(value, bytes):
            return value
        return value.encode(encoding or sys.getfilesystemencoding(), "surrogateescape")
    if isinstance(value, str):
        return value
    return value.decode(encoding or sys.getfilesystemencoding(), "surrogateescape")


def _is_within(path: AnyStr, base: AnyStr, sep: AnyStr) -> bool:
    """True when absolute ``path`` is ``base`` or lies below it, segment by segment."""
    if path == base:
        return True
    prefix = base if base.endswith(sep) else base + sep
    return path.startswith(prefix)


def _random_name() -> str:
    return base64.urlsafe_b64encode(os.urandom(12)).decode("ascii")


@functools.total_ordering
class FilePath(Generic[AnyStr]):
    """A file-system path that only permits going downwards.

    Args:
        path: The path (text, bytes or an :class:`os.PathLike`); made absolute.
        alwaysCreate: :meth:`open` creates the file and fails if it exists.

    Attributes:
        path: The absolute path, text or bytes as given.
        alwaysCreate: See above (:meth:`requireCreate` sets it).
    """

    _statinfo: os.stat_result | None = None
    path: AnyStr

    def __init__(self, path: AnyStr | os.PathLike[AnyStr], alwaysCreate: bool = False) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.alwaysCreate = alwaysCreate

    # -- identity -----------------------------------------------------------------------------

    def __fspath__(self) -> AnyStr:
        return self.path

    def __repr__(self) -> str:
        return f"FilePath({self.path!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FilePath):
            return NotImplemented
        return type(self.path) is type(other.path) and self.path == other.path

    def __lt__(self, other: FilePath[AnyStr]) -> bool:
        if not isinstance(other, FilePath):
            return NotImplemented
        return bool(self.path < other.path)

    def __hash__(self) -> int:
        return hash((FilePath, self.path))

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state.pop("_statinfo", None)
        return state

    @property
    def sep(self) -> AnyStr:
        """The path separator, as text or bytes like :attr:`path`."""
        sep: AnyStr = _coerce(self.path, os.sep)
        return sep

    def clonePath(self, path: OtherAnyStr, alwaysCreate: bool = False) -> FilePath[OtherAnyStr]:
        """Return a FilePath for ``path`` (a plain FilePath, also from subclasses)."""
        return FilePath(path, alwaysCreate)

    def asBytesMode(self, encoding: str | None = None) -> FilePath[bytes]:
        """Return this path in bytes mode (encoded with ``encoding`` or the file system's)."""
        return self.clonePath(_coerce(b"", self.path, encoding))

    def asTextMode(self, encoding: str | None = None) -> FilePath[str]:
        """Return this path in text mode (decoded with ``encoding`` or the file system's)."""
        return self.clonePath(_coerce("", self.path, encoding))

    def _asBytesPath(self, encoding: str | None = None) -> bytes:
        # Twisted's private name, kept because its users' test suites call it.
        path: bytes = _coerce(b"", self.path, encoding)
        return path

    # -- going down, sideways and up ----------------------------------------------------------

    def child(self, path: OtherAnyStr) -> FilePath[OtherAnyStr]:
        """Return the entry called ``path`` of this directory.

        ``"."`` and ``""`` name this path itself, as in Twisted.

        Raises:
            InsecurePath: ``path`` holds a separator or NUL, or is ``..``.
        """
        norm = os.path.normpath(path)
        seps = [os.sep, os.altsep] if os.altsep else [os.sep]
        if any(_coerce(path, sep) in norm for sep in seps):
            raise InsecurePath(f"{path!r} contains one or more directory separators")
        if _coerce(path, "\0") in path:
            raise InsecurePath(f"{path!r} contains a NUL character")
        if _IS_WINDOWS and _coerce(path, ":") in path:
            raise InsecurePath(f"{path!r} contains a colon.")
        return self._below(norm)

    def preauthChild(self, path: OtherAnyStr) -> FilePath[OtherAnyStr]:
        """Return the descendant at relative ``path``, which may hold separators.

        Use it for paths you trust (configuration), never for names from a request.

        Raises:
            InsecurePath: ``path`` leads outside this path (``../x``, an absolute path).
        """
        return self._below(os.path.normpath(path))

    def _below(self, relative: OtherAnyStr) -> FilePath[OtherAnyStr]:
        ours: OtherAnyStr = _coerce(relative, self.path)
        newpath = os.path.abspath(os.path.join(ours, relative))
        if not _is_within(newpath, ours, _coerce(relative, os.sep)):
            raise InsecurePath(f"{newpath!r} is not a child of {ours!r}")
        return self.clonePath(newpath)

    def descendant(self, segments: list[OtherAnyStr] | tuple[OtherAnyStr, ...]) -> FilePath[Any]:
        """Return ``child(segments[0]).child(segments[1])...`` (each checked as ``child``)."""
        path: FilePath[Any] = self
        for segment in segments:
            path = path.child(segment)
        return path

    def childSearchPreauth(self, *paths: OtherAnyStr) -> FilePath[OtherAnyStr] | None:
        """Return the first of the (trusted) relative ``paths`` that exists, or None."""
        for relative in paths:
            joined = os.path.join(_coerce(relative, self.path), relative)
            if os.path.exists(joined):
                return self.clonePath(joined)
        return None

    def sibling(self, path: OtherAnyStr) -> FilePath[OtherAnyStr]:
        """Return the entry called ``path`` in this path's directory (checked as ``child``)."""
        return self.parent().child(path)

    def siblingExtension(self, ext: OtherAnyStr) -> FilePath[OtherAnyStr]:
        """Return this path with ``ext`` appended (``ext`` includes its dot)."""
        ours: OtherAnyStr = _coerce(ext, self.path)
        return self.clonePath(ours + ext)

    def siblingExtensionSearch(self, *exts: OtherAnyStr) -> FilePath[OtherAnyStr] | None:
        """Return the first existing path among this path plus each of ``exts``.

        ``""`` stands for this path itself; ``"*"`` for any entry whose name is this
        path's name, a dot, and anything.
        """
        for ext in exts:
            ours: OtherAnyStr = _coerce(ext, self.path)
            if not ext:
                if self.exists():
                    return self.clonePath(ours)
                continue
            if ext == _coerce(ext, "*"):
                directory, name = os.path.split(ours)
                prefix = name + _coerce(ext, ".")
                for entry in sorted(os.listdir(directory)):
                    if entry.startswith(prefix):
                        return self.clonePath(os.path.join(directory, entry))
                continue
            if os.path.exists(ours + ext):
                return self.clonePath(ours + ext)
        return None

    def temporarySibling(self, extension: OtherAnyStr | None = None) -> FilePath[Any]:
        """Return an unpredictable sibling path ending in ``extension``, made by ``open``.

        The result has ``alwaysCreate`` set: opening it fails if another process took it.
        """
        ext: Any = self.path[0:0] if extension is None else extension
        name = _coerce(ext, _random_name()) + _coerce(ext, self.basename()) + ext
        sibling: FilePath[Any] = self.sibling(name)
        sibling.requireCreate()
        return sibling

    def parent(self) -> FilePath[AnyStr]:
        """Return the directory holding this path (the root is its own parent)."""
        return self.clonePath(self.dirname())

    def parents(self) -> Iterator[FilePath[AnyStr]]:
        """Yield the parent, its parent, and so on up to the root."""
        path, parent = self, self.parent()
        while path != parent:
            yield parent
            path, parent = parent, parent.parent()

    def segmentsFrom(self, ancestor: FilePath[AnyStr]) -> list[AnyStr]:
        """Return the names leading from ``ancestor`` down to this path.

        Raises:
            ValueError: ``ancestor`` is not a proper ancestor of this path.
        """
        sep = self.sep
        if ancestor.path == self.path or not _is_within(self.path, ancestor.path, sep):
            raise ValueError(f"{ancestor!r} not parent of {self!r}")
        return os.path.relpath(self.path, ancestor.path).split(sep)

    def basename(self) -> AnyStr:
        """Return the last segment of the path."""
        return os.path.basename(self.path)

    def dirname(self) -> AnyStr:
        """Return everything but the last segment."""
        return os.path.dirname(self.path)

    def splitext(self) -> tuple[AnyStr, AnyStr]:
        """Return ``(root, ext)`` with ``root + ext == path``, as :func:`os.path.splitext`."""
        return os.path.splitext(self.path)

    def isabs(self) -> bool:
        """Return True (the path is always absolute)."""
        return os.path.isabs(self.path)

    def realpath(self) -> FilePath[AnyStr]:
        """Return the path a symbolic link finally leads to, or this path if it is none.

        Raises:
            LinkError: The links form a cycle.
        """
        if not self.islink():
            return self
        try:
            return self.clonePath(os.path.realpath(self.path, strict=True))
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise LinkError("Cyclical link - will loop forever") from None
            return self.clonePath(os.path.realpath(self.path))  # dangling: where it points

    # -- directories -------------------------------------------------------------------------

    def listdir(self) -> list[AnyStr]:
        """Return the names in this directory (in the order the system gives them)."""
        return os.listdir(self.path)

    def children(self) -> list[FilePath[AnyStr]]:
        """Return a FilePath for each entry of this directory.

        Raises:
            UnlistableError: The path does not exist or is not a directory.
            OSError: Listing failed otherwise (permissions, resources).
        """
        try:
            names = self.listdir()
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR) or getattr(e, "winerror", None) in (
                2,
                3,
                123,
                267,
            ):
                raise UnlistableError(e) from e
            raise
        return [self.child(name) for name in names]

    def walk(
        self, descend: Callable[[FilePath[AnyStr]], bool] | None = None
    ) -> Iterator[FilePath[AnyStr]]:
        """Yield this path, then everything below it, depth first.

        Args:
            descend: Called with each directory met (not this path); when it returns
                false the directory is yielded but not entered.

        Raises:
            LinkError: A symbolic link leads back into the walk (a cycle).
        """
        real = os.path.realpath(self.path)
        return self._walk(descend, real, frozenset((real,)))

    def _walk(
        self,
        descend: Callable[[FilePath[AnyStr]], bool] | None,
        real: AnyStr,
        entered: frozenset[AnyStr],
    ) -> Iterator[FilePath[AnyStr]]:
        yield self
        if not self.isdir():
            return
        for child in self.children():
            if descend is not None and not descend(child):
                yield child
                continue
            if child.islink():
                child_real = os.path.realpath(child.path)
                if child.isdir() and (
                    child_real in entered or _is_within(real, child_real, self.sep)
                ):
                    raise LinkError("Cycle in file graph.")
            else:
                child_real = os.path.join(real, child.basename())
            yield from child._walk(descend, child_real, entered | {child_real})

    def globChildren(self, pattern: OtherAnyStr) -> list[FilePath[OtherAnyStr]]:
        """Return the entries of this directory matching glob ``pattern`` (``"*.txt"``)."""
        ours: OtherAnyStr = _coerce(pattern, self.path)
        names = glob.glob(pattern, root_dir=ours)
        return [self.clonePath(os.path.join(ours, name)) for name in names]

    def makedirs(self, ignoreExistingDirectory: bool = False) -> None:
        """Create this directory and any missing parents.

        Raises:
            OSError: The directory exists (unless ``ignoreExistingDirectory``), or a file
                is in the way.
        """
        try:
            os.makedirs(self.path)
        except OSError as e:
            if not (e.errno == errno.EEXIST and ignoreExistingDirectory and self.isdir()):
                raise
        finally:
            self.changed()

    def createDirectory(self) -> None:
        """Create this directory (its parent must exist)."""
        os.mkdir(self.path)
        self.changed()

    # -- status ------------------------------------------------------------------------------

    def restat(self, reraise: bool = True) -> None:
        """Refresh the cached ``stat`` of this path.

        Args:
            reraise: Raise :class:`OSError` if the path cannot be statted; otherwise the
                path is then taken not to exist.
        """
        try:
            self._statinfo = os.stat(self.path)
        except OSError:
            self._statinfo = None
            if reraise:
                raise

    def changed(self) -> None:
        """Forget the cached ``stat``: the path changed on disk."""
        self._statinfo = None

    def _stat(self) -> os.stat_result:
        st = self._statinfo
        if st is None:
            self.restat()
            st = self._statinfo
            assert st is not None
        return st

    def _mode(self) -> int | None:
        st = self._statinfo
        if st is None:
            self.restat(False)
            st = self._statinfo
        return None if st is None else st.st_mode

    def exists(self) -> bool:
        """Return True when the path exists (a dangling link does not)."""
        return self._mode() is not None

    def isdir(self) -> bool:
        """Return True for a directory (or a link to one)."""
        mode = self._mode()
        return mode is not None and S_ISDIR(mode)

    def isfile(self) -> bool:
        """Return True for a regular file (or a link to one)."""
        mode = self._mode()
        return mode is not None and S_ISREG(mode)

    def isBlockDevice(self) -> bool:
        """Return True for a block device."""
        mode = self._mode()
        return mode is not None and S_ISBLK(mode)

    def isSocket(self) -> bool:
        """Return True for a UNIX-domain socket."""
        mode = self._mode()
        return mode is not None and S_ISSOCK(mode)

    def islink(self) -> bool:
        """Return True for a symbolic link (never cached: the cache describes the target)."""
        return os.path.islink(self.path)

    def getsize(self) -> int:
        """Return the size in bytes. Raises :class:`OSError` if the path does not exist."""
        return self._stat().st_size

    def getModificationTime(self) -> float:
        """Return the time of the last change to the contents (seconds since the epoch)."""
        return float(self._stat().st_mtime)

    def getStatusChangeTime(self) -> float:
        """Return the time of the last change to the metadata (seconds since the epoch)."""
        return float(self._stat().st_ctime)

    def getAccessTime(self) -> float:
        """Return the time of the last access (seconds since the epoch)."""
        return float(self._stat().st_atime)

    def getmtime(self) -> int:
        """Deprecated in Twisted: ``int(getModificationTime())``."""
        return int(self.getModificationTime())

    def getatime(self) -> int:
        """Deprecated in Twisted: ``int(getAccessTime())``."""
        return int(self.getAccessTime())

    def getctime(self) -> int:
        """Deprecated in Twisted: ``int(getStatusChangeTime())``."""
        return int(self.getStatusChangeTime())

    def _posix_only(self) -> os.stat_result:
        if _IS_WINDOWS:
            raise NotImplementedError("not meaningful on Windows")
        return self._stat()

    def getInodeNumber(self) -> int:
        """Return the inode number. Raises NotImplementedError on Windows."""
        return self._posix_only().st_ino

    def getDevice(self) -> int:
        """Return the device number. Raises NotImplementedError on Windows."""
        return self._posix_only().st_dev

    def getNumberOfHardLinks(self) -> int:
        """Return the number of hard links. Raises NotImplementedError on Windows."""
        return self._posix_only().st_nlink

    def getUserID(self) -> int:
        """Return the owner's user id. Raises NotImplementedError on Windows."""
        return self._posix_only().st_uid

    def getGroupID(self) -> int:
        """Return the group id. Raises NotImplementedError on Windows."""
        return self._posix_only().st_gid

    def getPermissions(self) -> Permissions:
        """Return the permission bits as :class:`Permissions`."""
        return Permissions(S_IMODE(self._stat().st_mode))

    def chmod(self, mode: int) -> None:
        """Change the permission bits (as :func:`os.chmod`)."""
        os.chmod(self.path, mode)
        self.changed()

    # -- contents ----------------------------------------------------------------------------

    def open(self, mode: str = "r") -> IO[bytes]:
        """Open the file, always in binary (``"r"`` means ``"rb"``).

        With ``alwaysCreate``, the file is created and must not exist (see :meth:`create`).
        """
        if self.alwaysCreate:
            if "a" in mode:
                raise ValueError("Appending not supported when alwaysCreate == True")
            return self.create()
        return open(self.path, mode.replace("b", "") + "b")

    def create(self) -> IO[bytes]:
        """Create the file and open it for reading and writing.

        Raises:
            FileExistsError: The path exists already.
        """
        fd = os.open(self.path, _CREATE_FLAGS)
        self.changed()
        return os.fdopen(fd, "w+b")

    def requireCreate(self, val: bool = True) -> None:
        """Set :attr:`alwaysCreate`."""
        self.alwaysCreate = val

    def getContent(self) -> bytes:
        """Return the file's bytes."""
        with self.open() as f:
            return f.read()

    def setContent(self, content: bytes, ext: str | bytes = b".new") -> None:
        """Replace the file's contents with ``content``, atomically.

        The bytes go to a new sibling file (named with ``ext`` at the end), which is synced
        to disk and then renamed over this path: a reader sees the old contents or the new,
        never a mix, even after a crash.
        """
        extension: Any = ext
        sibling = self.temporarySibling(extension)
        try:
            with sibling.open("w") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(sibling.path, _coerce(sibling.path, self.path))
        except BaseException:
            if os.path.lexists(sibling.path):
                os.unlink(sibling.path)
            raise
        finally:
            self.changed()

    def touch(self) -> None:
        """Set the access and modification times to now, creating the file if missing."""
        with contextlib.suppress(OSError):
            self.open("a").close()
        os.utime(self.path, None)
        self.changed()

    def remove(self) -> None:
        """Delete the file, link or directory (a directory with everything in it).

        A link is removed, never followed.
        """
        if self.isdir() and not self.islink():
            for child in self.children():
                child.remove()
            os.rmdir(self.path)
        else:
            os.remove(self.path)
        self.changed()

    def linkTo(self, linkFilePath: FilePath[AnyStr]) -> None:
        """Create a symbolic link at ``linkFilePath`` pointing to this path."""
        os.symlink(self.path, linkFilePath.path)

    def copyTo(self, destination: FilePath[Any], followLinks: bool = True) -> None:
        """Copy this file, or this directory's contents recursively, to ``destination``.

        Args:
            destination: For a file, the file to write (replaced); for a directory, the
                directory to fill (made if missing).
            followLinks: Copy what links point to; if false, copy links as links.

        Raises:
            OSError: This path does not exist.
            NotImplementedError: It is neither file nor directory (FIFO, device...).
        """
        if self.islink() and not followLinks:
            os.symlink(os.readlink(self.path), destination.path)
        elif self.isdir():
            if not destination.exists():
                destination.createDirectory()
            for child in self.children():
                child.copyTo(destination.child(child.basename()), followLinks)
        elif self.isfile():
            with destination.open("w") as out, self.open() as source:
                while chunk := source.read(_COPY_CHUNK):
                    out.write(chunk)
        elif not self.exists():
            raise OSError(errno.ENOENT, "No such file or directory", self.path)
        else:
            raise NotImplementedError("Only copying of files and directories supported")
        destination.changed()

    def moveTo(self, destination: FilePath[Any], followLinks: bool = True) -> None:
        """Rename this path to ``destination``; across file systems, copy then remove.

        Raises:
            OSError: ``destination`` is a non-empty directory, or the move failed.
        """
        try:
            os.rename(_coerce(destination.path, self.path), destination.path)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            # Another file system: copy beside the destination, then swap it in.
            staging = destination.temporarySibling()
            self.copyTo(staging, followLinks)
            staging.moveTo(destination, followLinks)
            leaving = self.temporarySibling()
            self.moveTo(leaving, followLinks)
            leaving.remove()
        self.changed()
        destination.changed()
