"""The ``treadle`` command: ``treadle web`` serves a site the way ``twistd -n web`` does.

``treadle web --path DIR`` serves a directory (static files, and ``.rpy`` scripts run on
request), ``--resource-script FILE`` one script as the whole site, ``--class NAME`` an
instance of a resource class. The options keep ``twistd web``'s names and defaults.

The work is split so that most of it is testable without sockets:

1. :func:`parse_command_line` turns ``argv`` into a frozen :class:`WebOptions`, checking
   everything that can be checked without touching the system. Every default lives in
   :class:`WebOptions`.
2. :func:`make_site` builds the resource tree and the :class:`~treadle.server.Site`, and
   :func:`listen` opens one endpoint; both raise :class:`StartupError` on a missing path, a
   bad certificate, a port in use...
3. :func:`serve` runs the reactor until a signal, then shuts down gracefully.

Exit status: 0 after a clean stop (including one where the grace period ran out: the stop
was asked for, and the log says which responses were cut off), 2 for a malformed command
line, 1 when the system refused (a file, a port, an import), 128 + the signal number when a
second signal cut the graceful shutdown short. Every startup error is one line on stderr,
``treadle: error: ...``, never a traceback.

Differences from ``twistd web``, on purpose:

- One of ``--path``, ``--resource-script``, ``--class`` is required (twistd serves a demo).
- ``--path`` must be a directory, and ``--index`` adds names in front of the default ones
  (``index.html``...) rather than replacing them.
- ``--index``, ``--mime-type``, ``--ignore-ext`` and ``--allow-ignore-ext`` need ``--path``
  but may come before it; explicit ``--ignore-ext`` extensions are tried before the ``*``
  of ``--allow-ignore-ext``, and a missing leading dot is added.
- The access log goes to stdout unless ``--logfile`` names a file; ``--no-access-log``
  turns it off. Tracebacks are off unless ``--display-tracebacks`` (as in current Twisted);
  ``--notracebacks`` is accepted.
- ``-n`` means ``--nodaemon`` (accepted and ignored: treadle always runs in the
  foreground), not twistd web's ``--notracebacks``.
- Endpoints: ``tcp``, ``ssl`` and ``unix`` descriptions with the keywords listed in
  ``--help``; others (``sslmethod``, ``lockfile``...) are refused rather than ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, Final, Literal, NoReturn

from treadle import __version__, reactor
from treadle._reactor import DEFAULT_BACKLOG, ListeningPort
from treadle._registry import Registry
from treadle.address import IPv4Address, IPv6Address, UNIXAddress
from treadle.error import CannotListenError
from treadle.resource import IResource
from treadle.server import Request, Site

__all__ = [
    "Endpoint",
    "StartupError",
    "UsageError",
    "WebOptions",
    "listen",
    "main",
    "make_site",
    "parse_command_line",
    "parse_endpoint",
    "serve",
]

log = logging.getLogger("treadle.cli")
error_log = logging.getLogger("treadle.error")
access_log = logging.getLogger("treadle.access")

#: Exit status for a malformed command line (as argparse uses).
EXIT_USAGE: Final = 2
#: Exit status when the system refused: a missing file, a port in use, an import error.
EXIT_FAILURE: Final = 1


#: Limit and timeout options: (option, Site attribute, type, help). Defaults and the reasons
#: for them live with the attributes in :mod:`treadle.http`.
LIMIT_OPTIONS: Final[tuple[tuple[str, str, type, str], ...]] = (
    (
        "--limit-concurrency",
        "maxConnections",
        int,
        "open connections at once; more get 503 at once",
    ),
    ("--max-body-size", "maxRequestBodySize", int, "bytes of a request body (413 beyond)"),
    ("--max-request-line", "maxRequestLineSize", int, "bytes of the request line (414)"),
    ("--max-field-line", "maxFieldLineSize", int, "bytes of one header line (431)"),
    ("--max-head-size", "maxHeadSize", int, "bytes of the whole request head (431)"),
    ("--max-headers", "maxHeaders", int, "header fields in a request (431)"),
    ("--timeout", "timeOut", float, "seconds an idle keep-alive connection is kept"),
    (
        "--head-timeout",
        "headTimeout",
        float,
        "seconds to receive a request head, from its first byte (408)",
    ),
    ("--body-timeout", "bodyTimeout", float, "seconds a request body may stall (408)"),
)


class UsageError(Exception):
    """The command line is malformed; reported in one line, exit status 2."""


class StartupError(Exception):
    """The server could not start (file, port, certificate, import); exit status 1."""


# -- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One parsed ``--listen`` description.

    Attributes:
        kind: ``"tcp"``, ``"ssl"`` or ``"unix"``.
        description: The text it was parsed from, for messages.
        port: TCP port (0 picks a free one; the startup line shows which).
        interface: Address to bind; ``""`` means all IPv4 interfaces.
        backlog: Kernel accept queue length.
        address: Socket path of a ``unix`` endpoint.
        mode: Permission bits of that socket file.
        private_key: PEM file with the TLS private key (``ssl``).
        cert_key: PEM file with the certificate chain (``ssl``); the key file by default.
    """

    kind: Literal["tcp", "ssl", "unix"]
    description: str
    port: int = 0
    interface: str = ""
    backlog: int = DEFAULT_BACKLOG
    address: str = ""
    mode: int = 0o666
    private_key: str = ""
    cert_key: str = ""


@dataclass(frozen=True)
class WebOptions:
    """Everything ``treadle web`` was asked to do; the one place where defaults live.

    Exactly one of ``path``, ``resource_script``, ``class_name`` and ``wsgi`` is set.

    Attributes:
        path: Directory to serve (``--path``).
        resource_script: ``.rpy`` file serving the whole site (``--resource-script``).
        class_name: Dotted name of a resource class to instantiate (``--class``).
        wsgi: Name of a WSGI application to serve (``--wsgi``).
        listen: Endpoints to listen on (``--listen``/``--port``).
        indexes: Index file names tried before the default ones (``--index``).
        mime_type: Content type of files whose extension is unknown (``--mime-type``).
        ignore_exts: Extensions tried when a name is missing (``--ignore-ext``).
        allow_ignore_ext: Try any extension when a name is missing (``--allow-ignore-ext``).
        headers: ``(name, value)`` added to every response (``--add-header``).
        display_tracebacks: Show tracebacks in 500 pages (``--display-tracebacks``).
        logfile: Access log file, ``"-"`` for stdout (``--logfile``).
        access_log: Write an access log at all (``--no-access-log`` turns it off).
        pidfile: File to write the process id to (``--pidfile``).
        grace: Seconds running responses get to finish at shutdown (``--grace``).
        workers: Server processes sharing the ports (``--workers``; ``WEB_CONCURRENCY``).
        limits: ``(Site attribute, value)`` for each limit or timeout given (see
            :data:`LIMIT_OPTIONS`); the others keep the Site's defaults.
        follow_symlinks: Serve links leading out of ``--path`` (``--follow-symlinks``).
    """

    path: str | None = None
    resource_script: str | None = None
    class_name: str | None = None
    wsgi: str | None = None
    listen: tuple[Endpoint, ...] = (Endpoint("tcp", "tcp:8080", port=8080),)
    indexes: tuple[str, ...] = ()
    mime_type: str = "text/html"
    ignore_exts: tuple[str, ...] = ()
    allow_ignore_ext: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    display_tracebacks: bool = False
    logfile: str = "-"
    access_log: bool = True
    pidfile: str | None = None
    grace: float = 10.0
    workers: int = 1
    limits: tuple[tuple[str, float], ...] = ()
    follow_symlinks: bool = False


# -- endpoint descriptions --------------------------------------------------------------------


def _split_description(text: str) -> list[str]:
    """Split at unescaped colons; a backslash makes the next character literal."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _number(text: str, what: str, description: str, *, base: int = 10, top: int = 2**31) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise UsageError(
            f"bad endpoint {description!r}: {what} must be a number, not {text!r}"
        ) from None
    if not 0 <= value <= top:
        raise UsageError(f"bad endpoint {description!r}: {what} {value} is out of range")
    return value


#: Positional parameters, then all keywords, accepted per endpoint type (Twisted's names).
_ENDPOINT_PARAMETERS: Final = {
    "tcp": (("port", "interface"), {"port", "interface", "backlog"}),
    "ssl": (("port",), {"port", "interface", "backlog", "privateKey", "certKey"}),
    "unix": (("address",), {"address", "mode", "backlog"}),
}


def parse_endpoint(text: str) -> Endpoint:
    """Parse an endpoint description as ``twistd`` understands it.

    Forms: ``tcp:PORT[:interface=ADDR][:backlog=N]``, a bare ``PORT`` (TCP),
    ``ssl:PORT[:privateKey=KEY][:certKey=CERT][:interface=ADDR]`` (the key defaults to
    ``server.pem`` and the certificate to the key file, as in Twisted) and
    ``unix:PATH[:mode=OCTAL]``. A backslash escapes a colon: ``interface=\\:\\:1``.

    Args:
        text: The description.

    Returns:
        The endpoint; nothing is opened or checked on disk.

    Raises:
        UsageError: The description is malformed.
    """
    if text.isdigit():
        text = f"tcp:{text}"
    kind, *rest = _split_description(text)
    kind = kind.lower()
    if kind not in _ENDPOINT_PARAMETERS:
        raise UsageError(
            f"bad endpoint {text!r}: the type must be tcp, ssl or unix (as in tcp:8080)"
        )
    positional_names, keywords = _ENDPOINT_PARAMETERS[kind]
    values: dict[str, str] = {}
    positional = 0
    for part in rest:
        key, eq, value = part.partition("=")
        if not eq:
            if positional >= len(positional_names):
                raise UsageError(f"bad endpoint {text!r}: unexpected {part!r}")
            key, value = positional_names[positional], part
            positional += 1
        elif key not in keywords:
            raise UsageError(
                f"bad endpoint {text!r}: {kind} endpoints do not take {key!r} "
                f"(they take {', '.join(sorted(keywords))})"
            )
        if key in values:
            raise UsageError(f"bad endpoint {text!r}: {key} given twice")
        values[key] = value
    backlog = _number(values.get("backlog", str(DEFAULT_BACKLOG)), "backlog", text)
    if kind == "unix":
        if not values.get("address"):
            raise UsageError(f"bad endpoint {text!r}: give a socket path, as in unix:/tmp/web.sock")
        return Endpoint(
            "unix",
            text,
            address=values["address"],
            backlog=backlog,
            mode=_number(values.get("mode", "666"), "mode", text, base=8, top=0o7777),
        )
    if "port" not in values:
        raise UsageError(f"bad endpoint {text!r}: give a port, as in {kind}:8080")
    port = _number(values["port"], "port", text, top=65535)
    interface = values.get("interface", "")
    if kind == "tcp":
        return Endpoint("tcp", text, port=port, interface=interface, backlog=backlog)
    private_key = values.get("privateKey") or "server.pem"
    return Endpoint(
        "ssl",
        text,
        port=port,
        interface=interface,
        backlog=backlog,
        private_key=private_key,
        cert_key=values.get("certKey") or private_key,
    )


# -- the command line -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become :class:`UsageError` (one line, printed by ``main``)."""

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` instead of printing the usage and exiting."""
        raise UsageError(f"{message} (see 'treadle web --help')")


_DESCRIPTION = """\
Serve a web site the way `twistd -n web` does, on asyncio: a directory of static
files and .rpy resource scripts (--path), a single .rpy script (--resource-script),
or an instance of a resource class (--class). Exactly one of the three is needed."""

_EPILOG = f"""\
examples:
  treadle web --path ./site
      serve ./site on port 8080 of every interface; .rpy files run on request
  treadle web --path examples --listen tcp:8000:interface=127.0.0.1
      the examples tour, reachable from this machine only
  treadle web --path . --listen tcp:8080 --listen ssl:8443:privateKey=key.pem:certKey=cert.pem
      plain HTTP and HTTPS side by side
  treadle web --resource-script app.rpy --listen unix:/run/app.sock --no-access-log
      one script answering everything, behind a proxy
  treadle web --class myproject.web.Root --add-header 'X-Frame-Options: DENY'
      an instance of Root (made with no arguments) as the root resource

endpoints (--listen, --port):
  tcp:PORT[:interface=ADDR][:backlog=N]   a bare PORT means tcp:PORT; PORT 0 picks a free
                                          port, shown in the startup line
  ssl:PORT[:privateKey=KEY.pem][:certKey=CERT.pem][:interface=ADDR][:backlog=N]
                                          the key defaults to server.pem, the certificate
                                          to the key file
  unix:PATH[:mode=OCTAL][:backlog=N]      a UNIX-domain socket (mode 666 by default)
  Escape a colon inside a value with a backslash: tcp:8080:interface=\\:\\:1

stopping:
  SIGINT (Ctrl-C) or SIGTERM stops accepting connections, closes idle ones and lets
  running responses finish for up to --grace seconds, then exits 0. A second signal exits
  at once with status 128 + the signal number.

Option names also accept twistd's underscores (--mime_type, --resource_script...).
treadle {__version__}"""


def _build_parser() -> _Parser:
    defaults = WebOptions()
    parser = _Parser(
        prog="treadle",
        description="treadle: Twisted Web's server model on asyncio.",
        epilog="Run 'treadle web --help' for the options of the web server.",
    )
    parser.add_argument("--version", action="version", version=f"treadle {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    web = commands.add_parser(
        "web",
        help="serve a directory, an .rpy script or a resource class over HTTP",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    web.add_argument("--version", action="version", version=f"treadle {__version__}")

    root = web.add_argument_group("what to serve (exactly one)")
    root.add_argument(
        "--path",
        metavar="DIR",
        help="serve this directory: static files, and .rpy scripts run on each request",
    )
    root.add_argument(
        "--resource-script",
        metavar="FILE",
        help="serve the resource this .rpy script assigns, for every URL",
    )
    root.add_argument(
        "--class",
        dest="class_name",
        metavar="NAME",
        help="serve an instance of this resource class, e.g. pkg.mod.Root "
        "(the current directory is importable)",
    )
    root.add_argument(
        "--wsgi",
        dest="wsgi",
        metavar="NAME",
        help="serve this WSGI application, e.g. pkg.mod:app or pkg.mod.app, in a thread "
        "pool (the current directory is importable)",
    )

    net = web.add_argument_group("listening")
    net.add_argument(
        "--listen",
        "--port",
        "-p",
        dest="listen",
        action="append",
        metavar="ENDPOINT",
        help="listen on this endpoint; repeat for several (default: "
        f"{defaults.listen[0].description}; see 'endpoints' below)",
    )
    net.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="at shutdown, how long running responses may take to finish "
        f"(default: {defaults.grace:g})",
    )
    net.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N server processes on the same ports (SO_REUSEPORT), replaced if they "
        "die (default: $WEB_CONCURRENCY, else 1)",
    )
    net.add_argument(
        "--pidfile", metavar="FILE", help="write the process id to FILE (removed at exit)"
    )

    limits = web.add_argument_group(
        "limits and timeouts (each default is explained in treadle.http)"
    )
    for option, attribute, kind, text in LIMIT_OPTIONS:
        default = getattr(Site, attribute)
        limits.add_argument(
            option,
            dest=f"limit_{attribute}",
            type=kind,
            metavar="N" if kind is int else "SECONDS",
            help=f"{text} (default: {default if default is not None else 'none'})",
        )

    files = web.add_argument_group("directory options (with --path)")
    files.add_argument(
        "--index",
        "-i",
        dest="indexes",
        action="append",
        metavar="NAME",
        help="also try NAME as a directory's index page, before the default names; repeatable",
    )
    files.add_argument(
        "--mime-type",
        "-m",
        metavar="TYPE",
        help=f"content type of files with an unknown extension (default: {defaults.mime_type})",
    )
    files.add_argument(
        "--ignore-ext",
        dest="ignore_exts",
        action="append",
        metavar="EXT",
        help="serve NAME.EXT when NAME is asked for and missing; repeatable",
    )
    files.add_argument(
        "--allow-ignore-ext",
        action="store_true",
        default=None,
        help="serve NAME.anything when NAME is asked for and missing",
    )
    files.add_argument(
        "--follow-symlinks",
        action="store_true",
        default=False,
        help="serve symbolic links that lead out of --path (refused by default)",
    )

    resp = web.add_argument_group("responses and logs")
    resp.add_argument(
        "--add-header",
        dest="headers",
        action="append",
        metavar="'NAME: VALUE'",
        help="add this header to every response; repeatable",
    )
    resp.add_argument(
        "--display-tracebacks",
        dest="display_tracebacks",
        action="store_true",
        default=None,
        help="show Python tracebacks in error pages (a security risk in "
        "production: they reveal code and paths)",
    )
    resp.add_argument(
        "--notracebacks",
        dest="display_tracebacks",
        action="store_false",
        default=None,
        help="do not show tracebacks in error pages (the default)",
    )
    resp.add_argument(
        "--logfile",
        "-l",
        metavar="FILE",
        help="append the access log (combined log format) to FILE; '-' is stdout (default: stdout)",
    )
    resp.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        default=None,
        help="write no access log at all (fastest)",
    )
    resp.add_argument(
        "--nodaemon",
        "-n",
        action="store_true",
        help="accepted for twistd compatibility; treadle always runs in the foreground",
    )
    return parser


def _normalize(argv: Sequence[str]) -> list[str]:
    """Accept twistd's spellings: ``--mime_type`` is ``--mime-type``."""
    out = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg.partition("=")
            arg = name.replace("_", "-") + eq + value
        out.append(arg)
    return out


def _parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    token_chars = set(
        "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    )
    if not colon or not name or not set(name) <= token_chars:
        raise UsageError(f"bad --add-header {text!r}: write it as 'Name: value'")
    if not value.isascii() or any((ch < " " and ch != "\t") or ch == "\x7f" for ch in value):
        raise UsageError(f"bad --add-header {text!r}: the value must be printable ASCII")
    return name, value


def parse_command_line(argv: Sequence[str]) -> WebOptions:
    """Turn the arguments of ``treadle`` (``["web", "--path", "."]``) into options.

    A pure function: it opens nothing and checks nothing on disk, so every rule about the
    command line is tested without sockets. ``--help`` and ``--version`` print and raise
    ``SystemExit(0)``, as argparse does.

    Args:
        argv: The arguments, without the program name.

    Returns:
        The options, defaults filled in from :class:`WebOptions`.

    Raises:
        UsageError: The command line is malformed.
    """
    parser = _build_parser()
    ns = parser.parse_args(_normalize(argv))
    if ns.command != "web":
        raise UsageError("say what to run: 'treadle web --path DIR' (see 'treadle --help')")
    roots = [
        name
        for name, value in (
            ("--path", ns.path),
            ("--resource-script", ns.resource_script),
            ("--class", ns.class_name),
            ("--wsgi", ns.wsgi),
        )
        if value is not None
    ]
    if len(roots) != 1:
        named = " and ".join(roots) if roots else "none"
        raise UsageError(
            "give exactly one of --path DIR, --resource-script FILE, --class NAME or "
            f"--wsgi NAME (given: {named}); treadle has no demo site"
        )
    if ns.path is None:
        for option, value in (
            ("--index", ns.indexes),
            ("--mime-type", ns.mime_type),
            ("--ignore-ext", ns.ignore_exts),
            ("--allow-ignore-ext", ns.allow_ignore_ext),
        ):
            if value is not None:
                raise UsageError(f"{option} applies to the files of --path only")
    if ns.access_log is False and ns.logfile is not None:
        raise UsageError("--logfile and --no-access-log contradict each other")
    if ns.grace is not None and not ns.grace >= 0:  # also refuses nan
        raise UsageError(f"--grace must be a number of seconds >= 0, not {ns.grace}")
    workers = ns.workers
    if workers is None and os.environ.get("WEB_CONCURRENCY"):
        try:
            workers = int(os.environ["WEB_CONCURRENCY"])
        except ValueError:
            raise UsageError(
                f"WEB_CONCURRENCY must be a number, not {os.environ['WEB_CONCURRENCY']!r}"
            ) from None
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    limits = []
    for option, attribute, _kind, _text in LIMIT_OPTIONS:
        value = getattr(ns, f"limit_{attribute}")
        if value is not None:
            if not value > 0:  # also refuses nan
                raise UsageError(f"{option} must be more than 0, not {value}")
            limits.append((attribute, value))
    if ns.follow_symlinks and ns.path is None:
        raise UsageError("--follow-symlinks applies to the files of --path only")
    given: dict[str, Any] = {
        "path": ns.path,
        "resource_script": ns.resource_script,
        "class_name": ns.class_name,
        "wsgi": ns.wsgi,
        "listen": ns.listen and tuple(parse_endpoint(e) for e in ns.listen),
        "indexes": ns.indexes and tuple(ns.indexes),
        "mime_type": ns.mime_type,
        "ignore_exts": ns.ignore_exts
        and tuple(
            ext if ext.startswith(".") or ext == "*" else f".{ext}" for ext in ns.ignore_exts
        ),
        "allow_ignore_ext": ns.allow_ignore_ext,
        "headers": ns.headers and tuple(_parse_header(h) for h in ns.headers),
        "display_tracebacks": ns.display_tracebacks,
        "logfile": ns.logfile,
        "access_log": ns.access_log,
        "pidfile": ns.pidfile,
        "grace": ns.grace,
        "workers": workers,
        "limits": tuple(limits) or None,
        "follow_symlinks": ns.follow_symlinks or None,
    }
    # Options not given keep the dataclass defaults: they are written down only there.
    return WebOptions(**{k: v for k, v in given.items() if v is not None})


# -- building the site ------------------------------------------------------------------------


def _import_class(name: str) -> Any:
    """Import ``pkg.mod.Attr[.Inner]``, trying the longest importable module prefix."""
    parts = name.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise StartupError(f"--class {name!r}: give a dotted name such as myapp.web.Root")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # Only "this very module (or its package) is missing" means: try a shorter
            # prefix. An import failing inside the module is the user's error to see.
            if e.name is not None and (module_name + ".").startswith(e.name + "."):
                continue
            raise StartupError(
                f"--class {name}: importing {module_name} failed: {type(e).__name__}: {e}"
            ) from None
        except Exception as e:
            raise StartupError(
                f"--class {name}: importing {module_name} failed: {type(e).__name__}: {e}"
            ) from None
        for attribute in parts[cut:]:
            try:
                obj = getattr(obj, attribute)
            except AttributeError:
                raise StartupError(
                    f"--class {name}: {obj.__name__} has no attribute {attribute!r}"
                ) from None
        return obj
    raise StartupError(
        f"--class {name}: no module named {parts[0]!r} (is it on the Python "
        "path? the current directory is)"
    )


def _class_root(name: str) -> IResource:
    # twistd puts the current directory on the path so that --class finds local modules.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    cls = _import_class(name)
    if not callable(cls):
        raise StartupError(f"--class {name}: {cls!r} is not a class")
    try:
        root = cls()
    except Exception as e:
        raise StartupError(f"--class {name}: creating it failed: {type(e).__name__}: {e}") from None
    if not (callable(getattr(root, "render", None)) and hasattr(root, "getChildWithDefault")):
        raise StartupError(f"--class {name}: an instance of it is not a resource")
    result: IResource = root
    return result


def _wsgi_root(name: str) -> IResource:
    from treadle.wsgi import resource_from_name

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        root: IResource = resource_from_name(name)
    except (ImportError, ValueError, TypeError) as e:
        raise StartupError(f"--wsgi {name}: {e}") from None
    except Exception as e:  # the application module itself failed while importing
        raise StartupError(f"--wsgi {name}: importing it failed: {type(e).__name__}: {e}") from None
    return root


def _directory_root(options: WebOptions, registry: Registry) -> IResource:
    from treadle import script, static

    assert options.path is not None
    path = os.path.abspath(options.path)
    if not os.path.exists(path):
        raise StartupError(f"--path {options.path}: no such directory")
    if not os.path.isdir(path):
        raise StartupError(f"--path {options.path}: not a directory")
    ignored = options.ignore_exts + (("*",) if options.allow_ignore_ext else ())
    root = static.File(
        path,
        defaultType=options.mime_type,
        ignoredExts=ignored,
        registry=registry,
        follow_symlinks=options.follow_symlinks,
    )
    # As twistd web --path: .rpy files are scripts. Set on the instance, like twistd; File
    # hands processors and indexNames on to the Files it makes for subdirectories.
    root.processors = {".rpy": script.ResourceScript}
    names = list(options.indexes) + [n for n in root.indexNames if n not in options.indexes]
    root.indexNames = names
    result: IResource = root
    return result


def _request_factory(headers: tuple[tuple[str, str], ...]) -> type[Request]:
    """Return the Request class for the site: one adding ``headers`` when there are any."""
    if not headers:
        return Request
    raw = tuple((name.encode("ascii"), value.encode("ascii")) for name, value in headers)

    class HeaderAddingRequest(Request):
        """A Request that adds the ``--add-header`` headers before rendering starts."""

        __slots__ = ()

        def process(self) -> None:
            """Add the extra headers (a resource may still replace them), then render."""
            add = self.responseHeaders.addRawHeader
            for name, value in raw:
                add(name, value)
            super().process()

    return HeaderAddingRequest


def make_site(options: WebOptions) -> tuple[Site, str]:
    """Build the site ``options`` describe.

    Args:
        options: The parsed command line.

    Returns:
        The site, and a description of what it serves for the startup line (an absolute
        path or a class name).

    Raises:
        StartupError: The path, script or class cannot be used.
    """
    registry = Registry()
    root: IResource
    if options.path is not None:
        root = _directory_root(options, registry)
        what = os.path.abspath(options.path)
    elif options.resource_script is not None:
        from treadle.script import ResourceScriptWrapper

        what = os.path.abspath(options.resource_script)
        if not os.path.isfile(what):
            raise StartupError(f"--resource-script {options.resource_script}: no such file")
        root = ResourceScriptWrapper(what, registry)
    elif options.wsgi is not None:
        root = _wsgi_root(options.wsgi)
        what = f"WSGI application {options.wsgi}"
    else:
        assert options.class_name is not None
        root = _class_root(options.class_name)
        what = options.class_name
    site = Site(root, requestFactory=_request_factory(options.headers))
    site.displayTracebacks = options.display_tracebacks
    for attribute, value in options.limits:
        setattr(site, attribute, value)
    return site, what


def _tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    for label, path in (("certificate", endpoint.cert_key), ("private key", endpoint.private_key)):
        if not os.path.isfile(path):
            raise StartupError(f"{endpoint.description}: {label} file {path} not found")
        if not os.access(path, os.R_OK):
            raise StartupError(f"{endpoint.description}: {label} file {path} is not readable")

    def no_passphrase() -> str:
        # Without this, OpenSSL would prompt on the terminal and block the start.
        raise StartupError(
            f"{endpoint.description}: the private key {endpoint.private_key} "
            "is encrypted; treadle needs an unencrypted key"
        )

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(endpoint.cert_key, endpoint.private_key, password=no_passphrase)
    except ssl.SSLError as e:
        raise StartupError(
            f"{endpoint.description}: cannot use certificate {endpoint.cert_key} "
            f"with key {endpoint.private_key}: {e.reason or e}"
        ) from None
    except OSError as e:
        raise StartupError(
            f"{endpoint.description}: cannot read certificate or key: {e.strerror or e}"
        ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def listen(endpoint: Endpoint, site: Site, reuse_port: bool = False) -> ListeningPort:
    """Open ``endpoint`` for ``site`` with the reactor (``listenTCP``/``SSL``/``UNIX``).

    Returns:
        The listening port; connections are accepted once the reactor runs.

    Raises:
        StartupError: The port is in use, the address cannot be bound, or the certificate
            or key cannot be loaded.
    """
    try:
        if endpoint.kind == "tcp":
            return reactor.listenTCP(
                endpoint.port, site, endpoint.backlog, endpoint.interface, reusePort=reuse_port
            )
        if endpoint.kind == "ssl":
            return reactor.listenSSL(
                endpoint.port,
                site,
                _tls_context(endpoint),
                endpoint.backlog,
                endpoint.interface,
                reusePort=reuse_port,
            )
        return reactor.listenUNIX(endpoint.address, site, endpoint.backlog, endpoint.mode)
    except CannotListenError as e:
        reason = getattr(e.socketError, "strerror", None) or e.socketError
        raise StartupError(f"cannot listen on {endpoint.description}: {reason}") from None
    except OSError as e:  # e.g. an interface name that does not resolve
        raise StartupError(f"cannot listen on {endpoint.description}: {e.strerror or e}") from None


def _url(endpoint: Endpoint, port: ListeningPort) -> str:
    host = port.getHost()
    if isinstance(host, UNIXAddress):
        return f"unix:{host.name or endpoint.address}"
    scheme = "https" if endpoint.kind == "ssl" else "http"
    name = f"[{host.host}]" if isinstance(host, IPv6Address) else host.host
    assert isinstance(host, IPv4Address | IPv6Address)
    return f"{scheme}://{name}:{host.port}/"


# -- running ----------------------------------------------------------------------------------


class _Logging:
    """The process's log setup: errors to stderr, the access log where asked; undoable."""

    def __init__(self, options: WebOptions) -> None:
        self._undo: list[tuple[logging.Logger, logging.Handler | None, int, bool]] = []
        errors = logging.StreamHandler(sys.stderr)
        errors.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        self._attach(root, errors, logging.INFO, root.propagate)
        if not options.access_log:
            # No handler and a level above CRITICAL: Site.log sees the logger disabled and
            # does not even format the line.
            self._attach(access_log, None, logging.CRITICAL + 1, False)
            return
        stream: logging.Handler
        if options.logfile == "-":
            stream = logging.StreamHandler(sys.stdout)
        else:
            try:
                stream = logging.FileHandler(options.logfile, encoding="utf-8")
            except OSError as e:
                self.close()
                raise StartupError(f"--logfile {options.logfile}: {e.strerror or e}") from None
        stream.setFormatter(logging.Formatter("%(message)s"))
        self._attach(access_log, stream, logging.INFO, False)

    def _attach(
        self, logger: logging.Logger, handler: logging.Handler | None, level: int, propagate: bool
    ) -> None:
        self._undo.append((logger, handler, logger.level, logger.propagate))
        if handler is not None:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate

    def close(self) -> None:
        """Detach and close the handlers, restore levels (main may be called in-process)."""
        for logger, handler, level, propagate in reversed(self._undo):
            if handler is not None:
                logger.removeHandler(handler)
                handler.close()
            logger.setLevel(level)
            logger.propagate = propagate
        self._undo.clear()


class _PidFile:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(path) as f:
                other = int(f.read().strip() or 0)
        except (OSError, ValueError):
            other = 0
        if other and other != os.getpid() and _process_exists(other):
            raise StartupError(
                f"--pidfile {path}: process {other} is running with this "
                "pidfile; is another server running?"
            )
        try:
            with open(path, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as e:
            raise StartupError(f"--pidfile {path}: {e.strerror or e}") from None

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is someone else's
        return True
    return True


class _Shutdown:
    """Signal handling: the first signal drains gracefully, the second stops at once."""

    def __init__(self, site: Site, ports: list[ListeningPort], grace: float) -> None:
        self.site = site
        self.ports = ports
        self.grace = grace
        self.exit_code = 0
        self._draining: asyncio.Task[None] | None = None
        self._stopped = False

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._draining is None:
            log.info(
                "%s: shutting down; %d open connection(s) have %gs to finish (signal "
                "again to stop at once)",
                name,
                len(self.site.connections),
                self.grace,
            )
            self._draining = asyncio.ensure_future(self._drain())
            return
        log.warning(
            "%s again: stopping now, cutting off %d connection(s)", name, len(self.site.connections)
        )
        self.exit_code = 128 + signum
        self._draining.cancel()
        for channel in self.site.connections:
            channel.abort()
        self._stop_reactor()

    async def _drain(self) -> None:
        try:
            for port in self.ports:
                port.stopListening()
            drained = await self.site.shutdown(self.grace)
            if not drained:
                log.warning(
                    "grace period of %gs over: cut off the responses still running", self.grace
                )
        finally:
            # Whatever happened above, the process must not be left running.
            self._stop_reactor()

    def _stop_reactor(self) -> None:
        # Once only: the cancelled drain task stops it too as it unwinds, and a second stop()
        # would end the clean-up run of the loop after reactor.run() has returned.
        if not self._stopped and reactor.running:
            self._stopped = True
            reactor.stop()


def _finish_loop(site: Site) -> None:
    """After ``reactor.run`` returned: drop what is left, then close the loop."""
    loop = reactor.loop
    for channel in site.connections:
        channel.abort()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    # One more turn lets cancelled tasks unwind and aborted transports report their loss.
    loop.run_until_complete(asyncio.gather(*pending, asyncio.sleep(0), return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def serve(options: WebOptions, out: IO[str] | None = None, reuse_port: bool = False) -> int:
    """Serve until stopped by a signal.

    Prints one startup line to ``out`` (stdout), e.g.
    ``treadle 0.1.0 serving /srv/site on http://0.0.0.0:8080/``.

    Args:
        options: What to serve and how.
        out: Where the startup line goes.
        reuse_port: Listen with ``SO_REUSEPORT`` (as the workers of ``--workers`` do).

    Returns:
        The exit status (see the module docstring).

    Raises:
        StartupError: The server could not start; nothing is left open.
    """
    out = out if out is not None else sys.stdout
    logs = _Logging(options)
    ports: list[ListeningPort] = []
    sockets: list[str] = []
    pidfile: _PidFile | None = None
    site: Site | None = None
    try:
        site, what = make_site(options)
        urls = []
        for endpoint in options.listen:
            port = listen(endpoint, site, reuse_port)
            ports.append(port)
            if endpoint.kind == "unix":
                sockets.append(endpoint.address)
            urls.append(_url(endpoint, port))
        if options.pidfile is not None:
            pidfile = _PidFile(options.pidfile)
        shutdown = _Shutdown(site, ports, options.grace)
        loop = reactor.loop
        handled = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, threads
                loop.add_signal_handler(signum, shutdown.on_signal, signum)
                handled.append(signum)
        print(f"treadle {__version__} serving {what} on {', '.join(urls)}", file=out, flush=True)
        try:
            reactor.run(installSignalHandlers=False)
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
        return shutdown.exit_code
    finally:
        for port in ports:
            port.stopListening()
        for path in sockets:
            # As Twisted does, remove the socket files this process created.
            with contextlib.suppress(OSError):
                os.unlink(path)
        if site is not None and ports:
            _finish_loop(site)
        if pidfile is not None:
            pidfile.remove()
        logs.close()


def _serve_workers(options: WebOptions) -> int:
    """Run ``options.workers`` processes on the same ports (see :mod:`treadle._workers`)."""
    from treadle import _workers

    make_site(options)  # a missing path or a bad --class is reported once, here
    try:
        options, reserved = _workers.reserve_ports(options)
    except ValueError as e:
        raise StartupError(str(e)) from None
    except OSError as e:
        raise StartupError(f"cannot listen: {e.strerror or e}") from None
    try:
        urls = ", ".join(
            f"{'https' if e.kind == 'ssl' else 'http'}://{e.interface or '0.0.0.0'}:{e.port}/"
            for e in options.listen
        )
        what = options.path or options.resource_script or options.class_name or options.wsgi
        print(
            f"treadle {__version__} serving {what} with {options.workers} workers on {urls}",
            flush=True,
        )
        return _workers.run_workers(options, serve)
    finally:
        for sock in reserved:
            sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``treadle`` command.

    Args:
        argv: The arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status: 0 after a clean stop, 2 for a malformed command line, 1 when the
        server could not start, 128 + N after a second signal N.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_command_line(args)
    except UsageError as e:
        print(f"treadle: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    try:
        if options.workers > 1:
            return _serve_workers(options)
        return serve(options)
    except StartupError as e:
        print(f"treadle: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
