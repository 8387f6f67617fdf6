"""The ``treadle web`` command: options parsed without sockets, then the real command.

The integration tests run ``python -m treadle web ...`` in a subprocess on ``tcp:0`` and learn
the port from the startup line, waiting on output and events with deadlines rather than sleeping;
no test measures how long anything took.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import pytest

import treadle
from treadle import __version__
from treadle._cli.main import (
    Endpoint,
    UsageError,
    WebOptions,
    main,
    parse_command_line,
    parse_endpoint,
)

from .conftest import DEADLINE, host_port, wait_for

pytestmark = pytest.mark.timeout(30)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# The subprocesses run the treadle these tests imported (src/, unless installed elsewhere).
SRC = Path(treadle.__file__).resolve().parents[1]

# A script in the asynchronous-responses style (our own); it says on stdout when it starts
# rendering. It answers after ?delay=SECONDS, or once the file ?until=PATH exists, so that a test
# decides when the response ends instead of guessing how long its own steps take.
SLOW_RPY = """\
import os

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.internet import reactor

class PatientPage(Resource):
    def _renderLater(self, request):
        request.write("<html><body>Thank you for your patience.</body></html>")
        request.finish()

    def _renderWhenExists(self, path, request):
        if os.path.exists(path):
            self._renderLater(request)
        else:
            reactor.callLater(0.01, self._renderWhenExists, path, request)

    def render_GET(self, request):
        print("rendering", request.uri.decode(), flush=True)
        until = request.args.get(b"until")
        if until:
            self._renderWhenExists(until[0].decode(), request)
        else:
            delay = float(request.args.get(b"delay", [b"0.3"])[0])
            reactor.callLater(delay, self._renderLater, request)
        return NOT_DONE_YET

resource = PatientPage()
"""

SLOW_BODY = "<html><body>Thank you for your patience.</body></html>"


def startup_urls(line: str) -> list[str]:
    """The URLs of a startup line, in order: ``http://...:PORT/`` (the one to open, for a
    wildcard address) or ``unix:PATH``."""
    return re.findall(r"https?://[^\s/]+/|unix:[^\s,]+", line.split(" on ", 1)[1])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return env


# Starts ``treadle web ARGS`` as systemd starts a socket-activated service: the socket passed
# as descriptor 3, LISTEN_PID naming the process (exec keeps the pid).
SYSTEMD_LAUNCHER = """\
import os, sys
if int(sys.argv[1]) != 3:
    os.dup2(int(sys.argv[1]), 3)
    os.close(int(sys.argv[1]))
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="web")
os.execv(sys.executable, [sys.executable, "-m", "treadle", "web", *sys.argv[2:]])
"""


class Treadle:
    """A ``treadle web`` subprocess whose output lines are collected by two threads.

    With ``activated``, it inherits that listening socket as systemd would pass it.
    """

    def __init__(
        self,
        args: list[str],
        cwd: Path | None = None,
        activated: socket.socket | None = None,
        command_words: Sequence[str] = ("web",),
    ) -> None:
        command = [sys.executable, "-m", "treadle", *command_words, *args]
        if activated is not None:
            command = [sys.executable, "-c", SYSTEMD_LAUNCHER, str(activated.fileno()), *args]
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=child_env(),
            pass_fds=() if activated is None else (activated.fileno(),),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._queues: dict[str, queue.Queue[str | None]] = {
            "stdout": queue.Queue(),
            "stderr": queue.Queue(),
        }
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, "stderr"), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.urls: list[str] = []

    def _pump(self, pipe: IO[str], name: str) -> None:
        for line in pipe:
            self._queues[name].put(line.rstrip("\n"))
        self._queues[name].put(None)

    def wait_line(self, stream: str, predicate: Callable[[str], bool]) -> str:
        """Return the first line of ``stream`` matching ``predicate``, already read or not.

        Waits at most DEADLINE seconds for it.
        """
        deadline = time.monotonic() + DEADLINE
        seen = self.stdout if stream == "stdout" else self.stderr
        for line in seen:
            if predicate(line):
                return line
        while True:
            try:
                new = self._queues[stream].get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching line on {stream}; saw {seen}") from None
            if new is None:
                raise AssertionError(f"{stream} closed; saw {seen}; stderr {self.stderr}")
            seen.append(new)
            if predicate(new):
                return new

    def started(self) -> str:
        """Wait for the startup line; remember the URLs it lists; return it."""
        line = self.wait_line("stdout", lambda text: text.startswith("treadle "))
        self.urls = startup_urls(line)
        return line

    @property
    def url(self) -> str:
        return self.urls[0].rstrip("/")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = DEADLINE) -> int:
        """Wait for the process to exit and for its output to be read; return the status."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.finish()
            raise AssertionError(
                f"still running after {timeout} s; stdout {self.stdout}; stderr {self.stderr}"
            ) from None
        for thread in self._threads:
            thread.join(DEADLINE)
        for name, seen in (("stdout", self.stdout), ("stderr", self.stderr)):
            pending = self._queues[name]
            while not pending.empty():
                line = pending.get_nowait()
                if line is not None:
                    seen.append(line)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(DEADLINE)
        for thread in self._threads:
            thread.join(DEADLINE)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def run() -> Iterator[Callable[..., Treadle]]:
    started: list[Treadle] = []

    def start(
        *args: str, cwd: Path | None = None, activated: socket.socket | None = None
    ) -> Treadle:
        server = Treadle(list(args), cwd, activated)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "slow.rpy").write_text(SLOW_RPY)
    (root / "index.html").write_text("<p>the default index</p>")
    (root / "home.html").write_text("<p>home, named by --index</p>")
    (root / "data.weird").write_text("unknown extension")
    (root / "hello.txt").write_text("hello")
    return root


def run_to_exit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "treadle", *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=DEADLINE, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the command line, without sockets ---------------------------------------------------------


def test_defaults_are_twistd_webs() -> None:
    options = parse_command_line(["web", "--path", "site"])
    assert options == WebOptions(path="site")
    assert options.listen == (Endpoint("tcp", "tcp:8080", port=8080),)
    assert options.mime_type == "text/html"
    assert options.display_tracebacks is False
    assert options.logfile == "-" and options.access_log is True
    assert options.grace == 10.0


def test_every_option() -> None:
    options = parse_command_line(
        [
            "web",
            "--path",
            "site",
            "--listen",
            "tcp:0",
            "--port",
            "8081",
            "-p",
            "unix:/tmp/s",
            "--index",
            "a.html",
            "-i",
            "b.html",
            "--mime_type",
            "text/plain",
            "--ignore-ext",
            "html",
            "--ignore-ext",
            ".htm",
            "--ignore-ext",
            "*",
            "--allow-ignore-ext",
            "--add-header",
            "X-A:  1 ",
            "--add-header",
            "X-B: two words",
            "--display-tracebacks",
            "--logfile",
            "access.log",
            "--pidfile",
            "t.pid",
            "-n",
            "--grace",
            "2.5",
        ]
    )
    assert [e.description for e in options.listen] == ["tcp:0", "tcp:8081", "unix:/tmp/s"]
    assert options.indexes == ("a.html", "b.html")
    assert options.mime_type == "text/plain"
    assert options.ignore_exts == (".html", ".htm", "*")
    assert options.allow_ignore_ext
    assert options.headers == (("X-A", "1"), ("X-B", "two words"))
    assert options.display_tracebacks
    assert options.logfile == "access.log" and options.pidfile == "t.pid"
    assert options.grace == 2.5
    assert not parse_command_line(
        ["web", "--path", ".", "--display-tracebacks", "--notracebacks"]
    ).display_tracebacks
    assert not parse_command_line(["web", "--class", "a.B", "--no-access-log"]).access_log


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080", Endpoint("tcp", "tcp:8080", port=8080)),
        ("tcp:0", Endpoint("tcp", "tcp:0", port=0)),
        (
            "tcp:port=80:interface=127.0.0.1",
            Endpoint("tcp", "tcp:port=80:interface=127.0.0.1", port=80, interface="127.0.0.1"),
        ),
        (
            "tcp:80:interface=\\:\\:1:backlog=5",
            Endpoint(
                "tcp", "tcp:80:interface=\\:\\:1:backlog=5", port=80, interface="::1", backlog=5
            ),
        ),
        (
            "ssl:8443:privateKey=k.pem:certKey=c.pem",
            Endpoint(
                "ssl",
                "ssl:8443:privateKey=k.pem:certKey=c.pem",
                port=8443,
                private_key="k.pem",
                cert_key="c.pem",
            ),
        ),
        (
            "ssl:443",
            Endpoint("ssl", "ssl:443", port=443, private_key="server.pem", cert_key="server.pem"),
        ),
        (
            "unix:/run/w.sock:mode=660",
            Endpoint("unix", "unix:/run/w.sock:mode=660", address="/run/w.sock", mode=0o660),
        ),
        ("tcp6:8080", Endpoint("tcp6", "tcp6:8080", port=8080, interface="::")),
        (
            "systemd:domain=INET:index=0",
            Endpoint("systemd", "systemd:domain=INET:index=0", domain="INET", index=0),
        ),
        (
            "systemd:domain=UNIX:name=web",
            Endpoint("systemd", "systemd:domain=UNIX:name=web", domain="UNIX", name="web"),
        ),
    ],
)
def test_endpoints(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "http:80",
        "tcp",
        "tcp:x",
        "tcp:70000",
        "tcp:80:8080:9",
        "tcp:80:sslmethod=x",
        "unix:",
        "unix:/s:mode=9",
        "tcp:80:port=81",
        "ssl:8443:lockfile=1",
        "tcp6:x",
        "systemd:domain=INET",
        "systemd:domain=IPX:index=0",
    ],
)
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(UsageError, match="bad endpoint"):
        parse_endpoint(text)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["web"], "exactly one of --path"),
        (["web", "--path", ".", "--class", "a.B"], "given: --path and --class"),
        (["web", "--class", "a.B", "--mime-type", "x/y"], "--mime-type applies to the files of"),
        (["web", "--path", ".", "--add-header", "no colon"], "bad --add-header"),
        (["web", "--path", ".", "--add-header", "X: a\x01b"], "printable ASCII"),
        (["web", "--path", ".", "--grace", "-1"], "--grace"),
        (["web", "--path", ".", "--min-body-rate", "-1"], "--min-body-rate must be 0 (off) or"),
        (["web", "--path", ".", "--min-body-rate", "nan"], "--min-body-rate must be 0 (off) or"),
        (
            ["web", "--path", ".", "--min-body-rate", "fast"],
            "argument --min-body-rate: invalid float value: 'fast'",
        ),
        (
            ["web", "--path", ".", "--min-body-rate-grace", "0"],
            "--min-body-rate-grace must be more than 0, not 0.0",
        ),
        (["web", "--path", ".", "--logfile", "f", "--no-access-log"], "contradict"),
        (["web", "--path", ".", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "treadle web --path DIR"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_command_line(argv)


def test_the_listen_grammar_is_the_endpoints_one() -> None:
    from treadle.internet.endpoints import parse_server_description

    for text in ("tcp:0:interface=127.0.0.1", "ssl:443:k.pem", "unix:/s:600", "tcp6:1:2"):
        assert parse_endpoint(text) == parse_server_description(text)
    with pytest.raises(UsageError) as refused:
        parse_endpoint("tcp:80:bogus=1")
    assert str(refused.value) == (
        "bad endpoint 'tcp:80:bogus=1': tcp does not take 'bogus' (it takes port, interface, "
        "backlog)"
    )


def test_usage_error_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["web", "--path", ".", "--listen", "tcp:nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("treadle: error: bad endpoint 'tcp:nope'")
    assert err.count("\n") == 1


# -- the real command --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Treadle]:
    """One server for the option tests: TCP and UNIX, extra header, index, mime type, log."""
    work = tmp_path_factory.mktemp("served")
    server = Treadle(
        [
            "--path",
            str(site),
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--listen",
            f"unix:{work / 'web.sock'}",
            "--add-header",
            "X-Test: yes",
            "--index",
            "home.html",
            "--mime-type",
            "application/x-test",
            "--logfile",
            str(work / "access.log"),
        ]
    )
    server.work = work  # type: ignore[attr-defined]
    try:
        server.started()
        yield server
    finally:
        server.close()


def test_startup_line_lists_every_address(served: Treadle, site: Path) -> None:
    assert re.fullmatch(
        rf"treadle {re.escape(__version__)} serving {re.escape(str(site))} on "
        rf"http://127\.0\.0\.1:\d+/, unix:.*web\.sock",
        served.stdout[0],
    )


def test_wildcard_address_is_named_and_a_url_that_opens_is_printed(
    run: Callable[..., Treadle], site: Path
) -> None:
    server = run("--path", str(site), "--listen", "tcp:0", "--no-access-log")
    line = server.started()
    match = re.fullmatch(
        rf"treadle {re.escape(__version__)} serving {re.escape(str(site))} on port (\d+) of "
        r"every IPv4 interface \(open http://127\.0\.0\.1:(\d+)/\)",
        line,
    )
    assert match and match[1] == match[2], line
    assert "0.0.0.0" not in line
    assert server.urls == [f"http://127.0.0.1:{match[1]}/"]
    assert get(f"{server.url}/hello.txt").text == "hello"


def test_listening_on_every_kind_of_address(tmp_path: Path) -> None:
    from treadle._cli.listen import listening_on

    tcp, tls = parse_endpoint("tcp:0"), parse_endpoint("ssl:0")
    with socket.socket() as wildcard, socket.socket() as loopback:
        wildcard.bind(("0.0.0.0", 0))
        port = wildcard.getsockname()[1]
        opens = f"(open http://127.0.0.1:{port}/)"
        assert listening_on(tcp, wildcard) == f"port {port} of every IPv4 interface {opens}"
        assert listening_on(tls, wildcard).endswith(f"(open https://127.0.0.1:{port}/)")
        loopback.bind(("127.0.0.1", 0))
        assert listening_on(tcp, loopback) == f"http://127.0.0.1:{loopback.getsockname()[1]}/"
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(str(tmp_path / "web.sock"))
        assert listening_on(tcp, unix) == f"unix:{tmp_path / 'web.sock'}"
    for address, v6only, expected in (
        ("::", 1, "port {port} of every IPv6 interface (open http://[::1]:{port}/)"),
        ("::", 0, "port {port} of every IPv6 and IPv4 interface (open http://[::1]:{port}/)"),
        ("::1", 0, "http://[::1]:{port}/"),
    ):
        try:
            sock = socket.socket(socket.AF_INET6)
        except OSError:
            pytest.skip("no IPv6 here")
        with sock:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            try:
                sock.bind((address, 0))
            except OSError:
                pytest.skip("IPv6 cannot be bound here")
            port = sock.getsockname()[1]
            assert listening_on(tcp, sock) == expected.format(port=port)


def test_rpy_in_the_page_style(served: Treadle) -> None:
    response = get(f"{served.url}/slow.rpy?delay=0.05")
    # The script ran for this request and answered later, from a reactor.callLater.
    served.wait_line("stdout", lambda line: line == "rendering /slow.rpy?delay=0.05")
    assert response.status_code == 200
    assert response.text == SLOW_BODY
    assert response.headers["x-test"] == "yes"


def test_added_header_index_and_mime_type(served: Treadle) -> None:
    home = get(f"{served.url}/")
    assert home.text == "<p>home, named by --index</p>"
    assert home.headers["x-test"] == "yes"
    weird = get(f"{served.url}/data.weird")
    assert weird.headers["content-type"].startswith("application/x-test")
    assert get(f"{served.url}/hello.txt").headers["content-type"].startswith("text/plain")


def test_unix_socket(served: Treadle) -> None:
    path = served.urls[1].removeprefix("unix:")
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=DEADLINE) as client:
        assert client.get("http://treadle/hello.txt").text == "hello"


def test_logfile_gets_combined_format(served: Treadle) -> None:
    get(f"{served.url}/hello.txt?from=log", headers={"user-agent": "log-test", "referer": "r"})
    log = served.work / "access.log"  # type: ignore[attr-defined]
    pattern = re.compile(
        r'"127\.0\.0\.1" - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
        r'"GET /hello\.txt\?from=log HTTP/1\.1" 200 5 "r" "log-test"'
    )
    wait_for(
        lambda: any(pattern.fullmatch(line) for line in log.read_text().splitlines()),
        "the request in the access log",
    )
    # The access log went to the file, not to stdout.
    assert not any("GET /" in line for line in served.stdout)


def test_graceful_shutdown_finishes_the_response(
    run: Callable[..., Treadle], site: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "treadle.pid"
    release = tmp_path / "release"
    # A grace period no test run reaches: the response ends when the test releases it.
    server = run(
        "--path",
        str(site),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--pidfile",
        str(pidfile),
        "--grace",
        "3600",
    )
    server.started()
    assert pidfile.read_text() == f"{server.proc.pid}\n"
    result: dict[str, Any] = {}
    path = f"/slow.rpy?until={quote(str(release), safe='')}"

    def client() -> None:
        result["response"] = get(f"{server.url}{path}")

    thread = threading.Thread(target=client)
    thread.start()
    server.wait_line("stdout", lambda line: line.startswith("rendering /slow.rpy"))
    server.signal(signal.SIGTERM)
    # No new connections once shutting down, while the slow response is still running.
    host, port = host_port(server.url)

    def refused() -> bool:
        try:
            socket.create_connection((host, port), timeout=DEADLINE).close()
        except ConnectionRefusedError:
            return True
        return False

    wait_for(refused, "the port to close")
    assert "response" not in result
    release.touch()
    thread.join(DEADLINE)
    assert result["response"].status_code == 200
    assert result["response"].text == SLOW_BODY
    assert server.finish() == 0
    assert not pidfile.exists()
    # Default access log: stdout, after the startup line.
    assert any(f'"GET {path} HTTP/1.1" 200' in line for line in server.stdout)
    assert not any("Traceback" in line for line in server.stderr)


def test_second_signal_exits_at_once(run: Callable[..., Treadle], site: Path) -> None:
    # The response and the grace period outlast any test run: only the second signal can end
    # the process before finish() gives up waiting.
    server = run(
        "--path",
        str(site),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--no-access-log",
        "--grace",
        "3600",
    )
    server.started()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            get(f"{server.url}/slow.rpy?delay=3600")
        except httpx.HTTPError as e:
            errors.append(e)

    thread = threading.Thread(target=client)
    thread.start()
    server.wait_line("stdout", lambda line: line.startswith("rendering"))
    server.signal(signal.SIGTERM)
    server.wait_line("stderr", lambda line: "shutting down" in line)
    server.signal(signal.SIGINT)
    assert server.finish() == 128 + signal.SIGINT
    thread.join(DEADLINE)
    assert errors, "the cut-off request should have failed"
    # --no-access-log: stdout holds the startup line and the script's own print only.
    assert len(server.stdout) == 2


def test_version_and_help() -> None:
    version = run_to_exit("web", "--version")
    assert (version.returncode, version.stdout) == (0, f"treadle {__version__}\n")
    assert run_to_exit("--version").stdout == f"treadle {__version__}\n"
    help_ = run_to_exit("web", "--help")
    assert help_.returncode == 0
    for text in (
        "--path DIR",
        "--listen ENDPOINT",
        "--no-access-log",
        "examples:",
        "endpoints (--listen, --port):",
        "--grace SECONDS",
    ):
        assert text in help_.stdout


def test_help_tells_the_truth(capsys: pytest.CaptureFixture[str]) -> None:
    from treadle._cli.options import LIMIT_OPTIONS
    from treadle.web.server import Site

    # argparse wraps help where it likes: compare with the line breaks undone.
    with pytest.raises(SystemExit):
        parse_command_line(["--help"])
    assert "a resource class or a WSGI or ASGI application" in " ".join(
        capsys.readouterr().out.split()
    )
    with pytest.raises(SystemExit):
        parse_command_line(["web", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    # Five ways to name the site, and the description says so.
    assert "an ASGI application (--asgi). Exactly one of the five is needed." in text
    assert "the four" not in text
    # The default endpoint binds every IPv4 interface; the help says so and where to open it.
    assert "port 8080 of every IPv4 interface (open http://127.0.0.1:8080/)" in text
    assert "without interface=, every IPv4 interface is bound" in text
    # --add-header does not reach the server's own refusals; --pidfile with --workers.
    assert "every response a resource renders (not to the server's own refusals" in text
    assert "with --workers, the id of the supervising process" in text
    # --workers cannot share a UNIX socket.
    assert "on the same tcp, tcp6, ssl or systemd ports" in text
    assert "--min-body-rate BYTES_PER_SECOND" in text
    assert "--min-body-rate-grace SECONDS" in text
    # Each limit's default is the Site attribute it sets, the one place defaults are written.
    for spec in LIMIT_OPTIONS:
        default = getattr(Site, spec.attribute)
        shown = "none" if default is None else str(default)
        metavar = spec.metavar or ("N" if spec.kind is int else "SECONDS")
        # The first default after the option's own entry (the usage writes "[--option").
        after = text[text.index(f" {spec.option} {metavar} ") :]
        assert after.split("(default: ", 1)[1].startswith(f"{shown})"), spec


def test_startup_errors_are_one_line(tmp_path: Path, site: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    (tmp_path / "file.txt").write_text("")
    serve = ["--path", str(site)]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        in_use = f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1"
        cases = [
            ([*serve, "--listen", in_use], 1, f"cannot listen on {in_use}: Address already in use"),
            (["--path", str(tmp_path / "missing")], 1, "no such directory"),
            (["--path", str(tmp_path / "file.txt")], 1, "not a directory"),
            ([*serve, "--listen", "tcp:port=eighty"], 2, "bad endpoint 'tcp:port=eighty'"),
            ([*serve, "--listen", "ssl:0:privateKey=bad.pem"], 1, "cannot use certificate"),
            ([*serve, "--listen", "ssl:0:privateKey=none.pem"], 1, "none.pem not found"),
            (["--class", "no_such_module_here.Root"], 1, "no module named 'no_such_module_here'"),
            (["--class", "os.path.NoSuchRoot"], 1, "has no attribute 'NoSuchRoot'"),
            ([*serve, "--logfile", str(tmp_path / "no" / "dir" / "log")], 1, "--logfile"),
        ]
        # Started together: each is a short-lived process, so the test stays quick.
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "treadle",
                    "web",
                    "--listen",
                    "tcp:0:interface=127.0.0.1",
                    *args,
                ],
                env=child_env(),
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args, _, _ in cases
        ]
        for proc, (args, status, message) in zip(procs, cases, strict=True):
            out, err = proc.communicate(timeout=DEADLINE)
            assert proc.returncode == status, (args, err)
            assert err.startswith("treadle: error: "), (args, err)
            assert message in err, (args, err)
            assert err.count("\n") == 1 and "Traceback" not in err, (args, err)
            assert out == ""


def test_https(run: Callable[..., Treadle], site: Path, tmp_path: Path) -> None:
    cryptography = pytest.importorskip("cryptography")
    del cryptography
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server = run(
        "--path",
        str(site),
        "--no-access-log",
        "--listen",
        "ssl:0:interface=127.0.0.1:privateKey=key.pem:certKey=cert.pem",
        cwd=tmp_path,
    )
    server.started()
    assert server.url.startswith("https://127.0.0.1:")
    trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    response = get(f"{server.url}/hello.txt", verify=trust)
    assert response.text == "hello"


def test_treadle_run_web_is_treadle_web(site: Path) -> None:
    # twistd -n web --path DIR, ported word for word.
    server = Treadle(
        ["--path", str(site), "--no-access-log", "--listen", "tcp:0:interface=127.0.0.1"],
        command_words=("run", "-n", "--reactor=epoll", "web"),
    )
    try:
        server.started()
        assert get(f"{server.url}/hello.txt").text == "hello"
    finally:
        server.close()
    refused = run_to_exit("run", "-n", "webby")  # any other name is a plugin's, as before
    assert refused.returncode == 2 and "no plugin named 'webby'" in refused.stderr


def test_tcp6(run: Callable[..., Treadle], site: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = run("--path", str(site), "--no-access-log", "--listen", "tcp6:0:interface=\\:\\:1")
    assert re.search(r" on http://\[::1\]:\d+/$", server.started())
    assert get(f"{server.url}/hello.txt").text == "hello"


@pytest.fixture
def activation_socket() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1, as systemd would create it from a .socket unit."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


@pytest.mark.parametrize("workers", ["1", "2"])
def test_systemd_socket_activation(
    run: Callable[..., Treadle], site: Path, activation_socket: socket.socket, workers: str
) -> None:
    port = activation_socket.getsockname()[1]
    server = run(
        "--path",
        str(site),
        "--no-access-log",
        "--listen",
        "systemd:domain=INET:name=web",
        "--workers",
        workers,
        activated=activation_socket,
    )
    line = server.started()
    assert line.endswith(f" on http://127.0.0.1:{port}/"), line
    activation_socket.close()  # from now on only the server holds the socket
    for _ in range(4):
        assert get(f"{server.url}/hello.txt").text == "hello"
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    assert not any("failed" in line for line in server.stderr), server.stderr


def test_systemd_socket_not_passed(site: Path) -> None:
    done = run_to_exit("web", "--path", str(site), "--listen", "systemd:domain=INET:index=0")
    assert done.returncode == 1
    assert done.stderr == (
        "treadle: error: cannot listen on systemd:domain=INET:index=0: no socket was passed "
        "to this process by systemd (LISTEN_FDS and LISTEN_PID do not name it)\n"
    )


def test_examples_delayed_program_answers() -> None:
    port = free_port()
    with child([sys.executable, str(EXAMPLES / "delayed.py"), str(port)]) as proc:

        def answer() -> httpx.Response | None:
            try:
                return get(f"http://127.0.0.1:{port}/")
            except httpx.ConnectError:
                assert proc.poll() is None, "delayed.py exited"
                return None

        response = wait_for(answer, "delayed.py to answer")
        assert response.status_code == 200
        assert response.text == "<html><body>Thank you for waiting.</body></html>"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0


@contextlib.contextmanager
def child(argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (output captured), killed if it still runs when the block ends."""
    proc = subprocess.Popen(argv, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=DEADLINE)


def worker_pids(parent: int) -> set[int]:
    """The live children of ``parent``, from /proc."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                pids.add(int(entry.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_share_the_port_are_replaced_and_drain(
    run: Callable[..., Treadle], site: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "treadle.pid"
    server = run(
        "--path",
        str(site),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--workers",
        "2",
        "--no-access-log",
        "--pidfile",
        str(pidfile),
    )
    assert " with 2 workers on http://127.0.0.1:" in server.started()
    # The pid file names the supervisor, the process to signal (no worker fights over it).
    assert pidfile.read_text() == f"{server.proc.pid}\n"
    for _ in range(6):
        assert get(f"{server.url}/hello.txt").text == "hello"
    wait_for(lambda: len(worker_pids(server.proc.pid)) == 2, "two workers")
    first, second = sorted(worker_pids(server.proc.pid))
    os.kill(first, signal.SIGKILL)
    wait_for(
        lambda: len(pids := worker_pids(server.proc.pid)) == 2 and first not in pids,
        "a replacement worker",
    )
    assert second in worker_pids(server.proc.pid)
    assert get(f"{server.url}/hello.txt").text == "hello"
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    assert not pidfile.exists()
    assert not any("failed" in line for line in server.stderr), server.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="as the test above")
def test_workers_signalled_while_starting_drain(run: Callable[..., Treadle], site: Path) -> None:
    server = run("--path", str(site), "--listen", "tcp:0:interface=127.0.0.1", "--workers", "2")
    server.started()
    # The workers were just forked: the signal passed on to them must wait for their
    # handlers (not kill them, nor be lost before their loops run) and drain them.
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    assert not any("exited with status" in line for line in server.stderr), server.stderr


def test_workers_from_the_environment() -> None:
    old = os.environ.get("WEB_CONCURRENCY")
    os.environ["WEB_CONCURRENCY"] = "3"
    try:
        assert parse_command_line(["web", "--path", "."]).workers == 3
        assert parse_command_line(["web", "--path", ".", "--workers", "2"]).workers == 2
    finally:
        if old is None:
            del os.environ["WEB_CONCURRENCY"]
        else:
            os.environ["WEB_CONCURRENCY"] = old
    with pytest.raises(UsageError):
        parse_command_line(["web", "--path", ".", "--workers", "0"])


def test_limits_and_follow_symlinks_reach_the_site(tmp_path: Path) -> None:
    from treadle._cli.main import make_site

    options = parse_command_line(
        [
            "web",
            "--path",
            str(tmp_path),
            "--limit-concurrency",
            "5",
            "--max-body-size",
            "100",
            "--head-timeout",
            "2.5",
            "--timeout",
            "7",
            "--follow-symlinks",
        ]
    )
    site, _ = make_site(options)
    assert (site.maxConnections, site.maxRequestBodySize) == (5, 100)
    assert (site.headTimeout, site.timeOut) == (2.5, 7.0)
    assert site.resource.follow_symlinks  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="more than 0"):
        parse_command_line(["web", "--path", ".", "--max-headers", "0"])
    # Options not given leave the Site's own defaults (the one place they are written).
    assert "minBodyRate" not in vars(site) and "minBodyRateGrace" not in vars(site)
    with pytest.raises(UsageError, match="--path only"):
        parse_command_line(["web", "--class", "x.Y", "--follow-symlinks"])


def test_min_body_rate_reaches_the_site(tmp_path: Path) -> None:
    from treadle._cli.main import make_site

    argv = ["web", "--path", str(tmp_path)]
    options = parse_command_line([*argv, "--min-body-rate", "100", "--min-body-rate-grace", "2.5"])
    assert options.limits == (("minBodyRate", 100.0), ("minBodyRateGrace", 2.5))
    site, _ = make_site(options)
    assert (site.minBodyRate, site.minBodyRateGrace) == (100.0, 2.5)
    # 0 turns the check off, so unlike the other limits it is accepted.
    off, _ = make_site(parse_command_line([*argv, "--min_body_rate=0"]))
    assert off.minBodyRate == 0.0


def test_bad_min_body_rate_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["web", "--path", ".", "--min-body-rate", "-240"]) == 2
    err = capsys.readouterr().err
    assert err == "treadle: error: --min-body-rate must be 0 (off) or more, not -240.0\n"


def test_wsgi_application(run: Callable[..., Treadle], tmp_path: Path) -> None:
    (tmp_path / "tinyapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'wsgi says ', environ['PATH_INFO'].encode()]\n"
    )
    server = run("--wsgi", "tinyapp:app", "--listen", "tcp:0:interface=127.0.0.1", cwd=tmp_path)
    assert "WSGI application tinyapp:app" in server.started()
    assert get(f"{server.url}/some/path").text == "wsgi says /some/path"
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    bad = run_to_exit("web", "--wsgi", "nosuchmodule:app", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.startswith("treadle: error: --wsgi nosuchmodule:app")
    assert "Traceback" not in bad.stderr


def test_a_sigterm_sent_the_moment_the_port_opens_shuts_down_gracefully(site: Path) -> None:
    # A process manager may signal as soon as the port accepts: the stop signals must be
    # handled from before the port opens (the start-up work after it once left a window in
    # which SIGTERM killed the process outright, status -15).
    port = free_port()
    argv = [sys.executable, "-m", "treadle", "web", "--path", str(site)]
    argv += ["--listen", f"tcp:{port}:interface=127.0.0.1", "--no-access-log"]
    with child(argv) as proc:
        deadline = time.monotonic() + DEADLINE
        while True:
            assert proc.poll() is None, "treadle web exited before listening"
            assert time.monotonic() < deadline, "treadle web never listened"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass  # not listening yet: try again at once, to signal at the earliest
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0
