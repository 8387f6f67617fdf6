"""Resource scripts: ``.rpy`` files that build the resource answering a request.

An ``.rpy`` file is Python that assigns a resource to the global ``resource``. A
:class:`~treadle.web.static.File` whose ``processors`` map ``".rpy"`` to :func:`ResourceScript`
(as ``treadle web --path`` sets up) runs the file each time a request reaches it and renders
what it assigned, so editing a script changes the site without a restart. The script sees
these globals:

- ``__file__``: its own path;
- ``registry``: the site's :class:`~treadle.web._registry.Registry`, shared by every script, for
  state that must outlive one execution (a connection pool, a counter);
- ``cache()``: keep this script's resource for the following requests until the file changes
  on disk, instead of running the script again each time; ``recache()`` replaces the kept
  resource with the one of this execution.

Inside a script ``from twisted.web.resource import Resource`` and the other Twisted imports of
the porting table work unchanged (see :mod:`treadle.web._twisted_compat`), so scripts written for
``twistd web`` run as they are.

Speed, without touching the semantics: the compiled code object of each script is kept per
path, keyed by the file's modification time (ns) and size, so a request costs one ``stat`` and
the execution of the module body, never a read or a compile. The body itself still runs on
every request, as in Twisted, unless the script called ``cache()``.

A script that raises, or assigns something that is no resource, is answered with the server's
500 "Processing Failed" page (its traceback only when ``site.displayTracebacks`` is true), one
that assigns nothing with Twisted's "Whoops! Internal Error" page; the error goes to the
``treadle.error`` log.

:class:`PythonScript` serves ``.epy`` files, Twisted's other kind of script: Python run for each
request with ``request`` (and ``__file__``, ``registry``) in its globals, which writes the page
itself with ``request.write``; the request is finished when the script returns. ``treadle web
--path`` maps ``.epy`` to it, as ``twistd web --path`` does; a ``static.File`` of your own
needs ``processors = {".epy": PythonScript}``. Unlike Twisted, which writes the traceback of a
failing ``.epy`` script into the page for every client, a failure is answered with the
server's 500 page (the traceback in it only when ``site.displayTracebacks`` is true) and logged;
the header ``X-Powered-By`` names treadle.
"""

from __future__ import annotations

import logging
import os
import traceback
from types import CodeType
from typing import TYPE_CHECKING, Any, Final

from treadle import __version__
from treadle.web._html import error_page_markup, processing_failed_page, traceback_page
from treadle.web._registry import Registry
from treadle.web._twisted_compat import script_builtins
from treadle.web.http import INTERNAL_SERVER_ERROR
from treadle.web.resource import NoResource, Resource, ResourceLike
from treadle.web.server import NOT_DONE_YET

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = [
    "AlreadyCached",
    "CacheScanner",
    "PythonScript",
    "ResourceScript",
    "ResourceScriptDirectory",
    "ResourceScriptWrapper",
]

error_log = logging.getLogger("treadle.error")

#: Compiled scripts kept at most. A site rarely has more; past it the oldest entry goes, and
#: the worst case is a recompile, never a wrong answer.
MAX_CACHED_CODE: Final = 1024

# path -> ((st_mtime_ns, st_size), code). The same stamp the Registry uses for cache().
_code_cache: dict[str, tuple[tuple[int, int], CodeType]] = {}


class AlreadyCached(Exception):
    """Raised by ``cache()`` inside a script whose resource is already cached.

    It stops the script at that point; :func:`ResourceScript` catches it and serves the
    cached resource, found in ``args[0]``.
    """


class CacheScanner:
    """The ``cache``/``recache`` functions handed to one execution of a script.

    Args:
        path: The script's path.
        registry: Where cached resources are kept.

    Attributes:
        doCache: True once the script asked for its resource to be cached.
    """

    __slots__ = ("doCache", "path", "registry")

    def __init__(self, path: str, registry: Registry) -> None:
        self.path = path
        self.registry = registry
        self.doCache = False

    def cache(self) -> None:
        """Ask for this script's resource to be kept until the file changes.

        Raises:
            AlreadyCached: A resource is cached for the unchanged file; the rest of the
                script is skipped and that resource is used.
        """
        cached = self.registry.getCachedPath(self.path)
        if cached is not None:
            raise AlreadyCached(cached)
        self.recache()

    def recache(self) -> None:
        """Cache the resource this execution assigns, replacing any cached one."""
        self.doCache = True


class _Missing:
    """The value of ``resource`` until the script assigns one."""

    def __repr__(self) -> str:
        return "<no resource>"


_MISSING: Final = _Missing()


def _compiled(path: str, st: os.stat_result | None = None) -> CodeType:
    """Return the code object of the script at ``path``, compiling only when it changed.

    Args:
        path: The script's file.
        st: A ``stat`` of ``path`` taken just before, to use instead of taking another.

    Raises:
        OSError: The file cannot be read.
        SyntaxError: It is not valid Python.
    """
    if st is None:
        st = os.stat(path)
    entry = _code_cache.get(path)
    if entry is not None and entry[0] == (st.st_mtime_ns, st.st_size):
        return entry[1]
    with open(path, "rb") as f:
        # Stamp from the open file, so the stamp and the bytes read describe the same file
        # even when it is replaced between the stat above and the open.
        st = os.fstat(f.fileno())
        source = f.read()
    # Bytes, not text: compile() then honours a coding declaration or a BOM as import does.
    code = compile(source, path, "exec", dont_inherit=True)
    if entry is None and len(_code_cache) >= MAX_CACHED_CODE:
        del _code_cache[next(iter(_code_cache))]
    _code_cache[path] = ((st.st_mtime_ns, st.st_size), code)
    return code


def ResourceScript(
    path: str | bytes | os.PathLike[str],
    registry: Registry,
    *,
    stat: os.stat_result | None = None,
) -> ResourceLike:
    """Run the ``.rpy`` script at ``path`` and return the resource it assigned.

    This is the processor ``static.File`` calls for ``.rpy`` files: each request that reaches
    the script runs it again, unless it called ``cache()`` and the file has not changed since.

    Args:
        path: The script's file.
        registry: The site's registry, shared by its scripts (global ``registry``).
        stat: A ``stat`` of ``path`` taken just before (``static.File`` hands over the one
            it checked the entry with, which saves a system call per request).

    Returns:
        The script's ``resource``; or, if the script raised or assigned none, a resource
        answering 500 (the details are logged to ``treadle.error``).
    """
    if not isinstance(path, str):  # static.File hands over text: no call for it
        path = os.fsdecode(path)
    scanner = CacheScanner(path, registry)
    namespace: dict[str, Any] = {
        "__builtins__": script_builtins(),
        "__file__": path,
        "resource": _MISSING,
        "registry": registry,
        "cache": scanner.cache,
        "recache": scanner.recache,
    }
    # _compiled(path, stat)'s hit, written out: a stat handed over is the usual case.
    code: CodeType | None = None
    if stat is not None:
        entry = _code_cache.get(path)
        if entry is not None and entry[0] == (stat.st_mtime_ns, stat.st_size):
            code = entry[1]
    try:
        exec(code if code is not None else _compiled(path, stat), namespace)
    except AlreadyCached as e:
        cached: ResourceLike = e.args[0]
        return cached
    except (Exception, SystemExit) as e:
        return _failed(path, e)
    rsrc = namespace.get("resource", _MISSING)
    if not isinstance(rsrc, Resource):
        problem = _not_a_resource(path, rsrc)
        if problem is not None:
            return problem
    if scanner.doCache:
        registry.cachePath(path, rsrc)
    result: ResourceLike = rsrc
    return result


#: Tells ``static.File`` that this processor takes the entry's ``stat=``.
ResourceScript.acceptsStat = True  # type: ignore[attr-defined]


def _failed(path: str, e: BaseException) -> ResourceLike:
    """Log what a script raised and return the 500 page answering for it."""
    # SystemExit too: a script calling exit() must not stop the server.
    error_log.error(
        "Resource script %s raised an exception", path, exc_info=(type(e), e, e.__traceback__)
    )
    # Leave out this module's frames: the traceback starts in the script (a syntax
    # error has no frame of its own, and its message shows the line already).
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
    if isinstance(e, SyntaxError):
        tb = None
    details = "".join(traceback.format_exception(type(e), e, tb))
    return _ScriptErrorPage(path, details)


def _not_a_resource(path: str, rsrc: object) -> ResourceLike | None:
    """The 500 page for a ``resource`` that is missing or no resource, else None.

    Anything with ``render`` and ``getChildWithDefault`` passes, as Twisted's duck typing
    would let it; a :class:`Resource` does not even come here.
    """
    if rsrc is _MISSING:
        error_log.error("Resource script %s did not assign a resource to 'resource'", path)
        return _NoResourcePage()
    if callable(getattr(rsrc, "render", None)) and hasattr(rsrc, "getChildWithDefault"):
        return None
    error_log.error(
        "Resource script %s assigned %r to 'resource', which is not a resource", path, rsrc
    )
    return _ScriptErrorPage(path, f"resource = {rsrc!r} is not a resource\n")


class _ScriptErrorPage(Resource):
    """The 500 for a script that failed: the page the server sends for any unhandled error.

    (Twisted's server meets the script's error while rendering and answers with its
    processing-failed page; so does this.) The details show only on sites that show
    tracebacks.
    """

    isLeaf = True

    def __init__(self, path: str, details: str) -> None:
        super().__init__()
        self.path = path
        self.details = details

    def render(self, request: Request) -> bytes:
        """Answer 500 for every method."""
        request.setResponseCode(INTERNAL_SERVER_ERROR)
        request.setHeader(b"content-type", b"text/html")
        if getattr(getattr(request, "site", None), "displayTracebacks", False):
            return traceback_page(self.details)
        return processing_failed_page()


#: What a script that assigns no ``resource`` answers (Twisted's page, word for word).
_NO_RESOURCE_DETAIL: Final = (
    '<p>You forgot to assign to the variable "resource" in your script. For example:</p>\n'
    "<pre>\n# MyCoolWebApp.rpy\n\nimport mygreatresource\n\n"
    "resource = mygreatresource.MyGreatResource()\n</pre>\n"
)


class _NoResourcePage(Resource):
    """The 500 for a script that assigned nothing to ``resource``."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        """Answer 500 for every method."""
        request.setResponseCode(INTERNAL_SERVER_ERROR)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return error_page_markup(500, "Whoops! Internal Error", _NO_RESOURCE_DETAIL)


class ResourceScriptWrapper(Resource):
    """A resource that runs one script per request and delegates to what it assigns.

    ``treadle web --resource-script FILE`` serves this as the root. The script runs once per
    request, when traversal reaches the wrapper (or when it is rendered directly), and its
    resource then answers as if it were the root itself.

    Args:
        path: The script's file.
        registry: The registry given to the script; a new one when None.
    """

    def __init__(self, path: str, registry: Registry | None = None) -> None:
        super().__init__()
        self.path = path
        self.registry = registry if registry is not None else Registry()

    def render(self, request: Request) -> Any:
        """Run the script and render its resource."""
        return ResourceScript(self.path, self.registry).render(request)

    def getChildWithDefault(self, path: bytes, request: Request) -> ResourceLike:
        """Run the script and return its resource's child for ``path``.

        A leaf resource is returned itself, with ``path`` put back in ``request.postpath``,
        so it sees the whole path as it would as the site's root (Twisted would ask the leaf
        for a child, which answers 404).
        """
        rsrc = ResourceScript(self.path, self.registry)
        if getattr(rsrc, "isLeaf", False):
            request.postpath.insert(0, request.prepath.pop())
            return rsrc
        return rsrc.getChildWithDefault(path, request)


class ResourceScriptDirectory(Resource):
    """A directory in which every file is treated as a resource script (any extension).

    Subdirectories are served the same way; a name that is no file there is a 404. Names
    that could leave the directory (``..``, separators, NUL) are refused with 404.

    Args:
        path: The directory (text or bytes; kept as text).
        registry: The registry shared by its scripts; a new one when None.
    """

    def __init__(
        self, path: str | bytes | os.PathLike[str], registry: Registry | None = None
    ) -> None:
        super().__init__()
        self.path = os.fsdecode(path)
        self.registry = registry if registry is not None else Registry()

    def getChild(self, path: bytes | str, request: Request) -> ResourceLike:
        """Return the script (or subdirectory) named ``path`` (bytes, or text as Twisted's
        tests pass it)."""
        name = os.fsdecode(path)
        # Segments arrive percent-decoded, so "%2F.." could otherwise walk out of the tree.
        if name in ("", ".", "..") or "/" in name or os.sep in name or "\0" in name:
            return NoResource()
        target = os.path.join(self.path, name)
        if os.path.isdir(target):
            return ResourceScriptDirectory(target, self.registry)
        if os.path.isfile(target):
            return ResourceScript(target, self.registry)
        return NoResource()

    def render(self, request: Request) -> bytes:
        """A directory of scripts has no page of its own: 404."""
        return NoResource().render(request)


class PythonScript(Resource):
    """An ``.epy`` file: Python run on every request, writing the response itself.

    The script's globals are ``request``, ``__file__`` (its path) and ``registry``; it writes
    with ``request.write``, and the request is finished once it returns (unless the script
    finished it). Its ``print`` output goes to the server's standard output, not the page.

    Args:
        filename: The script's file.
        registry: The site's registry (global ``registry``).

    Answers: the script's output; ``404`` "File not found." when the file is gone; ``500`` (the
    processing-failed page, or the traceback on a site with ``displayTracebacks``) when the
    script raises before writing anything; a script that raises after writing has its
    response ended there (and the error logged).
    """

    isLeaf = True

    def __init__(self, filename: str | bytes | os.PathLike[str], registry: Registry) -> None:
        super().__init__()
        self.filename = os.fsdecode(filename)
        self.registry = registry

    def render(self, request: Request) -> object:
        """Run the script for ``request`` and finish it.

        Returns:
            ``NOT_DONE_YET``: the script has written (and the request is finished).
        """
        request.setHeader(b"x-powered-by", b"treadle/" + __version__.encode("ascii"))
        namespace: dict[str, Any] = {
            "__builtins__": script_builtins(),
            "__file__": self.filename,
            "request": request,
            "registry": self.registry,
        }
        try:
            exec(_compiled(self.filename), namespace)
        except FileNotFoundError as e:
            if e.filename == self.filename:  # the script itself, not a file it opened
                request.setResponseCode(404)
                request.setHeader(b"content-type", b"text/html; charset=utf-8")
                request.write(NoResource("File not found.").render(request))
            else:
                self._failed(request, e)
        except (Exception, SystemExit) as e:
            self._failed(request, e)
        if not request.finished:
            request.finish()
        return NOT_DONE_YET

    def _failed(self, request: Request, e: BaseException) -> None:
        page = _failed(self.filename, e)
        # getattr: a request of the program's own making (a test double) may not have it.
        if getattr(request, "startedWriting", False):
            return  # too late for an error page: the response just ends here
        request.write(page.render(request))
