"""The compiled hot path: which build is loaded, the switch to pure Python, Python semantics.

CI runs the suite twice: once with ``TREADLE_EXPECT_COMPILED=1`` after a compiled install
(then :data:`treadle.compiled` must be true, or the build silently fell back to pure
Python), once with ``TREADLE_PURE_PYTHON=1``.
"""

from __future__ import annotations

import gc
import importlib
import importlib.machinery
import os
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest

import treadle
from treadle import _compiled
from treadle.web import http, server
from treadle.web.http import HTTPChannel
from treadle.web.testing import connect

EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _loaded_compiled(name: str) -> bool:
    module = importlib.import_module(name)
    return str(module.__file__).endswith(EXTENSIONS)


def test_compiled_says_what_is_loaded() -> None:
    assert isinstance(treadle.compiled, bool)
    assert [_loaded_compiled(m) for m in _compiled.COMPILED_MODULES] == [treadle.compiled] * len(
        _compiled.COMPILED_MODULES
    )


@pytest.mark.skipif(
    os.environ.get("TREADLE_EXPECT_COMPILED", "") in ("", "0"),
    reason="CI's compiled run sets TREADLE_EXPECT_COMPILED=1",
)
def test_the_compiled_build_is_loaded_when_expected() -> None:
    assert treadle.compiled, "the C extensions were not built, or are stale: see setup.py"
    assert all(_loaded_compiled(m) for m in _compiled.COMPILED_MODULES)


def test_pure_python_is_forced_by_the_environment() -> None:
    code = (
        "import treadle, treadle.web._channel_core as core, treadle.web.http;"
        "print(treadle.compiled, core.__file__.endswith('.py'))"
    )
    env = {**os.environ, "TREADLE_PURE_PYTHON": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True"]


# -- the decision, on a tree of our own -----------------------------------------------------


def _tree(tmp_path: Path, *, extensions: bool = True) -> Path:
    """A fake ``treadle`` package dir: every compiled module's source, and extensions."""
    for module in _compiled.COMPILED_MODULES:
        source = tmp_path.joinpath(*module.split(".")[1:]).with_suffix(".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"NAME = {module!r}\n")
        if extensions:
            source.with_suffix(EXTENSIONS[0]).write_bytes(b"")
    return tmp_path


def test_compiled_modules_are_used_when_the_build_matches_the_sources(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    digest = _compiled.source_digest(str(root))
    assert _compiled.use_compiled({}, str(root), digest)
    # The record setup.py writes after a build is what is read without a digest given.
    (root / "_build_stamp.py").write_text(f'SOURCE_DIGEST = "{digest}"\n')
    assert _compiled.use_compiled({}, str(root))


@pytest.mark.parametrize("value", ["1", "yes"])
def test_the_environment_turns_them_off(tmp_path: Path, value: str) -> None:
    root = _tree(tmp_path)
    digest = _compiled.source_digest(str(root))
    assert not _compiled.use_compiled({_compiled.PURE_ENV: value}, str(root), digest)
    assert _compiled.use_compiled({_compiled.PURE_ENV: "0"}, str(root), digest)


def test_a_source_edited_after_the_build_turns_them_all_off(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    digest = _compiled.source_digest(str(root))
    (root / "web" / "_parser.py").write_text("NAME = 'edited'\n")
    assert not _compiled.use_compiled({}, str(root), digest)


def test_no_build_record_or_a_missing_extension_means_pure_python(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert not _compiled.use_compiled({}, str(root))  # no _build_stamp.py
    digest = _compiled.source_digest(str(root))
    next(root.rglob(f"*{EXTENSIONS[0]}")).unlink()
    assert not _compiled.use_compiled({}, str(root), digest)


def test_the_source_finder_loads_only_the_compiled_modules_from_source(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    finder = _compiled._SourceFinder(_compiled.COMPILED_MODULES)
    spec = finder.find_spec("treadle.web._parser", [str(root / "web")])
    assert spec is not None and spec.origin == str(root / "web" / "_parser.py")
    assert finder.find_spec("treadle.web.server", [str(root / "web")]) is None


# -- the public classes keep Python's semantics, compiled or not ------------------------------


def test_public_classes_are_plain_python_classes() -> None:
    for cls in (HTTPChannel, http.Request, server.Request):
        assert type(cls) is type
        assert "__weakref__" in dir(cls)


def test_requests_and_channels_take_attributes_and_weak_references() -> None:
    channel, _ = connect(server.Site(_Leaf()))  # type: ignore[arg-type]
    request = server.Request(channel)
    request.anything = 1  # type: ignore[attr-defined]
    channel.anything = 2  # type: ignore[attr-defined]
    assert vars(request)["anything"] == 1 and vars(channel)["anything"] == 2
    refs: list[weakref.ref[Any]] = [weakref.ref(request), weakref.ref(http.Request(channel))]
    del request
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


class _Leaf:
    isLeaf = True

    def render(self, request: Any) -> bytes:
        return b"leaf"


class _Streamed(_Leaf):
    def render(self, request: Any) -> Any:
        request.write(b"le")
        request.write(b"af")
        request.finish()
        return server.NOT_DONE_YET


def test_a_subclass_overriding_a_method_of_the_core_is_obeyed() -> None:
    seen: list[bytes] = []

    class Recording(server.Request):
        def _write_whole(self, body: bytes) -> None:
            seen.append(body)
            super()._write_whole(body)

    site = server.Site(_Leaf(), requestFactory=Recording)  # type: ignore[arg-type]
    channel, transport = connect(site)
    channel.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert seen == [b"leaf"]
    assert transport.value().endswith(b"\r\n\r\nleaf")


@pytest.mark.parametrize("resource", [_Leaf(), _Streamed()], ids=["returned", "finished"])
def test_an_attribute_set_on_an_instance_hides_the_core_method(resource: _Leaf) -> None:
    # What treadle.web._shared_sessions does to run code before a response completes.
    calls: list[str] = []

    class Watching(server.Request):
        def process(self) -> None:
            original = self._write_whole

            def write_whole(body: bytes) -> None:
                calls.append("instance")
                original(body)

            self._write_whole = write_whole  # type: ignore[method-assign]
            super().process()

    site = server.Site(resource, requestFactory=Watching)  # type: ignore[arg-type]
    channel, transport = connect(site)
    channel.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert calls == ["instance"]
    assert transport.value().endswith(b"\r\n\r\nleaf")


def test_the_cores_attributes_hold_their_documented_types_when_compiled() -> None:
    channel, _ = connect(server.Site(_Leaf()))  # type: ignore[arg-type]
    request = http.Request(channel)
    request.finished = True
    request.code = 404
    if treadle.compiled:
        with pytest.raises(TypeError):
            request.finished = 1  # type: ignore[assignment]
    else:
        request.finished = 1  # type: ignore[assignment]
    assert request.code == 404
