"""Plugin discovery: getPlugins, pluginPackagePaths, and Twisted plugin folders."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from twisted import plugin as twisted_plugin
from zope.interface import Interface, implementer

from treadle import plugin


class IThing(Interface):
    """An interface a test program looks plugins up by."""


def make_package(root: Path, name: str, modules: dict[str, str]) -> types.ModuleType:
    """Create and import package ``name`` under ``root`` holding ``modules``."""
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(root))
    try:
        __import__(name)
    finally:
        sys.path.remove(str(root))
    return sys.modules[name]


THING = """\
from zope.interface import implementer
from treadle.plugin import IPlugin
from tests.test_plugin import IThing

@implementer(IPlugin, IThing)
class Thing:
    def __init__(self, name):
        self.name = name

one = Thing("one")
two = Thing("two")
not_a_plugin = object()
"""

ONLY_PLUGIN = """\
from zope.interface import implementer
from treadle.plugin import IPlugin

@implementer(IPlugin)
class Other:
    pass

other = Other()
"""


def test_get_plugins_finds_providers_of_the_interface(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    package = make_package(
        tmp_path,
        "treadle_test_plugins_a",
        {"things": THING, "others": ONLY_PLUGIN, "broken": "import no_such_module_here\n"},
    )
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        found = list(plugin.getPlugins(IThing, package))
    assert sorted(p.name for p in found) == ["one", "two"]
    # The broken module is logged with its error, and the others still load.
    assert "treadle_test_plugins_a.broken" in caplog.text
    assert "no_such_module_here" in caplog.text
    assert plugin.getPlugIns is plugin.getPlugins


def test_get_plugins_adapts_to_the_interface(tmp_path: Path) -> None:
    from treadle.python.components import registerAdapter

    class IAdapted(Interface):
        """Reached through an adapter."""

    @implementer(IAdapted)
    class Adapted:
        def __init__(self, original: object) -> None:
            self.original = original

    package = make_package(tmp_path, "treadle_test_plugins_b", {"things": THING})
    registerAdapter(Adapted, IThing, IAdapted)
    found = list(plugin.getPlugins(IAdapted, package))
    assert sorted(a.original.name for a in found) == ["one", "two"]


def test_plugin_package_paths_agree_with_twisted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_init = tmp_path / "a"
    (with_init / "treadle" / "plugins").mkdir(parents=True)
    (with_init / "treadle" / "plugins" / "__init__.py").write_text("")
    without = tmp_path / "b"
    (without / "treadle" / "plugins").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(with_init), str(without), str(tmp_path / "c"), ""])
    paths = plugin.pluginPackagePaths("treadle.plugins")
    assert paths == twisted_plugin.pluginPackagePaths("treadle.plugins")
    assert str(without / "treadle" / "plugins") in paths
    assert str(with_init / "treadle" / "plugins") not in paths
    assert str(tmp_path / "c" / "treadle" / "plugins") in paths  # missing folders too


TWISTED_STYLE_PLUGIN = """\
from zope.interface import implementer
from twisted.python import usage
from twisted.plugin import IPlugin
from twisted.application.service import IServiceMaker
from twisted.application import service


class Options(usage.Options):
    optParameters = [["greeting", "g", "hello", "What to say."]]


@implementer(IServiceMaker, IPlugin)
class Maker:
    tapname = "greeter"
    description = "Greets."
    options = Options

    def makeService(self, options):
        svc = service.Service()
        svc.setName(options["greeting"])
        return svc


maker = Maker()
"""

PORTED_PLUGIN = TWISTED_STYLE_PLUGIN.replace("twisted.", "treadle.").replace(
    '"greeter"', '"ported"'
)

CHECK_DISCOVERY = """\
import sys
from treadle.plugin import getPlugins, IPlugin
from treadle.application.service import IServiceMaker, IService
import treadle.plugins

makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
print(sorted(makers))
greeter = makers["greeter"]
options = greeter.options()
options.parseOptions(["-g", "hi"])
print(type(options).__mro__[1].__module__, greeter.makeService(options).name)
print(IPlugin.providedBy(greeter), IService.providedBy(greeter.makeService(options)))
# The plugin's twisted.* imports were treadle's: no real Twisted module was loaded...
print(sorted(n for n in sys.modules if n.split(".")[0] == "twisted"))
# ...and a real Twisted in the same process is not shadowed.
import twisted.plugin
print(twisted.plugin.IPlugin is not IPlugin, "treadle" not in twisted.plugin.__file__)
"""


def test_twisted_plugin_folders_are_searched_with_the_porting_rule(tmp_path: Path) -> None:
    twisted_folder = tmp_path / "project" / "twisted" / "plugins"
    twisted_folder.mkdir(parents=True)
    (twisted_folder / "greeter_plugin.py").write_text(TWISTED_STYLE_PLUGIN)
    treadle_folder = tmp_path / "other" / "treadle" / "plugins"
    treadle_folder.mkdir(parents=True)
    (treadle_folder / "ported_plugin.py").write_text(PORTED_PLUGIN)
    result = subprocess.run(
        [sys.executable, "-c", CHECK_DISCOVERY],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{tmp_path / 'project'}:{tmp_path / 'other'}", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "['greeter', 'ported']",
        "treadle.python.usage hi",
        "True True",
        "[]",
        "True True",
    ]


def test_real_twisted_finds_the_same_plugin_its_own_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same folder serves both: treadle's loading does not stand in Twisted's way.
    twisted_folder = tmp_path / "twisted" / "plugins"
    twisted_folder.mkdir(parents=True)
    (twisted_folder / "greeter_plugin.py").write_text(TWISTED_STYLE_PLUGIN)
    script = (
        "import treadle.plugins\n"
        "from treadle.plugin import getPlugins\n"
        "from treadle.application.service import IServiceMaker\n"
        "print([m.tapname for m in getPlugins(IServiceMaker)])\n"
        "from twisted.plugin import getPlugins as tgetPlugins\n"
        "from twisted.application.service import IServiceMaker as TMaker\n"
        "print('greeter' in [m.tapname for m in tgetPlugins(TMaker)])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['greeter']", "True"]
