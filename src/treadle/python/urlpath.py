"""``URLPath``: an absolute URL you can walk (``child``, ``sibling``, ``parent``, ``click``).

Twisted's ``twisted.python.urlpath.URLPath`` under the same name, for ``request.URLPath()``.
"""

from __future__ import annotations

from urllib.parse import quote, urljoin, urlsplit, urlunsplit

__all__ = ["URLPath"]

# What a URI holds as it is (RFC 3986: unreserved, reserved, and "%" of escapes).
_URI_BYTES = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)


class URLPath:
    """An absolute URL split into parts; every operation returns a new URLPath.

    All parts are ``bytes``; ``str(url)`` gives the URL as text.
    """

    __slots__ = ("fragment", "netloc", "path", "query", "scheme")

    def __init__(
        self,
        scheme: bytes = b"",
        netloc: bytes = b"localhost",
        path: bytes = b"",
        query: bytes = b"",
        fragment: bytes = b"",
    ) -> None:
        self.scheme = scheme or b"http"
        self.netloc = netloc
        self.path = path or b"/"
        self.query = query
        self.fragment = fragment

    @classmethod
    def fromBytes(cls, url: bytes) -> URLPath:
        """Parse an absolute URL given as bytes."""
        if not isinstance(url, bytes):
            raise ValueError("'url' must be bytes")
        if url.translate(None, _URI_BYTES):
            # Bytes a URI may not hold (UTF-8 past ASCII, spaces, quotes, ...): kept
            # percent-encoded, as a browser sends them.
            url = quote(url, safe=_URI_BYTES).encode("ascii")
        parts = urlsplit(url)
        return cls(parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment)

    @classmethod
    def fromString(cls, url: str) -> URLPath:
        """Parse an absolute URL given as text."""
        if not isinstance(url, str):
            raise ValueError("'url' must be str")
        return cls.fromBytes(url.encode("utf-8"))

    def pathList(self, unquote: bool = False, copy: bool = True) -> list[bytes]:
        """Return the path segments (the first is the empty segment before the root ``/``)."""
        from urllib.parse import unquote_to_bytes

        segments = self.path.split(b"/")
        return [unquote_to_bytes(s) for s in segments] if unquote else segments

    def _with_path(self, path: bytes, keepQuery: bool) -> URLPath:
        return URLPath(self.scheme, self.netloc, path, self.query if keepQuery else b"")

    def sibling(self, path: bytes, keepQuery: bool = False) -> URLPath:
        """Replace the last path segment with ``path`` (percent-encoded)."""
        segments = self.pathList()
        segments[-1] = quote(path, safe=b"").encode("ascii")
        return self._with_path(b"/".join(segments), keepQuery)

    def child(self, path: bytes, keepQuery: bool = False) -> URLPath:
        """Add ``path`` (percent-encoded) as a segment below this URL."""
        segments = self.pathList()
        if segments[-1] == b"":
            segments[-1] = quote(path, safe=b"").encode("ascii")
        else:
            segments.append(quote(path, safe=b"").encode("ascii"))
        return self._with_path(b"/".join(segments), keepQuery)

    def parent(self, keepQuery: bool = False) -> URLPath:
        """Return the URL of the directory above this one, as a link to ``..`` resolves
        (``/a/b/c`` → ``/a/``, ``/a/b/`` → ``/a/``)."""
        directories = self.pathList()[:-1]  # the last segment names a file, or is empty
        if len(directories) > 1:
            directories = directories[:-1]
        return self._with_path(b"/".join([*directories, b""]) or b"/", keepQuery)

    def here(self, keepQuery: bool = False) -> URLPath:
        """Return the URL of the current directory (``/a/b/c`` → ``/a/b/``)."""
        segments = self.pathList()
        if segments[-1] != b"":
            segments[-1] = b""
        return self._with_path(b"/".join(segments), keepQuery)

    def click(self, st: bytes) -> URLPath:
        """Resolve ``st`` against this URL, as a browser follows a link."""
        return URLPath.fromBytes(urljoin(bytes(self), st))

    def __bytes__(self) -> bytes:
        return urlunsplit((self.scheme, self.netloc, self.path, self.query, self.fragment))

    def __str__(self) -> str:
        return bytes(self).decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"URLPath(scheme={self.scheme!r}, netloc={self.netloc!r}, path={self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URLPath) and bytes(self) == bytes(other)

    def __hash__(self) -> int:
        return hash(bytes(self))
