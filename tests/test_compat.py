"""treadle.python.compat: the text/bytes helpers and Python 2 names Twisted programs import."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from treadle.python import compat
from treadle.python.compat import (
    bytesEnviron,
    cmp,
    comparable,
    currentframe,
    execfile,
    intToBytes,
    ioType,
    iterbytes,
    lazyByteSlice,
    nativeString,
    networkString,
)


def test_networkString_is_ascii_text_to_bytes() -> None:
    assert networkString(f"Content-Length: {12}") == b"Content-Length: 12"
    with pytest.raises(UnicodeError):
        networkString("caf\xe9")
    with pytest.raises(TypeError):
        networkString(b"already bytes")  # type: ignore[arg-type]


def test_nativeString_takes_ascii_bytes_or_text() -> None:
    assert nativeString(b"GET") == "GET"
    assert nativeString("GET") == "GET"
    with pytest.raises(UnicodeError):
        nativeString(b"\xff")
    with pytest.raises(UnicodeError):
        nativeString("\xe9")
    with pytest.raises(TypeError):
        nativeString(12)  # type: ignore[type-var]


def test_byte_helpers() -> None:
    assert list(iterbytes(b"abc")) == [b"a", b"b", b"c"]
    assert intToBytes(404) == b"404"
    view = lazyByteSlice(b"0123456789", 2, 3)
    assert isinstance(view, memoryview) and bytes(view) == b"234"
    assert bytes(lazyByteSlice(b"0123456789", 7)) == b"789"


def test_python2_names() -> None:
    assert compat.unicode is str and compat.long is int and compat.xrange is range
    assert compat.unichr(0x41) == "A" and compat.izip is zip
    assert compat.items({1: 2}) == [(1, 2)]
    assert list(compat.iteritems({1: 2})) == [(1, 2)] and list(compat.itervalues({1: 2})) == [2]


def test_cmp_and_comparable() -> None:
    assert (cmp(1, 2), cmp(2, 2), cmp(3, 2)) == (-1, 0, 1)

    @comparable
    class Version:
        def __init__(self, n: int) -> None:
            self.n = n

        def __cmp__(self, other: object) -> int:
            if not isinstance(other, Version):
                return NotImplemented
            return cmp(self.n, other.n)

    one, two = Version(1), Version(2)
    assert one < two and one <= two and two > one and two >= one
    assert one == Version(1) and one != two
    assert one != "one"  # NotImplemented falls back to identity


def test_ioType() -> None:
    assert ioType(io.StringIO()) is str
    assert ioType(io.BytesIO()) is bytes
    assert ioType(object()) is str and ioType(object(), bytes) is bytes


def test_frames_reraise_and_execfile(tmp_path: Path) -> None:
    def inner() -> str:
        return currentframe(1).f_code.co_name

    assert inner() == "test_frames_reraise_and_execfile"
    assert currentframe().f_code.co_name == "test_frames_reraise_and_execfile"
    script = tmp_path / "script.py"
    script.write_text("answer = base * 2\n")
    namespace = {"base": 21}
    execfile(str(script), namespace)
    assert namespace["answer"] == 42
    try:
        raise ValueError("first")
    except ValueError:
        tb = sys.exc_info()[2]
    with pytest.raises(KeyError) as caught:
        compat.reraise(KeyError("again"), tb)
    assert caught.value.__traceback__ is not None


def test_bytesEnviron() -> None:
    environ = bytesEnviron()
    assert environ == dict(os.environb)
    assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in environ.items())
