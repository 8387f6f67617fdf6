"""Sessions over real sockets: cookies, ids, expiry on a test clock, and what sessions store."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, MutableMapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import pytest
from zope.interface import Attribute, Interface, implementer

from treadle.internet.task import Clock
from treadle.python.components import registerAdapter
from treadle.web.resource import Resource
from treadle.web.server import Request, Session, Site

from .conftest import ServerThread

COOKIE = re.compile(r"^TWISTED_SESSION=([0-9a-f]{64}); Path=/; HttpOnly; SameSite=lax$")


# -- the tutorial's counter ----------------------------------------------------------------------


class ICounter(Interface):
    value = Attribute("An int value which counts up once per page view.")


@implementer(ICounter)
class Counter:
    def __init__(self, session: Session) -> None:
        self.value = 0


registerAdapter(Counter, Session, ICounter)


class CounterResource(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        session = request.getSession()
        counter = ICounter(session)
        counter.value += 1
        return b"Visit #%d for you!" % counter.value


# -- resources -----------------------------------------------------------------------------------


class ShowSession(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return request.getSession().uid  # type: ignore[no-any-return]


class ExpireSession(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.getSession().expire()
        return b"expired"


class Twice(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        first = request.getSession()
        assert request.session is first
        assert request.getSession() is first
        return first.uid  # type: ignore[no-any-return]


class Store(Resource):
    """Keeps a count by key and a list as an attribute."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        session = request.getSession()
        session["n"] = session.get("n", 0) + 1
        if not hasattr(session, "paths"):
            session.paths = []
        session.paths.append(request.path.decode())
        return f"{session['n']} {','.join(session.paths)} {'n' in session}".encode()


def tree(**children: Resource) -> Resource:
    root = Resource()
    for name, child in children.items():
        root.putChild(name.encode(), child)
    return root


def session_site(clock: Clock | None = None, **kwargs: Any) -> Site:
    site = Site(
        tree(
            show=ShowSession(),
            expire=ExpireSession(),
            twice=Twice(),
            count=CounterResource(),
            store=Store(),
        ),
        **kwargs,
    )
    if clock is not None:

        def factory(site: Site, uid: bytes) -> Session:
            return Session(site, uid, reactor=clock)

        site.sessionFactory = factory
    return site


def new_uid(response: httpx.Response) -> str:
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 1, cookies
    match = COOKIE.match(cookies[0])
    assert match, cookies[0]
    assert match.group(1) == response.text
    return match.group(1)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    # Cookies are sent by hand, so the test controls exactly what the server sees: the
    # client's own jar keeps none.
    jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    with httpx.Client(timeout=10, cookies=jar) as c:
        yield c


def get(
    client: httpx.Client, url: str, uid: str | None = None, name: str = "TWISTED_SESSION"
) -> httpx.Response:
    headers = {"cookie": f"{name}={uid}"} if uid is not None else {}
    return client.get(url, headers=headers)


# -- cookies and ids -----------------------------------------------------------------------------


def test_a_new_session_sets_a_hardened_cookie(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(session_site())
    response = get(client, url + "/show")
    assert response.status_code == 200
    uid = new_uid(response)
    assert "Secure" not in response.headers["set-cookie"]
    # The same cookie finds the same session, and no new cookie is sent.
    again = get(client, url + "/show", uid)
    assert again.text == uid
    assert "set-cookie" not in again.headers


def test_ids_are_256_random_bits_and_never_repeat(
    serve: Callable[..., str], server: ServerThread, client: httpx.Client
) -> None:
    site = session_site()
    url = serve(site)
    uids = {new_uid(get(client, url + "/show")) for _ in range(50)}
    assert len(uids) == 50
    assert all(len(uid) == 64 for uid in uids)  # 32 bytes of entropy, hex-encoded
    assert server.call(lambda: set(site.sessions)) == {uid.encode() for uid in uids}


def test_a_client_chosen_id_is_never_adopted(
    serve: Callable[..., str], server: ServerThread, client: httpx.Client
) -> None:
    site = session_site()
    url = serve(site)
    chosen = "a" * 64
    response = get(client, url + "/show", chosen)
    uid = new_uid(response)
    assert uid != chosen
    assert server.call(lambda: chosen.encode() in site.sessions) is False
    assert get(client, url + "/show", "").text != uid  # an empty cookie is no id either


def test_getSession_twice_in_a_request_gives_one_session_and_one_cookie(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(session_site())
    new_uid(get(client, url + "/twice"))


def test_custom_cookie_name(serve: Callable[..., str], client: httpx.Client) -> None:
    site = session_site()
    site.sessionCookieName = b"SID"
    url = serve(site)
    response = get(client, url + "/show")
    assert response.headers["set-cookie"].startswith(f"SID={response.text}; ")
    assert get(client, url + "/show", response.text, name="SID").text == response.text


class TLSRequest(Request):
    """Pretends the connection is TLS (isSecure is what getSession asks)."""

    def isSecure(self) -> bool:
        return True


class PlainSession(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return request.getSession(forceNotSecure=True).uid  # type: ignore[no-any-return]


def test_tls_sessions_use_their_own_secure_cookie(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    site = Site(tree(show=ShowSession(), plain=PlainSession()), requestFactory=TLSRequest)
    url = serve(site)
    response = get(client, url + "/show")
    assert response.headers["set-cookie"] == (
        f"TWISTED_SECURE_SESSION={response.text}; Path=/; Secure; HttpOnly; SameSite=lax"
    )
    # The plain-HTTP cookie does not reach the secure session...
    assert get(client, url + "/show", response.text).text != response.text
    secure = get(client, url + "/show", response.text, name="TWISTED_SECURE_SESSION")
    assert secure.text == response.text
    # ...and forceNotSecure gives the plain session, with a cookie without Secure.
    plain = get(client, url + "/plain")
    assert COOKIE.match(plain.headers["set-cookie"])
    assert plain.text != response.text


# -- expiry --------------------------------------------------------------------------------------


def test_explicit_expiry_forgets_the_id(
    serve: Callable[..., str], server: ServerThread, client: httpx.Client
) -> None:
    site = session_site()
    url = serve(site)
    uid = new_uid(get(client, url + "/show"))
    assert get(client, url + "/expire", uid).text == "expired"
    assert server.call(lambda: len(site.sessions)) == 0
    fresh = new_uid(get(client, url + "/show", uid))
    assert fresh != uid


def test_expiry_after_the_timeout_on_a_test_clock(
    serve: Callable[..., str], server: ServerThread, client: httpx.Client
) -> None:
    clock = Clock()
    site = session_site(clock)
    url = serve(site)
    uid = new_uid(get(client, url + "/show"))
    session = server.call(lambda: site.sessions[uid.encode()])
    expired: list[str] = []
    server.call(session.notifyOnExpire, lambda: expired.append("first"))
    server.call(session.notifyOnExpire, lambda: expired.append("second"))
    assert session.sessionTimeout == 900

    server.call(clock.advance, 899)
    assert not expired and not session.expired
    server.call(clock.advance, 1)
    assert expired == ["first", "second"]
    assert session.expired
    assert server.call(lambda: len(site.sessions)) == 0
    assert clock.getDelayedCalls() == []
    assert new_uid(get(client, url + "/show", uid)) != uid


def test_sliding_expiry_and_a_single_timer(
    serve: Callable[..., str], server: ServerThread, client: httpx.Client
) -> None:
    clock = Clock()
    site = session_site(clock)
    url = serve(site)
    uid = new_uid(get(client, url + "/show"))
    session = server.call(lambda: site.sessions[uid.encode()])
    for _ in range(3):  # each request pushes expiry 900 s past itself
        server.call(clock.advance, 600)
        [timer] = clock.getDelayedCalls()
        due = timer.time
        response = get(client, url + "/show", uid)
        assert response.text == uid and "set-cookie" not in response.headers
        assert session.lastModified == clock.seconds()
        # Touching rescheduled nothing: the one timer re-checks when it fires.
        assert clock.getDelayedCalls() == [timer] and timer.time == due
    server.call(clock.advance, 899)
    assert not session.expired
    server.call(clock.advance, 1)
    assert session.expired


def test_a_stale_session_is_never_handed_out_even_before_its_timer(
    serve: Callable[..., str], server: ServerThread, client: httpx.Client
) -> None:
    clock = Clock()
    site = session_site(clock)
    url = serve(site)
    uid = new_uid(get(client, url + "/show"))
    session = server.call(lambda: site.sessions[uid.encode()])
    expired: list[bool] = []
    server.call(session.notifyOnExpire, lambda: expired.append(True))
    # Time moves without the timer running (a loop too busy to call it, say).
    clock.rightNow += 900
    assert new_uid(get(client, url + "/show", uid)) != uid
    assert expired == [True] and session.expired


def test_lowering_the_timeout_brings_the_timer_forward() -> None:
    clock = Clock()
    site = Site(Resource(), reactor=clock)  # the site's reactor serves its sessions
    session = site.makeSession()
    assert clock.getDelayedCalls()[0].time == 900
    session.sessionTimeout = 10
    session.touch()
    assert clock.getDelayedCalls()[0].time == 10
    clock.advance(10)
    assert session.expired and site.sessions == {}


def test_expire_twice_late_callbacks_and_failing_callbacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    site = Site(Resource(), reactor=clock)
    session = site.makeSession()
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("callback failed")

    session.notifyOnExpire(broken)
    session.notifyOnExpire(lambda: ran.append("after the broken one"))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        session.expire()
    assert ran == ["after the broken one"]
    assert any("callback failed" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    session.expire()  # again: nothing happens
    session.notifyOnExpire(lambda: ran.append("late"))
    assert ran == ["after the broken one", "late"]
    with pytest.raises(KeyError):
        site.getSession(session.uid)


def test_sessions_live_in_any_mapping(serve: Callable[..., str], client: httpx.Client) -> None:
    class Recording(dict[bytes, Session]):
        def __init__(self) -> None:
            super().__init__()
            self.reads: list[bytes] = []

        def __getitem__(self, uid: bytes) -> Session:
            self.reads.append(uid)
            return super().__getitem__(uid)

    site = session_site()
    store: MutableMapping[bytes, Session] = Recording()
    site.sessions = store
    url = serve(site)
    uid = new_uid(get(client, url + "/show"))
    assert get(client, url + "/show", uid).text == uid
    assert store.reads == [uid.encode()]  # type: ignore[attr-defined]


# -- what a session stores -----------------------------------------------------------------------


def test_the_tutorial_counter_through_an_adapter(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(session_site())
    first = get(client, url + "/count")
    uid = first.headers["set-cookie"].split(";")[0].split("=")[1]
    assert first.text == "Visit #1 for you!"
    assert get(client, url + "/count", uid).text == "Visit #2 for you!"
    assert get(client, url + "/count", uid).text == "Visit #3 for you!"
    assert get(client, url + "/count").text == "Visit #1 for you!"  # another client


def test_values_by_key_and_as_attributes(serve: Callable[..., str], client: httpx.Client) -> None:
    url = serve(session_site())
    first = get(client, url + "/store")
    uid = first.headers["set-cookie"].split(";")[0].split("=")[1]
    assert first.text == "1 /store True"
    assert get(client, url + "/store/x", uid).text == "2 /store,/store/x True"


def test_session_mapping_methods_and_components() -> None:
    site = Site(Resource(), reactor=Clock())
    session = site.makeSession()
    assert bool(session)  # truthy however empty, as Twisted's `if session:` expects
    session["a"] = 1
    assert session["a"] == 1 and "a" in session and list(session) == ["a"]
    assert session.setdefault("b", 2) == 2 and session.pop("b") == 2
    assert session.pop("missing", None) is None
    del session["a"]
    with pytest.raises(KeyError):
        session["a"]
    counter = ICounter(session)
    assert session.getComponent(ICounter) is counter
    assert site.getSession(session.uid) is session
    session.expire()


class ViaInterface(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        counter = request.getSession(ICounter)
        counter.value += 10
        return b"%d" % ICounter(request.getSession()).value


def test_getSession_with_an_interface(serve: Callable[..., str], client: httpx.Client) -> None:
    url = serve(ViaInterface())
    response = get(client, url)
    assert response.text == "10"
    uid = response.headers["set-cookie"].split(";")[0].split("=")[1]
    assert get(client, url, uid).text == "20"


def test_no_session_no_cookie(serve: Callable[..., str], client: httpx.Client) -> None:
    class Plain(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            assert request.session is None
            return b"plain"

    response = get(client, serve(Plain()))
    assert response.text == "plain" and "set-cookie" not in response.headers
