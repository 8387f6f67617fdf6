"""Plugins: objects found by the interface they provide, in the modules of a plugin package.

``twisted.plugin`` ports to this module. A plugin module is a file in a plugin folder that
defines, at module level, objects providing :class:`IPlugin` and some interface of the
program's (``treadle run`` looks for ``IServiceMaker``)::

    # myproject/treadle/plugins/myproject_plugin.py   (or .../twisted/plugins/...)
    from zope.interface import implementer
    from treadle.plugin import IPlugin
    from treadle.application.service import IServiceMaker

    @implementer(IPlugin, IServiceMaker)
    class Maker:
        tapname = "myproject"
        ...

    maker = Maker()

:func:`getPlugins` imports every module of the package (by default :mod:`treadle.plugins`,
whose path takes in every ``treadle/plugins`` *and* ``twisted/plugins`` folder on
``sys.path``) and yields the objects that provide the interface asked for.

Files in a ``twisted/plugins`` folder were written for Twisted: they run with the porting rule
applied to their own imports (``from twisted.application.service import IServiceMaker`` is
treadle's), by the mechanism ``.rpy`` scripts use (:mod:`treadle.python._compat`). A real
Twisted installed beside treadle is not shadowed for any other code, and Twisted's own
``twisted/plugins`` package (which has an ``__init__.py``) is not searched.

Differences from Twisted, on purpose: no ``dropin.cache`` file is read or written (every
plugin module is imported on each search, which a command line does once; writing a cache
into a folder Twisted also uses would fight Twisted's own cache), and a module that fails to
import is logged to ``treadle.error`` with its traceback and skipped, as in Twisted.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

from zope.interface import Interface

from treadle.python._compat import script_builtins

__all__ = ["IPlugin", "getPlugIns", "getPlugins", "pluginPackagePaths"]

_errors = logging.getLogger("treadle.error")

#: The package that plugin folders of Twisted programs extend.
_TWISTED_PLUGINS = "twisted.plugins"


class IPlugin(Interface):  # type: ignore[misc]  # zope is untyped
    """Marks an object as a plugin: only providers of it are returned by :func:`getPlugins`.

    A useful plugin also provides an interface of the program that looks for it.
    """


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


def _install_finder(package_name: str) -> None:
    """Make sure the finder is on ``sys.meta_path`` and serves ``package_name``."""
    _finder.packages.add(package_name)
    if _finder not in sys.meta_path:
        # In front: the path finder would otherwise load the module without the mapping.
        sys.meta_path.insert(0, _finder)


def _module_names(package: types.ModuleType) -> Iterator[str]:
    """Yield the names of the modules in ``package``'s folders, each once, in path order."""
    seen: set[str] = set()
    for folder in getattr(package, "__path__", ()):
        try:
            entries = sorted(os.listdir(folder))
        except OSError:  # a folder of pluginPackagePaths that does not exist
            continue
        for entry in entries:
            full = os.path.join(folder, entry)
            if entry.endswith(".py") and os.path.isfile(full):
                name = entry[: -len(".py")]
            elif os.path.isfile(os.path.join(full, "__init__.py")):
                name = entry
            else:
                continue
            if name.isidentifier() and name != "__init__" and name not in seen:
                seen.add(name)
                yield name


def _plugins_package() -> types.ModuleType:
    import treadle.plugins

    return treadle.plugins


def getPlugins(interface: Any, package: types.ModuleType | None = None) -> Iterator[Any]:
    """Yield every plugin that provides ``interface``, from the modules of ``package``.

    Each module is imported (a module already imported is not run again); a module-level
    object that provides (or adapts to) :class:`IPlugin` and ``interface`` is yielded,
    adapted to ``interface``. A module that fails to import, or an object whose adaptation
    raises, is logged to ``treadle.error`` and skipped.

    Args:
        interface: The interface wanted, e.g. ``IServiceMaker``.
        package: The plugin package; :mod:`treadle.plugins` by default.

    Returns:
        An iterator: modules are imported as it is consumed.
    """
    if package is None:
        package = _plugins_package()
    _install_finder(package.__name__)
    for name in _module_names(package):
        module_name = f"{package.__name__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except Exception:
            _errors.exception("could not load plugin module %s", module_name)
            continue
        yield from _providers(module, interface)


def _providers(module: types.ModuleType, interface: Any) -> Iterator[Any]:
    for value in list(vars(module).values()):
        try:
            if IPlugin(value, None) is None:
                continue
            adapted = interface(value, None)
        except Exception:
            _errors.exception("could not adapt %r to %s", value, interface.__name__)
            continue
        if adapted is not None:
            yield adapted


#: Twisted's old name for :func:`getPlugins`.
getPlugIns = getPlugins
