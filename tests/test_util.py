"""treadle.python.util and treadle.python.procutils, each answer compared with Twisted's."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import twisted.python.procutils as twisted_procutils
import twisted.python.util as twisted_util

from treadle.python import procutils, util

NAMES = [
    "fooBarBaz", "HTTPServer", "getHTTPResponse", "x", "already", "ABC", "aB", "fooBar2Baz",
    "someURLThing", "Lower", "aBC", "ABc", "",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_name_to_label_as_twisted(name: str) -> None:
    theirs = twisted_util.nameToLabel(name)
    if name[:1].isupper():
        theirs = theirs.lstrip(" ")  # Twisted's leading space, left out on purpose
    assert util.nameToLabel(name) == theirs


def test_name_to_label_of_capitalised_names() -> None:
    assert [util.nameToLabel(n) for n in ("HTTPServer", "ABC", "Lower", "ABc")] == [
        "HTTP Server",
        "ABC",
        "Lower",
        "A Bc",
    ]


def test_sibpath_uniquify_and_pad_to_as_twisted(tmp_path: Path) -> None:
    for module in (util, twisted_util):
        here = str(tmp_path / "pkg" / "mod.py")
        assert module.sibpath(here, "public") == str(tmp_path / "pkg" / "public")
        assert module.uniquify([3, 1, 3, 2, 1]) == [3, 1, 2]
        assert module.padTo(4, (1, 2), default=0) == [1, 2, 0, 0]
        with pytest.raises(ValueError, match=r"3 elements is more than 2\."):
            module.padTo(2, [1, 2, 3])


def test_insensitive_dict_as_twisted() -> None:
    for preserve in (1, 0):
        seen = []
        for module in (util, twisted_util):
            d = module.InsensitiveDict({"Content-Type": 1, b"X-Bytes": 2, 7: 3}, preserve)
            d["CONTENT-type"] = 4
            assert d["content-TYPE"] == 4 and d[b"x-bytes"] == 2 and "x-BYTES" not in d
            assert b"X-BYTES" in d and 7 in d and len(d) == 3
            del d[b"x-bytes"]
            copy = d.copy()
            copy["new"] = 5
            seen.append((sorted(map(str, d.keys())), sorted(map(str, copy.items()))))
        assert seen[0] == seen[1]


def test_search_upwards_as_twisted(tmp_path: Path) -> None:
    (tmp_path / "top" / "a" / "b").mkdir(parents=True)
    (tmp_path / "top" / "setup.cfg").write_text("")
    (tmp_path / "top" / "docs").mkdir()
    start = str(tmp_path / "top" / "a" / "b")
    for files, dirs in ((["setup.cfg"], ["docs"]), (["setup.cfg"], ["nowhere"]), ([], [])):
        assert util.searchupwards(start, files, dirs) == twisted_util.searchupwards(
            start, files, dirs
        )
    assert util.searchupwards(start, ["setup.cfg"], ["docs"]) == str(tmp_path / "top") + os.sep


def test_until_concludes_retries_only_eintr() -> None:
    calls: list[int] = []

    def flaky(fail_with: int) -> str:
        calls.append(fail_with)
        if len(calls) < 3:
            raise OSError(fail_with, os.strerror(fail_with))
        return "done"

    assert util.untilConcludes(flaky, errno.EINTR) == "done" and len(calls) == 3
    calls.clear()
    with pytest.raises(OSError):
        util.untilConcludes(flaky, errno.EIO)
    assert len(calls) == 1


def test_fancy_mixins_as_twisted() -> None:
    shown = []
    for module in (util, twisted_util):

        class Point(module.FancyEqMixin, module.FancyStrMixin):  # type: ignore[misc,name-defined]
            compareAttributes = ("x", "y")
            showAttributes = ("x", ("y", lambda v: f"<{v}>"), ("z", "zed", "%.2f"))

            def __init__(self, x: Any, y: Any, z: float = 0.5) -> None:
                self.x, self.y, self.z = x, y, z

        class Plain(module.FancyEqMixin):  # type: ignore[misc,name-defined]
            pass

        assert Point(1, "a") == Point(1, "a", 9.0) and Point(1, "a") != Point(2, "a")
        assert Point(1, "a") != "not a point"
        plain = Plain()
        assert plain == plain and plain != Plain()
        shown.append((str(Point(1, "a")), repr(Point(2, "b", 1.0))))
    assert shown[0] == shown[1] == ("<Point x=1 y=<a> zed=0.50>", "<Point x=2 y=<b> zed=1.00>")


def test_ids_from_strings() -> None:
    assert util.uidFromString("0") == 0 == util.uidFromString("root")
    assert util.gidFromString("0") == 0 == util.gidFromString("root")
    with pytest.raises(KeyError):
        util.uidFromString("no such user here")


def test_switch_uid_to_the_user_in_force_warns() -> None:
    with pytest.warns(UserWarning, match="should we be root"):
        util.switchUID(os.getuid(), None)


def test_which_as_twisted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for directory, mode in (("one", 0o755), ("two", 0o755), ("three", 0o644)):
        (tmp_path / directory).mkdir()
        tool = tmp_path / directory / "tool"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(mode)
    (tmp_path / "two" / "tool.sh").write_text("")
    (tmp_path / "two" / "tool.sh").chmod(stat.S_IRWXU)
    path = os.pathsep.join(str(tmp_path / d) for d in ("one", "missing", "two", "three"))
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("PATHEXT", os.pathsep + ".sh")
    found = procutils.which("tool")
    assert found == twisted_procutils.which("tool")
    assert found == [
        str(tmp_path / "one" / "tool"),
        *(str(tmp_path / "two" / n) for n in ("tool", "tool.sh")),
    ]
    assert procutils.which("tool", os.F_OK) == twisted_procutils.which("tool", os.F_OK)
    monkeypatch.delenv("PATH")
    assert procutils.which("tool") == []
