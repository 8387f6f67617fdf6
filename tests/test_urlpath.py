"""treadle.python.urlpath: every walk of a URL agrees with Twisted's ``URLPath``.

Each operation runs on both implementations over URLs of every shape (a file, a directory,
the root, no path, a query, escaped segments) and the results are compared as text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.python.urlpath import URLPath as TwistedURLPath

from treadle.python.urlpath import URLPath

URLS = [
    b"http://h/a/b/c",
    b"http://h/a/b/",
    b"http://h/a",
    b"http://h/",
    b"http://h",
    b"http://h/users/ann",
    b"http://h/a/b/c?x=1&y=2",
    b"http://h/a/b/c/d/?q",
    b"http://h//x",
    b"https://h:8443/a%20b/c%2Fd",
    b"http://h/a/b/c#top",
]

WALKS: dict[str, Callable[[Any], Any]] = {
    "str": str,
    "parent": lambda u: u.parent(),
    "parent keeping the query": lambda u: u.parent(keepQuery=True),
    "parent of the parent": lambda u: u.parent().parent(),
    "here": lambda u: u.here(),
    "here keeping the query": lambda u: u.here(keepQuery=True),
    "sibling": lambda u: u.sibling(b"z"),
    "sibling keeping the query": lambda u: u.sibling(b"z", keepQuery=True),
    "child": lambda u: u.child(b"z"),
    "child needing escapes": lambda u: u.child(b"a b/c?"),
    "click a relative link": lambda u: u.click(b"../other?q=1"),
    "click an absolute path": lambda u: u.click(b"/top"),
    "path list": lambda u: u.pathList(),
    "path list unquoted": lambda u: u.pathList(unquote=True),
}


@pytest.mark.parametrize("url", URLS, ids=[u.decode() for u in URLS])
@pytest.mark.parametrize("walk", list(WALKS))
def test_walks_agree_with_twisted(url: bytes, walk: str) -> None:
    ours = WALKS[walk](URLPath.fromBytes(url))
    theirs = WALKS[walk](TwistedURLPath.fromBytes(url))
    assert (ours if isinstance(ours, list) else str(ours)) == (
        theirs if isinstance(theirs, list) else str(theirs)
    )


@pytest.mark.parametrize(
    "text",
    ["http://h/é/x", 'http://h/a b/"x"<>', "http://h/{a}|b\\c^d`e", "http://h/é?q=ü#frag ment"],
)
def test_what_a_uri_cannot_hold_is_percent_encoded(text: str) -> None:
    url = URLPath.fromString(text)
    assert str(url) == str(TwistedURLPath.fromString(text))
    assert url == URLPath.fromBytes(text.encode())


def test_escaped_text_reads_back() -> None:
    url = URLPath.fromString("http://h/é/x")
    assert str(url) == "http://h/%C3%A9/x"
    assert url.pathList(unquote=True) == [b"", "é".encode(), b"x"]
    assert url.parent() == URLPath.fromBytes(b"http://h/")


def test_only_the_right_types_are_parsed() -> None:
    with pytest.raises(ValueError):
        URLPath.fromBytes("http://h/")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        URLPath.fromString(b"http://h/")  # type: ignore[arg-type]
