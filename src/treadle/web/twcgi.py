"""CGI scripts as resources (Twisted's ``twisted.web.twcgi``): CGI/1.1, RFC 3875.

:class:`CGIScript` runs its file as a child process for every request, with the request
described in the environment (RFC 3875 §4.1), the request body on the script's standard input,
and the script's standard output parsed as a CGI response: a header block, a blank line, then
the body, which is streamed to the client as the script writes it. :class:`CGIDirectory` makes a
:class:`CGIScript` of every file below a directory; :class:`FilteredScript` runs its file
through an interpreter (``filter``), :class:`PHPScript` and :class:`PHP3Script` through PHP.
``treadle web --path`` serves ``.cgi`` files as CGI scripts, as ``twistd web --path`` does.

The environment, as Twisted builds it: ``GATEWAY_INTERFACE`` (``CGI/1.1``), ``SERVER_SOFTWARE``,
``SERVER_NAME`` (the request's host name without port), ``SERVER_PORT``, ``SERVER_PROTOCOL``,
``REQUEST_METHOD``, ``SCRIPT_NAME`` (the path up to the script), ``SCRIPT_FILENAME``,
``REQUEST_URI``, ``PATH_INFO`` (the path below the script, when there is one),
``QUERY_STRING``, ``REMOTE_ADDR``, ``CONTENT_LENGTH`` (always), ``CONTENT_TYPE`` (when sent)
and ``HTTP_*`` for the other request fields, then the server's own environment for the
names not set so far. A ``Proxy`` field becomes ``PROXY``, never ``HTTP_PROXY``: the
"httpoxy" attack (CVE-2016-5385) has a client set the proxy CGI programs use for their own
requests. A query without ``=`` is a search string (RFC 3875 §4.4): its ``+``-separated,
percent-decoded words are the script's arguments.

The response (RFC 3875 §6): the header block ends at the first blank line (``\\n\\n``,
``\\r\\n\\r\\n``, ``\\r\\r`` or ``\\n\\r\\n``, whichever comes first). ``Status: 404 ...`` sets
the status, ``Location:`` a ``302`` (a ``Status`` after it wins), ``Server`` and ``Date`` are
the server's own, every other field is passed on (its name lowercased); a line that is no
field is logged and skipped. A script whose output ends before its header block does is
answered ``500`` "CGI Script Error"; what it wrote to standard error, and a non-zero exit
status, are logged to ``treadle.error``.

Backpressure: the script's output is read only while the client takes the response
(the protocol is the request's streaming producer), so a slow client blocks the script on a
full pipe instead of filling memory. A client that leaves closes the pipes, as in Twisted: the
script gets ``SIGPIPE``/``EPIPE`` on its next write.

Differences from Twisted, on purpose: a header line needs only ``:`` (RFC 3875 §6.3), not
``": "``; a header block larger than :data:`MAX_HEADER_SIZE`, or a script that cannot be started
(not executable, missing), is answered ``500`` at once (with Twisted the first grows without
bound, the second surfaces as a failed child); a path segment that would leave a
:class:`CGIDirectory` (``..``) is a ``404`` (Twisted: an unhandled ``InsecurePath``, ``500``);
repeated request fields are joined with ``, `` (``; `` for ``Cookie``) where Twisted keeps the
last; an empty query string gives the script no argument (Twisted: one empty argument);
standard error is logged up to :data:`MAX_ERROR_LOG` bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote_to_bytes

from treadle.internet.protocol import ProcessProtocol
from treadle.python.failure import Failure
from treadle.python.filepath import FilePath, InsecurePath
from treadle.web import http, server
from treadle.web.resource import ErrorPage, NoResource, Resource, ResourceLike
from treadle.web.server import NOT_DONE_YET

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = [
    "MAX_ERROR_LOG",
    "MAX_HEADER_SIZE",
    "CGIDirectory",
    "CGIProcessProtocol",
    "CGIScript",
    "FilteredScript",
    "PHP3Script",
    "PHPScript",
]

error_log = logging.getLogger("treadle.error")

#: Bytes a script may write before its header block ends; beyond, it is stopped and the
#: request answered 500. Apache and nginx allow 8 KiB per header line and a few such lines;
#: this is generous for a header block.
MAX_HEADER_SIZE: Final = 64 * 1024

#: Bytes of a script's standard error kept for the log of one request.
MAX_ERROR_LOG: Final = 64 * 1024

# The blank lines that may end a CGI header block (scripts mix line endings).
_HEADER_ENDS: Final = (b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n")

# Request fields that are not passed as HTTP_*: CGI has their own variables, and Proxy
# becomes PROXY (httpoxy, see the module docstring).
_UNPREFIXED: Final = frozenset((b"content-type", b"content-length", b"proxy"))


def _text(value: bytes | str) -> str:
    """Environment text for ``value``: bytes decode losslessly (and encode back the same)."""
    return value if isinstance(value, str) else os.fsdecode(value)


class CGIDirectory(Resource, FilePath[str]):  # type: ignore[misc]  # FilePath is generic
    """A directory whose files are CGI scripts (and whose subdirectories are more of these).

    It has no listing: rendering it answers 404, as in Twisted. A missing child is
    ``static.File``'s "File not found." 404.

    Args:
        pathname: The directory.
    """

    def __init__(self, pathname: str | bytes | os.PathLike[str]) -> None:
        Resource.__init__(self)
        FilePath.__init__(self, os.fsdecode(pathname))

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """Return the script (or directory) named ``path``, or a 404 resource."""
        from treadle.web.static import File

        try:
            child = self.child(os.fsdecode(path))
        except InsecurePath:
            return File.childNotFound
        if not child.exists():
            return File.childNotFound
        if child.isdir():
            return CGIDirectory(child.path)
        return CGIScript(child.path)

    def render(self, request: Request) -> bytes:
        """Answer 404: CGI directories are not listed."""
        return NoResource("CGI directories do not support directory listing.").render(request)


class CGIScript(Resource):
    """Runs ``filename`` as a CGI script for every request (any method).

    Args:
        filename: The script: an executable file (see :class:`FilteredScript` for scripts
            run by an interpreter).
        registry: Accepted as ``static.File`` processors are called with it; unused.
        reactor: The reactor whose ``spawnProcess`` runs the script; treadle's by default.

    Attributes:
        filename: As given.
    """

    isLeaf = True

    def __init__(
        self, filename: str | bytes | os.PathLike[str], registry: Any = None, reactor: Any = None
    ) -> None:
        super().__init__()
        self.filename = os.fsdecode(filename)
        if reactor is None:
            from treadle.internet import reactor as default_reactor

            reactor = default_reactor
        self._reactor = reactor

    def render(self, request: Request) -> object:
        """Start the script with the request's CGI environment; it answers asynchronously.

        Returns:
            ``NOT_DONE_YET``.
        """
        env = cgi_environment(request, self.filename)
        for key, value in os.environ.items():
            env.setdefault(key, value)
        self.runProcess(env, request, search_arguments(request.uri))
        return NOT_DONE_YET

    def runProcess(
        self, env: Mapping[str, str], request: Request, qargs: Sequence[str] = ()
    ) -> None:
        """Run the script with environment ``env`` and arguments ``qargs``.

        Args:
            env: The child's whole environment.
            request: The request the script answers.
            qargs: Its command line arguments (from a search query).
        """
        self._spawn(request, self.filename, [self.filename, *qargs], env)

    def _spawn(
        self, request: Request, executable: str, args: list[str], env: Mapping[str, str]
    ) -> None:
        protocol = CGIProcessProtocol(request)
        try:
            self._reactor.spawnProcess(
                protocol, executable, args, env, os.path.dirname(self.filename) or None
            )
        except OSError as e:
            error_log.error("CGI %s could not be started: %s", self.filename, e)
            protocol.startFailed()


class FilteredScript(CGIScript):
    """A CGI script run by an interpreter: ``filter`` with the script's path as argument.

    Attributes:
        filter: The interpreter's path; override it in a subclass.
    """

    filter = "/usr/bin/cat"

    def runProcess(
        self, env: Mapping[str, str], request: Request, qargs: Sequence[str] = ()
    ) -> None:
        """Run ``filter`` with the script's path, then ``qargs``, as arguments."""
        self._spawn(request, self.filter, [self.filter, self.filename, *qargs], env)


class PHP3Script(FilteredScript):
    """A PHP script, run by ``/usr/local/bin/php`` (Twisted's path)."""

    filter = "/usr/local/bin/php"


class PHPScript(FilteredScript):
    """A PHP script, run by ``/usr/local/bin/php-cgi`` (Twisted's path)."""

    filter = "/usr/local/bin/php-cgi"


def cgi_environment(request: Request, filename: str) -> dict[str, str]:
    """Return the CGI/1.1 variables describing ``request`` for the script ``filename``.

    Args:
        request: The request.
        filename: The script's path.

    Returns:
        The variables of RFC 3875 §4.1 that Twisted sets (see the module docstring); the
        server's own environment is not included.
    """
    env: dict[str, str] = {
        "SERVER_SOFTWARE": _text(server.version),
        "SERVER_NAME": _text(request.getRequestHostname().split(b":")[0]),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": _text(request.clientproto),
        "SERVER_PORT": str(getattr(request.getHost(), "port", "")),
        "REQUEST_METHOD": _text(request.method),
        "SCRIPT_NAME": _text(b"/" + b"/".join(request.prepath)),
        "SCRIPT_FILENAME": filename,
        "REQUEST_URI": _text(request.uri),
    }
    ip = getattr(request.getClientAddress(), "host", None)
    if ip is not None:
        env["REMOTE_ADDR"] = ip
    if request.postpath:
        env["PATH_INFO"] = _text(b"/" + b"/".join(request.postpath))
    content = request.content
    content.seek(0, 2)
    env["CONTENT_LENGTH"] = str(content.tell())
    content.seek(0)
    env["QUERY_STRING"] = _text(request.uri.partition(b"?")[2])
    for name, values in request.requestHeaders.getAllRawHeaders():
        lower = name.lower()
        key = lower.replace(b"-", b"_").upper()
        if lower not in _UNPREFIXED:
            key = b"HTTP_" + key
        env[_text(key)] = _text((b"; " if lower == b"cookie" else b", ").join(values))
    return env


def search_arguments(uri: bytes) -> list[str]:
    """Return the script arguments of a search query (RFC 3875 §4.4), as Twisted does.

    Args:
        uri: The request URI.

    Returns:
        The ``+``-separated, percent-decoded words of a query without ``=``; none for a
        query with ``=`` or an empty one.
    """
    query = uri.partition(b"?")[2]
    if not query or b"=" in query:
        return []
    return [os.fsdecode(unquote_to_bytes(word)) for word in query.split(b"+")]


class CGIProcessProtocol(ProcessProtocol):
    """Talks to one running CGI script: feeds it the body, turns its output into the response.

    It is the request's streaming producer: pausing it stops reading the script's output.

    Args:
        request: The request the script answers.
    """

    handling_headers = True
    headers_written = False
    headertext = b""
    errortext = b""
    _requestFinished = False

    def __init__(self, request: Request) -> None:
        self.request = request
        request.notifyFinish().addBoth(self._finished)

    # -- IPushProducer, for the request -------------------------------------------------------

    def resumeProducing(self) -> None:
        """Read the script's output again."""
        if self.transport is not None:
            self.transport.resumeProducing()

    def pauseProducing(self) -> None:
        """Stop reading the script's output (it blocks when the pipe is full)."""
        if self.transport is not None:
            self.transport.pauseProducing()

    def stopProducing(self) -> None:
        """Close the pipes to the script."""
        if self.transport is not None:
            self.transport.loseConnection()

    # -- ProcessProtocol ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        """Register as the request's producer and hand the script the request body."""
        self.request.registerProducer(self, True)
        content = self.request.content
        content.seek(0)
        data = content.read()
        if data:
            self.transport.write(data)
        self.transport.closeStdin()

    def errReceived(self, data: bytes) -> None:
        """Keep what the script writes to standard error, for the log."""
        if len(self.errortext) < MAX_ERROR_LOG:
            self.errortext += data[: MAX_ERROR_LOG - len(self.errortext)]

    def outReceived(self, data: bytes) -> None:
        """Parse the header block, then pass the body on as it comes."""
        if self.handling_headers:
            text = self.headertext + data
            ends = [(text.find(d), d) for d in _HEADER_ENDS if d in text]
            if not ends:
                self.headertext = text
                if len(text) > MAX_HEADER_SIZE:
                    self._header_block_too_large()
                return
            end, delimiter = min(ends)
            self.headertext = text[:end]
            self._apply_headers(self.headertext.split(delimiter[: len(delimiter) // 2]))
            self.handling_headers = False
            self.headers_written = True
            data = text[end + len(delimiter) :]
        if data and not self._requestFinished:
            self.request.write(data)

    def processEnded(self, reason: Failure) -> None:
        """Log how the script ended; finish the response (500 if its headers never ended)."""
        uri = self.request.uri.decode("latin-1")
        code = getattr(reason.value, "exitCode", 0)
        if code:
            error_log.error("CGI %s exited with exit code %s", uri, code)
        if self.errortext:
            error_log.error(
                "Errors from CGI %s: %s", uri, self.errortext.decode("utf-8", "replace")
            )
        if self.handling_headers:
            error_log.error(
                "Premature end of headers in %s: %r", uri, self.headertext[:MAX_ERROR_LOG]
            )
            self._answer_error("Premature end of script headers.")
        self._end()

    # -- helpers ---------------------------------------------------------------------------------

    def startFailed(self) -> None:
        """Answer 500 for a script that could not be started (treadle's)."""
        self.handling_headers = False
        self._answer_error("The CGI script could not be run.")
        self._end()

    def _apply_headers(self, lines: list[bytes]) -> None:
        request = self.request
        request.defaultContentType = None
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon or not name.strip():
                error_log.error("ignoring malformed CGI header: %r", line)
                continue
            name = name.strip().lower()
            value = value.strip()
            if name == b"location":
                request.setResponseCode(http.FOUND)
            if name == b"status":
                try:
                    request.setResponseCode(int(value[:3]))
                except ValueError:
                    error_log.error("malformed CGI status header: %r", line)
            elif name not in (b"server", b"date"):
                request.responseHeaders.addRawHeader(name, value)

    def _header_block_too_large(self) -> None:
        error_log.error(
            "CGI %s wrote more than %d bytes without ending its headers; stopped",
            self.request.uri.decode("latin-1"),
            MAX_HEADER_SIZE,
        )
        self.handling_headers = False
        self._answer_error("The script's response headers are too large.")
        self._end()
        if self.transport is not None:
            self.transport.loseConnection()
            with contextlib.suppress(Exception):  # already gone: nothing to stop
                self.transport.signalProcess("KILL")

    def _answer_error(self, detail: str) -> None:
        if self._requestFinished:
            return
        request = self.request
        request.defaultContentType = None
        page = ErrorPage(http.INTERNAL_SERVER_ERROR, "CGI Script Error", detail)
        request.write(page.render(request))

    def _end(self) -> None:
        if not self._requestFinished:
            self.request.unregisterProducer()
            self.request.finish()

    def _finished(self, result: object) -> None:
        # The response is over (finished, or the client left): nothing more is written.
        self._requestFinished = True
        if isinstance(result, Failure):
            self.stopProducing()
