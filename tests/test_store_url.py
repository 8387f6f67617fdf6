"""Which session store a ``--sessions`` URL names, and the errors for those that name none."""

from __future__ import annotations

from pathlib import Path

import pytest

from treadle.web._redis_store import RedisStore
from treadle.web._sqlite_store import SQLiteStore
from treadle.web._store_url import ACCEPTED_FORMS, open_store


def test_memory_means_no_store() -> None:
    assert open_store("memory:", runtime_dir=None, max_sessions=10) is None
    assert open_store("MEMORY:", runtime_dir="/nonexistent", max_sessions=10) is None


def test_sqlite_alone_is_a_file_in_the_runtime_directory(tmp_path: Path) -> None:
    store = open_store("sqlite:", runtime_dir=str(tmp_path), max_sessions=123)
    assert isinstance(store, SQLiteStore)
    assert store.path == str(tmp_path / "sessions.sqlite3")
    assert store.max_sessions == 123
    assert (tmp_path / "sessions.sqlite3").exists()


@pytest.mark.parametrize("form", ["sqlite:{}", "sqlite://{}"])
def test_sqlite_with_an_absolute_path_is_that_file(tmp_path: Path, form: str) -> None:
    path = tmp_path / "elsewhere.db"
    store = open_store(form.format(path), runtime_dir=None, max_sessions=5)
    assert isinstance(store, SQLiteStore)
    assert store.path == str(path)
    assert store.description == f"sqlite:{path}"


@pytest.mark.parametrize(
    ("url", "description"),
    [
        ("redis://127.0.0.1:6380/2", "redis://127.0.0.1:6380/2"),
        ("redis://redis.internal", "redis://redis.internal:6379/0"),
        ("Redis://ann:pw@redis.internal:6379/1", "redis://ann@redis.internal:6379/1"),
        ("rediss://:pw@redis.example.net:6380/0", "rediss://redis.example.net:6380/0"),
        ("unix:///run/redis/redis.sock?db=3", "unix:///run/redis/redis.sock?db=3"),
    ],
)
def test_redis_urls_make_a_redis_store(url: str, description: str) -> None:
    store = open_store(url, runtime_dir=None, max_sessions=5)
    assert isinstance(store, RedisStore)
    assert store.description == description


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "has no scheme"),
        ("memory", "has no scheme"),
        ("memory:now", "nothing after the colon"),
        ("postgres://db/sessions", "unknown scheme 'postgres'"),
        ("sqlite:", "needs a runtime directory"),
        ("sqlite:sessions.db", "is not absolute"),
        ("sqlite://fileserver/sessions.db", "cannot be a host"),
        ("sqlite:/tmp/s.db?mode=ro", "no query"),
        ("sqlite:/nonexistent/dir/s.db", "does not exist"),
        ("redis://", "needs a host"),
        ("redis://:6379/0", "needs a host"),
        ("redis://host:port/0", "port is not a number"),
        ("redis://host:70000/0", "port is not a number"),
        ("rediss://host/zero", "database 'zero' is not a number"),
        ("unix://", "needs the path"),
        ("redis://host/0?db=x", "Invalid value for .db.*\\. Accepted"),
    ],
)
def test_other_urls_are_refused_with_the_accepted_forms(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        open_store(url, runtime_dir=None, max_sessions=5)
    assert ACCEPTED_FORMS in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://ann:s3cret@host:port/0",
        "redis://:s3cret@/0",
        "rediss://host:port/0?password=s3cret",
        "unix://:s3cret@?db=1",
    ],
)
def test_a_refused_url_is_named_without_its_password(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        open_store(url, runtime_dir=None, max_sessions=5)
    assert "s3cret" not in str(raised.value)
    assert "***" in str(raised.value)
