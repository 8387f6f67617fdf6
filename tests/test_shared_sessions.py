"""Sessions shared through a store, over real sockets: two Sites stand for two processes.

The store here is a plain in-process implementation of the store interface (with a switch
that makes it fail), so that what the *site* does with a store is tested on its own: the
SQLite and Redis stores have their own tests, and the command line's ``--workers`` tests
run real processes on them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import httpx
import pytest
from zope.interface import Attribute, Interface, implementer

from treadle.python.components import registerAdapter
from treadle.web.resource import Resource
from treadle.web.server import Request, Session, Site

from .conftest import ServerThread, wait_for

SECRET = secrets.token_bytes(32)


class DictStore:
    """The store interface over a dict, shared by the sites of one test."""

    description = "dict-store"

    def __init__(self) -> None:
        self.records: dict[bytes, dict[str, bytes]] = {}
        self.down = False
        self.saves = 0
        self.gate: asyncio.Event | None = None  # when set, loads wait for it

    def _check(self) -> None:
        if self.down:
            raise ConnectionRefusedError("store is down")

    async def load(self, uid: bytes, timeout: float) -> dict[str, bytes] | None:
        self._check()
        if self.gate is not None:
            await self.gate.wait()
        record = self.records.get(uid)
        return None if record is None else dict(record)

    async def save(
        self, uid: bytes, changed: Mapping[str, bytes], removed: Collection[str], timeout: float
    ) -> None:
        self._check()
        self.saves += 1
        record = self.records.setdefault(uid, {})
        record.update(changed)
        for name in removed:
            record.pop(name, None)

    async def delete(self, uid: bytes) -> None:
        self._check()
        self.records.pop(uid, None)

    async def remaining(self, uid: bytes) -> float | None:
        self._check()
        return 100.0 if uid in self.records else None

    async def close(self) -> None:
        pass


class ICounter(Interface):
    value = Attribute("visits counted by a component")


@implementer(ICounter)
class Counter:
    def __init__(self, session: Session) -> None:
        self.value = 0
        self.session = session  # a reference to its session: stored as a reference


registerAdapter(Counter, Session, ICounter)


class CounterPage(Resource):
    """Counts visits in a session attribute and in a component; names the site answering."""

    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def render_GET(self, request: Request) -> bytes:
        session = request.getSession()
        session.visits = getattr(session, "visits", 0) + 1
        ICounter(session).value += 1
        request.setHeader(b"x-site", self.name.encode())
        return b"%d %d" % (session.visits, ICounter(session).value)


class Tree(Resource):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.putChild(b"count", CounterPage(name))
        self.putChild(b"plain", _Plain())
        self.putChild(b"set", _SetValue())
        self.putChild(b"unpicklable", _Unpicklable())
        self.putChild(b"expire", _Expire())


class _Plain(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"no session here"


class _SetValue(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        name = request.args[b"name"][0].decode()
        setattr(request.getSession(), name, request.args[b"value"][0].decode())
        return b"ok"


class _Unpicklable(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.getSession().lock = threading.Lock()
        return b"should not be sent"


class _Expire(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.getSession().expire()
        return b"expired"


@pytest.fixture
def store() -> DictStore:
    return DictStore()


@pytest.fixture
def two_sites(server: ServerThread, store: DictStore) -> tuple[str, str]:
    """Two sites (two 'processes') sharing ``store``; returns their base URLs."""
    urls = []
    for name in ("one", "two"):
        site = Site(Tree(name), sessionStore=store, sessionSecret=SECRET, sessionStoreDeadline=1)
        urls.append(server.serve(site))
    return urls[0], urls[1]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def _visit(client: httpx.Client, url: str, cookies: dict[str, str]) -> httpx.Response:
    # A new connection each time and the cookie by hand, as two machines would see it.
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    headers = {"connection": "close", **({"cookie": cookie} if cookie else {})}
    response = client.get(url, headers=headers)
    client.cookies.clear()
    for name, value in response.cookies.items():
        cookies[name] = value
    return response


def test_a_session_continues_across_sites(two_sites: tuple[str, str], client: httpx.Client) -> None:
    cookies: dict[str, str] = {}
    seen = []
    for visit in range(1, 11):
        url = two_sites[visit % 2] + "/count"
        response = _visit(client, url, cookies)
        assert response.status_code == 200
        seen.append(response.text)
    assert seen == [f"{n} {n}" for n in range(1, 11)]
    assert len(cookies) == 1


def test_values_changed_on_different_attributes_are_both_kept(
    two_sites: tuple[str, str], client: httpx.Client, store: DictStore
) -> None:
    cookies: dict[str, str] = {}
    _visit(client, two_sites[0] + "/count", cookies)
    # Each site sets its own attribute; neither write undoes the other (last writer wins per
    # attribute, not per session).
    _visit(client, two_sites[0] + "/set?name=colour&value=red", cookies)
    _visit(client, two_sites[1] + "/set?name=size&value=big", cookies)
    (record,) = store.records.values()
    assert {"a:colour", "a:size", "a:visits"} <= set(record)
    assert _visit(client, two_sites[0] + "/count", cookies).text == "2 2"


def test_a_page_without_session_stores_nothing(
    two_sites: tuple[str, str], client: httpx.Client, store: DictStore
) -> None:
    cookies: dict[str, str] = {}
    _visit(client, two_sites[0] + "/count", cookies)
    saves = store.saves
    assert _visit(client, two_sites[1] + "/plain", cookies).text == "no session here"
    assert store.saves == saves


def test_an_unpicklable_value_fails_loudly_naming_it(
    two_sites: tuple[str, str], client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    cookies: dict[str, str] = {}
    _visit(client, two_sites[0] + "/count", cookies)
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = _visit(client, two_sites[0] + "/unpicklable", cookies)
    assert response.status_code == 500
    assert "attribute &#x27;lock&#x27;" in response.text or "attribute 'lock'" in response.text
    assert any("attribute 'lock' cannot be stored" in r.getMessage() for r in caplog.records)
    # Nothing of that request was stored: the count goes on from where it was.
    assert _visit(client, two_sites[1] + "/count", cookies).text == "2 2"


def test_a_forged_cookie_gets_a_fresh_session(
    two_sites: tuple[str, str], client: httpx.Client, store: DictStore
) -> None:
    cookies = {"TWISTED_SESSION": "f" * 64}
    response = _visit(client, two_sites[0] + "/count", cookies)
    assert response.text == "1 1"
    assert cookies["TWISTED_SESSION"] != "f" * 64
    assert b"f" * 64 not in store.records


def test_values_not_signed_with_the_secret_are_never_unpickled(
    two_sites: tuple[str, str],
    client: httpx.Client,
    store: DictStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cookies: dict[str, str] = {}
    _visit(client, two_sites[0] + "/count", cookies)
    (record,) = store.records.values()
    # Someone who can write to the store, without the secret: a pickle that would run code.
    record["a:visits"] = b"\0" * 32 + b"cos\nsystem\n(S'echo pwned'\ntR."
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = _visit(client, two_sites[1] + "/count", cookies)
    assert response.text == "1 2"  # the forged attribute is ignored, the component is kept
    assert any("bad signature" in r.getMessage() for r in caplog.records)


def test_expire_removes_the_session_for_every_site(
    two_sites: tuple[str, str], client: httpx.Client, store: DictStore
) -> None:
    cookies: dict[str, str] = {}
    _visit(client, two_sites[0] + "/count", cookies)
    old = cookies["TWISTED_SESSION"]
    _visit(client, two_sites[0] + "/expire", cookies)
    wait_for(lambda: old.encode() not in store.records, "the store to forget the session")
    assert _visit(client, two_sites[1] + "/count", cookies).text == "1 1"
    assert cookies["TWISTED_SESSION"] != old


def test_a_store_that_is_down_fails_only_session_requests(
    two_sites: tuple[str, str],
    client: httpx.Client,
    store: DictStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cookies: dict[str, str] = {}
    _visit(client, two_sites[0] + "/count", cookies)
    store.down = True
    with caplog.at_level(logging.WARNING, logger="treadle.error"):
        for _ in range(3):
            response = _visit(client, two_sites[1] + "/count", cookies)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert _visit(client, two_sites[1] + "/plain", cookies).status_code == 200
        outage_lines = [r for r in caplog.records if "is unavailable" in r.getMessage()]
        assert len(outage_lines) == 1
        store.down = False
        # Back after the backoff: the count goes on.
        wait_for(
            lambda: _visit(client, two_sites[1] + "/count", cookies).status_code == 200,
            "the store to be used again",
        )
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_a_slow_store_gets_503_within_the_deadline(
    two_sites: tuple[str, str], client: httpx.Client, store: DictStore, server: ServerThread
) -> None:
    cookies: dict[str, str] = {}
    _visit(client, two_sites[0] + "/count", cookies)
    store.gate = server.call(asyncio.Event)  # loads now wait for a gate that never opens
    response = _visit(client, two_sites[1] + "/count", cookies)
    assert response.status_code == 503
    assert response.elapsed.total_seconds() < 5
    assert _visit(client, two_sites[1] + "/plain", cookies).status_code == 200


def test_memory_sessions_are_bounded_oldest_idle_first(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    expired: list[bytes] = []

    class Page(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            session = request.getSession()
            session.notifyOnExpire(lambda: expired.append(session.uid))
            return session.uid

    site = Site(Page(), maxSessions=3)
    url = serve(site)
    jars: list[dict[str, str]] = [{} for _ in range(3)]
    uids = [_visit(client, url, jar).content for jar in jars]
    _visit(client, url, jars[0])  # the first is used again: the second is now the oldest
    fourth = _visit(client, url, {}).content
    assert expired == [uids[1]]
    assert set(site.sessions) == {uids[0], uids[2], fourth}


def test_a_store_needs_a_secret(store: DictStore) -> None:
    with pytest.raises(ValueError, match="sessionSecret"):
        Site(Resource(), sessionStore=store)
    with pytest.raises(ValueError, match="32 bytes"):
        Site(Resource(), sessionStore=store, sessionSecret=b"short")


def test_two_sites_share_sessions_through_a_sqlite_url(
    server: ServerThread, client: httpx.Client, tmp_path: Any
) -> None:
    url = f"sqlite:{tmp_path / 'sessions.sqlite3'}"
    bases = [
        server.serve(Site(Tree(name), sessionStore=url, sessionSecret=SECRET))
        for name in ("one", "two")
    ]
    cookies: dict[str, str] = {}
    seen = [_visit(client, bases[n % 2] + "/count", cookies).text for n in range(6)]
    assert seen == [f"{n} {n}" for n in range(1, 7)]


def test_a_store_url_that_is_wrong_is_named() -> None:
    with pytest.raises(ValueError, match="unknown scheme 'mongodb'"):
        Site(Resource(), sessionStore="mongodb://h/db", sessionSecret=SECRET)
