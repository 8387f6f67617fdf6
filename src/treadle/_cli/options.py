"""The command line of ``treadle web``: :class:`WebOptions` and the parser that fills it.

:func:`parse_command_line` is a pure function, so every rule about the command line is
tested without sockets; :mod:`treadle._cli.main` re-exports it with :class:`WebOptions`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, NoReturn

from treadle import __version__
from treadle._cli.errors import UsageError
from treadle._cli.listen import Endpoint, parse_endpoint
from treadle.web._forwarded import ProxyTrust
from treadle.web.server import Site

#: The beginnings of the store URLs --sessions accepts (treadle.web._store_url opens them).
_STORE_SCHEMES: Final = ("memory:", "sqlite:", "redis://", "rediss://", "unix://")

__all__ = ["LIMIT_OPTIONS", "LimitOption", "WebOptions", "parse_command_line"]


class LimitOption(NamedTuple):
    """One limit or timeout option of ``treadle web``, setting one attribute of the Site.

    Attributes:
        option: The option, e.g. ``--max-body-size``.
        attribute: The :class:`~treadle.web.server.Site` attribute it sets; its default is the
            option's default (the Site class is the one place limits are written down).
        kind: ``int`` or ``float``.
        text: What the value limits, for ``--help``.
        metavar: The value's name in ``--help``; ``N`` for ``int``, ``SECONDS`` for ``float``
            when empty.
        zero_is_off: 0 is accepted and turns the limit off; otherwise values must be > 0.
    """

    option: str
    attribute: str
    kind: type
    text: str
    metavar: str = ""
    zero_is_off: bool = False


#: Limit and timeout options. Defaults and the reasons for them live with the attributes in
#: :mod:`treadle.web.http`.
LIMIT_OPTIONS: Final[tuple[LimitOption, ...]] = (
    LimitOption(
        "--limit-concurrency",
        "maxConnections",
        int,
        "open connections at once; more get 503 at once",
    ),
    LimitOption(
        "--max-body-size", "maxRequestBodySize", int, "bytes of a request body (413 beyond)"
    ),
    LimitOption("--max-request-line", "maxRequestLineSize", int, "bytes of the request line (414)"),
    LimitOption("--max-field-line", "maxFieldLineSize", int, "bytes of one header line (431)"),
    LimitOption("--max-head-size", "maxHeadSize", int, "bytes of the whole request head (431)"),
    LimitOption("--max-headers", "maxHeaders", int, "header fields in a request (431)"),
    LimitOption("--timeout", "timeOut", float, "seconds an idle keep-alive connection is kept"),
    LimitOption(
        "--head-timeout",
        "headTimeout",
        float,
        "seconds to receive a request head, from its first byte (408)",
    ),
    LimitOption("--body-timeout", "bodyTimeout", float, "seconds a request body may stall (408)"),
    LimitOption(
        "--min-body-rate",
        "minBodyRate",
        float,
        "bytes per second a request body must average, from the end of the head, once "
        "--min-body-rate-grace has passed; a slower client gets 408 and the connection "
        "closes; 0 turns the check off",
        metavar="BYTES_PER_SECOND",
        zero_is_off=True,
    ),
    LimitOption(
        "--min-body-rate-grace",
        "minBodyRateGrace",
        float,
        "seconds after the request head before --min-body-rate applies",
    ),
)


@dataclass(frozen=True)
class WebOptions:
    """Everything ``treadle web`` was asked to do; the one place where defaults live.

    Exactly one of ``path``, ``resource_script``, ``class_name``, ``wsgi`` and ``asgi`` is set.

    Attributes:
        path: Directory to serve (``--path``).
        resource_script: ``.rpy`` file serving the whole site (``--resource-script``).
        class_name: Dotted name of a resource class to instantiate (``--class``).
        wsgi: Name of a WSGI application to serve (``--wsgi``).
        asgi: Name of an ASGI 3 application to serve (``--asgi``).
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
        sessions: Where sessions live (``--sessions``): ``memory:``, ``sqlite:[PATH]``,
            ``redis://...``; None picks memory for one process, ``sqlite:`` for several.
        secret_file: File holding the secret that signs stored sessions (``--secret-file``).
        max_sessions: The most sessions kept in memory or in the embedded store.
        runtime_dir: The server's private directory (made at start, not an option).
        proxy_headers: Believe ``Forwarded``/``X-Forwarded-*`` (``--proxy-headers``).
        forwarded_allow_ips: The peers believed (``--forwarded-allow-ips``).
    """

    path: str | None = None
    resource_script: str | None = None
    class_name: str | None = None
    wsgi: str | None = None
    asgi: str | None = None
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
    sessions: str | None = None
    secret_file: str | None = None
    max_sessions: int = 100_000
    runtime_dir: str | None = None
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"


# -- the command line -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become :class:`UsageError` (one line, printed by ``main``)."""

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` instead of printing the usage and exiting."""
        raise UsageError(f"{message} (see 'treadle web --help')")


_DESCRIPTION = """\
Serve a web site the way `twistd -n web` does, on asyncio: a directory of static
files and .rpy resource scripts (--path), a single .rpy script (--resource-script),
an instance of a resource class (--class), a WSGI application (--wsgi) or an ASGI
application (--asgi). Exactly one of the five is needed."""

_EPILOG = f"""\
examples:
  treadle web --path ./site
      serve ./site on port 8080 of every IPv4 interface (open http://127.0.0.1:8080/);
      .rpy files run on request
  treadle web --path examples --listen tcp:8000:interface=127.0.0.1
      the examples tour, reachable from this machine only
  treadle web --path . --listen tcp:8080 --listen ssl:8443:privateKey=key.pem:certKey=cert.pem
      plain HTTP and HTTPS side by side
  treadle web --resource-script app.rpy --listen unix:/run/app.sock --no-access-log
      one script as the whole site, behind a proxy
  treadle web --class myproject.web.Root --add-header 'X-Frame-Options: DENY'
      an instance of Root (made with no arguments) as the root resource
  treadle web --asgi myproject.main:app --listen tcp:8000
      a Starlette or FastAPI application at the root, on the event loop

endpoints (--listen, --port):
  tcp:PORT[:interface=ADDR][:backlog=N]   a bare PORT means tcp:PORT; PORT 0 picks a free
                                          port, shown in the startup line; without
                                          interface=, every IPv4 interface is bound
  tcp6:PORT[:interface=ADDR][:backlog=N]  IPv6 (every interface, ::, by default)
  ssl:PORT[:privateKey=KEY.pem][:certKey=CERT.pem][:interface=ADDR][:backlog=N]
      [:extraCertChain=CHAIN.pem][:dhParameters=DH.pem]
                                          the key defaults to server.pem, the certificate
                                          to the key file
  unix:PATH[:mode=OCTAL][:backlog=N][:lockfile=0|1]
                                          a UNIX-domain socket (mode 666 by default)
  systemd:domain=INET|INET6|UNIX:index=N (or :name=NAME)
                                          a socket passed by systemd socket activation
  The grammar is treadle.internet.endpoints.serverFromString's, as in Twisted.
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
        epilog="Run 'treadle web --help' for the options of the web server, 'treadle run "
        "--help' for those of applications and plugins.",
    )
    parser.add_argument("--version", action="version", version=f"treadle {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Listed for --help only: main() hands ``run`` to its own parser (twistd's grammar).
    commands.add_parser(
        "run",
        help="run a .tac file or a twistd plugin in the foreground (see 'treadle run --help')",
        add_help=False,
    )
    web = commands.add_parser(
        "web",
        help="serve a directory, an .rpy script, a resource class or a WSGI or ASGI application "
        "over HTTP",
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
        help="serve the resource this .rpy script assigns as the whole site (the script "
        "runs on each request)",
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
    root.add_argument(
        "--asgi",
        dest="asgi",
        metavar="NAME",
        help="serve this ASGI 3 application (Starlette, FastAPI...), e.g. pkg.mod:app, on "
        "the event loop; its lifespan start-up runs before serving and its shut-down after "
        "the graceful shutdown (the current directory is importable)",
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
        help="run N server processes on the same tcp, tcp6, ssl or systemd ports, "
        "replaced if they die (default: $WEB_CONCURRENCY, else 1)",
    )
    net.add_argument(
        "--pidfile",
        metavar="FILE",
        help="write the process id to FILE (removed at exit); with --workers, the id of the "
        "supervising process, which passes signals on to the workers",
    )

    limits = web.add_argument_group(
        "limits and timeouts (each default is explained in treadle.web.http)"
    )
    for spec in LIMIT_OPTIONS:
        default = getattr(Site, spec.attribute)
        limits.add_argument(
            spec.option,
            dest=f"limit_{spec.attribute}",
            type=spec.kind,
            metavar=spec.metavar or ("N" if spec.kind is int else "SECONDS"),
            help=f"{spec.text} (default: {'none' if default is None else default})",
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

    shared = web.add_argument_group("sessions and proxies")
    shared.add_argument(
        "--sessions",
        metavar="URL",
        help="where sessions live: memory: (one process), sqlite: (shared by the workers of "
        "this machine; sqlite:/PATH for a file of your own), redis://HOST:PORT/DB, "
        "rediss://..., unix:///PATH?db=N (shared by several machines) (default: memory: with "
        "one worker, sqlite: with several)",
    )
    shared.add_argument(
        "--secret-file",
        metavar="FILE",
        help="file holding the secret (32 bytes or more) that signs stored sessions; "
        "machines sharing a store must use the same one (default: one generated in the "
        "runtime directory)",
    )
    shared.add_argument(
        "--max-sessions",
        type=int,
        metavar="N",
        help="the most sessions kept in memory or in the sqlite store; the least recently "
        f"used go first (default: {defaults.max_sessions})",
    )
    shared.add_argument(
        "--proxy-headers",
        action="store_true",
        default=None,
        help="behind a reverse proxy: take the client's address, scheme and host from "
        "Forwarded or X-Forwarded-For/-Proto/-Host/-Port, from trusted peers only",
    )
    shared.add_argument(
        "--forwarded-allow-ips",
        metavar="LIST",
        help="comma-separated addresses and networks whose forwarding headers are believed; "
        "'*' for all, 'unix' for UNIX-socket peers (default: $FORWARDED_ALLOW_IPS, else "
        f"{defaults.forwarded_allow_ips})",
    )

    resp = web.add_argument_group("responses and logs")
    resp.add_argument(
        "--add-header",
        dest="headers",
        action="append",
        metavar="'NAME: VALUE'",
        help="add this header to every response a resource renders (not to the server's "
        "own refusals, such as 400, 408, 413 or 503); repeatable",
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
            ("--asgi", ns.asgi),
        )
        if value is not None
    ]
    if len(roots) != 1:
        named = " and ".join(roots) if roots else "none"
        raise UsageError(
            "give exactly one of --path DIR, --resource-script FILE, --class NAME, "
            f"--wsgi NAME or --asgi NAME (given: {named}); treadle has no demo site"
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
    for spec in LIMIT_OPTIONS:
        value = getattr(ns, f"limit_{spec.attribute}")
        if value is not None:
            # The comparisons also refuse nan.
            if spec.zero_is_off and not value >= 0:
                raise UsageError(f"{spec.option} must be 0 (off) or more, not {value}")
            if not spec.zero_is_off and not value > 0:
                raise UsageError(f"{spec.option} must be more than 0, not {value}")
            limits.append((spec.attribute, value))
    if ns.max_sessions is not None and ns.max_sessions < 1:
        raise UsageError(f"--max-sessions must be at least 1, not {ns.max_sessions}")
    allow_ips = ns.forwarded_allow_ips or os.environ.get("FORWARDED_ALLOW_IPS") or None
    if ns.forwarded_allow_ips is not None and not ns.proxy_headers:
        raise UsageError("--forwarded-allow-ips needs --proxy-headers")
    if allow_ips is not None:
        try:
            ProxyTrust.parse(allow_ips)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if ns.sessions is not None and not ns.sessions.startswith(_STORE_SCHEMES):
        # The value is not repeated: it may hold a password.
        raise UsageError(
            "--sessions: unknown kind of store; say memory:, sqlite:, sqlite:/PATH, "
            "redis://HOST:PORT/DB, rediss://... or unix:///PATH"
        )
    if ns.follow_symlinks and ns.path is None:
        raise UsageError("--follow-symlinks applies to the files of --path only")
    given: dict[str, Any] = {
        "path": ns.path,
        "resource_script": ns.resource_script,
        "class_name": ns.class_name,
        "wsgi": ns.wsgi,
        "asgi": ns.asgi,
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
        "sessions": ns.sessions,
        "secret_file": ns.secret_file,
        "max_sessions": ns.max_sessions,
        "proxy_headers": ns.proxy_headers,
        "forwarded_allow_ips": allow_ips,
    }
    # Options not given keep the dataclass defaults: they are written down only there.
    return WebOptions(**{k: v for k, v in given.items() if v is not None})
