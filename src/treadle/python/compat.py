"""Text/bytes helpers and Python 2 leftovers programs import (``twisted.python.compat``).

The helpers programs use most are :func:`networkString` (ASCII text to bytes, for header
values and status lines built with ``%``), :func:`nativeString` (ASCII bytes or text to
``str``) and :func:`iterbytes` (a bytes object one byte at a time). The rest keep older
code that still imports Python 2 names from here running: ``unicode``, ``long``,
``xrange``, ``iteritems``... Twisted deprecated several of these (``iteritems``,
``intToBytes``, ``reraise``...); treadle provides them without a warning.
"""

from __future__ import annotations

import codecs
import inspect
import os
from collections.abc import Iterator, Mapping
from io import IOBase, TextIOBase
from types import FrameType, TracebackType
from typing import Any, AnyStr, NoReturn, TypeVar

__all__ = [
    "FileType",
    "InstanceType",
    "StringType",
    "bytesEnviron",
    "cmp",
    "comparable",
    "currentframe",
    "execfile",
    "frozenset",
    "intToBytes",
    "ioType",
    "items",
    "iterbytes",
    "iteritems",
    "itervalues",
    "izip",
    "lazyByteSlice",
    "long",
    "nativeString",
    "networkString",
    "range",
    "raw_input",
    "reraise",
    "set",
    "unichr",
    "unicode",
    "xrange",
]

_K = TypeVar("_K")
_V = TypeVar("_V")
_Class = TypeVar("_Class", bound=type)

# Python 2 names, bound to what they became in Python 3.
FileType = IOBase
InstanceType = object
StringType = str
# Builtins re-exported under their own names, as Twisted's module has them.
frozenset = frozenset
izip = zip
long = int
range = range
raw_input = input
set = set
unichr = chr
unicode = str
xrange = range


def networkString(s: str) -> bytes:
    """Return the ASCII text ``s`` as bytes, for the wire (``networkString("%d" % n)``).

    Raises:
        TypeError: ``s`` is not ``str``.
        UnicodeEncodeError: ``s`` holds a character outside ASCII.
    """
    if not isinstance(s, str):
        raise TypeError(f"networkString takes str, not {type(s).__name__}")
    return s.encode("ascii")


def nativeString(s: AnyStr) -> str:
    """Return ``s`` (bytes or str, ASCII only) as ``str``.

    Raises:
        TypeError: ``s`` is neither bytes nor str.
        UnicodeError: ``s`` holds something outside ASCII.
    """
    if isinstance(s, bytes):
        return s.decode("ascii")
    if isinstance(s, str):
        s.encode("ascii")  # only checks: the result must be ASCII either way
        return s
    raise TypeError(f"{s!r} is neither bytes nor str")


def iterbytes(originalBytes: bytes) -> Iterator[bytes]:
    """Yield ``originalBytes`` one byte at a time, each as a length-1 bytes (not an int)."""
    for index in range(len(originalBytes)):
        yield originalBytes[index : index + 1]


def intToBytes(i: int) -> bytes:
    """Return ``i`` in decimal as ASCII bytes (``b"%d" % i``)."""
    return b"%d" % (i,)


def lazyByteSlice(object: Any, offset: int = 0, size: int | None = None) -> memoryview:
    """Return a view of ``object[offset:offset + size]`` that copies nothing.

    Args:
        object: A bytes-like object.
        offset: Where the view starts.
        size: Its length (to the end when None).
    """
    view = memoryview(object)
    return view[offset:] if size is None else view[offset : offset + size]


def cmp(a: Any, b: Any) -> int:
    """Return -1, 0 or 1 as ``a`` is less than, equal to or greater than ``b`` (Python 2's)."""
    if a < b:
        return -1
    return 0 if a == b else 1


def _comparison(test: Any) -> Any:
    def compare(self: Any, other: object) -> Any:
        outcome = self.__cmp__(other)
        return NotImplemented if outcome is NotImplemented else test(outcome)

    return compare


def comparable(klass: _Class) -> _Class:
    """Class decorator: derive ``==``, ``<``... from the class's Python 2 ``__cmp__``.

    ``__cmp__(other)`` returns a negative number, zero or a positive number (or
    ``NotImplemented``), as :func:`cmp` does.
    """
    klass.__eq__ = _comparison(lambda c: c == 0)  # type: ignore[method-assign]
    klass.__ne__ = _comparison(lambda c: c != 0)  # type: ignore[method-assign]
    klass.__lt__ = _comparison(lambda c: c < 0)  # type: ignore[operator]
    klass.__le__ = _comparison(lambda c: c <= 0)  # type: ignore[operator]
    klass.__gt__ = _comparison(lambda c: c > 0)  # type: ignore[operator]
    klass.__ge__ = _comparison(lambda c: c >= 0)  # type: ignore[operator]
    return klass


def ioType(fileIshObject: object, default: type = str) -> type:
    """Return ``str`` for a file opened in text mode, ``bytes`` for binary, else ``default``."""
    if isinstance(fileIshObject, TextIOBase):
        return str
    if isinstance(fileIshObject, IOBase):
        return bytes
    if isinstance(fileIshObject, (codecs.StreamReader, codecs.StreamWriter)):
        # Codec streams with an encoding read and write text.
        return str if getattr(fileIshObject, "encoding", None) else bytes
    return default


def currentframe(n: int = 0) -> FrameType:
    """Return the frame ``n`` levels above the caller's (``0``: the caller's own frame)."""
    frame = inspect.currentframe()
    for _ in range(n + 1):
        if frame is None:
            break
        frame = frame.f_back
    if frame is None:
        raise ValueError(f"the stack is not {n + 1} frames deep")
    return frame


def execfile(
    filename: str | os.PathLike[str],
    globals: dict[str, Any],
    locals: Mapping[str, object] | None = None,
) -> None:
    """Run the Python file ``filename`` in ``globals`` (and ``locals``, by default the same)."""
    with open(filename, "rb") as source:
        code = compile(source.read(), filename, "exec")
    exec(code, globals, globals if locals is None else locals)


def reraise(exception: BaseException, traceback: TracebackType | None) -> NoReturn:
    """Raise ``exception`` again with ``traceback`` (None: a fresh one)."""
    raise exception.with_traceback(traceback)


def iteritems(d: Mapping[_K, _V]) -> Any:
    """Return ``d.items()``."""
    return d.items()


def itervalues(d: Mapping[_K, _V]) -> Any:
    """Return ``d.values()``."""
    return d.values()


def items(d: Mapping[_K, _V]) -> list[tuple[_K, _V]]:
    """Return ``d``'s items as a list."""
    return list(d.items())


def bytesEnviron() -> dict[bytes, bytes]:
    """Return the process environment with bytes keys and values (``os.environb``'s copy)."""
    return dict(os.environb)
