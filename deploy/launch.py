#!/usr/bin/env python3
"""Start a small treadle deployment on one command: Redis, two instances, nginx in front.

``python deploy/launch.py`` starts, all inside one run directory (pid files, logs, sockets,
nginx's prefix and temporary files; nothing of the system's is touched):

* ``redis-server`` on a UNIX socket in the run directory (``--redis-port`` for TCP), the
  session store every instance shares, with persistence off;
* one ``treadle web --workers 2`` per backend address, by default 127.0.0.2 and 127.0.0.3 on
  the same port: two "machines" on one loopback interface. Each gets ``--sessions`` (the
  Redis URL), ``--secret-file`` (a shared secret the launcher generates, mode 0600),
  ``--proxy-headers --forwarded-allow-ips 127.0.0.1`` (it believes only nginx) and the
  environment variable ``TREADLE_INSTANCE=ADDRESS:PORT``, so a page can say which instance
  answered;
* nginx as the user who runs the launcher, with its own prefix and configuration made from
  ``deploy/nginx.conf.template``: an upstream of the instances with passive health checks,
  keep-alive connections to them, retries of failed idempotent requests on the other, and
  the ``X-Forwarded-*`` headers set.

It waits until each program serves before starting the next, prints where everything is,
then supervises: an instance that exits is started again; SIGHUP restarts the instances one
after the other (a rolling restart: each is stopped gracefully, started, and nginx is seen
sending it requests again before the next one stops); SIGINT (Ctrl-C) or SIGTERM stops
nginx (letting its requests finish), then the instances (drained), then Redis, and exits 0.

Used as a library (``tests/test_deploy.py`` does)::

    with Deployment(Settings(path=site, run_dir=tmp, port=0, backend_port=0)) as deployment:
        deployment.url                      # http://127.0.0.1:PORT/ (nginx)
        deployment.restart(deployment.instances[0])
        deployment.instances[1].kill()      # SIGKILL to its supervisor and workers

Standard library only; the instances run ``python -m treadle web`` with the launcher's own
interpreter unless ``--treadle`` names another command.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import http.client
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Final

__all__ = [
    "DeployError",
    "Deployment",
    "Instance",
    "Process",
    "Settings",
    "find_program",
    "group_pids",
    "http_get",
    "main",
    "process_gone",
]

DEPLOY_DIR: Final = Path(__file__).resolve().parent
TEMPLATE: Final = DEPLOY_DIR / "nginx.conf.template"
#: The environment variable naming each instance (``ADDRESS:PORT``) to the programs it runs.
INSTANCE_ENV: Final = "TREADLE_INSTANCE"
#: How often a wait for a condition looks again.
_POLL: Final = 0.05
#: An instance that exits sooner than this after starting, three times in a row, is not
#: started again by the supervising loop: it cannot start at all.
_QUICK_EXIT: Final = 5.0
_MAX_QUICK_EXITS: Final = 3
#: The longest path a UNIX socket can have on Linux (sun_path is 108 bytes, NUL included).
_MAX_SOCKET_PATH: Final = 107


class DeployError(Exception):
    """A program could not be found, started or stopped; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to start, and where.

    Attributes:
        path: The directory the instances serve (``treadle web --path``).
        run_dir: Where everything goes; None makes a new temporary directory.
        host: The address nginx listens on, and connects to the instances from (the one
            address the instances trust for forwarding headers).
        port: nginx's port; 0 picks a free one.
        backends: One instance per address, all on ``backend_port``.
        backend_port: The instances' port; 0 picks one free on every backend address.
        workers: ``treadle web --workers`` of each instance.
        grace: ``treadle web --grace``: how long a stopping instance lets responses finish.
        shared_state: Pass ``--sessions``, ``--secret-file``, ``--proxy-headers`` and
            ``--forwarded-allow-ips``. Off only for a treadle that lacks them (sessions then
            stay inside each worker).
        redis_port: Redis on TCP ``127.0.0.1:redis_port`` (0: a free one) instead of the UNIX
            socket in the run directory.
        max_fails: nginx's ``max_fails``: failed tries that take an instance out...
        fail_timeout: ...for this many seconds (nginx counts whole seconds).
        nginx_workers: nginx's ``worker_processes``.
        treadle: The command that runs treadle (``web`` and its options follow).
        treadle_args: More ``treadle web`` options for every instance.
        nginx: The nginx binary; None looks in PATH and the usual sbin directories.
        redis_server: The redis-server binary; None looks the same way.
        start_timeout: Seconds each program has to start serving.
        probe_path: The path requested through nginx and from each instance to see that it
            serves (any HTTP answer counts).
    """

    path: Path = DEPLOY_DIR.parent / "examples"
    run_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    backends: tuple[str, ...] = ("127.0.0.2", "127.0.0.3")
    backend_port: int = 8081
    workers: int = 2
    grace: float = 10.0
    shared_state: bool = True
    redis_port: int | None = None
    max_fails: int = 1
    fail_timeout: int = 2
    nginx_workers: int = 1
    treadle: tuple[str, ...] = (sys.executable, "-m", "treadle")
    treadle_args: tuple[str, ...] = ()
    nginx: str | None = None
    redis_server: str | None = None
    start_timeout: float = 20.0
    probe_path: str = "/"


# -- processes --------------------------------------------------------------------------------


class Process:
    """One program the launcher runs, in its own process group, its output to a log file.

    Its own process group (and session) keeps a Ctrl-C typed in the launcher's terminal
    from reaching it directly: the launcher stops the programs itself, in order. It also
    lets :meth:`kill` reach every process the program forked (workers included).

    Args:
        name: Names it in messages.
        argv: The command.
        log: Its standard output and error are appended here.
        stop_signal: The signal that stops it gracefully.
        env: Its environment (None: the launcher's).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        stop_signal: signal.Signals = signal.SIGTERM,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.stop_signal = stop_signal
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        # The run the stop signal went to: sent twice, it would make treadle (and nginx,
        # for SIGQUIT then SIGTERM) stop at once instead of finishing what it serves.
        self._told_to_stop: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id of the last start (also its process group id), or None."""
        return None if self.popen is None else self.popen.pid

    @property
    def running(self) -> bool:
        """Whether it was started and has not exited."""
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Its exit status once it exited (negative: killed by that signal), else None."""
        return None if self.popen is None else self.popen.poll()

    def start(self) -> None:
        """Start it (again, if it ran before and exited)."""
        if self.running:
            raise DeployError(f"{self.name} is running already (pid {self.pid})")
        with open(self.log, "ab") as out:
            out.write(f"==== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(self.argv)}\n".encode())
            out.flush()
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                )
            except OSError as e:
                raise DeployError(f"{self.name}: cannot run {self.argv[0]}: {e}") from None
        self.started_at = time.monotonic()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the program's main process (nothing if it is not running)."""
        if self.running and self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL to every process of its group at once (a crash, as ``kill -9`` does)."""
        if self.popen is not None and group_pids(self.popen.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        """Wait until the program and every process of its group are gone; its status.

        Raises:
            DeployError: Still there after ``timeout`` seconds.
        """
        if self.popen is None:
            raise DeployError(f"{self.name} was never started")
        deadline = time.monotonic() + timeout
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DeployError(
                f"{self.name} (pid {self.pid}) still running after {timeout:g}s"
            ) from None
        # Workers leave after their parent when they were not told to leave with it.
        pgid = self.popen.pid
        _wait_until(
            lambda: not group_pids(pgid),
            deadline - time.monotonic(),
            f"{self.name}: processes of group {pgid} to exit",
        )
        return code

    def begin_stop(self) -> None:
        """Send its stop signal, once per run: it starts finishing what it serves."""
        if self.popen is not None and self._told_to_stop is not self.popen:
            self._told_to_stop = self.popen
            self.signal(self.stop_signal)

    def stop(self, timeout: float) -> int | None:
        """Stop it gracefully (its stop signal), then by SIGKILL after ``timeout`` seconds.

        Returns:
            Its exit status, or None if it was not started.
        """
        if self.popen is None:
            return None
        self.begin_stop()
        try:
            return self.wait(timeout)
        except DeployError:
            self.kill()
            return self.wait(5.0)

    def log_tail(self, lines: int = 15) -> str:
        """The end of its log, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])

    def check_running(self) -> None:
        """Raise :class:`DeployError` with the end of the log if it has exited."""
        if self.popen is not None and not self.running:
            raise DeployError(
                f"{self.name} exited with status {self.returncode}; end of {self.log}:\n"
                f"{self.log_tail()}"
            )


class Instance(Process):
    """One ``treadle web`` instance (a supervisor and its workers) on one address.

    Attributes:
        address: The address it listens on.
        port: Its port.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        address: str,
        port: int,
        env: dict[str, str],
    ) -> None:
        super().__init__(name, argv, log, signal.SIGTERM, env)
        self.address = address
        self.port = port

    @property
    def endpoint(self) -> str:
        """``ADDRESS:PORT``, as nginx names it in ``$upstream_addr``."""
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        """The instance's own URL (bypassing nginx)."""
        return f"http://{self.endpoint}/"

    def worker_pids(self) -> list[int]:
        """The process ids of its workers (the other processes of the supervisor's group)."""
        if not self.running or self.pid is None:
            return []
        return [pid for pid in group_pids(self.pid) if pid != self.pid]


def group_pids(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` that still run (zombies do not count).

    Read from /proc (Linux): a killed process whose parent died too may stay a zombie for a
    while if nothing reaps it, and ``kill(pid, 0)`` would still find it.
    """
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():  # no /proc: ask the kernel about the group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        state, pgrp = _stat_fields(entry / "stat")
        if pgrp == pgid and state not in ("Z", "X", ""):
            found.append(int(entry.name))
    return sorted(found)


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` no longer runs (exited, or a zombie)."""
    state, _ = _stat_fields(Path(f"/proc/{pid}/stat"))
    if state:
        return state in ("Z", "X")
    return not _process_exists(pid)


def _stat_fields(path: Path) -> tuple[str, int]:
    """``(state, process group)`` from a /proc/PID/stat file; ``("", 0)`` if unreadable."""
    try:
        stat = path.read_text()
    except OSError:
        return "", 0
    # The command name (in parentheses) may hold spaces: the fields follow the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], int(fields[2])


def _wait_until(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    check: Callable[[], None] = lambda: None,
) -> None:
    """Poll ``condition`` until true; ``check`` may raise to give up early."""
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        if condition():
            return
        check()
        if time.monotonic() >= deadline:
            raise DeployError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(_POLL)


# -- probes -----------------------------------------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a UNIX socket (nginx's probe server)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def http_get(
    connection: http.client.HTTPConnection, path: str
) -> tuple[int, dict[str, str], bytes] | None:
    """One GET on a fresh connection: ``(status, headers, body)``, None if it failed."""
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def _redis_answers(address: str | tuple[str, int]) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(address)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _free_port(addresses: Sequence[str]) -> int:
    """A port free on every one of ``addresses`` (a fresh ephemeral port, checked)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((addresses[0], 0))
            port: int = first.getsockname()[1]
            held = []
            try:
                for address in addresses[1:]:
                    other = socket.socket()
                    held.append(other)
                    other.bind((address, port))
            except OSError:
                continue
            finally:
                for sock in held:
                    sock.close()
        return port
    raise DeployError(f"no port free on all of {', '.join(addresses)}")


def find_program(name: str, given: str | None = None) -> str | None:
    """The path of program ``name`` (``given`` if set): PATH, then the usual sbin dirs."""
    if given:
        return shutil.which(given)
    extra = os.pathsep.join(("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/nginx/sbin"))
    return shutil.which(name) or shutil.which(name, path=extra)


# -- the deployment ---------------------------------------------------------------------------


class Deployment:
    """Redis, the treadle instances and nginx, started and stopped together.

    Attributes:
        settings: As given, with ports of 0 replaced by the ones picked.
        run_dir: Where everything lives.
        log_dir: ``run_dir/logs``.
        secret_file: The sessions' secret, shared by the instances.
        session_url: The Redis URL the instances get.
        url: The site, through nginx.
        redis: The Redis process.
        instances: The treadle instances, one per backend address.
        nginx: The nginx process.
    """

    def __init__(self, settings: Settings) -> None:
        self.nginx_binary = find_program("nginx", settings.nginx)
        self.redis_binary = find_program("redis-server", settings.redis_server)
        missing = [
            n
            for n, b in (("nginx", self.nginx_binary), ("redis-server", self.redis_binary))
            if b is None
        ]
        if missing:
            raise DeployError(f"not found: {', '.join(missing)} (install them, or give the path)")
        if not settings.backends:
            raise DeployError("no backend address")
        if settings.port == 0:
            settings = dataclasses.replace(settings, port=_free_port([settings.host]))
        if settings.backend_port == 0:
            settings = dataclasses.replace(settings, backend_port=_free_port(settings.backends))
        if settings.redis_port == 0:
            settings = dataclasses.replace(settings, redis_port=_free_port(["127.0.0.1"]))
        self.settings = settings
        self.run_dir = (
            Path(tempfile.mkdtemp(prefix="treadle-deploy-"))
            if settings.run_dir is None
            else settings.run_dir.resolve()
        )
        self.log_dir = self.run_dir / "logs"
        self.prefix = self.run_dir / "nginx"
        self.secret_file = self.run_dir / "secret"
        self.nginx_conf = self.prefix / "nginx.conf"
        self.probe_socket = self.run_dir / "nginx-probe.sock"
        self.redis_socket = self.run_dir / "redis.sock"
        self.url = f"http://{settings.host}:{settings.port}/"
        if settings.redis_port is None:
            self.session_url = f"unix://{self.redis_socket}"
        else:
            self.session_url = f"redis://127.0.0.1:{settings.redis_port}/0"
        self.redis = Process("redis", self._redis_argv(), self.log_dir / "redis.log")
        self.instances = [self._instance(address) for address in settings.backends]
        # SIGQUIT: nginx stops accepting, lets the requests it is serving finish, then exits.
        self.nginx = Process(
            "nginx", self._nginx_argv(), self.log_dir / "nginx.log", signal.SIGQUIT
        )

    # -- building the commands

    def _redis_argv(self) -> list[str]:
        # In the foreground, logging to standard output, persisting nothing.
        argv = [str(self.redis_binary), "--daemonize", "no", "--bind", "127.0.0.1",
                "--dir", str(self.run_dir / "redis"), "--pidfile", str(self.run_dir / "redis.pid"),
                "--logfile", "", "--save", "", "--appendonly", "no"]  # fmt: skip
        if self.settings.redis_port is None:
            # No TCP port at all: only this user can reach the socket.
            argv += ["--port", "0", "--unixsocket", str(self.redis_socket),
                     "--unixsocketperm", "600"]  # fmt: skip
        else:
            argv += ["--port", str(self.settings.redis_port)]
        return argv

    def _nginx_argv(self) -> list[str]:
        argv = [str(self.nginx_binary), "-p", f"{self.prefix}/", "-c", str(self.nginx_conf)]
        # Before it reads its configuration nginx logs to its built-in error log path
        # (/var/log/nginx/error.log): -e (nginx 1.19.5 and later) keeps that in the run dir.
        version = subprocess.run(
            [str(self.nginx_binary), "-v"], capture_output=True, text=True, check=False
        ).stderr
        found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", version)
        if found is None or tuple(map(int, found.groups())) >= (1, 19, 5):
            argv += ["-e", str(self.log_dir / "nginx-error.log")]
        return argv

    def _instance(self, address: str) -> Instance:
        s = self.settings
        name = f"treadle-{address}"
        argv = [*s.treadle, "web", "--path", str(Path(s.path).resolve()),
                "--listen", f"tcp:{s.backend_port}:interface={address}",
                "--workers", str(s.workers), "--grace", f"{s.grace:g}",
                "--pidfile", str(self.run_dir / f"{name}.pid"),
                "--logfile", str(self.log_dir / f"{name}-access.log")]  # fmt: skip
        if s.shared_state:
            argv += ["--sessions", self.session_url, "--secret-file", str(self.secret_file),
                     "--proxy-headers", "--forwarded-allow-ips", s.host]  # fmt: skip
        argv += s.treadle_args
        env = dict(os.environ)
        env[INSTANCE_ENV] = f"{address}:{s.backend_port}"
        return Instance(name, argv, self.log_dir / f"{name}.log", address, s.backend_port, env)

    def nginx_config(self) -> str:
        """The nginx configuration: the template with this deployment's values."""
        s = self.settings
        servers = "\n".join(
            f"        server {i.endpoint} max_fails={s.max_fails} fail_timeout={s.fail_timeout}s;"
            for i in self.instances
        )
        values = {
            # As root, nginx would run its workers as "nobody"; as anyone else it runs
            # them as that user and warns about a "user" line.
            "USER_LINE": "user root;" if os.geteuid() == 0 else "# (runs as the current user)",
            "NGINX_WORKERS": str(s.nginx_workers),
            "RUN_DIR": str(self.run_dir),
            "PREFIX": str(self.prefix),
            "LOG_DIR": str(self.log_dir),
            "SERVERS": servers,
            "LISTEN": f"{s.host}:{s.port}",
            "PROXY_FROM": s.host,
        }
        template = TEMPLATE.read_text()
        unknown = set(re.findall(r"@([A-Z_]+)@", template)) - values.keys()
        if unknown:
            raise DeployError(f"{TEMPLATE}: unknown placeholders {sorted(unknown)}")
        return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], template)

    # -- the run directory

    def _prepare(self) -> None:
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)  # sockets and the secret live here
        for sub in (self.log_dir, self.prefix, self.run_dir / "redis"):
            sub.mkdir(exist_ok=True)
        if len(os.fsencode(self.probe_socket)) > _MAX_SOCKET_PATH:
            raise DeployError(
                f"{self.run_dir}: too long a path for UNIX sockets; use a shorter one"
            )
        names = ["nginx", "redis", *(i.name for i in self.instances)]
        for pidfile in (self.run_dir / f"{name}.pid" for name in names):
            pid = _read_pid(pidfile)
            if pid is not None and _process_exists(pid):
                raise DeployError(
                    f"{self.run_dir} is in use: {pidfile.name} names running process {pid}"
                )
            with contextlib.suppress(FileNotFoundError):
                pidfile.unlink()
        for sock in (self.probe_socket, self.redis_socket):
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        self._write_secret()
        self.nginx_conf.write_text(self.nginx_config())

    def _write_secret(self) -> None:
        """A new random secret, readable by this user only; an existing one is kept."""
        try:
            fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            mode = self.secret_file.stat().st_mode & 0o777
            if mode & 0o077:
                raise DeployError(
                    f"{self.secret_file} is readable by others (mode {mode:o}): delete it "
                    "and a new one is made"
                ) from None
            return
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")

    # -- starting and stopping

    def start(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Start Redis, the instances and nginx, each serving before the next starts.

        Args:
            should_stop: Polled while waiting; when it turns true, starting is given up
                (and what started is stopped).

        Raises:
            DeployError: A program did not start (the message has the end of its log);
                everything started so far is stopped again.
        """
        try:
            self._prepare()
            self.redis.start()
            self._wait_ready(self.redis, self._redis_ready, should_stop)
            for instance in self.instances:
                instance.start()
            for instance in self.instances:
                self._wait_ready(
                    instance, functools.partial(self.instance_serves, instance), should_stop
                )
            self._check_nginx_config()
            self.nginx.start()
            self._wait_ready(self.nginx, self._nginx_ready, should_stop)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop nginx (its requests finish), then the instances (drained), then Redis."""
        grace = self.settings.grace + 5.0
        self.nginx.stop(grace)
        for instance in self.instances:
            instance.begin_stop()  # all drain at once
        for instance in self.instances:
            instance.stop(grace)
        self.redis.stop(10.0)

    def restart(self, instance: Instance) -> None:
        """Stop ``instance`` gracefully, start it again, wait until nginx uses it again."""
        self.stop_instance(instance)
        self.start_instance(instance)

    def stop_instance(self, instance: Instance) -> int | None:
        """SIGTERM to the instance; wait until it (and its workers) exited; its status."""
        return instance.stop(self.settings.grace + 5.0)

    def start_instance(self, instance: Instance) -> None:
        """Start the instance; wait until it serves and nginx sends it requests again."""
        instance.start()
        self._wait_ready(instance, lambda: self.instance_serves(instance))
        self.wait_in_rotation(instance)

    def rolling_restart(self) -> None:
        """Restart the instances one after another, each back in nginx's rotation before
        the next one stops: with two instances or more, no request is refused."""
        for instance in self.instances:
            self.restart(instance)

    def __enter__(self) -> Deployment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what is ready

    def _wait_ready(
        self,
        process: Process,
        ready: Callable[[], bool],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        def check() -> None:
            process.check_running()
            if should_stop():
                raise DeployError("interrupted while starting")

        _wait_until(ready, self.settings.start_timeout, f"{process.name} to serve", check)

    def _redis_ready(self) -> bool:
        if self.settings.redis_port is None:
            return _redis_answers(str(self.redis_socket))
        return _redis_answers(("127.0.0.1", self.settings.redis_port))

    def instance_serves(self, instance: Instance) -> bool:
        """Whether the instance answers HTTP on its own address (any status)."""
        conn = http.client.HTTPConnection(instance.address, instance.port, timeout=2.0)
        return http_get(conn, self.settings.probe_path) is not None

    def _nginx_ready(self) -> bool:
        return self.probe() is not None

    def probe(self) -> str | None:
        """One request through nginx's probe server: the instance that answered it
        (``ADDRESS:PORT``), or None when nginx does not answer or no instance did."""
        got = http_get(_UnixHTTPConnection(str(self.probe_socket), 2.0), self.settings.probe_path)
        if got is None:
            return None
        status, headers, _ = got
        tried = headers.get("x-upstream-addr", "")
        if status >= 500 or not tried:
            return None
        return tried.split(",")[-1].strip()

    def wait_in_rotation(self, instance: Instance, timeout: float | None = None) -> None:
        """Wait until nginx sends a request to ``instance`` (it took it back after its
        passive health check let it go, at most ``fail_timeout`` + 1 s after it serves)."""
        limit = timeout if timeout is not None else self.settings.fail_timeout + 10.0
        _wait_until(
            lambda: self.probe() == instance.endpoint,
            limit,
            f"nginx to send requests to {instance.name}",
            instance.check_running,
        )

    def _check_nginx_config(self) -> None:
        assert self.nginx_binary is not None
        test = subprocess.run(
            [*self.nginx.argv, "-t", "-q"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if test.returncode != 0:
            raise DeployError(f"nginx rejects {self.nginx_conf}:\n{test.stderr.strip()}")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the command ------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> Settings:
    d = Settings()
    parser = argparse.ArgumentParser(
        prog="python deploy/launch.py",
        description=(
            "Start Redis, one 'treadle web --workers N' per backend address (two 'machines' "
            "on the loopback interface by default) and nginx in front of them, all in one "
            "run directory; Ctrl-C or SIGTERM stops everything, SIGHUP restarts the "
            "instances one after the other."
        ),
    )
    add = parser.add_argument
    # fmt: off
    add("--path", type=Path, default=d.path, metavar="DIR",
        help="directory the instances serve (default: the examples/ of this repository)")
    add("--run-dir", type=Path, default=None, metavar="DIR", help="directory for pid files, "
        "logs, sockets and nginx's prefix, made if missing (default: a new temporary one)")
    add("--host", default=d.host, metavar="ADDR",
        help="address nginx listens on and connects from (default: %(default)s)")
    add("--port", type=int, default=d.port, metavar="N",
        help="nginx's port; 0 picks a free one (default: %(default)s)")
    add("--backends", default=",".join(d.backends), metavar="ADDR,ADDR",
        help="one instance on each of these IPv4 addresses (default: %(default)s)")
    add("--backend-port", type=int, default=d.backend_port, metavar="N",
        help="the instances' port; 0 picks one free on every address (default: %(default)s)")
    add("--workers", type=int, default=d.workers, metavar="N",
        help="treadle web --workers of each instance (default: %(default)s)")
    add("--grace", type=float, default=d.grace, metavar="SECONDS", help="treadle web --grace: "
        "how long a stopping instance lets responses finish (default: %(default)g)")
    add("--redis-port", type=int, default=None, metavar="N", help="Redis on TCP "
        "127.0.0.1:N (0: a free port) instead of a UNIX socket in the run directory")
    add("--max-fails", type=int, default=d.max_fails, metavar="N",
        help="nginx max_fails: failed tries that take an instance out (default: %(default)s)")
    add("--fail-timeout", type=int, default=d.fail_timeout, metavar="SECONDS",
        help="nginx fail_timeout: for how long (default: %(default)s)")
    add("--nginx-workers", type=int, default=d.nginx_workers, metavar="N",
        help="nginx worker_processes (default: %(default)s)")
    add("--no-shared-state", dest="shared_state", action="store_false",
        help="do not pass --sessions, --secret-file, --proxy-headers and --forwarded-allow-ips "
        "(for a treadle without them: sessions then stay inside each worker)")
    add("--treadle", default=" ".join(d.treadle), metavar="COMMAND",
        help="command that runs treadle, split on spaces (default: %(default)s)")
    add("--treadle-arg", action="append", default=[], metavar="ARG", help="one more option "
        "for every 'treadle web', repeatable: --treadle-arg=--no-access-log")
    add("--nginx", default=None, metavar="PATH", help="the nginx program (default: found in "
        "PATH or an sbin directory)")
    add("--redis-server", default=None, metavar="PATH",
        help="the redis-server program (default: found the same way)")
    add("--start-timeout", type=float, default=d.start_timeout, metavar="SECONDS",
        help="how long each program has to start serving (default: %(default)g)")
    add("--probe-path", default=d.probe_path, metavar="PATH", help="path requested from the "
        "instances and through nginx to see that they serve (default: %(default)s)")
    # fmt: on
    a = parser.parse_args(argv)
    if a.workers < 1:
        parser.error("--workers must be 1 or more")
    return Settings(
        path=a.path, run_dir=a.run_dir, host=a.host, port=a.port,
        backends=tuple(b.strip() for b in a.backends.split(",") if b.strip()),
        backend_port=a.backend_port, workers=a.workers, grace=a.grace,
        shared_state=a.shared_state, redis_port=a.redis_port, max_fails=a.max_fails,
        fail_timeout=a.fail_timeout, nginx_workers=a.nginx_workers,
        treadle=tuple(a.treadle.split()), treadle_args=tuple(a.treadle_arg), nginx=a.nginx,
        redis_server=a.redis_server, start_timeout=a.start_timeout, probe_path=a.probe_path,
    )  # fmt: skip


class _Signals:
    """SIGINT/SIGTERM/SIGHUP/SIGCHLD recorded by handlers; a pipe wakes the waiting loop."""

    def __init__(self) -> None:
        self.stop: int | None = None
        self.rolling = False
        self._read, write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(write, False)
        self._old_fd = signal.set_wakeup_fd(write)
        self._write = write
        self._old = {
            signum: signal.signal(signum, self._handle)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)
        }

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum in (signal.SIGINT, signal.SIGTERM):
            self.stop = signum
        elif signum == signal.SIGHUP:
            self.rolling = True

    def wait(self) -> None:
        """Block until a signal arrived (one already arrived returns at once)."""
        select.select([self._read], [], [])
        with contextlib.suppress(BlockingIOError):
            os.read(self._read, 4096)

    def close(self) -> None:
        """Restore the previous handlers."""
        for signum, old in self._old.items():
            signal.signal(signum, old)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self._read)
        os.close(self._write)


def _say(message: str, out: IO[str] = sys.stdout) -> None:
    print(f"deploy: {message}", file=out, flush=True)


def _summary(d: Deployment) -> Iterator[str]:
    s = d.settings
    yield f"site         {d.url}  (nginx, pid {d.nginx.pid})"
    for i in d.instances:
        yield f"instance     {i.url}  (pid {i.pid}, {s.workers} workers: {i.worker_pids()})"
    yield f"sessions     {d.session_url if s.shared_state else 'per worker (--no-shared-state)'}"
    yield f"run dir      {d.run_dir}  (logs in {d.log_dir})"
    yield "Ctrl-C or SIGTERM stops everything; SIGHUP restarts the instances one by one"


def _supervise(deployment: Deployment, signals: _Signals) -> int:
    """Until a stop signal: restart instances that exit; rolling restart on SIGHUP."""
    quick_exits = {i.name: 0 for i in deployment.instances}
    while signals.stop is None:
        signals.wait()
        for process in (deployment.redis, deployment.nginx):
            if not process.running:
                _say(
                    f"{process.name} exited with status {process.returncode}; stopping "
                    f"everything. End of {process.log}:\n{process.log_tail()}",
                    sys.stderr,
                )
                return 1
        for instance in deployment.instances:
            if instance.running or signals.stop is not None:
                continue
            lived = time.monotonic() - instance.started_at
            quick_exits[instance.name] = (
                quick_exits[instance.name] + 1 if lived < _QUICK_EXIT else 0
            )
            if quick_exits[instance.name] >= _MAX_QUICK_EXITS:
                _say(
                    f"{instance.name} keeps exiting right after it starts; stopping "
                    f"everything. End of {instance.log}:\n{instance.log_tail()}",
                    sys.stderr,
                )
                return 1
            _say(f"{instance.name} exited with status {instance.returncode}; starting it again")
            with contextlib.suppress(DeployError):
                instance.wait(deployment.settings.grace + 5.0)  # orphaned workers drain and leave
            deployment.start_instance(instance)
            _say(f"{instance.name} serves again (pid {instance.pid})")
        if signals.rolling and signals.stop is None:
            signals.rolling = False
            _say("SIGHUP: rolling restart")
            for instance in deployment.instances:
                deployment.restart(instance)
                _say(f"{instance.name} restarted (pid {instance.pid}) and back in rotation")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the deployment until SIGINT or SIGTERM; the exit status."""
    settings = _parse(argv)
    signals = _Signals()
    try:
        try:
            deployment = Deployment(settings)
        except DeployError as e:
            _say(f"error: {e}", sys.stderr)
            return 1
        try:
            deployment.start(should_stop=lambda: signals.stop is not None)
        except DeployError as e:
            _say(f"error: {e}\n(logs in {deployment.log_dir})", sys.stderr)
            return 1
        for line in _summary(deployment):
            _say(line)
        try:
            status = _supervise(deployment, signals)
        except DeployError as e:
            _say(f"error: {e}", sys.stderr)
            status = 1
        finally:
            why = signal.Signals(signals.stop).name if signals.stop else "an error"
            _say(f"{why}: stopping nginx, then the instances, then Redis")
            deployment.stop()
            _say(f"stopped; logs in {deployment.log_dir}")
        return status
    finally:
        signals.close()


if __name__ == "__main__":
    sys.exit(main())
