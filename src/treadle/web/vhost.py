"""Virtual hosts: one server answering several names, and sites behind a reverse proxy.

:class:`NameVirtualHost` picks the resource tree for a request by its ``Host`` header, as
Twisted's does: ``vhost.addHost(b"example.com", site_root)``, with ``default`` for names it
does not know. :class:`VHostMonsterResource` lets an application behind a reverse proxy
build its URLs with the public host and scheme: the proxy forwards
``https://public.example/page`` to ``http://backend/vhost.rpy/https/public.example/page`` and
the request then looks as if it had arrived at ``https://public.example/page``.

Differences from Twisted: host names are matched ignoring case on both sides (Twisted
lowercases only the header), without a trailing dot, and IPv6 literals match with or
without their brackets (``[::1]:8080`` finds ``addHost("::1", ...)``); names may be ``str``.
:class:`VHostMonsterResource` works at any depth of the tree (Twisted assumes it is a child
of the root), keeps the rest of the path percent-encoded in ``request.uri``, defaults the
port to 443 for ``https`` (Twisted: 80), and answers a malformed port with 400 and a scheme
other than ``http``/``https`` with 404 (Twisted: 500, and the scheme is ignored).
``VirtualHostCollection`` (a listing for Twisted's old web admin) is not provided.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.web.http import BAD_REQUEST
from treadle.web.pages import notFound
from treadle.web.resource import ErrorPage, NoResource, Resource, ResourceLike

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = ["NameVirtualHost", "VHostMonsterResource", "setHost"]


def _normalise_host(name: bytes) -> bytes:
    """Lowercase ``name``, drop IPv6 brackets and a trailing dot (``Example.COM.`` → same)."""
    name = name.strip().lower()
    if name.startswith(b"[") and name.endswith(b"]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(b".") else name


def _host_without_port(value: bytes) -> bytes:
    """Return the host part of a ``Host`` header value (``[::1]:8080`` → ``::1``)."""
    value = value.strip()
    if value.startswith(b"["):
        end = value.find(b"]")
        return value[1:end] if end > 0 else value
    return value.split(b":", 1)[0]


class NameVirtualHost(Resource):
    """Dispatches each request to the resource registered for its ``Host`` header.

    The header is matched without its port and ignoring case. Static children added with
    ``putChild`` are served for every host, before any host lookup (as in Twisted).

    Attributes:
        hosts: Registered resources by normalised host name (lowercase bytes, IPv6 literals
            without brackets, no trailing dot).
        default: The resource for hosts not in ``hosts`` and for requests without a ``Host``
            header; when None those get ``404 No Such Resource``.
    """

    default: ResourceLike | None = None

    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[bytes, ResourceLike] = {}

    def addHost(self, name: bytes | str, resrc: ResourceLike) -> None:
        """Serve ``resrc`` for requests whose ``Host`` is ``name``.

        Args:
            name: The host name, without a port (``b"example.com"``, ``"[::1]"``). A ``str``
                must be ASCII: give international names in their ``xn--`` form.
            resrc: The root of the tree for that host. A leaf resource sees the whole path
                in ``request.postpath``.
        """
        if isinstance(name, str):
            name = name.encode("ascii")
        self.hosts[_normalise_host(name)] = resrc

    def removeHost(self, name: bytes | str) -> None:
        """Stop serving ``name``.

        Raises:
            KeyError: ``name`` was not added.
        """
        if isinstance(name, str):
            name = name.encode("ascii")
        del self.hosts[_normalise_host(name)]

    def _getResourceForRequest(self, request: Request) -> ResourceLike:
        """Return the resource registered for the request's host, the default, or a 404."""
        header = request.requestHeaders.getRawHeaders(b"host")
        if not header:
            return self.default or notFound()
        host = _normalise_host(_host_without_port(header[0]))
        found = self.hosts.get(host, self.default)
        if found is not None:
            return found
        # Twisted's page and words; the host comes from the client, and the page escapes it.
        return notFound("Not Found", f"host {host.decode('ascii', 'replace')!r} not in vhost map")

    def render(self, request: Request) -> object:
        """Render the host's resource (reached only when nothing is left of the path)."""
        return self._getResourceForRequest(request).render(request)

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """Continue traversal in the host's tree.

        A leaf host resource gets the segment back in ``postpath``, so it sees the whole
        path just as if it were the root of the site.
        """
        resrc = self._getResourceForRequest(request)
        if resrc.isLeaf:
            request.postpath.insert(0, request.prepath.pop())
            return resrc
        return resrc.getChildWithDefault(path, request)


def setHost(request: Request, host: bytes, port: int, ssl: bool = False) -> None:
    """Make ``request`` look as if it had arrived at ``host:port`` (over TLS when ``ssl``).

    The same as ``request.setHost(host, port, ssl)`` (see
    :meth:`treadle.web.http.Request.setHost`), kept as a function for code written against it.
    """
    request.setHost(host, port, ssl)


class _HostResource(Resource):
    """The ``host[:port]`` segment after the scheme: rewrites the request, then walks on.

    Args:
        secure: Whether the public scheme is ``https``; None (as Twisted's, which takes no
            argument) asks ``request.isSecure()``, which the monster set from the scheme.
    """

    def __init__(self, secure: bool | None = None) -> None:
        super().__init__()
        self.secure = secure

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """Set host, port and scheme from ``path`` and resolve the rest from the site root."""
        if path.startswith(b"["):
            end = path.find(b"]")
            host, rest = path[: end + 1], path[end + 1 :]
            if end < 0 or (rest and not rest.startswith(b":")):
                return ErrorPage(BAD_REQUEST, "Bad Request", "Malformed host in the path.")
            port_text = rest[1:]
        else:
            host, _, port_text = path.partition(b":")
        secure = request.isSecure() if self.secure is None else self.secure
        if not host:
            return ErrorPage(BAD_REQUEST, "Bad Request", "No host in the path.")
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                return ErrorPage(BAD_REQUEST, "Bad Request", "Malformed port in the path.")
            port = int(port_text)
        else:
            port = 443 if secure else 80
        try:
            setHost(request, host, port, secure)
        except UnicodeDecodeError:
            return ErrorPage(BAD_REQUEST, "Bad Request", "Malformed host in the path.")
        _drop_consumed_path(request)
        return request.site.getResourceFor(request)

    def render(self, request: Request) -> bytes:
        """A path ending at the scheme names no host: 404."""
        return NoResource("No host given after the scheme.").render(request)


def _drop_consumed_path(request: Request) -> None:
    """Forget the segments traversal consumed so far: the rest becomes the whole path.

    The raw (still percent-encoded) path is cut by segment count rather than by the length
    of the decoded segments, so escapes in the rest survive unchanged in ``uri``.
    """
    consumed = len(request.prepath)
    remaining = request.path[1:].split(b"/")[consumed:]
    new_path = b"/" + b"/".join(remaining)
    query = request.uri.find(b"?")
    request.uri = new_path + (request.uri[query:] if query >= 0 else b"")
    request.path = new_path
    del request.prepath[:]


def _report_scheme(request: Request, secure: bool) -> None:
    """Make ``request.isSecure()`` answer ``secure`` from now on (as 1 or 0, Twisted's).

    Twisted's monster replaces the method on the request, and programs behind it (and their
    tests) rely on the answer changing as soon as the scheme segment is passed, before the
    host is known; the method is replaced here the same way.
    """
    answer = int(secure)
    request.isSecure = lambda: answer  # type: ignore[method-assign,assignment,return-value]


class VHostMonsterResource(Resource):
    """Takes the public scheme, host and port from the path, for sites behind a proxy.

    Put it in the tree (often as ``vhost.rpy``) and have the proxy forward
    ``https://public.example:8443/a/b`` to ``http://backend/vhost.rpy/https/public.example:8443/a/b``.
    The request is then resolved as ``/a/b`` from the site root and reports
    ``public.example``, port 8443 and TLS through ``getRequestHostname()``, ``getHost()``,
    ``isSecure()`` and ``prePathURL()``, so redirects and generated links point at the
    public address. Without a port the scheme's default is used.
    """

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """Return the resource reading the host segment for scheme ``path``.

        From here on ``request.isSecure()`` reports the public scheme (true for ``https``,
        false for ``http`` even if the proxy reached us over TLS), as in Twisted.
        """
        if path == b"http":
            secure = False
        elif path == b"https":
            secure = True
        else:
            return NoResource("The segment after the monster must be http or https.")
        _report_scheme(request, secure)
        return _HostResource(secure)

    def render(self, request: Request) -> bytes:
        """The monster itself has no page: 404."""
        return NoResource("Give a scheme and a host after this path.").render(request)
