"""Tests for treadle.web._forwarded: who the client is behind trusted proxies."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from treadle.web._forwarded import ForwardedView, ProxyTrust, forwarded_view
from treadle.web.resource import Resource
from treadle.web.server import Request

LOCAL = ProxyTrust.parse("127.0.0.1")


def view(
    headers: dict[bytes, list[bytes]], peer: str | None = "127.0.0.1", trust: ProxyTrust = LOCAL
) -> ForwardedView | None:
    return forwarded_view(headers, trust, peer)


def test_untrusted_peer_is_never_believed() -> None:
    assert view({b"x-forwarded-for": [b"1.2.3.4"]}, peer="10.0.0.9") is None
    assert view({b"forwarded": [b"for=1.2.3.4;proto=https"]}, peer="10.0.0.9") is None


def test_no_forwarding_headers_gives_none() -> None:
    assert view({b"host": [b"example.com"]}) is None


def test_x_forwarded_headers_from_trusted_peer() -> None:
    got = view(
        {
            b"x-forwarded-for": [b"203.0.113.7"],
            b"x-forwarded-proto": [b"https"],
            b"x-forwarded-host": [b"example.com"],
            b"x-forwarded-port": [b"8443"],
        }
    )
    assert got == ForwardedView(
        client="203.0.113.7", scheme="https", host=b"example.com", port=8443
    )


def test_chain_read_from_the_right_skipping_trusted_proxies() -> None:
    trust = ProxyTrust.parse("127.0.0.1,10.0.0.0/8")
    # The leftmost entry is whatever the client claimed: only the first untrusted hop from
    # the right is believed.
    got = view({b"x-forwarded-for": [b"6.6.6.6, 198.51.100.1, 10.1.2.3"]}, trust=trust)
    assert got is not None and got.client == "198.51.100.1"


def test_all_trusted_chain_gives_leftmost() -> None:
    got = view({b"x-forwarded-for": [b"127.0.0.1, 127.0.0.1"]})
    assert got is not None and got.client == "127.0.0.1"


def test_proto_per_hop_follows_the_client_hop() -> None:
    trust = ProxyTrust.parse("127.0.0.1,10.0.0.0/8")
    got = view(
        {b"x-forwarded-for": [b"198.51.100.1, 10.0.0.2"], b"x-forwarded-proto": [b"https, http"]},
        trust=trust,
    )
    assert got is not None and got.scheme == "https"


def test_forwarded_header_rfc7239() -> None:
    got = view({b"forwarded": [b'for="[2001:db8::1]:4711";proto=HTTPS;host=example.org']})
    assert got == ForwardedView(
        client="2001:db8::1", client_port=4711, scheme="https", host=b"example.org"
    )


def test_forwarded_wins_over_x_forwarded() -> None:
    got = view({b"forwarded": [b"for=192.0.2.1"], b"x-forwarded-for": [b"192.0.2.99"]})
    assert got is not None and got.client == "192.0.2.1"


@pytest.mark.parametrize(
    "headers",
    [
        {b"x-forwarded-for": [b"not-an-ip"], b"x-forwarded-proto": [b"gopher"]},
        {b"x-forwarded-for": [b"unknown"], b"x-forwarded-host": [b"evil.com/path"]},
        {b"forwarded": [b'for=_hidden;proto=javascript;host="a b"']},
    ],
)
def test_garbage_is_ignored_not_half_used(headers: dict[bytes, list[bytes]]) -> None:
    got = view(headers)
    assert got is not None
    assert got.client is None and got.scheme is None and got.host is None


def test_unix_and_star() -> None:
    assert ProxyTrust.parse("unix").trusts(None)
    assert not LOCAL.trusts(None)
    assert ProxyTrust.parse("*").trusts("8.8.8.8")


def test_bad_allow_list_entry_is_named() -> None:
    with pytest.raises(ValueError, match="'bogus' is not an IP address"):
        ProxyTrust.parse("127.0.0.1,bogus")


# -- through a site, over a real socket ---------------------------------------------------------


class _Who(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        host = request.getHost()
        return b" ".join(
            [
                str(request.getClientIP()).encode(),
                b"secure" if request.isSecure() else b"plain",
                request.prePathURL(),
                str(host.port).encode(),
            ]
        )


def _ask(url: str, headers: dict[str, str]) -> str:
    with httpx.Client(timeout=10) as client:
        return client.get(url + "/who", headers=headers).text


def test_a_trusted_proxy_describes_the_client(serve: Callable[..., str]) -> None:
    root = Resource()
    root.putChild(b"who", _Who())
    url = serve(root, proxyHeaders="127.0.0.1")
    got = _ask(
        url,
        {
            "x-forwarded-for": "203.0.113.9",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "www.example.com",
        },
    )
    assert got == "203.0.113.9 secure https://www.example.com/who 443"
    forwarded = _ask(url, {"forwarded": 'for="[2001:db8::7]";proto=http;host=example.org:8080'})
    assert forwarded == "2001:db8::7 plain http://example.org:8080/who 8080"


def test_an_untrusted_peer_cannot_pose_as_another_client(serve: Callable[..., str]) -> None:
    root = Resource()
    root.putChild(b"who", _Who())
    url = serve(root, proxyHeaders="10.0.0.1")
    port = url.rsplit(":", 1)[1]
    got = _ask(url, {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"})
    assert got == f"127.0.0.1 plain {url}/who {port}"


def test_without_proxy_headers_nothing_is_believed(serve: Callable[..., str]) -> None:
    root = Resource()
    root.putChild(b"who", _Who())
    url = serve(root)
    got = _ask(url, {"x-forwarded-for": "203.0.113.9", "forwarded": "for=1.2.3.4;proto=https"})
    assert got.startswith("127.0.0.1 plain ")
