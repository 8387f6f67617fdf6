"""Resource trees: children, traversal, render dispatch, error resources."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from treadle.web.resource import (
    ErrorPage,
    ForbiddenResource,
    NoResource,
    Resource,
    UnsupportedMethod,
    getChildForRequest,
)
from treadle.web.server import Request
from treadle.web.testing import connect, request_bytes


class Leaf(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"prepath=%r postpath=%r" % (request.prepath, request.postpath)


class Dynamic(Resource):
    def getChild(self, path: bytes, request: Request) -> Any:
        if path == b"missing":
            return NoResource()
        return Leaf()


class OnlyPost(Resource):
    def render_POST(self, request: Request) -> bytes:
        return b"posted"


def tree() -> Resource:
    root = Resource()
    root.putChild(b"leaf", Leaf())
    root.putChild(b"dyn", Dynamic())
    root.putChild(b"post", OnlyPost())
    root.putChild(b"forbidden", ForbiddenResource())
    root.putChild(b"teapot", ErrorPage(418, "Teapot <b>", "short & stout"))
    return root


def test_put_child_requires_bytes() -> None:
    with pytest.raises(TypeError):
        Resource().putChild("text", Resource())  # type: ignore[arg-type]


def test_static_children_win_over_get_child() -> None:
    root = Dynamic()
    special = Leaf()
    root.putChild(b"x", special)
    assert root.getChildWithDefault(b"x", None) is special  # type: ignore[arg-type]
    assert isinstance(root.getChildWithDefault(b"y", None), Leaf)  # type: ignore[arg-type]
    assert root.listStaticNames() == [b"x"]


def test_traversal_moves_segments_from_postpath_to_prepath() -> None:
    class FakeRequest:
        prepath: list[bytes] = []
        postpath = [b"leaf", b"a", b"b"]

    request = FakeRequest()
    found = getChildForRequest(tree(), request)  # type: ignore[arg-type]
    assert isinstance(found, Leaf)
    assert request.prepath == [b"leaf"] and request.postpath == [b"a", b"b"]


def test_render_without_a_method_raises_unsupported_method() -> None:
    class FakeRequest:
        method = b"GET"

    with pytest.raises(UnsupportedMethod) as info:
        OnlyPost().render(FakeRequest())  # type: ignore[arg-type]
    assert info.value.allowedMethods == [b"HEAD", b"POST"]


def test_over_a_socket(serve: Any) -> None:
    url = serve(tree())
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/leaf/a/b").text == "prepath=[b'leaf'] postpath=[b'a', b'b']"
        assert client.get("/dyn/anything/more").text.startswith("prepath=[b'dyn', b'anything']")
        assert client.get("/dyn/missing").status_code == 404
        assert client.get("/nothing").status_code == 404
        assert client.get("/forbidden").status_code == 403
        teapot = client.get("/teapot")
        assert teapot.status_code == 418
        assert "Teapot &lt;b&gt;" in teapot.text and "short &amp; stout" in teapot.text
        refused = client.get("/post")
        assert refused.status_code == 405 and refused.headers["allow"] == "HEAD, POST"
        assert client.post("/post").text == "posted"
        unknown = client.request("PROPFIND", "/post")
        assert unknown.status_code == 501


def test_percent_encoded_segments_are_decoded_after_splitting() -> None:
    channel, transport = connect(__import__("treadle.web.server").web.server.Site(tree()))
    channel.data_received(request_bytes(target="/leaf/a%2Fb/%41"))
    assert transport.value().endswith(b"prepath=[b'leaf'] postpath=[b'a/b', b'A']")


def test_allowed_methods_are_listed_in_twisted_s_order_head_first() -> None:
    from treadle.web.resource import _computeAllowedMethods

    class Both(Resource):
        def render_POST(self, request: object) -> bytes:
            return b""

        def render_GET(self, request: object) -> bytes:
            return b""

    assert _computeAllowedMethods(Resource()) == [b"HEAD"]  # a bare node still answers HEAD
    assert _computeAllowedMethods(Both()) == [b"HEAD", b"POST", b"GET"]


def test_twisted_private_names_of_the_error_pages() -> None:
    # Twisted renamed its unescaped pages _Unsafe*; test suites written for it import those.
    from treadle.web import resource

    assert resource._UnsafeErrorPage is resource.ErrorPage
    assert resource._UnsafeNoResource is resource.NoResource
    assert resource._UnsafeForbiddenResource is resource.ForbiddenResource


def test_entity_listing_covers_static_and_dynamic_children() -> None:
    class Dynamic(Resource):
        def listDynamicNames(self) -> list[bytes]:
            return [b"made"]

        def getChild(self, path: bytes, request: object) -> Resource:
            return made

    made = Resource()
    parent = Dynamic()
    static = Resource()
    parent.putChild(b"static", static)
    assert parent.listNames() == [b"static", b"made"]
    assert parent.listEntities() == [(b"static", static)]
    assert parent.getDynamicEntity(b"static", None) is None
    assert parent.getDynamicEntity(b"other", None) is made
    parent.reallyPutEntity(b"again", made)
    parent.delEntity(b"static")
    assert parent.listStaticNames() == [b"again"]


def test_allow_lists_every_render_method_whatever_its_case() -> None:
    from treadle.web.resource import _computeAllowedMethods

    class Odd(Resource):
        def render_GET(self, request: object) -> bytes:
            return b""

        def render_fred(self, request: object) -> bytes:
            return b""

    assert _computeAllowedMethods(Odd()) == [b"HEAD", b"GET", b"fred"]


def test_a_leaf_root_sees_its_paths_as_lists_it_can_change(serve: Any) -> None:
    class Root(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            postpath = request.postpath
            postpath.append(b"added")  # Twisted's attributes are changed in place
            kept = request.postpath is postpath and request.postpath[-1] == b"added"
            request.prepath.append(b"p")
            paths = (request.prepath, request.postpath, request.sitepath)
            return repr((kept, *(type(p).__name__ for p in paths), *paths)).encode()

    url = serve(Root())
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/").text == repr(
            (True, "list", "list", "list", [b"p"], [b"", b"added"], [])
        )
        assert client.get("/a/b").text == repr(
            (True, "list", "list", "list", [b"p"], [b"a", b"b", b"added"], [])
        )
