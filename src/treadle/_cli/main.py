"""The ``treadle`` command: ``treadle web`` serves a site the way ``twistd -n web`` does.

``treadle web --path DIR`` serves a directory (static files; ``.rpy`` and ``.epy`` scripts and
``.cgi`` programs run on request), ``--resource-script FILE`` one script as the whole site,
``--class NAME`` an instance of a resource class, ``--wsgi NAME`` a WSGI application,
``--asgi NAME`` an ASGI application (its lifespan start-up runs before the ports open, its
shut-down after the graceful shutdown). The options keep ``twistd web``'s names and defaults.

The work is split so that most of it is testable without sockets. This module builds the
site and runs it; the steps before and around that live in private modules, and every name
they share is importable from here:

1. :func:`parse_command_line` turns ``argv`` into a frozen :class:`WebOptions`, checking
   everything that can be checked without touching the system. Every default lives in
   :class:`WebOptions` (both in :mod:`treadle._cli.options`; ``--listen`` descriptions are
   parsed by :func:`parse_endpoint`, in :mod:`treadle._cli.listen`).
2. :func:`make_site` builds the resource tree and the :class:`~treadle.web.server.Site`, and
   :func:`listen` (:mod:`treadle._cli.listen`) opens one endpoint; both raise
   :class:`StartupError` (:mod:`treadle._cli.errors`) on a missing path, a bad certificate,
   a port in use...
3. :func:`serve` runs the reactor until a signal, then shuts down gracefully; the log
   handlers, pid file and signal handling it sets up are in :mod:`treadle._cli.process`.

Exit status: 0 after a clean stop (including one where the grace period ran out: the stop
was asked for, and the log says which responses were cut off), 2 for a malformed command
line, 1 when the system refused (a file, a port, an import) or an ``--asgi`` application's
lifespan start-up or shut-down failed, 128 + the signal number when a second signal cut the
graceful shutdown short. Every startup error is one line on stderr,
``treadle: error: ...``, never a traceback.

Differences from ``twistd web``, on purpose:

- One of ``--path``, ``--resource-script``, ``--class``, ``--wsgi``, ``--asgi`` is required
  (twistd serves a demo).
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
- Endpoints: ``serverFromString``'s descriptions (``tcp``, ``tcp6``, ``ssl``, ``unix``,
  ``systemd``), parsed by :mod:`treadle.internet.endpoints`; a bare port means ``tcp:PORT``,
  and an unknown keyword is refused rather than ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from treadle import __version__
from treadle._cli.errors import EXIT_FAILURE, EXIT_USAGE, StartupError, UsageError
from treadle._cli.listen import Endpoint, listen, listening_on, parse_endpoint
from treadle._cli.options import WebOptions, parse_command_line
from treadle._cli.process import (
    AppLifespan,
    Logging,
    PidFile,
    Shutdown,
    finish_loop,
    stop_signals_handled,
)
from treadle._cli.sessions import RuntimeDir, needs_runtime_dir, open_session_store
from treadle.internet import reactor
from treadle.internet._reactor import ListeningPort
from treadle.web._registry import Registry
from treadle.web.resource import ResourceLike
from treadle.web.server import Request, Site

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


def _class_root(name: str) -> ResourceLike:
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
    result: ResourceLike = root
    return result


def _wsgi_root(name: str) -> ResourceLike:
    from treadle.web.wsgi import resource_from_name

    return _application_root("--wsgi", name, resource_from_name)


def _asgi_root(name: str) -> ResourceLike:
    from treadle.web.asgi import resource_from_name

    return _application_root("--asgi", name, resource_from_name)


def _application_root(option: str, name: str, make: Callable[[str], ResourceLike]) -> ResourceLike:
    """``make(name)``, the current directory importable; failures become one-line errors."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return make(name)
    except (ImportError, ValueError, TypeError) as e:
        raise StartupError(f"{option} {name}: {e}") from None
    except Exception as e:  # the application module itself failed while importing
        raise StartupError(
            f"{option} {name}: importing it failed: {type(e).__name__}: {e}"
        ) from None


def _directory_root(options: WebOptions, registry: Registry) -> ResourceLike:
    from treadle.web import script, static, twcgi

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
    # As twistd web --path: .epy and .rpy files are scripts, .cgi files CGI programs. Set on
    # the instance, like twistd; File hands processors and indexNames on to the Files it
    # makes for subdirectories.
    root.processors = {
        ".epy": script.PythonScript,
        ".rpy": script.ResourceScript,
        ".cgi": twcgi.CGIScript,
    }
    names = list(options.indexes) + [n for n in root.indexNames if n not in options.indexes]
    root.indexNames = names
    result: ResourceLike = root
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
    root: ResourceLike
    if options.path is not None:
        root = _directory_root(options, registry)
        what = os.path.abspath(options.path)
    elif options.resource_script is not None:
        from treadle.web.script import ResourceScriptWrapper

        what = os.path.abspath(options.resource_script)
        if not os.path.isfile(what):
            raise StartupError(f"--resource-script {options.resource_script}: no such file")
        root = ResourceScriptWrapper(what, registry)
    elif options.wsgi is not None:
        root = _wsgi_root(options.wsgi)
        what = f"WSGI application {options.wsgi}"
    elif options.asgi is not None:
        root = _asgi_root(options.asgi)
        what = f"ASGI application {options.asgi}"
    else:
        assert options.class_name is not None
        root = _class_root(options.class_name)
        what = options.class_name
    site = Site(
        root,
        requestFactory=_request_factory(options.headers),
        proxyHeaders=options.forwarded_allow_ips if options.proxy_headers else None,
        **open_session_store(options),
    )
    site.displayTracebacks = options.display_tracebacks
    for attribute, value in options.limits:
        setattr(site, attribute, value)
    return site, what


# -- running ----------------------------------------------------------------------------------


def serve(options: WebOptions, out: IO[str] | None = None, reuse_port: bool = False) -> int:
    """Serve until stopped by a signal.

    Prints one startup line to ``out`` (stdout), e.g. ``treadle 0.1.0 serving /srv/site on
    port 8080 of every IPv4 interface (open http://127.0.0.1:8080/)``: each endpoint as
    :func:`~treadle._cli.listen.listening_on` describes it, separated by ``", "``.

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
    logs = Logging(options)
    ports: list[ListeningPort] = []
    sockets: list[str] = []
    pidfile: PidFile | None = None
    site: Site | None = None
    lifespan: AppLifespan | None = None
    signals = contextlib.ExitStack()
    try:
        site, what = make_site(options)
        logs.attach_access_log(site)
        if options.asgi is not None:
            # Start-up before the ports open, as uvicorn: no request meets an unready app.
            lifespan = AppLifespan(site.resource)
            lifespan.start()
        # The stop signals are ours from before the ports open: one sent as soon as the
        # server listens is held until the loop runs (when ``shutdown`` exists), then shuts
        # down gracefully, instead of killing the process outright.
        stopping: list[Shutdown] = []
        signals.enter_context(stop_signals_handled(lambda signum: stopping[0].on_signal(signum)))
        where = []
        for endpoint in options.listen:
            port = listen(endpoint, site, reuse_port)
            ports.append(port)
            if endpoint.kind == "unix":
                sockets.append(endpoint.address)
            where.append(listening_on(endpoint, port.socket))
        if options.pidfile is not None:
            pidfile = PidFile(options.pidfile)
        shutdown = Shutdown(site, ports, options.grace, lifespan)
        stopping.append(shutdown)
        # Modules, the site and its resources live as long as the process: freezing them
        # keeps every later collection to what requests create (with thousands of pending
        # responses, full collections walking the start-up heap cost ~10 % of the CPU).
        gc.collect()
        gc.freeze()
        print(f"treadle {__version__} serving {what} on {', '.join(where)}", file=out, flush=True)
        reactor.run(installSignalHandlers=False)
        return shutdown.exit_code
    finally:
        signals.close()
        for port in ports:
            port.stopListening()
        for path in sockets:
            # As Twisted does, remove the socket files this process created.
            with contextlib.suppress(OSError):
                os.unlink(path)
        if lifespan is not None:
            lifespan.stop_now()  # serving never began, or the reactor was stopped otherwise
        if site is not None and (ports or lifespan is not None):
            finish_loop(site)
        if pidfile is not None:
            pidfile.remove()
        logs.close()


def _serve_workers(options: WebOptions) -> int:
    """Run ``options.workers`` processes on the same ports (see :mod:`treadle._cli.workers`)."""
    from treadle._cli import workers as _workers

    make_site(options)  # a missing path or a bad --class is reported once, here
    try:
        options, reserved = _workers.reserve_ports(options)
    except ValueError as e:
        raise StartupError(str(e)) from None
    except OSError as e:
        raise StartupError(f"cannot listen: {e.strerror or e}") from None
    pidfile: PidFile | None = None
    try:
        # The supervisor's id goes in the pid file: it is the process to signal, and each
        # worker writing its own would find the file held by a sibling and refuse to start.
        if options.pidfile is not None:
            pidfile = PidFile(options.pidfile)
            options = dataclasses.replace(options, pidfile=None)
        where = ", ".join(
            listening_on(endpoint, sock)
            for endpoint, sock in zip(options.listen, reserved, strict=True)
        )
        what = (
            options.path
            or options.resource_script
            or options.class_name
            or options.wsgi
            or options.asgi
        )
        line = f"treadle {__version__} serving {what} with {options.workers} workers on {where}"
        return _workers.run_workers(options, serve, lambda: print(line, flush=True))
    finally:
        if pidfile is not None:
            pidfile.remove()
        for sock in reserved:
            sock.close()


# twistd's options that change nothing under treadle, as ``treadle run`` accepts them.
_IGNORED_TWISTD_FLAGS = frozenset({"-n", "--nodaemon", "-o", "--no_save"})
_IGNORED_TWISTD_VALUES = frozenset({"-r", "--reactor"})


def _twistd_web_arguments(args: Sequence[str]) -> list[str] | None:
    """``["web", *ARGS]`` for ``treadle run [-n] web ARGS`` (``twistd -n web`` ported word
    for word: twistd's built-in ``web`` plugin is ``treadle web``); None for any other
    ``treadle run``."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _IGNORED_TWISTD_FLAGS or arg.startswith("--reactor="):
            i += 1
        elif arg in _IGNORED_TWISTD_VALUES:
            i += 2
        elif arg == "web":
            return ["web", *args[i + 1 :]]
        else:
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``treadle`` command.

    Args:
        argv: The arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status: 0 after a clean stop, 2 for a malformed command line, 1 when the
        server could not start, 128 + N after a second signal N.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["run"]:
        web_args = _twistd_web_arguments(args[1:])
        if web_args is None:
            # ``treadle run`` (twistd's options and plugins) has a parser of its own.
            from treadle._cli.run import main as run_main

            return run_main(args[1:])
        args = web_args
    try:
        options = parse_command_line(args)
    except UsageError as e:
        print(f"treadle: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    runtime: RuntimeDir | None = None
    try:
        if needs_runtime_dir(options) and options.runtime_dir is None:
            # Made here, before any worker starts, so that they all share it.
            runtime = RuntimeDir()
            options = runtime.given_to(options)
        if options.workers > 1:
            return _serve_workers(options)
        return serve(options)
    except StartupError as e:
        print(f"treadle: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if runtime is not None:
            runtime.remove()
