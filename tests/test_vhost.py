"""Virtual hosts over real sockets: NameVirtualHost and VHostMonsterResource."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from treadle.internet.address import IPv4Address, IPv6Address
from treadle.web.resource import Resource
from treadle.web.server import Request
from treadle.web.vhost import NameVirtualHost, VHostMonsterResource, setHost

from .conftest import raw_request


class Named(Resource):
    """A leaf answering with its name and the path it saw."""

    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def render_GET(self, request: Request) -> bytes:
        seen = b"/".join(request.postpath).decode()
        return f"{self.name} {seen}".encode()


class WhereAmI(Resource):
    """Reports what the request says about where it arrived."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        host = request.getHost()
        assert isinstance(host, IPv4Address | IPv6Address)
        return b"|".join(
            [
                request.getRequestHostname(),
                b"%d" % host.port,
                b"secure" if request.isSecure() else b"plain",
                request.prePathURL(),
                request.uri,
                b"/".join(request.prepath),
                b"/".join(request.postpath),
            ]
        )


def vhosts() -> NameVirtualHost:
    vhost = NameVirtualHost()
    vhost.addHost(b"example.com", Named("example"))
    vhost.addHost("Other.ORG", Named("other"))
    vhost.addHost("[::1]", Named("loopback6"))
    tree = Resource()
    tree.putChild(b"docs", Named("docs"))
    vhost.addHost(b"tree.test", tree)
    return vhost


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # One client for the module (each new one builds an SSL context); "Connection: close"
    # leaves no pooled connection to a server a test has already stopped.
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as shared:
        yield shared


def get(client: httpx.Client, url: str, host: str | None) -> httpx.Response:
    headers = {"Host": host} if host is not None else {}
    return client.get(url, headers=headers)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", "example a/b"),
        ("EXAMPLE.com:8080", "example a/b"),
        ("example.com.", "example a/b"),
        ("other.org", "other a/b"),
        ("[::1]:8080", "loopback6 a/b"),
        ("[::1]", "loopback6 a/b"),
    ],
)
def test_host_header_picks_the_site(
    serve: Any, host: str, expected: str, client: httpx.Client
) -> None:
    url = serve(vhosts())
    response = get(client, url + "/a/b", host)
    assert response.status_code == 200
    assert response.text == expected


def test_a_non_leaf_host_tree_is_walked(serve: Any, client: httpx.Client) -> None:
    url = serve(vhosts())
    assert get(client, url + "/docs/x", "tree.test").text == "docs x"
    assert get(client, url + "/missing", "tree.test").status_code == 404


def twisted_vhost_page(host: bytes | None) -> bytes:
    """The 404 page Twisted's NameVirtualHost (with no default) answers for ``host``."""
    from twisted.web.test.requesthelper import DummyRequest
    from twisted.web.vhost import NameVirtualHost as TwistedVirtualHost

    request = DummyRequest([b""])
    if host is not None:
        request.requestHeaders.setRawHeaders(b"host", [host])
    TwistedVirtualHost().render(request)  # the page is written (NOT_DONE_YET)
    assert request.responseCode == 404 and request.finished
    return b"".join(request.written)


def test_unknown_host_is_twisteds_404_naming_it_escaped(serve: Any, client: httpx.Client) -> None:
    url = serve(vhosts())
    # "&" and "'" are legal in a Host (RFC 3986 sub-delims): "&" must not reach the page raw;
    # a quote is harmless in text and stays (as in Twisted's pages).
    response = get(client, url + "/", "tom&jerry's.test")
    assert response.status_code == 404
    assert response.content == twisted_vhost_page(b"tom&jerry's.test")
    assert "tom&amp;jerry's.test" in response.text and "tom&jerry" not in response.text
    assert get(client, url + "/", "Else.Example:81").content == twisted_vhost_page(
        b"Else.Example:81"
    )


def test_absolute_form_target_names_the_host(serve: Any) -> None:
    url = serve(vhosts())
    answer = raw_request(
        url,
        b"GET http://other.org/x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    assert answer.endswith(b"other x")


def test_default_answers_unknown_hosts_and_requests_without_host(
    serve: Any, client: httpx.Client
) -> None:
    vhost = vhosts()
    vhost.default = Named("default")
    url = serve(vhost)
    assert get(client, url + "/x", "nowhere.test").text == "default x"
    # HTTP/1.0 allows a request without Host.
    answer = raw_request(url, b"GET /y HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200") or answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"default y")


def test_no_host_header_and_no_default_is_twisteds_404(serve: Any) -> None:
    url = serve(vhosts())
    answer = raw_request(url, b"GET / HTTP/1.0\r\n\r\n")
    assert b" 404 " in answer.split(b"\r\n", 1)[0]
    assert answer.endswith(b"\r\n\r\n" + twisted_vhost_page(None))


def test_remove_host(serve: Any, client: httpx.Client) -> None:
    vhost = vhosts()
    vhost.removeHost("EXAMPLE.com")
    with pytest.raises(KeyError):
        vhost.removeHost(b"example.com")
    url = serve(vhost)
    assert get(client, url + "/", "example.com").status_code == 404
    assert get(client, url + "/", "other.org").status_code == 200


def test_static_children_come_before_hosts(serve: Any, client: httpx.Client) -> None:
    vhost = vhosts()
    vhost.putChild(b"health", Named("health"))
    url = serve(vhost)
    assert get(client, url + "/health", "example.com").text == "health "


# -- the VHost monster ---------------------------------------------------------------------------


def monster_site() -> Resource:
    root = Resource()
    root.putChild(b"vhost.rpy", VHostMonsterResource())
    deep = Resource()
    deep.putChild(b"monster", VHostMonsterResource())
    root.putChild(b"deep", deep)
    root.putChild(b"app", WhereAmI())
    return root


def test_monster_rewrites_host_port_and_path(serve: Any, client: httpx.Client) -> None:
    url = serve(monster_site())
    response = client.get(url + "/vhost.rpy/http/public.example:8080/app/x%20y?q=1")
    assert response.status_code == 200
    name, port, secure, prepath_url, uri, prepath, postpath = response.content.split(b"|")
    assert (name, port, secure) == (b"public.example", b"8080", b"plain")
    assert prepath_url == b"http://public.example:8080/app"
    assert uri == b"/app/x%20y?q=1"
    assert (prepath, postpath) == (b"app", b"x y")


def test_monster_https_defaults_to_port_443(serve: Any, client: httpx.Client) -> None:
    url = serve(monster_site())
    response = client.get(url + "/vhost.rpy/https/secure.example/app")
    name, port, secure, prepath_url, uri, *_ = response.content.split(b"|")
    assert (name, port, secure) == (b"secure.example", b"443", b"secure")
    assert prepath_url == b"https://secure.example/app"
    assert uri == b"/app"


def test_monster_works_below_the_root(serve: Any, client: httpx.Client) -> None:
    url = serve(monster_site())
    response = client.get(url + "/deep/monster/https/x.example:8443/app/z")
    *_, prepath_url, uri, prepath, postpath = response.content.split(b"|")
    assert prepath_url == b"https://x.example:8443/app"
    assert (uri, prepath, postpath) == (b"/app/z", b"app", b"z")


def test_monster_with_an_ipv6_literal(serve: Any, client: httpx.Client) -> None:
    url = serve(monster_site())
    response = client.get(url + "/vhost.rpy/http/[::1]:9000/app")
    name, port, *_ = response.content.split(b"|")
    assert (name, port) == (b"::1", b"9000")


def test_monster_feeds_name_virtual_hosts(serve: Any, client: httpx.Client) -> None:
    vhost = vhosts()
    vhost.putChild(b"vhost.rpy", VHostMonsterResource())
    url = serve(vhost)
    assert client.get(url + "/vhost.rpy/http/other.org/p").text == "other p"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/vhost.rpy/http/host:notaport/app", 400),
        ("/vhost.rpy/http/host:70000/app", 400),
        ("/vhost.rpy/http/[::1/app", 400),
        ("/vhost.rpy/gopher/host/app", 404),
        ("/vhost.rpy/http", 404),
        ("/vhost.rpy", 404),
    ],
)
def test_monster_rejects_malformed_paths(
    serve: Any, path: str, status: int, client: httpx.Client
) -> None:
    url = serve(monster_site())
    assert client.get(url + path).status_code == status


def test_set_host_function_without_a_socket() -> None:
    from treadle.web.server import Site
    from treadle.web.testing import connect

    channel, _ = connect(Site(Resource()))
    request = Request(channel)
    request.prepath = [b"a"]
    setHost(request, b"Example.org", 443, ssl=True)
    assert request.requestHeaders.getRawHeaders(b"host") == [b"Example.org"]
    assert request.getHost() == IPv4Address("TCP", "Example.org", 443)
    assert request.isSecure()
    assert request.prePathURL() == b"https://Example.org/a"
    setHost(request, b"::1", 8080)
    assert request.requestHeaders.getRawHeaders(b"host") == [b"[::1]:8080"]
    assert request.getHost() == IPv6Address("TCP", "::1", 8080)
    assert not request.isSecure()
    assert request.getRequestHostname() == b"::1"


def test_monster_reports_the_public_scheme_from_the_scheme_segment_on() -> None:
    # As Twisted's: isSecure() follows the public scheme as soon as the monster has read
    # it, also when the proxy reached us over TLS but the public URL is plain http.
    from treadle.web.server import Request as ServerRequest
    from treadle.web.test.requesthelper import DummyChannel

    monster = VHostMonsterResource()
    channel = DummyChannel()
    channel.transport = DummyChannel.SSL()
    request = ServerRequest(channel)  # type: ignore[arg-type]
    assert request.isSecure()
    host_reader = monster.getChild(b"http", request)
    assert request.isSecure() == 0 and type(request.isSecure()) is int  # Twisted's 0 and 1
    plain = ServerRequest(DummyChannel())  # type: ignore[arg-type]
    monster.getChild(b"https", plain)
    assert plain.isSecure() == 1 and type(plain.isSecure()) is int
    assert monster.getChild(b"https", plain) is not host_reader  # one per request
