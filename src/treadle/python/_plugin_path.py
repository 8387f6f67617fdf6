"""Where plugin modules are found: the plugin packages' folders, and the import hook that runs
modules of ``twisted/plugins`` folders under the porting rule.

It sits below both :mod:`treadle.plugin` and :mod:`treadle.plugins`, which each need it, so
that neither imports the other back.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence

from treadle.python._compat import script_builtins

__all__ = ["install_finder", "pluginPackagePaths"]

#: The package that plugin folders of Twisted programs extend.
_TWISTED_PLUGINS = "twisted.plugins"


def pluginPackagePaths(name: str) -> list[str]:
    """Return the folders, one per ``sys.path`` entry, that extend plugin package ``name``.

    For ``"treadle.plugins"``, each ``ENTRY/treadle/plugins`` folder that is not itself a
    package (has no ``__init__.py``): projects ship plugins in such a folder without
    shadowing the real package. Folders that do not exist are included, as in Twisted.

    Args:
        name: The plugin package's dotted name, e.g. ``"treadle.plugins"``.

    Returns:
        Absolute paths, in ``sys.path`` order.
    """
    parts = name.split(".")
    return [
        os.path.abspath(os.path.join(entry, *parts))
        for entry in sys.path
        if not os.path.exists(os.path.join(entry, *parts, "__init__.py"))
    ]


def _is_twisted_plugin_folder(path: str) -> bool:
    parts = os.path.normpath(path).split(os.sep)
    return parts[-2:] == _TWISTED_PLUGINS.split(".")


class _PortedSourceLoader(importlib.machinery.SourceFileLoader):
    """Loads a plugin module written for Twisted: its ``twisted.*`` imports are treadle's."""

    def exec_module(self, module: types.ModuleType) -> None:
        """Run the module's code with the porting builtins (see :mod:`treadle.python._compat`)."""
        module.__dict__["__builtins__"] = script_builtins()
        super().exec_module(module)


class _PluginFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of plugin packages that live in ``twisted/plugins`` folders.

    It answers only for ``treadle.plugins.NAME`` (and the packages given to
    :func:`getPlugins`), names under treadle's own package: nothing else in the process sees
    it. Other plugin modules are left to the ordinary import system.
    """

    def __init__(self) -> None:
        self.packages: set[str] = {"treadle.plugins"}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Return a spec with the porting loader for a plugin module of a Twisted folder."""
        package = fullname.rpartition(".")[0]
        if package not in self.packages or path is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return spec
        folder = os.path.dirname(spec.origin)
        if spec.submodule_search_locations is not None:  # a package: NAME/__init__.py
            folder = os.path.dirname(folder)
        if not _is_twisted_plugin_folder(folder):
            return spec
        return importlib.util.spec_from_file_location(
            fullname,
            spec.origin,
            loader=_PortedSourceLoader(fullname, spec.origin),
            submodule_search_locations=spec.submodule_search_locations,
        )


_finder = _PluginFinder()


def install_finder(package_name: str) -> None:
    """Make sure the finder is on ``sys.meta_path`` and serves ``package_name``."""
    _finder.packages.add(package_name)
    if _finder not in sys.meta_path:
        # In front: the path finder would otherwise load the module without the mapping.
        sys.meta_path.insert(0, _finder)
