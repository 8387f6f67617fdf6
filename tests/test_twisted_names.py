"""Every public name of Twisted's server-side web modules exists in treadle's, but a few.

Twisted (installed for the differential tests) is the reference: the names a module defines
or declares in ``__all__``, not the ones it merely imports. :data:`SKIPPED` lists the names
treadle leaves out on purpose, each with its reason.
"""

from __future__ import annotations

import importlib
import inspect
import types
import warnings

import pytest

MODULES = ("http", "server", "resource", "static", "util", "guard")

#: Names treadle does not offer, and why.
SKIPPED: dict[str, str] = {
    "http.INonQueuedRequestFactory": "an internal interface of Twisted's channel",
    "static.ASISProcessor": "serves .asis files (raw responses from disk); not offered",
    "static.InsensitiveDict": "Twisted's own dict class; treadle's File takes plain dicts",
    "static.isDangerous": "path checks are File's own (realpath and commonpath)",
    "static.dangerousPathError": "as isDangerous",
    "static.Redirect": "use util.Redirect",
    "static.redirectTo": "use util.redirectTo",
}


def _public_names(module: types.ModuleType) -> set[str]:
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return {name for name in declared if not name.startswith("_")}
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        origin = getattr(value, "__module__", None)
        if (inspect.isclass(value) or inspect.isfunction(value)) and origin != module.__name__:
            continue  # imported, not defined here
        if not (inspect.isclass(value) or inspect.isfunction(value)) and not name.isupper():
            continue  # only constants among the other values
        names.add(name)
    return names


@pytest.mark.parametrize("name", MODULES)
def test_treadle_has_twisted_public_names(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twisted = importlib.import_module(f"twisted.web.{name}")
    treadle = importlib.import_module(f"treadle.web.{name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a deprecated name warns when read, as in Twisted
        missing = sorted(
            n
            for n in _public_names(twisted)
            if not hasattr(treadle, n) and f"{name}.{n}" not in SKIPPED
        )
    assert missing == []


def test_skipped_names_are_still_missing() -> None:
    # An entry for a name that treadle now has is stale.
    warnings.simplefilter("ignore")  # a deprecated name warns when read, as in Twisted
    present = [
        key
        for key, reason in SKIPPED.items()
        if "another part" not in reason
        and hasattr(importlib.import_module("treadle.web." + key.split(".")[0]), key.split(".")[1])
    ]
    assert present == []
