"""treadle.web.static: files, directories, ranges, validators and path safety.

Pure decisions (segment checks, Range planning, validators) are tested without I/O; the
rest goes through a real server (both loops) with httpx, http.client and raw sockets.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import math
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treadle.internet._timers import MAX_WAIT
from treadle.web import _conditional, _mime, _safe_paths, _sendfile, static
from treadle.web._registry import Registry
from treadle.web.resource import IResource, Resource
from treadle.web.server import Site
from treadle.web.static import (
    MAX_RANGE_PARTS,
    Data,
    DirectoryLister,
    File,
    formatFileSize,
    getTypeAndEncoding,
    loadMimeTypes,
)
from treadle.web.testing import StringTransport, connect, request_bytes

from .conftest import (
    DEADLINE,
    ServerThread,
    host_port,
    on_loop,
    raw_request,
    run_scenario,
    still_clock,
    wait_for,
)

BIG = 5 * 1024 * 1024
SECRET = b"TOP-SECRET-CONTENT"

Serve = Callable[..., str]


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A served root with a secret file beside it (outside the root)."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "page.html").write_bytes(b"<p>page</p>")
    (root / "app.js").write_bytes(b"console.log(1)")
    (root / "data.json").write_bytes(b"{}")
    (root / "image.png").write_bytes(b"\x89PNG fake")
    (root / "blob.unknownext").write_bytes(b"??")
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8bnot really")
    (root / "script.rpy").write_bytes(b"resource = None\n")
    sub = root / "sub"
    sub.mkdir()
    (sub / "inner.txt").write_bytes(b"inner")
    return root


_clients: list[httpx.Client] = []


@pytest.fixture(autouse=True, scope="module")
def _shared_client() -> Iterator[None]:
    # One client for the module: building an httpx.Client (its TLS context) costs ~15 ms.
    # No keep-alive: a connection left open would outlive its test's server, and closing a
    # uvloop loop that still has a connection blocks.
    _clients.append(httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)))
    yield
    _clients.pop().close()


def get(base: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    return _clients[0].get(base + path, headers=headers, **kw)


def head(base: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return _clients[0].head(base + path, headers=headers)


def raw_get(base: str, target: bytes, *, method: bytes = b"GET", extra: bytes = b"") -> bytes:
    return raw_request(
        base,
        method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n",
    )


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def head_of(raw: bytes) -> dict[bytes, bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(b":") for line in head)}


def parse_byteranges(body: bytes, boundary: bytes) -> list[tuple[dict[bytes, bytes], bytes]]:
    """Split a multipart/byteranges body into (headers, data) parts, checking its framing."""
    delimiter = b"\r\n--" + boundary
    # Twisted's layout: the first delimiter starts with CRLF too (an empty preamble).
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(delimiter + b"--\r\n")
    chunks = body.split(delimiter)
    assert chunks[0] == b"" and chunks[-1] == b"--\r\n"
    parts = []
    for chunk in chunks[1:-1]:
        assert chunk.startswith(b"\r\n")
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, data))
    return parts


# -- pure decisions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "segment",
    [
        b"",
        b".",
        b"..",
        b"../x",
        b"a/b",
        b"a\\b",
        b"..\\..",
        b"a\x00b",
        b"\x00",
        b"\xff",
        b"\xc0\xaf",
    ],
)
def test_child_name_refuses_dangerous_segments(segment: bytes) -> None:
    assert _safe_paths.child_name(segment) is None


@pytest.mark.parametrize(
    ("segment", "name"),
    [
        (b"a.txt", "a.txt"),
        (b".hidden", ".hidden"),
        (b"...", "..."),
        (b"%2e%2e", "%2e%2e"),
        ("é.txt".encode(), "é.txt"),
        (b"a b", "a b"),
    ],
)
def test_child_name_accepts_ordinary_names(segment: bytes, name: str) -> None:
    assert _safe_paths.child_name(segment) == name


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"bytes=0-9", [(0, 9)]),
        (b"bytes=5-", [(5, None)]),
        (b"bytes=-3", [(None, 3)]),
        (b"Bytes = 0-1, 4-5 ,, -2", [(0, 1), (4, 5), (None, 2)]),
        (b"bytes=0-9", [(0, 9)]),
        (b"bytes=" + b"9" * 30 + b"-", [(10**18, None)]),
    ],
)
def test_parse_range_valid(header: bytes, expected: list[Any]) -> None:
    assert _conditional.parse_range(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        b"bytes",
        b"bytes=",
        b"items=0-1",
        b"bytes=5-4",
        b"bytes=-",
        b"bytes=a-b",
        b"bytes=+1-2",
        b"bytes= 1-2x",
        b"bytes=1",
        b"bytes=0-1,x",
        b"bytes=1_0-20",
        b"bytes=\xd9\xa1-2",
    ],
)
def test_parse_range_invalid_is_none(header: bytes) -> None:
    assert _conditional.parse_range(header) is None


def test_plan_ranges_decisions() -> None:
    plan = _conditional.plan_ranges
    assert plan(b"bytes=0-9", 100) == [(0, 10)]
    assert plan(b"bytes=90-200", 100) == [(90, 100)]
    assert plan(b"bytes=-10", 100) == [(90, 100)]
    assert plan(b"bytes=-1000", 100) == [(0, 100)]
    assert plan(b"bytes=50-", 100) == [(50, 100)]
    assert plan(b"bytes=60-69,0-9", 100) == [(0, 10), (60, 70)]  # sorted
    assert plan(b"bytes=0-10,5-20", 100) == [(0, 21)]  # overlapping: merged
    assert plan(b"bytes=0-9,10-19", 100) == [(0, 20)]  # adjacent: merged
    assert plan(b"bytes=100-", 100) == []  # unsatisfiable
    assert plan(b"bytes=-0", 100) == []
    assert plan(b"bytes=100-,0-0", 100) == [(0, 1)]  # the satisfiable one is kept
    assert plan(b"bytes=0-,0-", 100) is None  # amplification: whole file
    assert plan(b"bytes=0-5", 0) is None  # empty file: Range ignored
    assert plan(b"garbage", 100) is None
    many = b"bytes=" + b",".join(b"%d-%d" % (i * 2, i * 2) for i in range(MAX_RANGE_PARTS))
    assert len(plan(many, 10_000) or []) == MAX_RANGE_PARTS  # the limit itself passes
    more = many + b",%d-%d" % (MAX_RANGE_PARTS * 2, MAX_RANGE_PARTS * 2)
    assert plan(more, 10_000) is None  # limit + 1: whole file


def test_validators() -> None:
    etag = b'"1-2-3"'
    assert _conditional._none_match([b'"1-2-3"'], etag)
    assert _conditional._none_match([b'W/"1-2-3"'], etag)  # weak comparison
    assert _conditional._none_match([b'"a", "1-2-3"'], etag)
    assert _conditional._none_match([b'"a"', b'"1-2-3"'], etag)  # several header lines
    assert _conditional._none_match([b"*"], etag)
    assert not _conditional._none_match([b'"a,b", "c"'], etag)
    assert _conditional._entity_tags(b'"a,b", W/"c" junk "d"') == [b'"a,b"', b'W/"c"']
    assert not _conditional._none_match([b"1-2-3"], etag)  # unquoted: not an entity-tag
    assert _conditional.if_range_holds(b'"1-2-3"', etag, 0)
    assert not _conditional.if_range_holds(b'W/"1-2-3"', etag, 0)  # If-Range needs strong
    assert _conditional.if_range_holds(b"Thu, 01 Jan 1970 00:00:10 GMT", etag, 10)
    assert not _conditional.if_range_holds(b"Thu, 01 Jan 1970 00:00:11 GMT", etag, 10)
    assert _conditional._parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert _conditional._parse_http_date(b"Sun Nov  6 08:49:37 1994") == 784111777
    assert _conditional._parse_http_date(b"not a date") is None


def test_types_and_sizes() -> None:
    types = loadMimeTypes()
    assert types[".js"] == "text/javascript"
    assert types[".md"] == "text/markdown"
    assert types[".py"] == "text/plain"
    assert types[".wasm"] == "application/wasm"
    assert getTypeAndEncoding("a.tar.gz", types, File.contentEncodings, "x/y") == (
        "application/x-tar",
        "gzip",
    )
    assert getTypeAndEncoding("A.HTML", types, {}, "x/y") == ("text/html", None)
    assert getTypeAndEncoding("noext", types, {}, "x/y") == ("x/y", None)
    assert _mime.content_type_value("text/css") == b"text/css; charset=utf-8"
    assert _mime.content_type_value("application/json") == b"application/json; charset=utf-8"
    assert _mime.content_type_value("text/plain; charset=latin-1") == b"text/plain; charset=latin-1"
    assert _mime.content_type_value("image/png") == b"image/png"
    assert [formatFileSize(n) for n in (0, 1023, 1536, 20 * 1024**2, 3 * 1024**3)] == [
        "0B",
        "1023B",
        "1K",
        "20M",
        "3G",
    ]
    # Twisted's own examples: whole units, rounded down, gigabytes at most.
    assert formatFileSize(4567) == "4K" and formatFileSize(1234567890000) == "1149G"


def test_twisted_surface(tree: Path) -> None:
    f = File(str(tree))
    assert f.indexNames == ["index", "index.html", "index.htm", "index.rpy"]
    assert f.processors == {}
    assert f.contentEncodings == {".gz": "gzip", ".bz2": "bzip2"}
    assert "sub" in f.listNames() and f.listNames() == sorted(f.listNames())
    assert {os.path.basename(e.path) for e in f.listEntities()} == set(f.listNames())
    f.ignoreExt(".html")
    assert f.ignoredExts == [".html"]
    child = f.createSimilarFile(str(tree / "sub"))
    assert isinstance(child, File) and child.ignoredExts == [".html"]
    assert child.registry is f.registry and child._root == f._root_path()
    assert isinstance(f.directoryListing(), DirectoryLister)
    assert static.Registry is Registry
    with pytest.raises(TypeError):
        f.getChild("hello.txt", None)  # type: ignore[arg-type]
    with pytest.warns(DeprecationWarning):
        assert File(str(tree), allowExt=1).ignoredExts == ["*"]


# -- content and headers -----------------------------------------------------------------------


def test_file_content_and_headers(serve: Serve, tree: Path) -> None:
    base = serve(File(str(tree)))
    r = get(base, "/hello.txt")
    st = os.stat(tree / "hello.txt")
    assert r.status_code == 200
    assert r.content == b"hello, world\n"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-length"] == "13"
    assert r.headers["accept-ranges"] == "bytes"
    # Rounded up to the whole second, as Twisted's setLastModified does.
    assert r.headers["last-modified"] == time.strftime(
        "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(math.ceil(st.st_mtime))
    )
    assert r.headers["etag"] == f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


@pytest.mark.parametrize("name", ["hello.txt", "archive.tar.gz", "sub/inner.txt"])
def test_repeated_requests_get_the_same_answer(serve: Serve, tree: Path, name: str) -> None:
    """The first answer reads the file; later ones come from memory, with the same head."""

    def without_date(raw: bytes) -> bytes:
        return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Date:"))

    base = serve(File(str(tree)))
    for method in (b"GET", b"HEAD"):
        answers = {
            without_date(raw_get(base, b"/" + name.encode(), method=method)) for _ in range(3)
        }
        assert len(answers) == 1, answers
        (answer,) = answers
        assert status_of(answer) == 200
        assert answer.endswith(
            b"\r\n\r\n" + (tree / name).read_bytes() if method == b"GET" else b"\r\n\r\n"
        )


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("page.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("image.png", "image/png"),
        ("blob.unknownext", "text/html; charset=utf-8"),  # defaultType
        ("script.rpy", "text/plain; charset=utf-8"),  # no processor: source, not HTML
    ],
)
def test_content_types(serve: Serve, tree: Path, name: str, ctype: str) -> None:
    r = get(serve(File(str(tree))), "/" + name)
    assert r.status_code == 200
    assert r.headers["content-type"] == ctype
    assert r.content == (tree / name).read_bytes()


def test_default_type_and_content_encoding(serve: Serve, tree: Path) -> None:
    base = serve(File(str(tree), defaultType="application/octet-stream"))
    conn = http.client.HTTPConnection(*host_port(base), timeout=10)
    try:
        conn.request("GET", "/archive.tar.gz")
        r = conn.getresponse()
        assert r.read() == (tree / "archive.tar.gz").read_bytes()
        assert r.getheader("content-type") == "application/x-tar"
        assert r.getheader("content-encoding") == "gzip"
        conn.request("GET", "/blob.unknownext")
        r = conn.getresponse()
        assert r.read() == b"??"
        assert r.getheader("content-type") == "application/octet-stream"
    finally:
        conn.close()


def test_head_and_methods(serve: Serve, tree: Path) -> None:
    base = serve(File(str(tree)))
    conn = http.client.HTTPConnection(*host_port(base), timeout=10)
    try:
        conn.request("HEAD", "/hello.txt")
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("content-length") == "13"
        assert r.getheader("etag") and r.getheader("last-modified")
        assert r.read() == b""
        conn.request("GET", "/hello.txt")  # same connection: HEAD left no stray body
        assert conn.getresponse().read() == b"hello, world\n"
    finally:
        conn.close()
    r = _clients[0].post(base + "/hello.txt", content=b"x")
    assert r.status_code == 405
    assert r.headers["allow"] == "HEAD, GET"


def test_data_resource(serve: Serve) -> None:
    root = Resource()
    root.putChild(b"d", Data(b'{"a": 1}', "application/json"))
    base = serve(root)
    r = get(base, "/d")
    assert r.content == b'{"a": 1}'
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-length"] == "8"
    h = head(base, "/d")
    assert h.status_code == 200 and h.content == b"" and h.headers["content-length"] == "8"


# -- conditional requests ----------------------------------------------------------------------


def test_if_none_match_gives_304(serve: Serve, tree: Path) -> None:
    base = serve(File(str(tree)))
    first = get(base, "/hello.txt")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for value in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        r = get(base, "/hello.txt", {"If-None-Match": value})
        assert r.status_code == 304, value
        assert r.content == b""
        assert r.headers["etag"] == etag and r.headers["last-modified"] == modified
        assert "content-length" not in r.headers
    # A non-matching If-None-Match wins over a matching If-Modified-Since.
    r = get(base, "/hello.txt", {"If-None-Match": '"other"', "If-Modified-Since": modified})
    assert r.status_code == 200 and r.content == b"hello, world\n"


def test_if_modified_since(serve: Serve, tree: Path) -> None:
    os.utime(tree / "hello.txt", (1_000_000_000, 1_000_000_000))
    base = serve(File(str(tree)))
    modified = get(base, "/hello.txt").headers["last-modified"]
    assert modified == "Sun, 09 Sep 2001 01:46:40 GMT"
    assert get(base, "/hello.txt", {"If-Modified-Since": modified}).status_code == 304
    later = "Mon, 10 Sep 2001 00:00:00 GMT"
    assert get(base, "/hello.txt", {"If-Modified-Since": later}).status_code == 304
    earlier = "Sat, 08 Sep 2001 00:00:00 GMT"
    assert get(base, "/hello.txt", {"If-Modified-Since": earlier}).status_code == 200
    assert get(base, "/hello.txt", {"If-Modified-Since": "garbage"}).status_code == 200
    r = head(base, "/hello.txt", {"If-Modified-Since": modified})
    assert r.status_code == 304


# -- ranges ------------------------------------------------------------------------------------


@pytest.fixture
def digits(tree: Path) -> bytes:
    data = bytes(range(256)) * 4  # 1024 bytes, every offset recognisable
    (tree / "digits.bin").write_bytes(data)
    return data


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=-100", 924, 1024),
        ("bytes=1000-", 1000, 1024),
        ("bytes=1000-5000", 1000, 1024),
        ("bytes=0-10,5-20", 0, 21),
        ("bytes=0-0,1-1,2-9", 0, 10),
    ],
)
def test_single_range(
    serve: Serve, tree: Path, digits: bytes, spec: str, start: int, stop: int
) -> None:
    r = get(serve(File(str(tree))), "/digits.bin", {"Range": spec})
    assert r.status_code == 206
    assert r.content == digits[start:stop]
    assert r.headers["content-range"] == f"bytes {start}-{stop - 1}/1024"
    assert r.headers["content-length"] == str(stop - start)
    assert r.headers["content-type"] == "application/octet-stream"


def test_multiple_ranges(serve: Serve, tree: Path, digits: bytes) -> None:
    r = get(serve(File(str(tree))), "/digits.bin", {"Range": "bytes=500-509, 0-4, -3"})
    assert r.status_code == 206
    ctype = r.headers["content-type"]
    assert ctype.startswith('multipart/byteranges; boundary="') and ctype.endswith('"')
    boundary = ctype.split("boundary=", 1)[1].strip('"').encode()
    assert len(boundary) >= 16
    assert int(r.headers["content-length"]) == len(r.content)
    parts = parse_byteranges(r.content, boundary)
    assert [(h[b"content-range"], data) for h, data in parts] == [
        (b"bytes 0-4/1024", digits[0:5]),
        (b"bytes 500-509/1024", digits[500:510]),
        (b"bytes 1021-1023/1024", digits[1021:]),
    ]
    assert all(h[b"content-type"] == b"application/octet-stream" for h, _ in parts)
    other = get(serve(File(str(tree))), "/digits.bin", {"Range": "bytes=0-1,5-6"})
    assert other.headers["content-type"] != ctype  # a fresh random boundary


def test_unsatisfiable_and_ignored_ranges(serve: Serve, tree: Path, digits: bytes) -> None:
    base = serve(File(str(tree)))
    r = get(base, "/digits.bin", {"Range": "bytes=2000-3000"})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */1024"
    for spec in ("bytes=5-1", "lines=1-2", "bytes=abc", "bytes=0-,0-"):
        r = get(base, "/digits.bin", {"Range": spec})
        assert r.status_code == 200, spec
        assert r.content == digits
        assert "content-range" not in r.headers
    h = head(base, "/digits.bin", {"Range": "bytes=0-1"})  # Range is for GET only
    assert h.status_code == 200 and h.headers["content-length"] == "1024"


def test_abusive_range_lists(serve: Serve, tree: Path, digits: bytes) -> None:
    base = serve(File(str(tree)))
    scattered = "bytes=" + ",".join(f"{i * 3}-{i * 3}" for i in range(300))
    r = get(base, "/digits.bin", {"Range": scattered})
    assert r.status_code == 200 and r.content == digits  # 300 parts: whole file instead
    adjacent = "bytes=" + ",".join(f"{i}-{i}" for i in reversed(range(300)))
    r = get(base, "/digits.bin", {"Range": adjacent})
    assert r.status_code == 206  # merged into one part
    assert r.headers["content-range"] == "bytes 0-299/1024"
    assert r.content == digits[:300]
    overlapping = "bytes=" + ",".join("0-1023" for _ in range(50))
    r = get(base, "/digits.bin", {"Range": overlapping})
    assert r.status_code == 200 and r.content == digits


def test_if_range(serve: Serve, tree: Path, digits: bytes) -> None:
    base = serve(File(str(tree)))
    full = get(base, "/digits.bin")
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    r = get(base, "/digits.bin", {"Range": "bytes=0-9", "If-Range": etag})
    assert r.status_code == 206 and r.content == digits[:10]
    r = get(base, "/digits.bin", {"Range": "bytes=0-9", "If-Range": modified})
    assert r.status_code == 206
    for stale in ('"stale"', f"W/{etag}", "Thu, 01 Jan 1970 00:00:00 GMT"):
        r = get(base, "/digits.bin", {"Range": "bytes=0-9", "If-Range": stale})
        assert r.status_code == 200 and r.content == digits, stale


# -- directories -------------------------------------------------------------------------------


def test_directory_redirects_to_slash(serve: Serve, tree: Path) -> None:
    (tree / "my dir").mkdir()
    base = serve(File(str(tree)))
    raw = raw_get(base, b"/sub?a=1&b=%2F")
    assert status_of(raw) == 301
    assert head_of(raw)[b"location"] == b"./sub/?a=1&b=%2F"
    # The page is util.redirectTo's, pointing where Location does.
    assert b'<a href="./sub/?a=1&amp;b=%2F">click here</a>' in raw
    assert b"<!DOCTYPE" not in raw
    raw = raw_get(base, b"/my%20dir")
    assert head_of(raw)[b"location"] == b"./my%20dir/"
    r = get(base, "/sub", follow_redirects=True)
    assert r.status_code == 200
    assert str(r.url) == base + "/sub/"
    assert "inner.txt" in r.text


def test_directory_under_a_mount_point(serve: Serve, tree: Path) -> None:
    root = Resource()
    root.putChild(b"static", File(str(tree)))
    base = serve(root)
    r = get(base, "/static/sub", follow_redirects=True)
    assert str(r.url) == base + "/static/sub/"
    assert get(base, "/static/sub/inner.txt").content == b"inner"


def test_root_directory_as_site_child(serve: Serve, tree: Path) -> None:
    # A File rendered for a URL that already ends in "/" lists instead of redirecting.
    root = Resource()
    root.putChild(b"", File(str(tree)))
    r = get(serve(root), "/")
    assert r.status_code == 200 and "hello.txt" in r.text


def test_index_files(serve: Serve, tree: Path) -> None:
    (tree / "sub" / "index.html").write_bytes(b"<h1>index</h1>")
    base = serve(File(str(tree)))
    r = get(base, "/sub/")
    assert r.content == b"<h1>index</h1>"
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    (tree / "index").write_bytes(b"bare index")  # "index" comes first in indexNames
    assert get(base, "/").content == b"bare index"


def test_directory_listing(serve: Serve, tree: Path) -> None:
    (tree / "<script>&.txt").write_bytes(b"x" * 2048)
    (tree / "zdir").mkdir()
    r = get(serve(File(str(tree))), "/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    page = r.text
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta name="viewport"' in page
    assert "<style>" in page and "<script" not in page.replace("&lt;script", "")
    assert "&lt;script&gt;&amp;.txt" in page
    assert 'href="%3Cscript%3E%26.txt"' in page
    assert "2.0 KiB" in page
    assert page.index('href="sub/"') < page.index('href="zdir/"') < page.index('href="app.js"')
    assert "../" not in page  # no parent above the root
    sub = get(serve(File(str(tree))), "/sub/")
    assert 'href="../"' in sub.text and 'href="inner.txt"' in sub.text
    (tree / "ü dir").mkdir()
    r = get(serve(File(str(tree))), "/%C3%BC%20dir/")
    # Twisted's heading and title: the request's URI, percent-decoded.
    assert "<h1>Directory listing for /ü dir/</h1>" in r.text
    assert "<title>Directory listing for /ü dir/</title>" in r.text


# -- extensions, processors --------------------------------------------------------------------


def test_ignored_extensions(serve: Serve, tree: Path) -> None:
    (tree / "about.html").write_bytes(b"about page")
    base = serve(File(str(tree), ignoredExts=(".html",)))
    r = get(base, "/about")
    assert r.content == b"about page"
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert get(base, "/nothing").status_code == 404
    with pytest.warns(DeprecationWarning):
        any_ext = File(str(tree), allowExt=True)
    assert get(serve(any_ext), "/about").content == b"about page"


def test_processors(serve: Serve, tree: Path) -> None:
    (tree / "LOUD.RPY").write_bytes(b"")
    (tree / "sub" / "index.rpy").write_bytes(b"")
    seen: list[tuple[str, Registry]] = []

    def processor(path: str, registry: Registry) -> IResource:
        seen.append((path, registry))
        return Data(b"processed " + os.path.basename(path).encode(), "text/plain")

    f = File(str(tree))
    f.processors = {".rpy": processor}
    base = serve(f)
    assert get(base, "/script.rpy").content == b"processed script.rpy"
    assert get(base, "/LOUD.RPY").content == b"processed LOUD.RPY"  # never served as source
    assert get(base, "/sub/").content == b"processed index.rpy"
    assert all(registry is f.registry for _, registry in seen)


def test_remembered_processor_entries_keep_their_calling_convention(
    serve: Serve, tree: Path
) -> None:
    """Repeated requests (the remembered entry's path) call each processor as the first
    did: ``stat=`` only for a processor that declares ``acceptsStat``."""
    calls: list[tuple[str, object]] = []

    def plain(path: str, registry: Registry) -> Data:
        calls.append(("plain", None))
        return Data(b"plain", "text/plain")

    def with_stat(path: str, registry: Registry, *, stat: os.stat_result | None = None) -> Data:
        calls.append(("with_stat", stat))
        return Data(b"with stat", "text/plain")

    with_stat.acceptsStat = True  # type: ignore[attr-defined]
    (tree / "b.stat").write_bytes(b"")
    f = File(str(tree))
    f.processors = {".rpy": plain, ".stat": with_stat}
    base = serve(f)
    for _ in range(3):
        assert get(base, "/script.rpy").content == b"plain"
        assert get(base, "/b.stat").content == b"with stat"
    assert [name for name, _ in calls] == ["plain", "with_stat"] * 3
    stats = [st for name, st in calls if name == "with_stat"]
    assert stats[0] is None  # the first visit walks the slow path
    assert all(isinstance(st, os.stat_result) for st in stats[1:])
    last = stats[-1]
    assert isinstance(last, os.stat_result) and last.st_ino == os.stat(tree / "b.stat").st_ino


def test_small_file_answers_keep_each_files_content_type(serve: Serve, tree: Path) -> None:
    """The same small file, answered from memory, carries the type of the File serving it."""
    plain = serve(File(str(tree)))
    octets = serve(File(str(tree), defaultType="application/octet-stream"))
    for _ in range(3):  # the first answer reads the file, later ones come from memory
        assert get(plain, "/blob.unknownext").headers["content-type"] == (
            "text/html; charset=utf-8"
        )
        assert get(octets, "/blob.unknownext").headers["content-type"] == (
            "application/octet-stream"
        )
        assert get(plain, "/page.html").headers["content-type"] == "text/html; charset=utf-8"


# -- path safety -------------------------------------------------------------------------------

TRAVERSALS = [
    b"/../secret.txt",
    b"/..%2fsecret.txt",
    b"/..%2F..%2Fsecret.txt",
    b"/sub/..%2f..%2fsecret.txt",
    b"/%2e%2e/secret.txt",
    b"/%2e%2e%2fsecret.txt",
    b"/%2E%2E/%2e%2e/secret.txt",
    b"/sub/%2e%2e/%2e%2e/secret.txt",
    b"/..\\secret.txt",
    b"/..\\..\\secret.txt",
    b"/..%5csecret.txt",
    b"/sub%5c..%5c..%5csecret.txt",
    b"/%252e%252e/secret.txt",
    b"/%252e%252e%252fsecret.txt",
    b"/..%252fsecret.txt",
    b"/..%c0%afsecret.txt",
    b"/%c0%ae%c0%ae/secret.txt",
    b"/hello.txt%00.png",
    b"/a%00b",
    b"/%00",
    b"/%ff",
    b"/./hello.txt",
    b"/sub/./inner.txt",
    b"//secret.txt",
    b"/sub//inner.txt",
    b"/..",
    b"/sub/..",
    b"/sub/%2e%2e",
    b"/sub/%2e%2e/",
    b"/sub/..%00/",
    b"/" + str(Path("/etc/passwd")).encode(),
    b"/%2fetc%2fpasswd",
    b"http://x/../secret.txt",
    b"http://x/%2e%2e/secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode("latin-1") for t in TRAVERSALS])
def test_traversal_is_refused(serve: Serve, tree: Path, target: bytes) -> None:
    base = serve(File(str(tree)))
    raw = raw_get(base, target)
    assert status_of(raw) in (400, 403, 404), raw[:200]
    assert SECRET not in raw
    assert b"root:" not in raw
    # The server is unharmed.
    assert get(base, "/hello.txt").content == b"hello, world\n"


def test_refused_segments_at_the_resource_level(tree: Path) -> None:
    f = File(str(tree))
    for segment in (b"..", b".", b"../secret.txt", b"..\\secret.txt", b"a\x00", b"\xff"):
        assert f.getChild(segment, None) is f.childNotFound, segment  # type: ignore[arg-type]


class WalkRequest:
    """Just what File.getChild reads from a request."""

    def __init__(self) -> None:
        self.postpath: list[bytes] = []


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links")
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(
            [
                "..",
                ".",
                "%2e",
                "%2E",
                "%2f",
                "%5c",
                "/",
                "\\",
                "%00",
                "%25",
                "%ff",
                "sub",
                "out",
                "hello.txt",
                "secret.txt",
                "a",
                "",
            ]
        ),
        max_size=8,
    )
)
def test_no_path_leaves_the_root(tree: Path, pieces: list[str]) -> None:
    if not (tree / "out").is_symlink():
        (tree / "out").symlink_to(tree.parent)
    root = File(str(tree))
    real_root = os.path.realpath(tree)
    # Split and decode the way the server does before traversal.
    segments = [urllib.parse.unquote_to_bytes(s) for s in ("".join(pieces)).split("/")]
    request = WalkRequest()
    resource: Any = root
    for i, segment in enumerate(segments):
        request.postpath = segments[i + 1 :]
        resource = resource.getChildWithDefault(segment, request)
        if not isinstance(resource, File):
            break
    if isinstance(resource, File):
        real = os.path.realpath(resource.path)
        assert os.path.commonpath((real, real_root)) == real_root, (pieces, real)


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links")
def test_symlinks(serve: Serve, tree: Path) -> None:
    (tree / "etc").symlink_to("/etc")
    (tree / "leak.txt").symlink_to(tree.parent / "secret.txt")
    (tree / "alias.txt").symlink_to(tree / "hello.txt")
    (tree / "subalias").symlink_to(tree / "sub")
    (tree / "relative.txt").symlink_to("sub/inner.txt")
    (tree / "dangling").symlink_to(tree / "nowhere")
    base = serve(File(str(tree)))
    for target in (b"/etc/passwd", b"/etc/", b"/etc", b"/leak.txt"):
        raw = raw_get(base, target)
        assert status_of(raw) in (403, 404), target
        assert SECRET not in raw and b"root:" not in raw
    assert get(base, "/alias.txt").content == b"hello, world\n"  # stays inside: fine
    assert get(base, "/subalias/inner.txt").content == b"inner"
    assert get(base, "/relative.txt").content == b"inner"
    assert get(base, "/dangling").status_code == 404
    listing = get(base, "/").text
    assert "alias.txt" in listing and "leak.txt" not in listing and 'href="etc/"' not in listing

    followed = serve(File(str(tree), follow_symlinks=True))
    assert get(followed, "/leak.txt").content == SECRET
    assert get(followed, "/etc/").status_code == 200
    assert status_of(raw_get(followed, b"/..%2fsecret.txt")) == 404  # ".." still refused


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links")
def test_remembered_entries_swapped_for_links_are_checked_again(serve: Serve, tree: Path) -> None:
    """A file or directory served once, then replaced by a link out of the tree: refused."""
    base = serve(File(str(tree)))
    assert get(base, "/hello.txt").content == b"hello, world\n"
    assert get(base, "/sub/inner.txt").content == b"inner"
    (tree / "hello.txt").unlink()
    (tree / "hello.txt").symlink_to(tree.parent / "secret.txt")
    (tree / "sub" / "inner.txt").rename(tree / "inner.bak")
    (tree / "sub").rmdir()
    (tree.parent / "outside").mkdir()
    (tree.parent / "outside" / "inner.txt").write_bytes(SECRET)
    (tree / "sub").symlink_to(tree.parent / "outside")
    for target in (b"/hello.txt", b"/sub/inner.txt", b"/sub/"):
        raw = raw_get(base, target)
        assert status_of(raw) == 403, target
        assert SECRET not in raw


def test_remembered_entries_follow_the_file_system(serve: Serve, tree: Path) -> None:
    """Deleting, re-creating and rewriting a file that was served shows at once."""
    base = serve(File(str(tree), ignoredExts=[".html"]))
    hello = tree / "hello.txt"
    assert get(base, "/hello.txt").content == b"hello, world\n"
    hello.unlink()
    assert get(base, "/hello.txt").status_code == 404
    hello.write_bytes(b"back again\n")
    assert get(base, "/hello.txt").content == b"back again\n"
    os.utime(hello, ns=(1, 1))
    hello.write_bytes(b"same size!\n")  # same length: the new mtime tells it apart
    assert get(base, "/hello.txt").content == b"same size!\n"
    # An entry that turns into a directory is redirected to its slash, and back.
    hello.unlink()
    hello.mkdir()
    assert get(base, "/hello.txt", follow_redirects=False).status_code == 301
    hello.rmdir()
    # A remembered name that is gone falls back to the sibling search of ignoredExts.
    (tree / "about.html").write_bytes(b"about")
    (tree / "about").write_bytes(b"plain")
    assert get(base, "/about").content == b"plain"
    (tree / "about").unlink()
    assert get(base, "/about").content == b"about"


def test_many_entries_are_served_beyond_the_remembered_limit(
    serve: Serve, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static, "MAX_CACHED_CHILDREN", 4)
    for i in range(10):
        (tree / f"f{i}.txt").write_bytes(b"%d" % i)
    root = File(str(tree))
    base = serve(root)
    for _ in range(2):
        for i in range(10):
            assert get(base, f"/f{i}.txt").content == b"%d" % i
    assert root._children is not None and len(root._children) <= 4


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_not_opened(serve: Serve, tree: Path) -> None:
    os.mkfifo(tree / "pipe")
    base = serve(File(str(tree)))
    r = get(base, "/pipe")  # opening a FIFO would block the loop forever
    assert r.status_code == 403
    assert get(base, "/hello.txt").status_code == 200


# -- large files -------------------------------------------------------------------------------


@pytest.fixture
def big(tree: Path) -> bytes:
    data = os.urandom(BIG)
    (tree / "big.bin").write_bytes(data)
    return data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_large_file_is_streamed(serve: Serve, tree: Path, big: bytes) -> None:
    base = serve(File(str(tree)))
    conn = http.client.HTTPConnection(*host_port(base), timeout=10)
    try:
        conn.request("GET", "/big.bin")
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("content-length") == str(BIG)
        assert r.getheader("transfer-encoding") is None
        assert sha(r.read()) == sha(big)
        # Same connection: the length framing was exact.
        conn.request("GET", "/big.bin", headers={"Range": "bytes=1000000-3999999"})
        r = conn.getresponse()
        assert r.status == 206
        assert r.getheader("content-range") == f"bytes 1000000-3999999/{BIG}"
        assert r.read() == big[1_000_000:4_000_000]
        conn.request("HEAD", "/big.bin")
        r = conn.getresponse()
        assert r.getheader("content-length") == str(BIG) and r.read() == b""
        conn.request("GET", "/hello.txt")
        assert conn.getresponse().read() == b"hello, world\n"
    finally:
        conn.close()


def test_large_multipart_ranges(serve: Serve, tree: Path, big: bytes) -> None:
    r = get(serve(File(str(tree))), "/big.bin", {"Range": "bytes=-100000,0-199999,3000000-3100000"})
    assert r.status_code == 206
    boundary = r.headers["content-type"].split("boundary=", 1)[1].strip('"').encode()
    parts = parse_byteranges(r.content, boundary)
    assert [(h[b"content-range"], sha(data)) for h, data in parts] == [
        (b"bytes 0-199999/%d" % BIG, sha(big[:200_000])),
        (b"bytes 3000000-3100000/%d" % BIG, sha(big[3_000_000:3_100_001])),
        (b"bytes %d-%d/%d" % (BIG - 100_000, BIG - 1, BIG), sha(big[-100_000:])),
    ]


@pytest.mark.parametrize("strategy", ["os", "copy"])
def test_large_file_fallback_strategies(
    serve: Serve, tree: Path, big: bytes, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[str] = []
    original = _sendfile._sendfile_strategy

    def forced(loop: Any, transport: Any, file: IO[bytes]) -> str:
        used.append(original(loop, transport, file))
        return strategy

    monkeypatch.setattr(_sendfile, "_sendfile_strategy", forced)
    base = serve(File(str(tree)))
    assert sha(get(base, "/big.bin").content) == sha(big)
    r = get(base, "/big.bin", {"Range": "bytes=100-2000000"})
    assert r.content == big[100:2_000_001]
    assert used  # the streaming path was taken


#: Socket buffer size both ends of test_buffered_bytes_go_out_before_the_file ask for: far
#: below the prefix, so the kernel cannot take the whole prefix while the client is not reading.
SMALL_SOCKET_BUFFER = 32 * 1024


class PrefixThenFile(Resource):
    """Writes a body start that overflows the socket, then sends a file after it.

    The connection's send buffer is shrunk first, and ``buffered`` is what the transport
    still holds once the prefix went to it; ``measured`` is set then.
    """

    isLeaf = True

    def __init__(self, path: Path, prefix: bytes) -> None:
        super().__init__()
        self.path = path
        self.prefix = prefix
        self.buffered = -1
        self.measured = threading.Event()

    def render_GET(self, request: Any) -> Any:
        size = self.path.stat().st_size
        transport = request.asyncio_transport
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SOCKET_BUFFER
        )
        request.setHeader(b"content-length", b"%d" % (len(self.prefix) + size))
        request.write(self.prefix)
        # request.transport hands the held first write to the transport before answering.
        self.buffered = request.asyncio_transport.get_write_buffer_size()
        self.measured.set()

        async def send() -> None:
            with open(self.path, "rb") as f:
                await _sendfile._send_range(request, f, 0, size)

        return send()


@pytest.mark.parametrize("strategy", ["loop", "os", "copy"])
def test_buffered_bytes_go_out_before_the_file(
    serve: Serve, tree: Path, big: bytes, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "loop" under uvloop also checks the fallback when loop.sendfile is not implemented.
    monkeypatch.setattr(_sendfile, "_sendfile_strategy", lambda *a: strategy)
    prefix = bytes(range(256)) * 4096  # 1 MiB, 30 times the buffers of both ends
    resource = PrefixThenFile(tree / "big.bin", prefix)
    base = serve(resource)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_SOCKET_BUFFER)
        sock.settimeout(10)
        sock.connect(host_port(base))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        # Not a byte is read before the server has looked at its transport's buffer: the
        # kernel cannot have taken the whole prefix, so the transport holds the rest of it.
        assert resource.measured.wait(DEADLINE), "the resource did not render"
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    assert resource.buffered > 0  # the transport still held part of the prefix
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(body) == len(prefix) + BIG
    assert body[: len(prefix)] == prefix and sha(body[len(prefix) :]) == sha(big)


def test_native_strategy_per_loop(server: ServerThread, loop_kind: str) -> None:
    """asyncio's loop sends with loop.sendfile; uvloop (no loop.sendfile) with os.sendfile."""

    class FakeTransport:
        def get_extra_info(self, name: str) -> object:
            return {"socket": socket.socket}.get(name)

    with open(__file__, "rb") as f:
        strategy = server.call(
            lambda: _sendfile._sendfile_strategy(server.loop, FakeTransport(), f)
        )
    assert strategy == ("loop" if loop_kind == "asyncio" else "os")


def test_http10_client_gets_the_large_file(serve: Serve, tree: Path, big: bytes) -> None:
    raw = raw_request(serve(File(str(tree))), b"GET /big.bin HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and sha(body) == sha(big)


@pytest.mark.parametrize(
    ("size", "streamed"), [(static.SMALL_BODY, False), (static.SMALL_BODY + 1, True)]
)
def test_small_body_limit(
    serve: Serve, tree: Path, size: int, streamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(size)
    (tree / "edge.bin").write_bytes(data)
    senders: list[object] = []

    class Spy(_sendfile.FileSender):
        def start(self) -> None:
            senders.append(self)
            super().start()

    monkeypatch.setattr(static, "FileSender", Spy)
    r = get(serve(File(str(tree))), "/edge.bin")
    assert r.content == data
    assert bool(senders) is streamed


def test_empty_file(serve: Serve, tree: Path) -> None:
    (tree / "empty.txt").write_bytes(b"")
    base = serve(File(str(tree)))
    r = get(base, "/empty.txt")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"
    r = get(base, "/empty.txt", {"Range": "bytes=0-10"})  # nothing to slice: whole (empty) file
    assert r.status_code == 200 and r.content == b""


class Shrunk(File):
    """Claims more bytes than the file holds: as if it shrank after the stat."""

    def getFileSize(self) -> int:
        extra = 100_000 if self.path.endswith("big.bin") else 0
        return os.path.getsize(self.path) + extra


@pytest.mark.parametrize("strategy", ["native", "copy"])
def test_file_shrinking_mid_transfer_closes_after_its_bytes(
    serve: Serve, tree: Path, big: bytes, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if strategy == "copy":
        monkeypatch.setattr(_sendfile, "_sendfile_strategy", lambda *a: "copy")
    base = serve(Shrunk(str(tree)))
    conn = http.client.HTTPConnection(*host_port(base), timeout=10)
    try:
        conn.request("GET", "/big.bin")
        r = conn.getresponse()
        assert r.getheader("content-length") == str(BIG + 100_000)
        with pytest.raises(http.client.IncompleteRead) as info:
            r.read()
        assert len(info.value.partial) == BIG  # every real byte, then the connection cut
    finally:
        conn.close()
    assert get(base, "/hello.txt").status_code == 200


# -- clients that leave ------------------------------------------------------------------------


class Tracking(File):
    """Records every file it opens, to check each one gets closed."""

    opened: list[IO[bytes]]

    def openForReading(self) -> IO[bytes]:
        f = super().openForReading()
        self.opened.append(f)
        return f


@pytest.fixture
def tracking(tree: Path) -> Iterator[type[Tracking]]:
    with open(tree / "huge.bin", "wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: far more than the socket buffers hold
    Tracking.opened = []
    yield Tracking


@pytest.mark.parametrize("strategy", ["native", "copy"])
def test_client_leaving_mid_transfer(
    serve: Serve,
    tree: Path,
    tracking: type[Tracking],
    strategy: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if strategy == "copy":
        monkeypatch.setattr(_sendfile, "_sendfile_strategy", lambda *a: "copy")
    base = serve(tracking(str(tree)))
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(host_port(base))
        sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        while received < 100_000:
            chunk = sock.recv(65536)
            assert chunk
            received += len(chunk)
    finally:
        sock.close()  # unread data pending: the kernel resets the connection
    wait_for(
        lambda: tracking.opened and all(f.closed for f in tracking.opened),
        what="the file to be opened and closed",
    )
    assert get(base, "/hello.txt").content == b"hello, world\n"


def test_client_leaving_before_the_first_byte(
    serve: Serve, tree: Path, tracking: type[Tracking]
) -> None:
    base = serve(tracking(str(tree)))
    for _ in range(3):
        with socket.create_connection(host_port(base), timeout=10) as sock:
            sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(
        lambda: len(tracking.opened) == 3 and all(f.closed for f in tracking.opened),
        what="three files to be opened and closed",
    )
    assert get(base, "/hello.txt").status_code == 200


# -- File and FilePath ------------------------------------------------------------------------


def test_file_serves_a_file_path(serve: Serve, tree: Path) -> None:
    from treadle.python.filepath import FilePath

    for path in (FilePath(str(tree)), FilePath(os.fsencode(tree))):
        resource = File(path)
        assert resource.path == str(tree) and isinstance(resource.path, str)
        base = serve(resource)
        assert get(base, "/hello.txt").content == b"hello, world\n"
        assert get(base, "/sub/inner.txt").content == b"inner"
        assert get(base, "/../secret.txt").status_code == 404


def test_file_accepts_anything_with_a_path(serve: Serve, tree: Path) -> None:
    class Located:
        path = str(tree)

    resource = File(Located())
    assert resource.path == str(tree)
    assert get(serve(resource), "/hello.txt").content == b"hello, world\n"
    with pytest.raises(TypeError, match="needs a path"):
        File(42)  # type: ignore[arg-type]


def test_file_is_a_file_path_as_in_twisted(tree: Path) -> None:
    from treadle.python.filepath import FilePath, InsecurePath

    resource = File(str(tree))
    assert isinstance(resource, FilePath)
    assert resource.exists() and resource.isdir() and not resource.isfile()
    child = resource.child("hello.txt")
    # As in Twisted: child() is the FilePath method and gives a plain FilePath.
    assert type(child) is FilePath and child.getContent() == b"hello, world\n"
    with pytest.raises(InsecurePath):
        resource.child("..")
    assert resource.basename() == "root" and resource.parent() == FilePath(str(tree.parent))
    assert File(str(tree / "hello.txt")).getsize() == len(b"hello, world\n")
    # ``children`` stays the resource's dict of static children.
    extra = Data(b"x", "text/plain")
    resource.putChild(b"extra", extra)
    assert resource.children == {b"extra": extra}
    assert repr(resource) == f"<File {str(tree)!r}>"


def test_create_similar_file_with_file_paths(tree: Path) -> None:
    from treadle.python.filepath import FilePath

    resource = File(FilePath(str(tree)))
    similar = resource.createSimilarFile(resource.child("sub").path)
    assert type(similar) is File and similar.path == str(tree / "sub")
    assert [f.path for f in resource.listEntities()][:1] == [str(tree / "app.js")]


def test_last_modified_rounds_a_fractional_mtime_up(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x")
    os.utime(path, (1_700_000_000.25, 1_700_000_000.25))
    base = serve(File(str(tmp_path)))
    r = get(base, "/f.txt")
    assert r.headers["last-modified"] == "Tue, 14 Nov 2023 22:13:21 GMT"  # ...:20.25 up to :21
    again = get(base, "/f.txt", headers={"If-Modified-Since": r.headers["last-modified"]})
    assert again.status_code == 304


def test_load_mime_types_calls_a_given_init_with_the_locations(tmp_path: Path) -> None:
    # Twisted's hook (its tests pass a fake init); the default, mimetypes.init, is not called
    # so the process's global mimetypes table stays as it is.
    import inspect
    import mimetypes

    from treadle.web.static import loadMimeTypes

    calls: list[object] = []
    table = loadMimeTypes(init=calls.append)
    assert calls == [None] and table[".html"].startswith("text/html")
    types_file = tmp_path / "mime.types"
    types_file.write_text("application/x-treadle-test tdl\n")
    table = loadMimeTypes([str(types_file)], init=calls.append)
    assert calls[-1] == [str(types_file)] and table[".tdl"] == "application/x-treadle-test"
    assert inspect.signature(loadMimeTypes).parameters["init"].default is mimetypes.init
    # Paths that are no file are skipped, as mimetypes.init skips them.
    table = loadMimeTypes([str(tmp_path / "missing.types"), str(types_file)])
    assert table[".tdl"] == "application/x-treadle-test"


# -- driven by hand (DummyRequest), as Twisted programs test their resources -----------------------


def dummy(*segments: bytes, range_header: bytes | None = None, method: bytes = b"GET") -> Any:
    from treadle.web.test.requesthelper import DummyRequest

    request = DummyRequest(list(segments) or [b""])
    request.method = method
    if range_header is not None:
        request.requestHeaders.setRawHeaders(b"range", [range_header])
    return request


def content_headers(request: Any) -> dict[bytes, bytes]:
    return {
        name.lower(): values[0]
        for name, values in request.responseHeaders.getAllRawHeaders()
        if name.lower().startswith(b"content-")
    }


def test_by_hand_a_file_is_written_through_the_request(tree: Path) -> None:
    from treadle.web import resource

    request = dummy(b"hello.txt")
    child = resource.getChildForRequest(File(str(tree)), request)
    # Another request than the server's own: sent as Twisted sends it, by a producer.
    assert child.render(request) is static.NOT_DONE_YET
    assert b"".join(request.written) == b"hello, world\n" and request.finished == 1
    assert request.responseCode == 200
    assert content_headers(request) == {
        b"content-type": b"text/plain; charset=utf-8",
        b"content-length": b"13",
    }
    head = dummy(b"hello.txt", method=b"HEAD")
    child = resource.getChildForRequest(File(str(tree)), head)
    assert child.render(head) == b"" and head.written == []
    assert content_headers(head)[b"content-length"] == b"13"


@pytest.mark.parametrize(
    ("range_header", "code", "span", "content_range"),
    [
        (b"bytes=3-9", 206, (3, 10), b"bytes 3-9/1024"),
        (b"bytes=-3", 206, (1021, 1024), b"bytes 1021-1023/1024"),
        (b"bytes=1000-5000", 206, (1000, 1024), b"bytes 1000-1023/1024"),
        (b"bytes=2000-", 416, (0, 0), b"bytes */1024"),
        (b"bytes=9-3", 200, (0, 1024), None),  # invalid: ignored, the whole file
        (b"pages=1-2", 200, (0, 1024), None),
    ],
)
def test_by_hand_ranges(
    tree: Path,
    digits: bytes,
    range_header: bytes,
    code: int,
    span: tuple[int, int],
    content_range: bytes | None,
) -> None:
    request = dummy(range_header=range_header)
    assert File(str(tree / "digits.bin")).render(request) is static.NOT_DONE_YET
    assert request.responseCode == code and request.finished == 1
    written = b"".join(request.written)
    assert written == digits[span[0] : span[1]]
    headers = content_headers(request)
    assert headers[b"content-length"] == b"%d" % len(written)
    assert headers.get(b"content-range") == content_range


def test_by_hand_multiple_ranges(tree: Path, digits: bytes) -> None:
    request = dummy(range_header=b"bytes=0-2,20-30")
    File(str(tree / "digits.bin")).render(request)
    assert request.responseCode == 206
    ctype = request.responseHeaders.getRawHeaders(b"content-type")[0]
    boundary = ctype.split(b'boundary="', 1)[1].rstrip(b'"')
    body = b"".join(request.written)
    assert int(content_headers(request)[b"content-length"]) == len(body)
    assert b"content-encoding" not in content_headers(request)
    parts = parse_byteranges(body, boundary)
    assert [(h[b"content-range"], data) for h, data in parts] == [
        (b"bytes 0-2/1024", digits[0:3]),
        (b"bytes 20-30/1024", digits[20:31]),
    ]


def test_a_malformed_range_is_noted_in_the_log(tree: Path, digits: bytes) -> None:
    from treadle.python import log

    seen: list[dict[str, Any]] = []
    log.addObserver(seen.append)
    try:
        request = dummy(range_header=b"foobar=0-43")
        File(str(tree / "digits.bin")).render(request)
    finally:
        log.removeObserver(seen.append)
    assert [e["message"] for e in seen] == [("Ignoring malformed Range header 'foobar=0-43'",)]
    assert b"".join(request.written) == digits and request.responseCode == 200


def test_makeProducer_sets_headers_and_picks_the_producer(tree: Path) -> None:
    (tree / "abc.txt").write_bytes(b"abcdef")
    resource = File(str(tree / "abc.txt"))
    cases = [
        (None, static.NoRangeStaticProducer, 200, b"6", None),
        (b"bytes=1-3", static.SingleRangeStaticProducer, 206, b"3", b"bytes 1-3/6"),
        (b"bytes=10-12", static.SingleRangeStaticProducer, 416, b"0", b"bytes */6"),
        (b"bytes=0-0,4-5", static.MultipleRangeStaticProducer, 206, None, None),
        (b"bytes=10-12,15-20", static.MultipleRangeStaticProducer, 416, b"0", b"bytes */6"),
    ]
    for range_header, kind, code, length, content_range in cases:
        request = dummy(range_header=range_header)
        with resource.openForReading() as file:
            producer = resource.makeProducer(request, file)
            assert type(producer) is kind and request.responseCode == code
            headers = content_headers(request)
            assert headers.get(b"content-range") == content_range
            if length is not None:
                assert headers[b"content-length"] == length
            producer.start()
        assert request.finished == 1 and producer.request is None
        if code == 206 and kind is static.SingleRangeStaticProducer:
            assert b"".join(request.written) == b"bcd"


def test_producers_write_a_buffer_at_a_time() -> None:
    import io

    content = b"x" * (2 * static.StaticProducer.bufferSize + 1)
    request = dummy()
    static.NoRangeStaticProducer(request, io.BytesIO(content)).start()
    assert [len(chunk) for chunk in request.written] == [65536, 65536, 1]
    request = dummy()
    static.SingleRangeStaticProducer(request, io.BytesIO(content), 1, 65546).start()
    assert [len(chunk) for chunk in request.written] == [65536, 10]
    # Parts and boundaries are gathered into writes of about bufferSize bytes.
    request = dummy()
    multiple = static.MultipleRangeStaticProducer(
        request, io.BytesIO(b"0123456789" * 2), [(b"a", 0, 2), (b"b", 5, 10), (b"c", 0, 0)]
    )
    multiple.bufferSize = 10
    multiple.start()
    assert request.written == [b"a01b567890", b"1234c"] and request.finished == 1
    closed = io.BytesIO(b"data")
    producer = static.StaticProducer(dummy(), closed)
    producer.stopProducing()
    assert closed.closed and producer.request is None


def test_a_replaced_open_is_what_openForReading_opens(tmp_path: Path) -> None:
    import io

    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    resource = File(str(path))
    fake = io.BytesIO(b"from open()")
    resource.open = lambda: fake  # type: ignore[assignment,method-assign]
    assert resource.openForReading() is fake
    head = dummy(method=b"HEAD")
    resource.render(head)
    assert fake.closed  # opened to check it can be read, then closed


def test_addSlash_is_deprecated() -> None:
    request = dummy()
    request.uri = b"http://example.com/dir?x=1"
    with pytest.warns(DeprecationWarning, match="addSlash was deprecated in Twisted 16.0.0"):
        assert static.addSlash(request) == b"http://example.com/dir/?x=1"


# -- the cached answer's header block ------------------------------------------------------


def _without_date(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Date: "))


def test_cached_answer_is_byte_for_byte_the_uncached_one(serve: Serve, tree: Path) -> None:
    """The fast path's prepared head equals what the field-by-field path writes."""
    base = serve(File(str(tree)))
    raw_get(base, b"/hello.txt")  # read and cached
    fast = raw_get(base, b"/hello.txt")
    # A validator that does not match takes the general path (_respond, setHeader).
    slow = raw_get(base, b"/hello.txt", extra=b'If-None-Match: "nope"\r\n')
    assert status_of(fast) == status_of(slow) == 200
    assert _without_date(fast) == _without_date(slow)
    assert fast.endswith(b"\r\n\r\nhello, world\n")


def test_cached_answer_headers_follow_changes_of_the_file(serve: Serve, tree: Path) -> None:
    """Rewriting a cached file gives new ETag, Last-Modified, length and body at once."""
    base = serve(File(str(tree)))
    hello = tree / "hello.txt"
    os.utime(hello, (1_000_000_000, 1_000_000_000))
    raw_get(base, b"/hello.txt")
    before = raw_get(base, b"/hello.txt")  # from the cache, with its prepared fields
    hello.write_bytes(b"a longer and different body\n")
    os.utime(hello, (1_700_000_000, 1_700_000_000))
    after = raw_get(base, b"/hello.txt")
    again = raw_get(base, b"/hello.txt")  # the new contents cached, fields prepared anew
    st = os.stat(hello)
    for raw in (after, again):
        fields = head_of(raw)
        assert fields[b"etag"] == _conditional.strong_etag(st)
        assert fields[b"last-modified"] == b"Tue, 14 Nov 2023 22:13:20 GMT"
        assert fields[b"content-length"] == b"28"
        assert raw.endswith(b"\r\n\r\na longer and different body\n")
    assert head_of(before)[b"last-modified"] == b"Sun, 09 Sep 2001 01:46:40 GMT"
    assert head_of(before)[b"etag"] != head_of(after)[b"etag"]


def test_cached_answer_follows_a_change_of_type(serve: Serve, tree: Path) -> None:
    root = File(str(tree))
    base = serve(root)
    raw_get(base, b"/hello.txt")
    assert head_of(raw_get(base, b"/hello.txt"))[b"content-type"] == b"text/plain; charset=utf-8"
    child = root.getChild(b"hello.txt", None)  # type: ignore[arg-type]
    assert isinstance(child, File)
    child.type = "application/x-other"
    child.encoding = "gzip"
    fields = head_of(raw_get(base, b"/hello.txt"))
    assert fields[b"content-type"] == b"application/x-other"
    assert fields[b"content-encoding"] == b"gzip"


class _Rewrapping(Resource):
    """Renders a File, then changes the response's fields as a wrapping resource may."""

    isLeaf = True

    def __init__(self, inner: File, change: Callable[[Any], None]) -> None:
        super().__init__()
        self.inner = inner
        self.change = change

    def render_GET(self, request: Any) -> bytes:
        body: bytes = self.inner.render(request)
        self.change(request)
        return body


@pytest.mark.parametrize(
    ("change", "present", "absent"),
    [
        (
            lambda r: r.setHeader(b"content-type", b"text/x-changed"),
            [b"Content-Type: text/x-changed"],
            [b"text/plain"],
        ),
        (lambda r: r.setHeader(b"x-extra", b"1"), [b"X-Extra: 1", b"Accept-Ranges: bytes"], []),
        (
            lambda r: r.responseHeaders.addRawHeader(b"etag", b'"second"'),
            [b'ETag: "second"'],
            [],
        ),
        (lambda r: r.responseHeaders.removeHeader(b"accept-ranges"), [b"ETag: "], [b"Accept-"]),
        (lambda r: r.setHeader(b"connection", b"close"), [b"Connection: close"], []),
    ],
    ids=["type-replaced", "field-added", "value-appended", "field-removed", "connection"],
)
def test_fields_changed_after_a_cached_render_are_sent(
    serve: Serve,
    tree: Path,
    change: Callable[[Any], None],
    present: list[bytes],
    absent: list[bytes],
) -> None:
    """The prepared block is used only while the table holds exactly its fields."""
    inner = File(str(tree / "hello.txt"))
    base = serve(_Rewrapping(inner, change))
    raw_get(base, b"/")  # cached
    raw = raw_get(base, b"/")
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in present:
        assert line in head
    for line in absent:
        assert line not in head
    assert head.count(b"Content-Type: ") == 1
    assert head.count(b"ETag: ") == (2 if b'"second"' in present[0] else 1)
    assert raw.endswith(b"\r\n\r\nhello, world\n")


def test_prepared_fields_hold_exactly_their_own() -> None:
    from treadle.web._request_core import PreparedFields

    etag, ctype = b'"1-2-3"', b"text/plain"
    fields = PreparedFields((b"etag", b"content-type"), (etag, ctype))
    assert fields.block == b'ETag: "1-2-3"\r\nContent-Type: text/plain\r\n'
    assert fields.has_type and not fields.has_length
    assert fields.holds_exactly({b"etag": [etag], b"content-type": [ctype]})
    # Another order, another value object, two values, one more or one less field: no.
    assert not fields.holds_exactly({b"content-type": [ctype], b"etag": [etag]})
    assert not fields.holds_exactly({b"etag": [b'"1-2-3"x'[:-1]], b"content-type": [ctype]})
    assert not fields.holds_exactly({b"etag": [etag, etag], b"content-type": [ctype]})
    assert not fields.holds_exactly({b"etag": [etag], b"content-type": [ctype], b"x": [b""]})
    assert not fields.holds_exactly({b"etag": [etag]})
    with pytest.raises(ValueError):
        PreparedFields((b"date",), (b"x",))
    with pytest.raises(ValueError):
        PreparedFields((b"etag",), ())


# -- one lstat for the requests of a turn -------------------------------------------------------


def test_the_requests_of_one_turn_share_one_lstat_and_the_next_turn_sees_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "page.txt"
    page.write_bytes(b"old")
    target = os.fsencode(str(page))
    calls: list[bytes] = []
    real_lstat = os.lstat

    def counting_lstat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if path == target:
            calls.append(path)
        return real_lstat(path, *args, **kwargs)

    def body(transport: StringTransport) -> bytes:
        return transport.value().rpartition(b"\r\n\r\n")[2]

    async def scenario() -> None:
        site = Site(File(str(tmp_path)))
        now = still_clock(site)  # no turn lasts MAX_WAIT here unless moved
        first = on_loop(site)
        first[0].data_received(request_bytes(target="/page.txt"))  # the entry is remembered
        await asyncio.sleep(0)
        monkeypatch.setattr(os, "lstat", counting_lstat)
        clients = [on_loop(site) for _ in range(3)]
        for channel, _ in clients[:2]:
            channel.data_received(request_bytes(target="/page.txt"))
        assert len(calls) == 1  # two requests of one turn, one lstat
        page.write_bytes(b"new!")
        os.utime(page, ns=(0, 10**9))
        clients[2][0].data_received(request_bytes(target="/page.txt"))
        await asyncio.sleep(0)
        assert [body(t) for _, t in clients] == [b"old", b"old", b"old"]  # as of the turn's lstat
        later = on_loop(site)
        later[0].data_received(request_bytes(target="/page.txt"))
        await asyncio.sleep(0)
        assert body(later[1]) == b"new!"
        assert len(calls) == 2
        now[0] += 2 * MAX_WAIT  # a turn that lasts: after MAX_WAIT, a fresh lstat
        again = on_loop(site)
        again[0].data_received(request_bytes(target="/page.txt"))
        assert len(calls) == 3

    run_scenario(scenario)


def test_a_channel_on_a_test_clock_checks_the_file_at_each_request(tmp_path: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_bytes(b"old")
    site = Site(File(str(tmp_path)))
    channel, transport = connect(site)
    channel.data_received(request_bytes(target="/page.txt"))
    page.write_bytes(b"new!")
    os.utime(page, ns=(0, 10**9))
    channel.data_received(request_bytes(target="/page.txt"))
    assert transport.value().endswith(b"\r\n\r\nnew!")
