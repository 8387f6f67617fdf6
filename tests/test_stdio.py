"""treadle.internet.stdio: the same programs run under Twisted and, ported, under treadle.

Each program talks over its own standard input and output, so each runs in a child
interpreter, fed through a pipe or a regular file; what it writes (and, on stderr, the
events it saw) must be the same under both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEADLINE, ServerThread, wait_for

# A line filter: upper-cases each line; the end of its input stops the reactor.
UPPER = """
import sys
from twisted.internet import reactor, stdio
from twisted.protocols import basic

class Upper(basic.LineReceiver):
    delimiter = b"\\n"

    def connectionMade(self):
        sys.stderr.write(f"made {type(self.transport.getPeer()).__name__}\\n")
        self.transport.write(b"ready\\n")

    def lineReceived(self, line):
        if line == b"quit":
            self.sendLine(b"bye")
            self.transport.loseConnection()
        else:
            self.sendLine(line.upper())

    def connectionLost(self, reason):
        sys.stderr.write(f"lost {reason.type.__name__}\\n")
        reactor.stop()

stdio.StandardIO(Upper())
reactor.run()
"""

# A half-closeable protocol answers after its input ended, then closes.
HALF = """
import sys
from zope.interface import implementer
from twisted.internet import interfaces, protocol, reactor, stdio

@implementer(interfaces.IHalfCloseableProtocol)
class Count(protocol.Protocol):
    size = 0

    def dataReceived(self, data):
        self.size += len(data)

    def readConnectionLost(self):
        sys.stderr.write("read side ended\\n")
        self.transport.write(b"%d bytes\\n" % self.size)
        self.transport.loseConnection()

    def writeConnectionLost(self):
        sys.stderr.write("write side ended\\n")

    def connectionLost(self, reason):
        sys.stderr.write(f"lost {reason.type.__name__}\\n")
        reactor.stop()

stdio.StandardIO(Count())
reactor.run()
"""


def run(framework: str, program: str, stdin: bytes | Path, tmp_path: Path) -> tuple[str, str]:
    """``program`` (written for Twisted) run under ``framework``, given ``stdin`` (bytes
    through a pipe, or a path to redirect from); what it wrote to stdout and stderr."""
    source = textwrap.dedent(program)
    if framework == "treadle":
        source = source.replace("from twisted.", "from treadle.")
    script = tmp_path / f"under_{framework}.py"  # (not treadle.py: it would shadow treadle)
    script.write_text(source)
    out_file = tmp_path / f"{framework}.out"
    if isinstance(stdin, Path):
        with stdin.open("rb") as given, out_file.open("wb") as taken:
            done = subprocess.run(
                [sys.executable, str(script)],
                stdin=given,
                stdout=taken,
                stderr=subprocess.PIPE,
                timeout=DEADLINE,
            )
        stdout = out_file.read_bytes()
    else:
        done = subprocess.run(
            [sys.executable, str(script)], input=stdin, capture_output=True, timeout=DEADLINE
        )
        stdout = done.stdout
    assert done.returncode == 0, done.stderr.decode()
    return stdout.decode(), done.stderr.decode()


def given_through(through: str, data: bytes, tmp_path: Path) -> bytes | Path:
    """``data`` as a pipe gets it (bytes), or as a regular file to redirect from."""
    if through == "pipe":
        return data
    path = tmp_path / "input"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("through", ["pipe", "file"])
def test_a_line_filter_runs_as_under_twisted(through: str, tmp_path: Path) -> None:
    stdin = given_through(through, b"hello\nworld\n", tmp_path)
    ours = run("treadle", UPPER, stdin, tmp_path)
    assert ours == run("twisted", UPPER, stdin, tmp_path)
    assert ours == ("ready\nHELLO\nWORLD\n", "made PipeAddress\nlost ConnectionDone\n")


def test_lose_connection_writes_what_is_queued_first(tmp_path: Path) -> None:
    given = b"one\nquit\nnever read\n"
    ours = run("treadle", UPPER, given, tmp_path)
    assert ours == run("twisted", UPPER, given, tmp_path)
    assert ours[0] == "ready\nONE\nbye\n"


@pytest.mark.parametrize("through", ["pipe", "file"])
def test_a_half_closeable_protocol_writes_after_its_input_ended(
    through: str, tmp_path: Path
) -> None:
    stdin = given_through(through, b"x" * 100_000, tmp_path)
    ours = run("treadle", HALF, stdin, tmp_path)
    assert ours == run("twisted", HALF, stdin, tmp_path)
    assert ours == ("100000 bytes\n", "read side ended\nlost ConnectionDone\n")


def test_output_queued_when_input_ends_is_written_before_the_end(server: ServerThread) -> None:
    """Unlike Twisted, which drops it: a filter's last output reaches a slow reader."""
    from treadle.internet import reactor
    from treadle.internet.protocol import Protocol
    from treadle.internet.stdio import StandardIO

    lost: list[str] = []
    big = b"x" * (1024 * 1024)  # far more than a pipe holds

    class Flood(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(big)

        def connectionLost(self, reason: Any) -> None:
            lost.append(reason.type.__name__)

    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    transport = server.call(
        lambda: StandardIO(Flood(), stdin=in_read, stdout=out_write, reactor=reactor)
    )
    os.write(in_write, b"go")
    os.close(in_write)
    # Nobody reads the output until the input's end has been seen, with most of it queued.
    wait_for(lambda: server.call(lambda: transport._reader is None), "the end of the input")
    assert not lost
    received = bytearray()
    while chunk := os.read(out_read, 65536):
        received += chunk
    os.close(out_read)
    assert len(received) == len(big)
    wait_for(lambda: server.call(lambda: list(lost)), "connectionLost")
    assert lost == ["ConnectionDone"]
