"""``treadle run``: run an application (``.tac`` file) or a plugin, as ``twistd -n`` does.

``treadle run -y app.tac`` runs the file, takes its ``application`` variable, starts its
services and runs the reactor until SIGTERM or SIGINT; then it stops the services (last
added first, waiting for the Deferreds they return) and exits with status 0.
``treadle run PLUGIN [options]`` does the same with the service the plugin's
``IServiceMaker.makeService`` builds from its options (see :mod:`treadle.plugin` for where
plugins are found; ``treadle run --help`` lists them).

The options are ``twistd``'s (parsed with :class:`treadle.python.usage.Options`, the same
grammar, so ``treadle run -noy app.tac`` works): ``-y/--python FILE``, ``--pidfile FILE``,
``-l/--logfile FILE`` (``-`` is standard output, the default), and ``-n/--nodaemon``,
``-o/--no_save`` and ``-r/--reactor NAME``, which are accepted and change nothing: treadle
always runs in the foreground, saves no state and has one reactor.

The sequence is twistd's: the current directory goes on ``sys.path``, the file is loaded
(its ``twisted.*`` imports served by treadle), the pid file written, then
``privilegedStartService``, the switch to the application's ``uid``/``gid`` (only when
started as root), ``startService``, and the reactor runs. If the program stops the reactor
itself, the services are stopped the same way before the process exits.

Exit status: 0 after a clean stop; 2 for a malformed command line; 1 when the application
could not be loaded or started (one line on stderr, ``treadle: error: ...``, after the
traceback of the program's own code when that is what failed); 128 + N when a second
signal N cut the stopping short.

Differences from ``twistd``, on purpose: no daemon mode; no pid file unless ``--pidfile``
is given (twistd writes ``twistd.pid`` in the current directory); after a signal the exit
status is 0 (twistd kills itself with the signal again); a second signal stops at once
(twistd ignores it and keeps waiting for the services); a command-line error exits with
status 2, not 1, and prints a one-line hint rather than the whole help.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from treadle import __version__
from treadle._cli.errors import EXIT_FAILURE, EXIT_USAGE, StartupError
from treadle._cli.process import PidFile, close_loop, stop_signals_handled
from treadle.application import service
from treadle.internet import reactor
from treadle.internet.defer import Deferred, maybeDeferred
from treadle.plugin import getPlugins
from treadle.python import usage
from treadle.python.failure import Failure
from treadle.python.util import switchUID

__all__ = ["RunOptions", "main"]

log = logging.getLogger("treadle.cli")

_LOG_FORMAT = "%(asctime)s [%(name)s] %(message)s"
_LOG_TIME = "%Y-%m-%dT%H:%M:%S%z"


class RunOptions(usage.Options):
    """The command line of ``treadle run`` (twistd's options that make sense here)."""

    synopsis = "Usage: treadle run [options]"
    longdesc = (
        "treadle run -y FILE.tac | PLUGIN [plugin options]: run a Twisted application in "
        "the foreground, the 'application' of a .tac file (-y) or the service of a plugin "
        "found in a treadle/plugins or twisted/plugins folder on the Python path (listed "
        "below). SIGTERM or SIGINT stops its services, last started first, then the process."
    )
    optFlags = [
        ["nodaemon", "n", "Accepted for twistd compatibility: treadle always runs in the "
         "foreground."],
        ["no_save", "o", "Accepted for twistd compatibility: nothing is saved at shutdown."],
    ]  # fmt: skip
    optParameters = [
        ["python", "y", None, "Run the application in this Python (.tac) file."],
        ["pidfile", None, None, "Write the process id to this file while running."],
        ["logfile", "l", "-", "Log to this file ('-' for standard output)."],
        ["reactor", "r", None, "Accepted for twistd compatibility and ignored: treadle "
         "has one reactor."],
    ]  # fmt: skip

    def __init__(self) -> None:
        self.loadedPlugins: dict[str, Any] = {}
        super().__init__()

    @property
    def subCommands(self) -> Iterator[tuple[str, None, Any, str]]:
        """The plugins found, as sub-commands, by name."""
        self.loadedPlugins = {}
        for plugin in sorted(getPlugins(service.IServiceMaker), key=lambda p: p.tapname):
            self.loadedPlugins[plugin.tapname] = plugin
            # The options class is looked up only if the plugin is the one asked for.
            yield plugin.tapname, None, (lambda plugin=plugin: plugin.options()), plugin.description

    def _parse_sub_command(self, subCommands: Any, args: list[Any]) -> None:
        commands = list(subCommands)
        if args[0] not in self.loadedPlugins:
            found = ", ".join(self.loadedPlugins) or "none"
            raise usage.UsageError(
                f"no plugin named {args[0]!r} (plugins found: {found}; see treadle run --help)"
            )
        super()._parse_sub_command(commands, args)

    def postOptions(self) -> None:
        """Require exactly one of ``-y FILE`` and a plugin."""
        if self.subCommand is not None and self["python"] is not None:
            raise usage.UsageError("give either -y FILE or a plugin, not both")
        if self.subCommand is None and self["python"] is None:
            raise usage.UsageError("say what to run: -y FILE.tac or a plugin name")


# -- the process ------------------------------------------------------------------------------


class _Logging:
    """Every log record (the root logger, INFO and up) to ``--logfile``; undone by close()."""

    def __init__(self, logfile: str) -> None:
        handler: logging.Handler
        if logfile == "-":
            handler = logging.StreamHandler(sys.stdout)
        else:
            try:
                handler = logging.FileHandler(logfile, encoding="utf-8")
            except OSError as e:
                raise StartupError(f"--logfile {logfile}: {e.strerror or e}") from None
        handler.setFormatter(logging.Formatter(_LOG_FORMAT, _LOG_TIME))
        self._handler = handler
        root = logging.getLogger()
        self._level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)

    def hand_over(self, observer: Any) -> None:
        """Make ``observer`` the program's log instead of ``--logfile``, as twistd does when
        an application carries an ``ILogObserver`` component."""
        from treadle.logger import globalLogBeginner

        logging.getLogger().removeHandler(self._handler)
        globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)

    def close(self) -> None:
        """Detach and close the handler, restore the root level."""
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.setLevel(self._level)
        self._handler.close()


def _put_cwd_on_path() -> None:
    # As twistd: modules beside the .tac file, and ./twisted/plugins, are found.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _loaded_from_the_file(error: KeyError) -> bool:
    """Whether the KeyError is loadApplication's own (no ``application``), not the file's."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename == service.__file__


def _application_from_file(path: str) -> Any:
    log.info("Loading %s...", path)
    try:
        application = service.loadApplication(path, "python")
    except OSError as e:
        raise StartupError(f"-y {path}: {e.strerror or e}") from None
    except KeyError as e:
        if e.args == ("application",) and _loaded_from_the_file(e):
            raise StartupError(
                f"-y {path}: the file defines no 'application' variable. A .tac file "
                "must create one, e.g. application = service.Application('name'), and "
                "add its services to it"
            ) from None
        raise _program_error(f"-y {path}: loading the application failed", e) from None
    except Exception as e:
        raise _program_error(f"-y {path}: loading the application failed", e) from None
    if service.IService(application, None) is None:
        raise StartupError(
            f"-y {path}: 'application' is {application!r}, not an application "
            "(make it with service.Application('name'))"
        )
    log.info("Loaded.")
    return application


def _application_from_plugin(options: RunOptions) -> Any:
    name = options.subCommand
    assert name is not None
    plugin = options.loadedPlugins[name]
    try:
        made = plugin.makeService(options.subOptions)
    except Exception as e:
        raise _program_error(f"plugin {name}: makeService failed", e) from None
    application = service.Application(plugin.tapname)
    made.setServiceParent(application)
    return application


def _program_error(what: str, error: BaseException) -> StartupError:
    """The error for the program's own code failing: its traceback first, on stderr."""
    traceback.print_exception(error, file=sys.stderr)
    return StartupError(f"{what}: {type(error).__name__}: {error}")


def _switch_user(application: Any) -> None:
    """Run as the application's ``uid``/``gid`` (IProcess) when started as root, as twistd:
    a user without a group gets the user's own, and the user's supplementary groups."""
    process = service.IProcess(application, None)
    uid = getattr(process, "uid", None)
    gid = getattr(process, "gid", None)
    if os.getuid() != 0 or (uid is None and gid is None):
        return
    try:
        if uid is not None and gid is None:
            gid = pwd.getpwuid(uid).pw_gid
        switchUID(uid, gid)
    except KeyError:
        raise StartupError(f"cannot switch to uid {uid}: no such user") from None
    except OSError as e:
        raise StartupError(f"cannot switch to uid {uid}, gid {gid}: {e.strerror or e}") from None
    log.info("Switched to uid %s, gid %s.", uid, gid)


class _Stopper:
    """Stops the application on SIGTERM/SIGINT, or when the program stops the reactor.

    The first signal stops the services (their Deferreds are waited for), then the reactor;
    a second one stops the reactor at once.
    """

    def __init__(self, root: Any) -> None:
        self.root = root
        self.exit_code = 0
        self._stopping: Deferred[Any] | None = None
        self._forced = False
        self._waiter: Deferred[None] | None = None

    def on_signal(self, signum: int) -> None:
        """Stop gracefully on the first signal, at once on the second."""
        name = signal.Signals(signum).name
        if self._stopping is None:
            log.info("Received %s, shutting down.", name)
            self._stop_services().addBoth(self._stop_reactor)
            return
        log.warning("Received %s again: stopping now, without waiting for the services.", name)
        self._forced = True
        self.exit_code = 128 + signum
        waiter = self._waiter
        if waiter is not None and not waiter.called:
            waiter.callback(None)
        self._stop_reactor(None)

    def before_shutdown(self) -> Deferred[None] | None:
        """The reactor's shutdown trigger: stop the services if no signal did yet."""
        if self._forced:
            return None
        stopping = self._stop_services()
        if stopping.called:
            return None
        # A Deferred of our own, so that a second signal can end the wait.
        waiter = self._waiter = Deferred()

        def release(result: object) -> object:
            if not waiter.called:
                waiter.callback(None)
            return result

        stopping.addBoth(release)
        return waiter

    def _stop_services(self) -> Deferred[Any]:
        if self._stopping is None:
            self._stopping = maybeDeferred(self.root.stopService)
            self._stopping.addErrback(self._stop_failed)
        return self._stopping

    def _stop_failed(self, failure: Failure) -> None:
        log.error(
            "stopping the application failed",
            exc_info=(failure.type, failure.value, failure.tb),
        )

    def _stop_reactor(self, result: object) -> None:
        if reactor.running:
            reactor.stop()


def _run_reactor() -> None:
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        close_loop(reactor.loop)


def _start(application: Any, root: Any, what: str, stopper: _Stopper) -> None:
    try:
        root.privilegedStartService()
        _switch_user(application)
        root.startService()
    except StartupError:
        raise
    except Exception as e:
        log.error("starting the application failed", exc_info=True)
        raise StartupError(
            f"{what}: starting the application failed: {type(e).__name__}: {e}"
        ) from None
    reactor.addSystemEventTrigger("before", "shutdown", stopper.before_shutdown)


def _log_observer_of(application: Any) -> Any:
    """The log observer an application names as its ``ILogObserver`` component, or None.

    Both kinds twistd honours: a ``treadle.logger`` observer (events) and a legacy
    ``treadle.python.log`` one (event dicts), which is wrapped.
    """
    from treadle.logger import ILogObserver, LegacyLogObserverWrapper
    from treadle.python.log import ILogObserver as LegacyILogObserver

    get = getattr(application, "getComponent", None)
    if get is None:
        return None
    observer = get(ILogObserver, None)
    if observer is not None:
        return observer
    legacy = get(LegacyILogObserver, None)
    return LegacyLogObserverWrapper(legacy) if legacy is not None else None


def run(options: RunOptions, logs: _Logging | None = None) -> int:
    """Load, start and run the application ``options`` describe, until it is stopped.

    Args:
        options: The parsed command line.
        logs: Where ``--logfile`` logs, handed over to the application's own log observer
            when it has one.

    Returns:
        The exit status (see the module docstring).

    Raises:
        StartupError: The application could not be loaded or started.
    """
    path = options["python"]
    if path is not None:
        application = _application_from_file(path)
        what = f"-y {path}"
        observer = _log_observer_of(application)
        if observer is not None and logs is not None:
            logs.hand_over(observer)
    else:
        application = _application_from_plugin(options)
        what = f"plugin {options.subCommand}"
    pidfile = PidFile(options["pidfile"]) if options["pidfile"] is not None else None
    root: Any = service.IService(application)
    stopper = _Stopper(root)
    try:
        # Our handlers, not the reactor's: they stay in place while the services stop. Set
        # before the services start: a SIGTERM sent as soon as the application listens is
        # held until the loop runs, then stops it gracefully, instead of killing it outright.
        with stop_signals_handled(stopper.on_signal):
            _start(application, root, what, stopper)
            log.info("treadle %s running %s (pid %d).", __version__, what, os.getpid())
            _run_reactor()
        log.info("Server shut down.")
        return stopper.exit_code
    finally:
        if pidfile is not None:
            pidfile.remove()


def main(argv: Sequence[str]) -> int:
    """Run ``treadle run`` with ``argv`` (the arguments after ``run``).

    Returns:
        The exit status (see the module docstring).
    """
    _put_cwd_on_path()
    options = RunOptions()
    try:
        options.parseOptions(list(argv))
    except usage.UsageError as e:
        print(f"treadle run: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help, --version (of treadle run or of the plugin)
        return e.code if isinstance(e.code, int) else 0
    try:
        logs = _Logging(options["logfile"])
    except StartupError as e:
        print(f"treadle: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        return run(options, logs)
    except StartupError as e:
        print(f"treadle: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        logs.close()
