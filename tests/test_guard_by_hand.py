"""HTTP authentication driven by hand with DummyRequest, as Twisted programs test theirs."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from treadle.cred.checkers import (
    ANONYMOUS,
    AllowAnonymousAccess,
    InMemoryUsernamePasswordDatabaseDontUse,
)
from treadle.cred.credentials import IUsernamePassword
from treadle.cred.portal import Portal
from treadle.internet.address import IPv4Address
from treadle.internet.error import ConnectionDone
from treadle.logger import globalLogPublisher
from treadle.python.failure import Failure
from treadle.web import guard
from treadle.web._auth import basic, digest, wrapper
from treadle.web.guard import (
    BasicCredentialFactory,
    DigestCredentialFactory,
    HTTPAuthSessionWrapper,
    UnauthorizedResource,
)
from treadle.web.resource import IResource, Resource, getChildForRequest
from treadle.web.server import NOT_DONE_YET
from treadle.web.static import Data
from treadle.web.test.requesthelper import DummyRequest


class Realm:
    def __init__(self, avatars: dict[Any, Any]) -> None:
        self.avatars = avatars
        self.logouts = 0

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        assert IResource in interfaces
        return IResource, self.avatars[avatarId], self.logout

    def logout(self) -> None:
        self.logouts += 1


class Held(Resource):
    def render(self, request: Any) -> Any:
        return NOT_DONE_YET


def authorization(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


@pytest.fixture
def site() -> tuple[HTTPAuthSessionWrapper, Realm, list[Any], Portal]:
    avatar = Data(b"the avatar", "text/plain")
    avatar.putChild(b"child", Data(b"the child", "text/plain"))
    avatar.putChild(b"held", Held())
    realm = Realm({b"alice": avatar})
    checker = InMemoryUsernamePasswordDatabaseDontUse()
    checker.addUser(b"alice", b"s3cret")
    portal = Portal(realm, [checker])
    factories: list[Any] = []
    return HTTPAuthSessionWrapper(portal, factories), realm, factories, portal


def request_for(path: list[bytes], header: bytes | None = None) -> DummyRequest:
    request = DummyRequest(path)
    if header is not None:
        request.requestHeaders.addRawHeader(b"authorization", header)
    return request


def test_twisteds_private_module_paths_hold_guards_classes() -> None:
    assert basic.BasicCredentialFactory is guard.BasicCredentialFactory
    assert digest.DigestCredentialFactory is guard.DigestCredentialFactory
    assert wrapper.HTTPAuthSessionWrapper is guard.HTTPAuthSessionWrapper
    assert wrapper.UnauthorizedResource is guard.UnauthorizedResource


def test_unauthorized_resource_says_unauthorized_as_twisted_does() -> None:
    resource = UnauthorizedResource([BasicCredentialFactory('a\\"b')])
    assert resource.getChildWithDefault(b"x", None) is resource  # type: ignore[arg-type]
    request = DummyRequest([])
    request.render(resource)
    assert request.responseCode == 401 and b"".join(request.written) == b"Unauthorized"
    challenge = request.responseHeaders.getRawHeaders(b"www-authenticate")
    assert challenge == [b'basic realm="a\\\\\\"b"']
    head = DummyRequest([])
    head.method = b"HEAD"
    head.render(resource)
    assert head.responseCode == 401 and head.written == [b""]


def test_factories_added_after_the_wrapper_are_offered(site: Any) -> None:
    wrapped, realm, factories, _ = site
    factories.append(BasicCredentialFactory("example.com"))
    request = request_for([b"child"], authorization(b"alice", b"s3cret"))
    request.render(getChildForRequest(wrapped, request))
    assert request.written == [b"the child"] and request.finished == 1
    assert realm.logouts == 1
    root = request_for([], authorization(b"alice", b"s3cret"))
    root.render(getChildForRequest(wrapped, root))
    assert root.written == [b"the avatar"]


@pytest.mark.parametrize(
    "header",
    [None, authorization(b"alice", b"wrong"), authorization(b"bob", b"s3cret"), b"Quux x y"],
)
def test_anything_but_the_right_password_is_401(site: Any, header: bytes | None) -> None:
    wrapped, _, factories, _ = site
    factories.append(BasicCredentialFactory("example.com"))
    request = request_for([b"child"], header)
    request.render(getChildForRequest(wrapped, request))
    assert request.responseCode == 401 and request.written == [b"Unauthorized"]


def test_an_undecodable_header_stops_traversal_at_the_401(site: Any) -> None:
    wrapped, _, factories, _ = site
    factories.append(BasicCredentialFactory("example.com"))
    request = request_for([b"child"], b"Basic decode should fail")
    assert isinstance(getChildForRequest(wrapped, request), UnauthorizedResource)


def test_anonymous_access_with_an_anonymous_checker(site: Any) -> None:
    wrapped, realm, factories, portal = site
    public = Resource()
    public.putChild(b"child", Data(b"public", "text/plain"))
    realm.avatars[ANONYMOUS] = public
    portal.registerChecker(AllowAnonymousAccess())
    factories.append(BasicCredentialFactory("example.com"))
    request = request_for([b"child"])
    request.render(getChildForRequest(wrapped, request))
    assert request.written == [b"public"]


@pytest.mark.parametrize("end", ["finish", "fail"])
def test_logout_once_the_request_ends_either_way(site: Any, end: str) -> None:
    wrapped, realm, factories, _ = site
    factories.append(BasicCredentialFactory("example.com"))
    request = request_for([b"held"], authorization(b"alice", b"s3cret"))
    request.render(getChildForRequest(wrapped, request))
    assert realm.logouts == 0
    if end == "finish":
        request.finish()
    else:
        request.processingFailed(Failure(ConnectionDone("gone")))
    assert realm.logouts == 1


# What Twisted's wrapper answers an unexpected error with: _UnsafeErrorPage(500,
# "Internal Error", "").
TWISTEDS_500_PAGE = (
    b"\n<html>\n  <head><title>500 - Internal Error</title></head>\n  <body>\n"
    b"    <h1>Internal Error</h1>\n    <p></p>\n  </body>\n</html>\n"
)


def test_unexpected_errors_are_500_and_logged_with_the_failure(site: Any) -> None:
    wrapped, _, factories, portal = site

    class Broken(Exception):
        pass

    class BadFactory:
        scheme = b"bad"

        def getChallenge(self, request: Any) -> dict[str, bytes]:
            return {}

        def decode(self, response: bytes, request: Any) -> Any:
            raise Broken()

    class BrokenChecker:
        credentialInterfaces = (IUsernamePassword,)

        def requestAvatarId(self, credentials: Any) -> Any:
            raise Broken()

    factories.extend([BadFactory(), BasicCredentialFactory("example.com")])
    portal.registerChecker(BrokenChecker())
    events: list[Any] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for header in (b"Bad abc", authorization(b"alice", b"s3cret")):
            request = request_for([b"child"], header)
            request.render(getChildForRequest(wrapped, request))
            assert request.responseCode == 500
            assert b"".join(request.written) == TWISTEDS_500_PAGE
    finally:
        globalLogPublisher.removeObserver(events.append)
    failures = [e["log_failure"] for e in events if "log_failure" in e]
    assert len(failures) == 2 and all(isinstance(f.value, Broken) for f in failures)


def test_digest_decode_hands_method_and_client_host_to_the_cred_factory() -> None:
    factory = DigestCredentialFactory(b"md5", b"realm")
    calls: list[tuple[Any, ...]] = []
    factory.digest.decode = lambda *args: calls.append(args)  # type: ignore[method-assign]
    request = DummyRequest([])
    request.method = b"PUT"
    request.client = IPv4Address("TCP", "169.254.0.1", 81)
    factory.decode(b"response", request)
    assert calls == [(b"response", b"PUT", "169.254.0.1")]
    challenge = factory.getChallenge(DummyRequest([]))  # no client address at all
    assert (challenge["qop"], challenge["algorithm"]) == (b"auth", b"md5")


def test_digest_response_for_another_uri_is_refused() -> None:
    factory = DigestCredentialFactory(b"md5", b"realm")
    challenge = factory.getChallenge(DummyRequest([]))
    response = b'username="a", realm="realm", nonce="%s", opaque="%s", uri="/one", ' % (
        challenge["nonce"],
        challenge["opaque"],
    )
    response += b'response="00", cnonce="c", nc=00000001, qop=auth'
    request = DummyRequest([])
    request.uri = b"/one"
    assert factory.decode(response, request).username == b"a"
    request.uri = b"/two"
    with pytest.raises(guard.LoginFailed):
        factory.decode(response, request)
