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
import types
from collections.abc import Iterator
from typing import Any

from zope.interface import Interface

from treadle.python._plugin_path import install_finder, pluginPackagePaths

__all__ = ["IPlugin", "getPlugIns", "getPlugins", "pluginPackagePaths"]

_errors = logging.getLogger("treadle.error")


class IPlugin(Interface):  # type: ignore[misc]  # zope is untyped
    """Marks an object as a plugin: only providers of it are returned by :func:`getPlugins`.

    A useful plugin also provides an interface of the program that looks for it.
    """


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
    install_finder(package.__name__)
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
