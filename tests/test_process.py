"""reactor.spawnProcess: real child processes talking to a ProcessProtocol.

Each test runs the reactor inside an asyncio loop (the stdlib one and uvloop); the children are
``sys.executable -c ...``. The Twisted-style program at the end runs under ``reactor.run()``,
and under real Twisted too, with the same output.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import run_on_loop
from treadle.internet import reactor
from treadle.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from treadle.internet.protocol import ProcessProtocol
from treadle.python.failure import Failure

_T = TypeVar("_T")
PY = sys.executable


class Recorder(ProcessProtocol):
    """Records every event; ``ended`` resolves with the processEnded reason."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[Failure] = loop.create_future()
        self.exited: asyncio.Future[Failure] = loop.create_future()
        self.events: list[tuple[Any, ...]] = []
        self.data: dict[int, bytes] = {}
        self.waiters: dict[Any, asyncio.Future[None]] = {}

    def wait_event(self, event: tuple[Any, ...]) -> asyncio.Future[None]:
        """A future resolved once ``event`` has been recorded."""
        future = asyncio.get_running_loop().create_future()
        if event in self.events:
            future.set_result(None)
        else:
            self.waiters[event] = future
        return future

    def _record(self, *event: Any) -> None:
        self.events.append(event)
        waiter = self.waiters.pop(event, None)
        if waiter is not None:
            waiter.set_result(None)

    def connectionMade(self) -> None:
        self._record("made", self.transport.pid is not None)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.data[childFD] = self.data.get(childFD, b"") + data
        super().childDataReceived(childFD, data)

    def childConnectionLost(self, childFD: int) -> None:
        self._record("lost", childFD)

    def processExited(self, reason: Failure) -> None:
        self._record("exited", reason.type)
        self.exited.set_result(reason)

    def processEnded(self, reason: Failure) -> None:
        self._record("ended", reason.type, self.transport.pid)
        self.ended.set_result(reason)


def spawn(code: str, **kw: Any) -> tuple[Recorder, Any]:
    protocol = Recorder()
    transport = reactor.spawnProcess(protocol, PY, [PY, "-c", textwrap.dedent(code)], **kw)
    return protocol, transport


def test_output_exit_and_the_order_of_events(loop_kind: str) -> None:
    async def main() -> tuple[Recorder, Any, Failure, int | None]:
        p, t = spawn("import sys; sys.stdout.write('out'); sys.stderr.write('err')")
        pid = t.pid
        reason = await p.ended
        return p, t, reason, pid

    p, t, reason, pid = run_on_loop(loop_kind, main())
    assert isinstance(pid, int) and pid > 0
    assert p.data == {1: b"out", 2: b"err"}
    assert reason.check(ProcessDone) and reason.value.exitCode == 0
    assert p.events[0] == ("made", True)
    assert sorted(e[1] for e in p.events if e[0] == "lost") == [0, 1, 2]
    assert ("exited", ProcessDone) in p.events
    assert p.events[-1] == ("ended", ProcessDone, None)  # after exit and every pipe
    assert t.pid is None and t.status == 0


def test_a_non_zero_exit_code_is_process_terminated(loop_kind: str) -> None:
    async def main() -> tuple[Failure, Any]:
        p, t = spawn("import sys; sys.exit(3)")
        return await p.ended, t

    reason, t = run_on_loop(loop_kind, main())
    assert reason.check(ProcessTerminated)
    assert (reason.value.exitCode, reason.value.signal, reason.value.status) == (3, None, 3 << 8)
    assert t.status == 3 << 8


@pytest.mark.parametrize(
    ("signal_id", "number"),
    [("TERM", signal.SIGTERM), ("KILL", signal.SIGKILL), (signal.SIGINT, signal.SIGINT)],
)
def test_signal_process_ends_the_child(loop_kind: str, signal_id: Any, number: int) -> None:
    async def main() -> tuple[Failure, Any]:
        p, t = spawn(
            """
            import signal, sys, time
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            print('ready', flush=True)
            time.sleep(30)
            """
        )
        while b"ready" not in p.data.get(1, b""):
            await asyncio.sleep(0.005)
        t.signalProcess(signal_id)
        return await p.ended, t

    reason, t = run_on_loop(loop_kind, main())
    assert reason.check(ProcessTerminated)
    assert (reason.value.exitCode, reason.value.signal) == (None, number)
    with pytest.raises(ProcessExitedAlready):
        t.signalProcess("TERM")


def test_an_unknown_signal_name_is_a_value_error(loop_kind: str) -> None:
    async def main() -> None:
        p, t = spawn("import time; time.sleep(30)")
        with pytest.raises(ValueError, match="unknown signal"):
            t.signalProcess("NOSUCHSIGNAL")
        t.signalProcess("SIGKILL")
        await p.ended

    run_on_loop(loop_kind, main())


def test_stdin_writes_are_flushed_before_close(loop_kind: str) -> None:
    big = os.urandom(1 << 20)  # well over a pipe's 64 KiB

    async def main() -> Recorder:
        p, t = spawn(
            """
            import hashlib, sys
            data = sys.stdin.buffer.read()
            print(len(data), hashlib.sha256(data).hexdigest())
            """
        )
        t.write(b"head:")
        t.writeSequence([big[:10], big[10:]])
        t.closeStdin()
        t.write(b"dropped after close")
        await p.ended
        return p

    import hashlib

    p = run_on_loop(loop_kind, main())
    expected = b"head:" + big
    assert p.data[1].split() == [
        str(len(expected)).encode(),
        hashlib.sha256(expected).hexdigest().encode(),
    ]


def test_a_child_closing_its_stdin_is_noticed(loop_kind: str) -> None:
    async def main() -> tuple[Any, list[tuple[Any, ...]]]:
        p, t = spawn("import os, time; os.close(0); time.sleep(30)")
        await p.wait_event(("lost", 0))
        pid_while_running = t.pid
        t.signalProcess("KILL")
        await p.ended
        return pid_while_running, p.events

    pid, events = run_on_loop(loop_kind, main())
    assert pid is not None  # the pipe closed while the child still ran
    assert events.index(("lost", 0)) < events.index(("exited", ProcessTerminated))


def test_pause_producing_holds_output_until_resumed(loop_kind: str) -> None:
    async def main() -> tuple[dict[int, bytes], Recorder]:
        p, t = spawn("print('held')")
        t.pauseProducing()
        await p.exited  # the output is in the pipe by now
        before = dict(p.data)
        t.resumeProducing()
        await p.ended
        return before, p

    before, p = run_on_loop(loop_kind, main())
    assert 1 not in before
    assert p.data[1] == b"held\n"


def test_lose_connection_closes_every_pipe(loop_kind: str) -> None:
    async def main() -> Recorder:
        p, t = spawn(
            """
            import sys
            sys.stdin.read()  # returns once our end of stdin is closed
            """
        )
        t.loseConnection()
        await p.ended
        return p

    p = run_on_loop(loop_kind, main())
    assert sorted(e[1] for e in p.events if e[0] == "lost") == [0, 1, 2]


def test_the_environment_is_empty_by_default_not_inherited(
    loop_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TREADLE_MARK", "parent")
    show = "import os; print(sorted(k for k in os.environ if k != 'LC_CTYPE'))"

    async def main() -> list[bytes]:
        default, _ = spawn(show)
        given, _ = spawn(show, env={"ONLY": "this"})
        inherited, _ = spawn(show, env=None)
        for p in (default, given, inherited):
            await p.ended
        return [p.data[1] for p in (default, given, inherited)]

    default, given, inherited = run_on_loop(loop_kind, main())
    assert default == b"[]\n"
    assert given == b"['ONLY']\n"
    assert b"'TREADLE_MARK'" in inherited


def test_path_is_the_working_directory_and_args0_is_argv0(loop_kind: str, tmp_path: Path) -> None:
    async def main() -> bytes:
        p = Recorder()
        code = "import os, sys; print(os.getcwd()); print(sys.orig_argv[0])"
        reactor.spawnProcess(p, PY, ["custom-argv0", "-c", code], path=str(tmp_path))
        await p.ended
        return p.data[1]

    cwd, argv0 = run_on_loop(loop_kind, main()).decode().splitlines()
    assert Path(cwd).resolve() == tmp_path.resolve()
    assert argv0 == "custom-argv0"


def test_extra_child_descriptors_read_and_write(loop_kind: str) -> None:
    async def main() -> Recorder:
        p = Recorder()
        code = "import os; os.write(3, b'on three'); os.write(1, os.read(4, 100))"
        t = reactor.spawnProcess(
            p, PY, [PY, "-c", code], childFDs={0: "w", 1: "r", 2: "r", 3: "r", 4: "w"}
        )
        t.writeToChild(4, b"to four")
        t.closeChildFD(4)
        await p.ended
        return p

    p = run_on_loop(loop_kind, main())
    assert p.data == {3: b"on three", 1: b"to four"}
    assert sorted(e[1] for e in p.events if e[0] == "lost") == [0, 1, 2, 3, 4]


def test_a_child_descriptor_may_be_one_of_ours(loop_kind: str, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"

    async def main() -> None:
        with open(target, "wb") as f:
            p = Recorder()
            reactor.spawnProcess(
                p, PY, [PY, "-c", "print('to the file')"], childFDs={1: f.fileno()}
            )
            await p.ended

    run_on_loop(loop_kind, main())
    assert target.read_bytes() == b"to the file\n"


def test_use_pty_runs_the_child_on_a_terminal(loop_kind: str) -> None:
    async def main() -> bytes:
        p = Recorder()
        code = "import os; print(os.isatty(0), os.isatty(1)); print(input().upper())"
        t = reactor.spawnProcess(p, PY, [PY, "-c", code], usePTY=True)
        t.write(b"typed\n")
        await p.ended
        return p.data[1]

    output = run_on_loop(loop_kind, main())
    assert b"True True" in output and output.rstrip().endswith(b"TYPED")


def test_a_pull_producer_feeds_stdin(loop_kind: str) -> None:
    class Chunks:
        def __init__(self, transport: Any) -> None:
            self.transport = transport
            self.left = 40

        def resumeProducing(self) -> None:
            self.left -= 1
            self.transport.write(b"x" * 10_000)
            if not self.left:
                self.transport.unregisterProducer()
                self.transport.closeStdin()

        def stopProducing(self) -> None:
            pass

    async def main() -> bytes:
        p, t = spawn("import sys; print(len(sys.stdin.buffer.read()))")
        t.registerProducer(Chunks(t), False)
        await p.ended
        return p.data[1]

    assert run_on_loop(loop_kind, main()) == b"400000\n"


def test_bad_calls_raise_at_once_and_leak_nothing(loop_kind: str, tmp_path: Path) -> None:
    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def main() -> None:
        before = descriptors()
        p = Recorder()
        with pytest.raises(FileNotFoundError):
            reactor.spawnProcess(p, str(tmp_path / "missing"), ["missing"])
        with pytest.raises(FileNotFoundError):
            reactor.spawnProcess(p, PY, [PY, "-c", ""], path=str(tmp_path / "missing"))
        with pytest.raises(ValueError, match="args must not be empty"):
            reactor.spawnProcess(p, PY, [])
        with pytest.raises(ValueError, match="childFDs"):
            reactor.spawnProcess(p, PY, [PY], childFDs={0: "w", 1: "x"})
        assert p.events == []
        done, t = spawn("pass")
        with pytest.raises(TypeError):
            t.write("text")
        with pytest.raises(KeyError):
            t.writeToChild(7, b"no such pipe")
        await done.ended
        assert descriptors() == before

    run_on_loop(loop_kind, main())


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="Linux pidfds")
def test_exit_is_noticed_without_pidfds_too(
    loop_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "pidfd_open")

    async def main() -> Failure:
        p, _ = spawn("import sys; sys.exit(5)")
        return await p.ended

    assert run_on_loop(loop_kind, main()).value.exitCode == 5


TWISTED_PROGRAM = """
import sys
from twisted.internet import protocol, reactor

class Echo(protocol.ProcessProtocol):
    def connectionMade(self):
        print("made", self.transport.pid is not None)
        self.transport.write(b"hello")
        self.transport.closeStdin()

    def outReceived(self, data):
        print("out", data)

    def errReceived(self, data):
        print("err", data)

    def processExited(self, reason):
        print("exited", type(reason.value).__name__, reason.value.exitCode)

    def processEnded(self, reason):
        print("ended", type(reason.value).__name__, reason.value.exitCode, self.transport.pid)
        reactor.stop()

code = (
    "import sys; d = sys.stdin.read(); sys.stderr.write('e'); sys.stderr.flush(); "
    "print(d.upper()); sys.exit(4)"
)
reactor.spawnProcess(Echo(), sys.executable, [sys.executable, "-c", code])
reactor.run()
"""


def run_program(source: str, **env: str) -> str:
    result = subprocess.run(
        [PY, "-c", source],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_twisted_program_behaves_the_same_under_treadle(loop: str) -> None:
    pytest.importorskip("twisted")
    twisted = run_program(TWISTED_PROGRAM)
    treadle = run_program(TWISTED_PROGRAM.replace("twisted", "treadle"), TREADLE_LOOP=loop)
    assert treadle == twisted
    assert twisted.splitlines()[0] == "made True"
    assert "ended ProcessTerminated 4 None" in twisted
