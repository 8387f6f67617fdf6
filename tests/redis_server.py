"""A throwaway ``redis-server`` for the tests of treadle's Redis client and session store.

:class:`RedisServer` runs one on a free port and a Unix socket, keeping nothing on disk; the
``redis_server`` fixture (registered for every test module by ``tests/conftest.py``) starts
one per test and skips the test where ``redis-server`` is not installed (CI installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DEADLINE, wait_for

#: The ``redis-server`` executable, or None where it is not installed.
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A throwaway ``redis-server`` on a free port and a Unix socket, keeping nothing on disk."""

    def __init__(self, executable: str, directory: str) -> None:
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.socket_path = os.path.join(directory, "redis.sock")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (on the same port and socket as before) and wait until it answers."""
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "unixsocket": self.socket_path,
            "unixsocketperm": "700",
            "save": "",  # nothing on disk: a restart starts empty
            "appendonly": "no",
            "dir": self.directory,
            "logfile": os.path.join(self.directory, "redis.log"),
        }
        argv = [self.executable]
        for name, value in options.items():
            argv += [f"--{name}", value]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_for(self._answers, "redis-server to answer")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"redis-server exited with {self.process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and wait until it has exited."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test left it paused
            self.process.terminate()
            self.process.wait(DEADLINE)
        self.process = None

    def pause(self) -> None:
        """Freeze the server: connections stay open and nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> Any:
        """A blocking redis-py client, to look at what the store wrote."""
        import redis  # a test dependency only: the modules that use this skip without it

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=DEADLINE)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A server started in a fresh short directory, stopped and cleaned up after the test.

    Skips the test when ``redis-server`` is not installed.
    """
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI installs it")
    # A short directory: a Unix socket path must fit in about 100 bytes.
    directory = tempfile.mkdtemp(prefix="treadle-redis-")
    server = RedisServer(REDIS_SERVER, directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
