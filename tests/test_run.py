"""``treadle run``: the real command in a subprocess, with .tac files and plugins.

The programs under test tell the test what they do through files: a service appends a line
to ``events`` when it starts and stops, and writes the port it listens on to ``port`` once
listening. The test waits for those files (with a deadline), never for a fixed time.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEADLINE, wait_for

pytestmark = pytest.mark.timeout(30)

# Services that record their start and stop in ./events, and a Site on a free port written
# to ./port. Written with Twisted's imports: treadle serves them.
TAC = """\
import os

from twisted.application import internet, service
from twisted.internet import reactor, task
from twisted.web import resource, server

application = service.Application("recorded")


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"served by the tac"


class Recorder(service.Service):
    def __init__(self, name, slow=0):
        self.setName(name)
        self.slow = slow

    def note(self, what):
        with open("events", "a") as f:
            f.write(f"{what} {self.name}\\n")

    def startService(self):
        service.Service.startService(self)
        self.note("start")

    def stopService(self):
        service.Service.stopService(self)
        if not self.slow:
            self.note("stop")
            return None
        # A stop that takes a while: the process must wait for it.
        return task.deferLater(reactor, self.slow, self.note, "stopped-slowly")


class PortWriter(internet.TCPServer):
    def startService(self):
        internet.TCPServer.startService(self)
        with open("port.tmp", "w") as f:
            f.write(str(self._port.getHost().port))
        os.rename("port.tmp", "port")


Recorder("first", slow=0.2).setServiceParent(application)
site = server.Site(Hello())
PortWriter(0, site, interface="127.0.0.1").setServiceParent(application)
Recorder("last").setServiceParent(application)
"""


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    # The child holds its own copies of these; the parent's are closed at once.
    out = open(tmp_path / "stdout", "w")  # noqa: SIM115
    err = open(tmp_path / "stderr", "w")  # noqa: SIM115
    with out, err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "treadle", "run", *args],
            cwd=tmp_path,
            stdout=out,
            stderr=err,
            text=True,
            env={**os.environ, **(env or {})},
        )
    _started.append(proc)
    return proc


def finish(proc: subprocess.Popen[str]) -> int:
    try:
        return proc.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("treadle run did not exit") from None


def run_to_exit(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> int:
    return finish(start(tmp_path, *args, env=env))


def output(tmp_path: Path, name: str) -> str:
    return (tmp_path / name).read_text()


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def events(tmp_path: Path) -> list[str]:
    path = tmp_path / "events"
    return path.read_text().splitlines() if path.exists() else []


def wait_for_port(tmp_path: Path, proc: subprocess.Popen[str]) -> int:
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"exited early: {output(tmp_path, 'stderr')}")
        return (tmp_path / "port").exists()

    wait_for(ready, "the application to listen")
    return int((tmp_path / "port").read_text())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_tac_runs_until_a_signal_then_stops_in_reverse_order(
    tmp_path: Path, signum: signal.Signals
) -> None:
    (tmp_path / "app.tac").write_text(TAC)
    proc = start(tmp_path, "-ny", "app.tac", "--pidfile", "run.pid")
    port = wait_for_port(tmp_path, proc)
    assert get(port) == (200, b"served by the tac")
    assert events(tmp_path) == ["start first", "start last"]
    assert (tmp_path / "run.pid").read_text().strip() == str(proc.pid)
    proc.send_signal(signum)
    assert finish(proc) == 0, output(tmp_path, "stderr")
    # Last added, first stopped; the slow stop was waited for before the process ended.
    assert events(tmp_path) == ["start first", "start last", "stop last", "stopped-slowly first"]
    assert not (tmp_path / "run.pid").exists()
    log = output(tmp_path, "stdout")
    assert "Loading app.tac..." in log and f"Received {signum.name}, shutting down." in log
    with pytest.raises(OSError):
        get(port)


def test_logfile(tmp_path: Path) -> None:
    (tmp_path / "app.tac").write_text(TAC)
    proc = start(tmp_path, "-y", "app.tac", "--logfile", "app.log")
    wait_for_port(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 0
    log = output(tmp_path, "app.log")
    assert "Loading app.tac..." in log and "Server shut down." in log
    assert "Loading" not in output(tmp_path, "stdout")


def test_the_program_stopping_the_reactor_stops_the_services(tmp_path: Path) -> None:
    (tmp_path / "app.tac").write_text(
        TAC + "reactor.callWhenRunning(lambda: reactor.callLater(0.05, reactor.stop))\n"
    )
    assert run_to_exit(tmp_path, "-y", "app.tac") == 0, output(tmp_path, "stderr")
    assert events(tmp_path) == ["start first", "start last", "stop last", "stopped-slowly first"]


def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    (tmp_path / "app.tac").write_text(
        TAC.replace('Recorder("first", slow=0.2)', 'Recorder("first", slow=3600)')
    )
    proc = start(tmp_path, "-y", "app.tac")
    wait_for_port(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stop last" in events(tmp_path), "the first service to stop")
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 128 + signal.SIGTERM
    assert "stopping now" in output(tmp_path, "stdout")


def test_missing_application_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "app.tac").write_text("from twisted.application import service\nx = 1\n")
    assert run_to_exit(tmp_path, "-y", "app.tac") == 1
    err = output(tmp_path, "stderr")
    assert "treadle: error: -y app.tac: the file defines no 'application' variable" in err
    assert "Traceback" not in err


def test_failing_tac_shows_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "app.tac").write_text("def f():\n    return {}['key']\napplication = f()\n")
    assert run_to_exit(tmp_path, "-y", "app.tac") == 1
    err = output(tmp_path, "stderr")
    assert "Traceback" in err and "app.tac" in err
    assert "treadle: error: -y app.tac: loading the application failed: KeyError: 'key'" in err


def test_not_an_application(tmp_path: Path) -> None:
    (tmp_path / "app.tac").write_text("application = 42\n")
    assert run_to_exit(tmp_path, "-y", "app.tac") == 1
    assert "'application' is 42, not an application" in output(tmp_path, "stderr")


def test_missing_file_and_port_in_use(tmp_path: Path) -> None:
    assert run_to_exit(tmp_path, "-y", "nope.tac") == 1
    assert "treadle: error: -y nope.tac: No such file or directory" in output(tmp_path, "stderr")
    (tmp_path / "app.tac").write_text(TAC)
    first = start(tmp_path, "-y", "app.tac")
    port = wait_for_port(tmp_path, first)
    other = tmp_path / "other"
    other.mkdir()
    (other / "app.tac").write_text(
        "from twisted.application import service, strports\n"
        "from twisted.web import server, static\n"
        "application = service.Application('clash')\n"
        f"strports.service('tcp:{port}:interface=127.0.0.1', "
        "server.Site(static.Data(b'', 'text/plain'))).setServiceParent(application)\n"
    )
    assert run_to_exit(other, "-y", "app.tac", "--pidfile", "p.pid") == 1
    assert "starting the application failed: CannotListenError" in output(other, "stderr")
    assert not (other / "p.pid").exists()
    first.send_signal(signal.SIGTERM)
    assert finish(first) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say what to run"),
        (["--bogus"], "option --bogus not recognized"),
        (["-y"], "option -y requires argument"),
    ],
)
def test_command_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    assert run_to_exit(tmp_path, *args) == 2
    assert f"treadle run: error: {message}" in output(tmp_path, "stderr")


PLUGIN = """\
from zope.interface import implementer
from twisted.application import internet
from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from twisted.web import resource, server


class Body(resource.Resource):
    isLeaf = True

    def __init__(self, body):
        resource.Resource.__init__(self)
        self.body = body

    def render_GET(self, request):
        return self.body


class Options(usage.Options):
    optParameters = [["body", "b", "plugin default", "The body to serve."]]


class PortWriter(internet.TCPServer):
    def startService(self):
        internet.TCPServer.startService(self)
        with open("port", "w") as f:
            f.write(str(self._port.getHost().port))


@implementer(IServiceMaker, IPlugin)
class Maker:
    tapname = "bodyserver"
    description = "Serves a body of your choice."
    options = Options

    def makeService(self, options):
        site = server.Site(Body(options["body"].encode()))
        return PortWriter(0, site, interface="127.0.0.1")


maker = Maker()
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "plugins_root" / "twisted" / "plugins"
    folder.mkdir(parents=True)
    (folder / "bodyserver_plugin.py").write_text(PLUGIN)
    return {"PYTHONPATH": str(tmp_path / "plugins_root")}


def test_plugin_runs_with_its_options(tmp_path: Path, plugin_path: dict[str, str]) -> None:
    proc = start(tmp_path, "bodyserver", "--body", "from the options", env=plugin_path)
    port = wait_for_port(tmp_path, proc)
    assert get(port) == (200, b"from the options")
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 0, output(tmp_path, "stderr")


def test_help_lists_plugins(tmp_path: Path, plugin_path: dict[str, str]) -> None:
    assert run_to_exit(tmp_path, "--help", env=plugin_path) == 0
    help_text = output(tmp_path, "stdout")
    assert help_text.startswith("Usage: treadle run [options]\n")
    assert "Commands:\n    bodyserver      Serves a body of your choice." in help_text
    assert "-n, --nodaemon" in help_text and "always runs in the" in help_text
    assert run_to_exit(tmp_path, "bodyserver", "--help", env=plugin_path) == 0
    plugin_help = output(tmp_path, "stdout")
    assert plugin_help.startswith("Usage: treadle run [options] bodyserver [options]\n")
    assert "-b, --body=" in plugin_help


def test_unknown_plugin_names_the_available_ones(
    tmp_path: Path, plugin_path: dict[str, str]
) -> None:
    assert run_to_exit(tmp_path, "nosuch", env=plugin_path) == 2
    assert (
        "treadle run: error: no plugin named 'nosuch' (plugins found: bodyserver; "
        "see treadle run --help)" in output(tmp_path, "stderr")
    )
    assert run_to_exit(tmp_path, "bodyserver", "--nope", env=plugin_path) == 2
    assert "option --nope not recognized" in output(tmp_path, "stderr")
    assert run_to_exit(tmp_path, "-y", "x.tac", "bodyserver", env=plugin_path) == 2
    assert "either -y FILE or a plugin, not both" in output(tmp_path, "stderr")


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root")
@pytest.mark.parametrize("ids", ["uid=65534, gid=65534", "uid=65534"])
def test_application_uid_and_gid_are_taken_when_root(tmp_path: Path, ids: str) -> None:
    # As twistd: a uid alone brings the user's own group; either way, the user's groups.
    import pwd

    nobody = pwd.getpwuid(65534)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "app.tac").write_text(
        "import os\n"
        "from twisted.application import service\n"
        "from twisted.internet import reactor\n"
        f"application = service.Application('nobody', {ids})\n"
        "class Who(service.Service):\n"
        "    def startService(self):\n"
        "        with open('who', 'w') as f:\n"
        "            f.write(f'{os.getuid()} {os.getgid()} {sorted(os.getgroups())}')\n"
        "        reactor.callWhenRunning(reactor.stop)\n"
        "Who().setServiceParent(application)\n"
    )
    assert run_to_exit(shared, "-y", "app.tac") == 0, output(shared, "stderr")
    groups = sorted(set(os.getgrouplist(nobody.pw_name, nobody.pw_gid)))
    assert (shared / "who").read_text() == f"65534 {nobody.pw_gid} {groups}"
