"""Resources: the tree a :class:`~treadle.web.server.Site` walks to find who answers a request.

As in Twisted, a :class:`Resource` has children (``putChild``/``getChild``), is rendered by
``render`` which dispatches to ``render_<METHOD>``, and may be a leaf that swallows the rest of
the path. A render method returns ``bytes`` (the whole body), ``NOT_DONE_YET`` (it will
``write``/``finish`` later) or, beyond Twisted, an awaitable or Deferred resolving to bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface, implementer

from treadle.web._encoding import EncodingResourceWrapper
from treadle.web._html import error_page
from treadle.web._status import FORBIDDEN, NOT_FOUND
from treadle.web._types import ResourceLike
from treadle.web.error import UnsupportedMethod

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = [
    "EncodingResourceWrapper",
    "ErrorPage",
    "ForbiddenResource",
    "IResource",
    "NoResource",
    "Resource",
    "ResourceLike",
    "UnsupportedMethod",
    "error_page",
    "getChildForRequest",
]


class IResource(Interface):  # type: ignore[misc]  # zope's Interface is untyped
    """Twisted's ``IResource``: what can stand in a resource tree.

    Declare it with ``@implementer(IResource)`` on a class that does not derive from
    :class:`Resource`, and test for it with ``IResource.providedBy(obj)``. (Type checkers
    use :class:`~treadle.web._types.ResourceLike`, which describes the same members.)
    """

    isLeaf = Attribute("True when traversal stops here; the rest of the path is postpath.")

    def getChildWithDefault(name, request):  # type: ignore[no-untyped-def]
        """Return the child for path segment ``name`` (a resource)."""

    def putChild(path, child):  # type: ignore[no-untyped-def]
        """Make ``child`` answer the path segment ``path`` below this resource."""

    def render(request):  # type: ignore[no-untyped-def]
        """Render ``request``: bytes, ``NOT_DONE_YET``, or an awaitable/Deferred of bytes."""


_render_names: dict[bytes, str] = {}


def _render_name(method: bytes) -> str:
    name = _render_names.get(method)
    if name is None:
        name = "render_" + method.decode("ascii", "replace")
        if len(_render_names) < 64:  # methods come from clients: keep the cache bounded
            _render_names[method] = name
    return name


def _computeAllowedMethods(resource: object) -> list[bytes]:
    """Return the methods ``resource`` answers, for an ``Allow`` header.

    As Twisted lists them: ``HEAD`` first (every :class:`Resource` answers it, as ``GET``),
    then each ``render_<METHOD>`` in the order the classes define them, base classes first
    (whatever its case, as Twisted lists them).
    """
    methods: dict[bytes, None] = {}
    if isinstance(resource, Resource):
        methods[b"HEAD"] = None
    for cls in reversed(type(resource).__mro__):
        for name in vars(cls):
            method = name[len("render_") :]
            # Any render_ name counts, as in Twisted (render_fred -> b"fred").
            if (
                name.startswith("render_")
                and method.isascii()
                and callable(getattr(resource, name))
            ):
                methods[method.encode("ascii")] = None
    if b"GET" in methods:
        methods.setdefault(b"HEAD", None)
    return list(methods)


@implementer(IResource)
class Resource:
    """A node of the resource tree.

    Subclasses define ``render_GET``, ``render_POST``... A request for a method the class does
    not render gets ``405 Method Not Allowed`` with an ``Allow`` header; ``HEAD`` is served by
    ``render_GET`` with the body left out.

    Attributes:
        isLeaf: When True, traversal stops here and the remaining segments stay in
            ``request.postpath``.
        children: Static children by path segment (bytes).
    """

    isLeaf: bool = False
    server: Any = None

    def __init__(self) -> None:
        self.children: dict[bytes, ResourceLike] = {}

    def putChild(self, path: bytes, child: ResourceLike) -> None:
        """Make ``child`` answer the path segment ``path`` below this resource.

        Raises:
            TypeError: ``path`` is not bytes (Twisted accepts only bytes too).
        """
        if not isinstance(path, bytes):
            raise TypeError(f"Path segment must be bytes, not {type(path).__name__}: {path!r}")
        self.children[path] = child
        if isinstance(child, Resource):
            child.server = self.server

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """Return a child computed for ``path`` (dynamic dispatch); 404 by default."""
        return NoResource()

    def getChildWithDefault(self, path: bytes, request: Request) -> ResourceLike:
        """Return the static child for ``path`` if there is one, else ``getChild``."""
        child = self.children.get(path)
        if child is not None:
            return child
        return self.getChild(path, request)

    def getStaticEntity(self, name: bytes) -> ResourceLike | None:
        """Return the static child ``name`` or None."""
        return self.children.get(name)

    def getDynamicEntity(self, name: bytes, request: Any) -> ResourceLike | None:
        """Return ``getChild(name, request)`` unless ``name`` is a static child (then None)."""
        if name in self.children:
            return None
        return self.getChild(name, request)

    def delEntity(self, name: bytes) -> None:
        """Remove the static child ``name``.

        Raises:
            KeyError: There is no such child.
        """
        del self.children[name]

    def reallyPutEntity(self, name: bytes, resource: ResourceLike) -> None:
        """Make ``resource`` the static child ``name`` (``putChild`` without its checks)."""
        self.children[name] = resource

    def listNames(self) -> list[Any]:
        """Return the names of the static and the dynamic children (a directory ``File``
        gives its entries' names as ``str``, as in Twisted)."""
        return self.listStaticNames() + self.listDynamicNames()

    def listEntities(self) -> list[Any]:
        """Return ``(name, child)`` for the static and the dynamic children (a directory
        ``File`` gives a ``File`` per entry, as in Twisted)."""
        return self.listStaticEntities() + self.listDynamicEntities()

    def listDynamicNames(self) -> list[bytes]:
        """Return the names of children made on request (none unless overridden)."""
        return []

    def listDynamicEntities(self, request: Any = None) -> list[tuple[bytes, ResourceLike]]:
        """Return ``(name, child)`` for children made on request (none unless overridden)."""
        return []

    def listStaticNames(self) -> list[bytes]:
        """Return the names of the static children."""
        return list(self.children)

    def listStaticEntities(self) -> list[tuple[bytes, ResourceLike]]:
        """Return ``(name, child)`` for every static child."""
        return list(self.children.items())

    def render(self, request: Request) -> Any:
        """Dispatch to ``render_<METHOD>``.

        Raises:
            UnsupportedMethod: No render method exists for the request's method.
        """
        method = request.method
        # The cache looked up here, the function only for a method not seen yet.
        renderer = getattr(self, _render_names.get(method) or _render_name(method), None)
        if renderer is None:
            if method == b"HEAD":
                renderer = getattr(self, "render_GET", None)
            if renderer is None:
                allowed = getattr(self, "allowedMethods", None) or _computeAllowedMethods(self)
                raise UnsupportedMethod(allowed)
        return renderer(request)


def getChildForRequest(resource: ResourceLike, request: Request) -> ResourceLike:
    """Walk from ``resource`` along ``request.postpath``, moving segments to ``prepath``."""
    postpath = request.postpath
    prepath = request.prepath
    while postpath and not resource.isLeaf:
        segment = postpath.pop(0)
        prepath.append(segment)
        resource = resource.getChildWithDefault(segment, request)
    return resource


class ErrorPage(Resource):
    """Answers every request with status ``status`` and an HTML page.

    ``brief`` and ``detail`` are escaped: they may safely contain request values. Not a
    leaf, as in Twisted: it is its own child, so traversal goes on through it to the end of
    the path, and ``prepath`` (hence ``prePathURL()`` and ``childLink()``) then holds every
    segment, as after a walk that found something.
    """

    def __init__(self, status: int, brief: str, detail: str) -> None:
        super().__init__()
        self.code = status
        self.brief = brief
        self.detail = detail

    def render(self, request: Request) -> bytes:
        """Set the status and return the page (for every method)."""
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return error_page(self.code, self.brief, self.detail)

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """An error page is its own child."""
        return self


class NoResource(ErrorPage):
    """``404 No Such Resource``."""

    def __init__(self, message: str = "Sorry. No luck finding that resource.") -> None:
        super().__init__(NOT_FOUND, "No Such Resource", message)


class ForbiddenResource(ErrorPage):
    """``403 Forbidden``."""

    def __init__(self, message: str = "Sorry, resource is forbidden.") -> None:
        super().__init__(FORBIDDEN, "Forbidden Resource", message)


# Twisted 22.10 renamed its unescaped error pages ``_Unsafe*`` and deprecated the public
# names; treadle's escape their texts, so they are not deprecated. The private names are
# kept because test suites written against Twisted import them.
_UnsafeErrorPage = ErrorPage
_UnsafeNoResource = NoResource
_UnsafeForbiddenResource = ForbiddenResource
