"""treadle's own Redis client: pipelining, reply order, errors, reconnection, login, TLS.

Most tests talk to a real ``redis-server`` (started here); a few use a fake server on a socket
of their own to make Redis misbehave (never answer, send garbage, answer slowly).
"""

from __future__ import annotations

import asyncio
import gc
import os
import ssl
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import DEADLINE, run_scenario
from tests.redis_server import REDIS_SERVER, RedisServer
from treadle.internet.defer import Deferred
from treadle.web._redis_client import (
    RedisClient,
    RedisConnectionError,
    RedisError,
    encode_command,
    parse_redis_url,
)

redis = pytest.importorskip("redis")


def client_for(url: str) -> RedisClient:
    return RedisClient(parse_redis_url(url))


class FakeRedis:
    """A server on a free port that hands every chunk it receives to ``answer``."""

    def __init__(self, answer: Callable[[asyncio.Transport, bytes], None]) -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        fake = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                fake.connections += 1
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                fake.received.append(data)
                fake.answer(self.transport, data)  # type: ignore[arg-type]

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(Protocol, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


# -- pipelining and order ---------------------------------------------------------------------


def test_the_commands_of_one_loop_turn_go_out_in_one_write(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        client = client_for(redis_server.url)
        assert await client.call(b"PING") == b"PONG"  # connected
        transport = client._transport
        assert transport is not None
        writes: list[bytes] = []
        real_write = transport.write

        def counting_write(data: bytes | bytearray | memoryview) -> None:
            writes.append(bytes(data))
            real_write(data)

        transport.write = counting_write  # type: ignore[method-assign]
        replies = [client.call(b"SET", b"k%d" % n, b"%d" % n) for n in range(50)]
        replies += [client.call(b"GET", b"k%d" % n) for n in range(50)]
        answers = [await reply for reply in replies]
        assert len(writes) == 1
        assert answers == [b"OK"] * 50 + [b"%d" % n for n in range(50)]
        await client.close()

    run_scenario(scenario)


def test_replies_reach_their_callers_in_order(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        client = client_for(redis_server.url)

        async def counter(name: bytes) -> list[int]:
            seen = []
            for _ in range(40):
                seen.append(await client.call(b"INCR", name))
            return seen

        counts = await asyncio.gather(*(counter(b"c%d" % n) for n in range(8)))
        assert counts == [list(range(1, 41))] * 8
        await client.close()

    run_scenario(scenario)


def test_several_commands_sent_as_one_answer_with_the_chosen_reply(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        client = client_for(redis_server.url)
        commands = encode_command((b"SET", b"x", b"1")) + encode_command((b"INCR", b"x"))
        assert await client.send(commands + encode_command((b"GET", b"x")), 3) == b"2"
        assert await client.send(encode_command((b"GET", b"x")) + commands, 3, 0) == b"2"
        assert await client.call(b"GET", b"x") == b"2"  # the dropped replies were consumed
        await client.close()

    run_scenario(scenario)


def test_an_error_reply_fails_only_its_own_command(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        client = client_for(redis_server.url)
        before = client.call(b"SET", b"s", b"text")
        wrong = client.call(b"HGET", b"s", b"field")  # a string is not a hash
        after = client.call(b"GET", b"s")
        assert await before == b"OK"
        with pytest.raises(RedisError, match="WRONGTYPE"):
            await wrong
        assert await after == b"text"
        assert client.connected  # an error reply is no reason to drop the connection
        await client.close()

    run_scenario(scenario)


def test_the_reply_of_a_cancelled_command_is_dropped_not_handed_on() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def answer(transport: asyncio.Transport, data: bytes) -> None:
            # One reply per command, each a little later, numbered in the order received.
            for n in range(data.count(b"*1\r\n")):
                loop.call_later(0.05 * (n + 1), transport.write, b":%d\r\n" % n)

        async with FakeRedis(answer) as url:
            client = client_for(url)
            first, second = client.call(b"PING"), client.call(b"PING")
            first.cancel()
            assert await second == 1
            assert await client.call(b"PING") == 0  # a new write: numbered from 0 again
            await client.close()

    run_scenario(scenario)


# -- connections --------------------------------------------------------------------------------


def test_a_command_after_redis_restarted_opens_a_new_connection(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        client = client_for(redis_server.url)
        assert await client.call(b"SET", b"k", b"1") == b"OK"
        redis_server.stop()
        with pytest.raises(RedisConnectionError):
            await client.call(b"GET", b"k")
        with pytest.raises(RedisConnectionError, match="cannot connect"):
            await client.call(b"GET", b"k")  # refused: nothing listens
        redis_server.start()
        assert await client.call(b"SET", b"k", b"2") == b"OK"
        assert await client.call(b"GET", b"k") == b"2"
        await client.close()

    run_scenario(scenario)


def test_a_server_that_never_answers_is_given_up_after_the_reply_timeout() -> None:
    async def scenario() -> None:
        async with FakeRedis(lambda transport, data: None) as url:
            client = client_for(url + "?socket_timeout=0.2")
            started = time.monotonic()
            with pytest.raises(RedisConnectionError, match="no reply in time"):
                await client.call(b"PING")
            assert time.monotonic() - started < 2
            assert not client.connected

    run_scenario(scenario)


def test_a_server_sending_garbage_loses_its_connection() -> None:
    async def scenario() -> None:
        async with FakeRedis(lambda transport, data: transport.write(b"!garbage\r\n")) as url:
            client = client_for(url)
            with pytest.raises(RedisConnectionError, match="unreadable"):
                await client.call(b"PING")
            assert not client.connected

    run_scenario(scenario)


def test_close_fails_what_waits_and_a_later_command_reconnects() -> None:
    async def scenario() -> None:
        async with FakeRedis(lambda transport, data: None) as url:
            client = client_for(url)
            waiting = client.call(b"PING")
            await asyncio.sleep(0.05)
            await client.close()
            with pytest.raises(RedisConnectionError):
                await waiting
            again = client.call(b"PING")
            await asyncio.sleep(0.05)
            assert client.connected
            await client.close()
            with pytest.raises(RedisConnectionError):
                await again

    run_scenario(scenario)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(redis_server: RedisServer) -> None:
    client = client_for(redis_server.url)

    async def whoami() -> int:
        return int(await client.call(b"CLIENT", b"ID"))

    async def scenario() -> None:
        parent_id = await whoami()
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            try:
                os._exit(0 if asyncio.run(whoami()) != parent_id else 1)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert await whoami() == parent_id  # the child left the parent's connection alone
        await client.close()

    run_scenario(scenario)


# -- logging in ---------------------------------------------------------------------------------


def test_a_password_and_a_database_are_used(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    admin.config_set("requirepass", "s3cret")
    admin.close()
    raw = redis.Redis(host="127.0.0.1", port=redis_server.port, password="s3cret", db=3)

    async def scenario() -> None:
        client = client_for(f"redis://:s3cret@127.0.0.1:{redis_server.port}/3")
        assert await client.call(b"SET", b"here", b"1") == b"OK"
        await client.close()
        wrong = client_for(f"redis://:nope@127.0.0.1:{redis_server.port}/3")
        with pytest.raises(RedisConnectionError, match="cannot log in"):
            await wrong.call(b"GET", b"here")

    run_scenario(scenario)
    assert raw.get(b"here") == b"1"
    raw.close()


def test_an_acl_user_logs_in_with_its_name(redis_server: RedisServer) -> None:
    raw = redis_server.client()
    raw.execute_command("ACL", "SETUSER", "ann", "on", ">pw", "~*", "+@all")
    raw.close()

    async def scenario() -> None:
        client = client_for(f"redis://ann:pw@127.0.0.1:{redis_server.port}/0")
        assert await client.call(b"ACL", b"WHOAMI") == b"ann"
        await client.close()

    run_scenario(scenario)


def test_tls_with_the_url_s_certificate_authority(tmp_path: Any) -> None:
    trustme = pytest.importorskip("trustme")
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    port = RedisServer(REDIS_SERVER, str(tmp_path)).port
    argv = [REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--save", ""]
    argv += ["--tls-cert-file", str(tmp_path / "cert.pem")]
    argv += ["--tls-key-file", str(tmp_path / "key.pem")]
    argv += ["--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--tls-auth-clients", "no"]
    argv += ["--dir", str(tmp_path)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:

        async def scenario() -> None:
            url = f"rediss://localhost:{port}/0?ssl_ca_certs={tmp_path / 'ca.pem'}"
            client = client_for(url)
            deadline = time.monotonic() + DEADLINE
            while True:  # until the server listens
                try:
                    assert await client.call(b"PING") == b"PONG"
                    break
                except RedisConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
            await client.close()
            untrusting = client_for(f"rediss://localhost:{port}/0")
            with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.call(b"PING")

        run_scenario(scenario)
    finally:
        process.terminate()
        process.wait(DEADLINE)


# -- URLs -------------------------------------------------------------------------------------


def test_urls_are_read_as_redis_py_reads_them() -> None:
    address = parse_redis_url("redis://ann:p%40ss@cache.internal:6380/2?client_name=web")
    assert (address.host, address.port, address.db) == ("cache.internal", 6380, 2)
    assert (address.username, address.password) == ("ann", "p@ss")
    assert address.client_name == "web" and address.ssl is None
    assert parse_redis_url("redis://h/1?db=4").db == 4  # the query wins over the path
    assert parse_redis_url("redis://h?password=q").password == "q"
    assert parse_redis_url("redis://:netloc@h?password=q").password == "netloc"
    unix = parse_redis_url("unix:///run/redis.sock?db=5&socket_timeout=2.5")
    assert (unix.path, unix.db, unix.reply_timeout) == ("/run/redis.sock", 5, 2.5)
    tls = parse_redis_url("rediss://h?ssl_cert_reqs=none")
    assert tls.ssl is not None and tls.ssl.verify_mode == ssl.CERT_NONE
    assert not tls.ssl.check_hostname
    assert parse_redis_url("rediss://h").ssl.check_hostname  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h", "starts with redis://"),
        ("redis://h?pool=3", "unknown option 'pool'"),
        ("redis://h?ssl_cert_reqs=none", "TLS options need rediss://"),
        ("redis://h?db=-1", "Invalid value for 'db'"),
        ("redis://h?socket_timeout=0", "Invalid value for 'socket_timeout'"),
        ("redis://h?protocol=3", "only 2"),
        ("rediss://h?ssl_cert_reqs=maybe", "Invalid value for 'ssl_cert_reqs'"),
        ("unix://", "needs the path"),
    ],
)
def test_urls_it_cannot_use_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_redis_url(url)


def test_a_command_without_a_running_loop_fails_its_deferred() -> None:
    client = client_for("redis://127.0.0.1:1/0")
    reply: Deferred[Any] = client.call(b"PING")
    failures: list[Any] = []
    reply.addErrback(failures.append)
    assert failures and failures[0].check(RedisConnectionError)


# The connection left behind with its loop can only be dropped, unclosed.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_client_outliving_its_loop_connects_again_in_the_next(
    redis_server: RedisServer,
) -> None:
    client = client_for(redis_server.url)

    async def ping() -> Any:
        return await client.call(b"PING")

    assert run_scenario(ping) == b"PONG"  # the connection stays open as the loop ends
    assert run_scenario(ping) == b"PONG"
    run_scenario(client.close)
    gc.collect()  # the dropped connections' warnings, here where they are expected
