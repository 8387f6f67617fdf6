"""The deployment in deploy/: nginx in front of two treadle instances that share sessions.

``deploy/launch.py`` starts Redis, ``treadle web --workers 2`` on 127.0.0.2 and on 127.0.0.3
(two "machines") and nginx in front, in a temporary run directory. Every check goes through
nginx, with a session-counter page whose answers say which instance served them:

* sessions continue across instances and workers;
* a rolling restart under a steady load loses no request and no count;
* ``kill -9`` of an instance loses at most the requests it had in flight and no session, and
  nginx's passive health check takes it out of the rotation and, once it is back, in again.

The module needs the ``nginx`` and ``redis-server`` programs (CI installs them) and is skipped
without them. Every wait has a deadline; the load's clients give each request a timeout.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import importlib.util
import itertools
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import pytest

from .conftest import wait_for

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "deploy" / "launch.py"


def _load_launcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_launch", LAUNCHER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


launch = _load_launcher()

_MISSING = [p for p in ("nginx", "redis-server") if launch.find_program(p) is None]
pytestmark = [
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"the deployment test needs {' and '.join(_MISSING)} (apt-get install nginx "
        "redis-server; .ci/run does)",
    ),
    pytest.mark.timeout(60),
]

# The page every check visits: a counter in the session, and who served it.
COUNTER_RPY = """\
import os

from twisted.web.resource import Resource


class Counter(Resource):
    isLeaf = True

    def render_GET(self, request):
        session = request.getSession()
        session.visits = getattr(session, "visits", 0) + 1
        request.setHeader("X-Instance", os.environ.get("TREADLE_INSTANCE", "?"))
        request.setHeader("X-Worker", str(os.getpid()))
        request.setHeader("X-Client", request.getClientAddress().host)
        request.setHeader("X-Secure", "yes" if request.isSecure() else "no")
        request.setHeader("X-URL", request.prePathURL())
        return str(session.visits).encode()


resource = Counter()
"""

#: How long nginx leaves a failed instance out; short, so the tests see it come back soon.
FAIL_TIMEOUT = 1


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("site")
    (path / "counter.rpy").write_text(COUNTER_RPY)
    (path / "index.html").write_text("<!DOCTYPE html><title>deployed</title>\n")
    return path


@pytest.fixture(scope="module")
def deployment(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    settings = launch.Settings(
        path=site,
        run_dir=tmp_path_factory.mktemp("run"),
        port=0,
        backend_port=0,
        fail_timeout=FAIL_TIMEOUT,
        grace=5.0,
    )
    with launch.Deployment(settings) as deployment:
        yield deployment


@pytest.fixture
def healthy(deployment: Any) -> Any:
    """The deployment with every instance running and in nginx's rotation."""
    for instance in deployment.instances:
        if not instance.running:
            deployment.start_instance(instance)
        deployment.wait_in_rotation(instance)
    return deployment


# -- a client ---------------------------------------------------------------------------------


@dataclass
class Answer:
    """One visit: what came back (``status`` 0: no answer, ``error`` says why)."""

    status: int
    count: int = 0
    instance: str = ""
    worker: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    started: float = 0.0
    finished: float = 0.0


class Visitor:
    """A browser with one session: each visit is one new connection, sending the cookie."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
        assert parts is not None
        self.host, self.port, self.path = parts[1], int(parts[2]), parts[3]
        self.timeout = timeout
        self.cookie = ""

    def visit(self, headers: dict[str, str] | None = None) -> Answer:
        started = time.monotonic()
        answer = self._visit(headers)
        answer.started, answer.finished = started, time.monotonic()
        return answer

    def _visit(self, headers: dict[str, str] | None) -> Answer:
        sent = {"Connection": "close", **(headers or {})}
        if self.cookie:
            sent["Cookie"] = self.cookie
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.path, headers=sent)
            response = conn.getresponse()
            body = response.read()
            got = {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as e:
            return Answer(0, error=repr(e))
        finally:
            conn.close()
        cookie = got.get("set-cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        if response.status != 200 or not body.isdigit():
            return Answer(response.status, headers=got, error=body[:200].decode("latin-1"))
        return Answer(200, int(body), got.get("x-instance", ""), got.get("x-worker", ""), got)


class Load:
    """A bounded steady load: a few visitors, each visiting again as soon as it is answered
    (after a short pause), each with its own session, until stopped."""

    def __init__(self, url: str, clients: int = 4, pause: float = 0.005) -> None:
        self.visitors = [Visitor(url) for _ in range(clients)]
        self.answers: list[list[Answer]] = [[] for _ in range(clients)]
        self._stop = threading.Event()
        self._pause = pause
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]

    def _run(self, index: int) -> None:
        visitor, answers = self.visitors[index], self.answers[index]
        while not self._stop.is_set():
            answers.append(visitor.visit())
            self._stop.wait(self._pause)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        assert not any(t.is_alive() for t in self._threads), "a client did not stop"

    def all(self) -> list[Answer]:
        return [a for answers in self.answers for a in list(answers)]

    def total(self) -> int:
        return sum(len(answers) for answers in self.answers)

    def wait_answers(self, more: int, what: str = "the load to go on") -> None:
        """Wait until ``more`` further visits were answered (whatever the answer)."""
        target = self.total() + more
        wait_for(lambda: self.total() >= target, f"{more} more answers: {what}")

    def wait_served_by(self, instance: str) -> None:
        """Wait until a visit started from now on is answered by ``instance``."""
        start = [len(a) for a in self.answers]

        def served() -> bool:
            return any(
                a.instance == instance
                for answers, first in zip(self.answers, start, strict=True)
                for a in answers[first:]
            )

        wait_for(served, f"a visit answered by {instance}")

    def failures(self) -> list[Answer]:
        return [a for a in self.all() if a.status != 200 or a.error]

    def count_problems(self, exact: bool) -> list[str]:
        """Per visitor: counts that did not go up (by exactly one, when ``exact``)."""
        problems = []
        for index, answers in enumerate(self.answers):
            counts = [a.count for a in answers if a.status == 200 and not a.error]
            for before, after in itertools.pairwise(counts):
                if after <= before or (exact and after != before + 1):
                    problems.append(f"visitor {index}: {before} then {after} in {counts}")
                    break
        return problems


def nginx_log_from(deployment: Any, offset: int) -> list[str]:
    """nginx's access-log lines written after byte ``offset``."""
    with open(deployment.log_dir / "nginx-access.log", "rb") as log:
        log.seek(offset)
        return log.read().decode("latin-1").splitlines()


def nginx_log_size(deployment: Any) -> int:
    return (deployment.log_dir / "nginx-access.log").stat().st_size


def tried(line: str) -> list[tuple[str, str]]:
    """The instances nginx tried for one request, with what each answered."""
    addrs = re.search(r'upstream="([^"]*)"', line)
    statuses = re.search(r'upstream_status="([^"]*)"', line)
    assert addrs and statuses, line
    return list(
        zip(
            [a.strip() for a in addrs[1].split(",")],
            [s.strip() for s in statuses[1].split(",")],
            strict=True,
        )
    )


# -- the checks -------------------------------------------------------------------------------


def test_sessions_continue_across_instances(healthy: Any) -> None:
    visitor = Visitor(healthy.url + "counter.rpy")
    answers = [visitor.visit() for _ in range(20)]

    assert [a.status for a in answers] == [200] * 20, [a.error for a in answers]
    assert [a.count for a in answers] == list(range(1, 21))
    # Round robin: both instances served the one session.
    served = collections.Counter(a.instance for a in answers)
    assert set(served) == {i.endpoint for i in healthy.instances}, served

    # And both workers of one instance (nginx's kept-alive connections may all have reached
    # one of them): visited directly, each visit on a new connection, which the kernel
    # hands to either worker.
    instance = healthy.instances[0]
    direct = Visitor(instance.url + "counter.rpy")
    direct.cookie = visitor.cookie
    workers: set[str] = set()
    count = 20
    for _ in range(60):
        answer = direct.visit()
        count += 1
        assert (answer.status, answer.count) == (200, count), answer.error
        workers.add(answer.worker)
        if len(workers) == 2:
            break
    assert workers == {str(pid) for pid in instance.worker_pids()}


def test_proxy_headers_come_from_nginx_only(healthy: Any) -> None:
    # A client's own forwarding headers are replaced or dropped by nginx: the instances
    # see the real client, plain HTTP, and the host and port the client asked for.
    visitor = Visitor(healthy.url + "counter.rpy")
    answer = visitor.visit(
        {
            "Forwarded": "for=192.0.2.66;proto=https;host=evil.example",
            "X-Forwarded-For": "192.0.2.66",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
        }
    )
    assert answer.status == 200, answer.error
    assert answer.headers["x-client"] == "127.0.0.1"
    assert answer.headers["x-secure"] == "no"
    assert answer.headers["x-url"] == healthy.url + "counter.rpy"


def test_rolling_restart_loses_no_request(healthy: Any) -> None:
    with Load(healthy.url + "counter.rpy") as load:
        load.wait_answers(20, "before the restart")
        for instance in healthy.instances:
            old = [instance.pid, *instance.worker_pids()]
            assert len(old) == 3
            # SIGTERM: the instance drains and exits; nginx sends its requests elsewhere.
            assert healthy.stop_instance(instance) == 0
            assert all(launch.process_gone(pid) for pid in old)
            load.wait_answers(10, f"while {instance.name} is stopped")
            # Started again; back in nginx's rotation before the next one stops.
            healthy.start_instance(instance)
            load.wait_served_by(instance.endpoint)
        load.wait_answers(20, "after the restart")

    assert load.failures() == []
    assert load.count_problems(exact=True) == []
    served = collections.Counter(a.instance for a in load.all())
    assert set(served) == {i.endpoint for i in healthy.instances}


def test_kill_9_loses_only_requests_in_flight(healthy: Any) -> None:
    victim, survivor = healthy.instances
    clients = 4
    with Load(healthy.url + "counter.rpy", clients) as load:
        load.wait_answers(20, "before the kill")
        processes = [victim.pid, *victim.worker_pids()]
        log_at_kill = nginx_log_size(healthy)
        kill_started = time.monotonic()
        victim.kill()  # SIGKILL to its supervisor and both workers at once
        victim.wait(10)
        dead = time.monotonic()
        assert all(launch.process_gone(pid) for pid in processes)

        # While it is down, the load goes on, served by the survivor.
        load.wait_answers(100, "with one instance killed")
        restarting = time.monotonic()
        down_log = nginx_log_from(healthy, log_at_kill)
        healthy.start_instance(victim)
        load.wait_served_by(victim.endpoint)
        load.wait_answers(10, "after the victim came back")

    answers = load.all()
    # At most the requests in flight at the kill failed: one per client, started before it.
    failed = load.failures()
    assert len(failed) <= clients, [a.error for a in failed]
    assert all(a.started < dead for a in failed), [a.error for a in failed]
    # No session lost or set back: every visitor's count went up at each visit.
    assert load.count_problems(exact=False) == []
    # While the victim was dead, the survivor answered everything.
    while_down = [a for a in answers if a.started > dead and a.finished < restarting]
    assert len(while_down) >= 40
    assert {a.instance for a in while_down} == {survivor.endpoint}
    assert all(a.status == 200 and not a.error for a in while_down)
    # Passive health check: nginx saw the victim fail and left it out for fail_timeout,
    # then tried it once a fail_timeout. So few tries failed on it: the requests in flight
    # at the kill, those that picked it before the first failure was counted (at most one
    # per client each), and one per fail_timeout; against the hundred requests while it
    # was down, every other one of which round robin alone would have sent to it. (A 200
    # from it in the log is a request it finished just before the kill.)
    tries = [t for line in down_log for t in tried(line)]
    failed_tries = [t for t in tries if t[0] == victim.endpoint and t[1] != "200"]
    assert failed_tries, f"nginx never saw the victim fail: {down_log}"
    seconds_down = restarting - kill_started
    most = 2 * clients + seconds_down / FAIL_TIMEOUT + 1
    assert len(failed_tries) <= most, (failed_tries, tries)
    # ...and took it back once it served again (wait_served_by above).


class Output:
    """A program's output, line by line (read by a thread); waits on it have deadlines."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._stream = stream
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self._lines.put(line)
        self._lines.put("")  # the end: the program exited

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The next line matching ``pattern`` (the lines before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if not line:
                pytest.fail(f"no line matching {pattern!r}; output:\n{''.join(self.seen)}")
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def close(self) -> None:
        self._thread.join(10)
        self._stream.close()


def test_launcher_command(site: Path, tmp_path: Path) -> None:
    """``python deploy/launch.py`` on one command; SIGHUP restarts, SIGTERM stops it all."""
    run_dir = tmp_path / "run"
    command = [sys.executable, str(LAUNCHER), "--path", str(site), "--run-dir", str(run_dir),
               "--port", "0", "--backend-port", "0", "--fail-timeout", str(FAIL_TIMEOUT),
               "--grace", "5"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    assert process.stdout is not None
    output = Output(process.stdout)
    try:
        url = output.wait_for(r"site\s+(http://\S+)")[1]
        first = [output.wait_for(r"instance .*\(pid (\d+), 2 workers: \[(\d+), (\d+)\]")
                 for _ in range(2)]  # fmt: skip
        output.wait_for(r"Ctrl-C")
        visitor = Visitor(url + "counter.rpy")
        assert [visitor.visit().count for _ in range(4)] == [1, 2, 3, 4]

        process.send_signal(signal.SIGHUP)
        for _ in range(2):
            output.wait_for(r"restarted \(pid \d+\) and back in rotation")
        assert all(launch.process_gone(int(pid)) for found in first for pid in found.groups())
        assert visitor.visit().count == 5

        pids = [int(p.read_text()) for p in run_dir.glob("*.pid")]
        assert len(pids) == 4  # nginx, redis and the two instances' supervisors
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        output.wait_for(r"stopped; logs in")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(20)
            process.kill()
            process.wait()
        output.close()
    assert all(launch.process_gone(pid) for pid in pids)
    # The pid files went with their programs; the logs and the secret stay.
    assert list(run_dir.glob("*.pid")) == []
    assert (run_dir / "logs" / "nginx-access.log").stat().st_size > 0
    assert (run_dir / "secret").stat().st_mode & 0o777 == 0o600
