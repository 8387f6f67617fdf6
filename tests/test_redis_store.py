"""The Redis session store, against a real ``redis-server`` this file starts and stops."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from tests.conftest import DEADLINE, eventually, run_scenario
from tests.redis_server import RedisServer

redis = pytest.importorskip("redis")

from treadle.web._redis_store import RedisStore, describe_url  # noqa: E402
from treadle.web._session_store import GuardedStore, SessionStoreUnavailable  # noqa: E402

# -- the store --------------------------------------------------------------------------------


def test_a_saved_session_loads_with_its_fields(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(redis_server.url)
        assert await store.load(b"s1", 60) is None
        await store.save(b"s1", {}, (), 60)
        assert await store.load(b"s1", 60) == {}  # the meta field makes it exist
        await store.save(b"s1", {"a:cart": b"3 apples", "a:user": b"ann"}, (), 60)
        await store.save(b"s1", {"a:cart": b"4 apples"}, ("a:user",), 60)
        assert await store.load(b"s1", 60) == {"a:cart": b"4 apples"}
        await store.save(b"s1", {}, ("a:cart",), 60)
        assert await store.load(b"s1", 60) == {}  # all its values removed, still there
        await store.delete(b"s1")
        await store.delete(b"never")
        assert await store.load(b"s1", 60) is None
        assert await store.remaining(b"s1") is None
        await store.close()

    run_scenario(scenario)


def test_every_key_has_a_ttl_that_load_pushes_ahead(redis_server: RedisServer) -> None:
    raw = redis_server.client()

    async def scenario() -> None:
        store = RedisStore(redis_server.url)
        await store.save(b"s1", {"a:x": b"1"}, (), 5)
        assert 0 < raw.pttl(b"treadle:session:s1") <= 5000
        assert await store.load(b"s1", 100) == {"a:x": b"1"}
        assert 95_000 < raw.pttl(b"treadle:session:s1") <= 100_000
        remaining = await store.remaining(b"s1")
        assert remaining is not None and 95 < remaining <= 100
        await store.close()

    run_scenario(scenario)
    assert raw.keys() == [b"treadle:session:s1"]
    raw.close()


def test_a_session_with_a_short_timeout_expires(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(redis_server.url)
        await store.save(b"s1", {"a:x": b"1"}, (), 0.2)

        async def gone() -> bool:
            return await store.remaining(b"s1") is None  # a load would push the expiry

        await eventually(gone, "the session to expire")
        assert await store.load(b"s1", 0.2) is None
        await store.close()

    run_scenario(scenario)


def test_concurrent_saves_of_one_session_lose_no_field(redis_server: RedisServer) -> None:
    """Two clients (two processes, as far as Redis can tell) writing different fields."""

    async def scenario() -> None:
        first, second = RedisStore(redis_server.url), RedisStore(redis_server.url)

        async def writes(store: RedisStore, field: str) -> None:
            for n in range(100):
                await store.save(b"s1", {field: b"%d" % n, "a:shared": field.encode()}, (), 60)

        await asyncio.gather(writes(first, "a:one"), writes(second, "a:two"))
        fields = await first.load(b"s1", 60)
        assert fields is not None
        assert fields["a:one"] == fields["a:two"] == b"99"
        assert fields["a:shared"] in (b"a:one", b"a:two")
        await first.close()
        await second.close()

    run_scenario(scenario)


def test_a_prefix_keeps_sites_apart(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        one = RedisStore(redis_server.url, prefix=b"one:")
        two = RedisStore(redis_server.url, prefix=b"two:")
        await one.save(b"s1", {"a:x": b"1"}, (), 60)
        assert await two.load(b"s1", 60) is None
        await one.close()
        await two.close()

    run_scenario(scenario)


def test_unix_socket_urls_work(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(f"unix://{redis_server.socket_path}?db=3")
        await store.save(b"s1", {"a:x": b"1"}, (), 60)
        assert await store.load(b"s1", 60) == {"a:x": b"1"}
        await store.close()

    run_scenario(scenario)
    raw = redis.Redis(unix_socket_path=redis_server.socket_path, db=3)
    assert raw.exists(b"treadle:session:s1") == 1
    raw.close()


def test_a_password_in_the_url_is_used_and_never_shown(redis_server: RedisServer) -> None:
    raw = redis_server.client()
    raw.config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{redis_server.port}/0"

    async def scenario() -> None:
        store = RedisStore(url)
        assert "s3cret" not in store.description
        await store.save(b"s1", {"a:x": b"1"}, (), 60)
        assert await store.load(b"s1", 60) == {"a:x": b"1"}
        await store.close()

    run_scenario(scenario)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@example.net:6380/2", "redis://example.net:6380/2"),
        ("redis://ann:pw@example.net", "redis://ann@example.net:6379/0"),
        ("rediss://example.net/1?password=pw", "rediss://example.net:6379/1"),
        ("redis://[::1]:7000/0", "redis://[::1]:7000/0"),
        ("unix://:pw@/run/redis.sock?db=4&password=pw", "unix:///run/redis.sock?db=4"),
    ],
)
def test_the_description_names_the_server_without_a_password(url: str, shown: str) -> None:
    assert describe_url(url) == shown


# -- behind the guard -------------------------------------------------------------------------


def outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    records = [r for r in caplog.records if r.name == "treadle.error"]
    down = [r.getMessage() for r in records if r.levelno == logging.ERROR]
    up = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    return down, up


def test_a_stopped_redis_fails_fast_logs_once_and_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="treadle.error")
    deadline = 0.5

    async def scenario() -> None:
        store = GuardedStore(RedisStore(redis_server.url), deadline=deadline)
        await store.save(b"s1", {"a:x": b"1"}, (), 60)
        redis_server.stop()

        started = time.monotonic()
        with pytest.raises(SessionStoreUnavailable):
            await store.load(b"s1", 60)
        assert time.monotonic() - started < deadline + 0.5
        for _ in range(20):  # the outage goes on: every call fails, none logs again
            with pytest.raises(SessionStoreUnavailable):
                await store.load(b"s1", 60)
        assert store.down
        assert len(outage_lines(caplog)[0]) == 1

        redis_server.start()

        async def answers() -> bool:
            try:
                await store.save(b"s2", {"a:y": b"2"}, (), 60)
            except SessionStoreUnavailable:
                return False
            return True

        await eventually(answers, "the store to answer after Redis restarted")
        assert not store.down
        assert await store.load(b"s2", 60) == {"a:y": b"2"}
        await store.close()

    run_scenario(scenario)
    down, up = outage_lines(caplog)
    assert len(down) == 1 and len(up) == 1
    assert redis_server.url.removesuffix("/0") in down[0]


def test_a_hung_redis_fails_within_the_deadline_and_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="treadle.error")
    deadline = 0.3

    async def scenario() -> None:
        store = GuardedStore(RedisStore(redis_server.url), deadline=deadline)
        await store.save(b"s1", {"a:x": b"1"}, (), 60)
        await store.save(b"s2", {"a:y": b"2"}, (), 60)
        redis_server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(SessionStoreUnavailable, match="no answer in time"):
                await store.load(b"s1", 60)
            assert time.monotonic() - started < deadline + 0.5
        finally:
            redis_server.resume()

        async def answers() -> Any:
            try:
                return await store.load(b"s2", 60)
            except SessionStoreUnavailable:
                return None

        # The connection that waited for s1's answer must not hand it to the next call.
        assert await eventually(answers, "the store to answer again") == {"a:y": b"2"}
        await store.close()

    run_scenario(scenario)
    down, up = outage_lines(caplog)
    assert len(down) == 1 and len(up) == 1


# -- through a site, over a real socket -----------------------------------------------------------


def test_two_sites_share_sessions_through_redis(redis_server: RedisServer, server: Any) -> None:
    import httpx

    from treadle.web.resource import Resource
    from treadle.web.server import Site

    class Counter(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            session = request.getSession()
            session.visits = getattr(session, "visits", 0) + 1
            return b"%d" % session.visits

    secret = b"s" * 32
    sites = [Site(Counter(), sessionStore=redis_server.url, sessionSecret=secret) for _ in "ab"]
    urls = [server.serve(site) for site in sites]
    cookie = ""
    counts = []
    with httpx.Client(timeout=DEADLINE) as client:
        for visit in range(6):
            headers = {"cookie": cookie} if cookie else {}
            response = client.get(urls[visit % 2], headers=headers)
            client.cookies.clear()
            assert response.status_code == 200, response.text
            cookie = response.headers.get("set-cookie", cookie).split(";")[0]
            counts.append(int(response.text))
    assert counts == [1, 2, 3, 4, 5, 6]
    for site in sites:  # an open Redis connection would keep the server's loop from closing
        asyncio.run_coroutine_threadsafe(site.sessionSharing.store.close(), server.loop).result(
            DEADLINE
        )
