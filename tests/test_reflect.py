"""treadle.python.reflect: loading objects by dotted name and describing them safely."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from treadle.python import reflect
from treadle.python.reflect import (
    InvalidName,
    ModuleNotFound,
    ObjectNotFound,
    accumulateMethods,
    filenameToModuleName,
    fullyQualifiedName,
    namedAny,
    namedModule,
    namedObject,
    prefixedMethodNames,
    prefixedMethods,
    qual,
    requireModule,
    safe_repr,
    safe_str,
)
from treadle.web.resource import Resource


def test_namedAny_imports_the_module_part_and_walks_attributes() -> None:
    assert namedAny("os.path.join") is os.path.join
    assert namedAny("treadle.web.resource.Resource.render") is Resource.render
    assert namedAny("os") is os
    assert namedModule("os.path") is os.path
    assert namedObject("os.path.join") is os.path.join
    assert requireModule("os.path") is os.path
    assert requireModule("no_such_module_here", default=3) == 3


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", InvalidName),
        (".os", InvalidName),
        ("os..path", InvalidName),
        ("no_such_module_here", ModuleNotFound),
        ("no_such_module_here.thing", ObjectNotFound),
        ("os.no_such_attribute", AttributeError),
    ],
)
def test_namedAny_errors(name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        namedAny(name)


def test_a_module_that_fails_to_import_shows_its_own_error(
    tmp_path: Path, monkeypatch: Any
) -> None:
    (tmp_path / "broken_for_reflect.py").write_text("import no_such_dependency_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as caught:
        namedAny("broken_for_reflect.thing")
    assert caught.value.name == "no_such_dependency_here"


def test_names_of_things() -> None:
    assert qual(Resource) == "treadle.web.resource.Resource"
    assert fullyQualifiedName(Resource) == "treadle.web.resource.Resource"
    assert fullyQualifiedName(Resource.render) == "treadle.web.resource.Resource.render"
    assert fullyQualifiedName(Resource().render) == "treadle.web.resource.Resource.render"
    assert fullyQualifiedName(os) == "os"
    assert reflect.fullFuncName(namedAny) == "treadle.python.reflect.namedAny"


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    def __str__(self) -> str:
        raise RuntimeError("no str either")


def test_safe_repr_and_safe_str_never_raise() -> None:
    assert safe_repr([1]) == "[1]"
    assert safe_str("text") == "text" and safe_str(b"caf\xc3\xa9") == "caf\xe9"
    assert safe_str(b"\xff") == "b'\\xff'"
    for described, formatter in ((safe_repr(Broken()), "repr"), (safe_str(Broken()), "str")):
        assert described.startswith("<Broken instance at 0x")
        assert f"with {formatter} error" in described and "RuntimeError" in described


class Base:
    def opt_a(self) -> str:
        return "base a"

    def opt_b(self) -> str:
        return "base b"


class Derived(Base):
    def opt_a(self) -> str:
        return "derived a"

    def opt_(self) -> None:  # the prefix alone names nothing
        pass

    def other(self) -> None:
        pass


def test_prefixed_methods() -> None:
    assert sorted(prefixedMethodNames(Derived, "opt_")) == ["a", "b"]
    found: dict[str, Any] = {}
    accumulateMethods(Derived(), found, "opt_")
    assert sorted(found) == ["a", "b"] and found["a"]() == "derived a"
    assert sorted(m() for m in prefixedMethods(Derived(), "opt_")) == ["base b", "derived a"]


def test_class_attribute_accumulation() -> None:
    class Plant:
        properties = {"colour": "green"}
        tags = ["plant"]

    class Seaweed(Plant):
        properties = {"habitat": "sea", "colour": "brown"}
        tags = ["salty"]

    merged: dict[str, str] = {}
    reflect.accumulateClassDict(Seaweed, "properties", merged)
    assert merged == {"colour": "brown", "habitat": "sea"}
    tags: list[str] = []
    reflect.accumulateClassList(Seaweed, "tags", tags)
    assert tags == ["plant", "salty"]


def test_filenameToModuleName(tmp_path: Path) -> None:
    package = tmp_path / "outer" / "inner"
    package.mkdir(parents=True)
    (tmp_path / "outer" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    assert filenameToModuleName(str(package / "mod.py")) == "outer.inner.mod"
    assert filenameToModuleName(os.fsencode(package / "mod.py")) == "outer.inner.mod"
    assert filenameToModuleName(str(package) + os.sep) == "outer.inner"
    assert filenameToModuleName(str(tmp_path / "alone.py")) == "alone"
