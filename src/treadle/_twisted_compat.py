"""Twisted's import names inside ``.rpy`` scripts, and nowhere else.

A script written for ``twistd web --path`` starts with ``from twisted.web.resource import
Resource``. To run it unchanged, :func:`script_builtins` returns the builtins dictionary
scripts run with, whose ``__import__`` answers ``twisted`` and ``twisted.*`` with
stand-in modules that expose treadle's (the porting table of DESIGN.md: ``twisted.web.X`` and
``twisted.internet.X`` become ``treadle.X``; ``twisted.internet.reactor`` is
``treadle.reactor``; ``twisted.python.failure`` is ``treadle.failure``). Every other import goes
to the real ``__import__``.

Why a builtins dictionary rather than an import hook: a ``sys.meta_path`` finder or entries in
``sys.modules`` would be seen by the whole process, so a real Twisted installed next to treadle
would be shadowed for every other library. A frame looks ``__import__`` up in the builtins of
its globals, so the mapping reaches exactly the code compiled from the script (its module
body, and the functions and classes it defines, which run later on requests) and nothing
else. The stand-in modules are :class:`types.ModuleType` objects that are never registered in
``sys.modules``; they are made once and shared by all scripts, as real modules would be, and
so is the builtins dictionary: running a script costs no copy of it.

Limits, on purpose: code the script calls into (another module it imports, or
``importlib.import_module("twisted...")``) sees the real import system, and a Twisted module
treadle has no counterpart for raises :class:`ModuleNotFoundError` saying so rather than
falling back to a real Twisted, which would mix two reactors in one process.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

__all__ = ["TWISTED_MODULES", "TwistedImporter", "script_builtins"]

#: The Twisted modules a script may import, and where each lives in treadle:
#: ``(treadle module, attribute of it or None)``. A target treadle does not have (yet) raises
#: ModuleNotFoundError naming the Twisted module when a script imports it. Add new treadle
#: modules here when they are written.
TWISTED_MODULES: Final[Mapping[str, tuple[str, str | None]]] = {
    **{
        f"twisted.web.{name}": (f"treadle.{name}", None)
        for name in (
            "guard",
            "http",
            "http_headers",
            "pages",
            "proxy",
            "resource",
            "script",
            "server",
            "static",
            "util",
            "vhost",
            "wsgi",
        )
    },
    **{
        f"twisted.internet.{name}": (f"treadle.{name}", None)
        for name in (
            "address",
            "base",
            "defer",
            "error",
            "task",
        )
    },
    # Twisted installs its reactor as the module object itself; so does this table.
    "twisted.internet.reactor": ("treadle", "reactor"),
    "twisted.python.components": ("treadle.components", None),
    "twisted.python.failure": ("treadle.failure", None),
    "twisted.python.log": ("treadle.log", None),
    # The tutorials declare session interfaces with zope.interface; treadle.components has
    # Interface, Attribute and implementer.
    "zope.interface": ("treadle.components", None),
    # twisted.cred's portal, checkers and credentials live together in treadle.guard.
    "twisted.cred.checkers": ("treadle.guard", None),
    "twisted.cred.credentials": ("treadle.guard", None),
    "twisted.cred.error": ("treadle.guard", None),
    "twisted.cred.portal": ("treadle.guard", None),
    "twisted.python.urlpath": ("treadle.urlpath", None),
}

# The packages on the way to those modules: they hold their children as attributes.
_PACKAGES: Final = frozenset(
    {"twisted", "twisted.cred", "twisted.internet", "twisted.python", "twisted.web", "zope"}
)
# Top-level names the importer answers for; everything else is a real import.
_ROOTS: Final = frozenset({"twisted", "zope"})

_ImportFunction = Callable[..., Any]


def _not_provided(name: str) -> ModuleNotFoundError:
    target = TWISTED_MODULES.get(name)
    where = f"there is no {target[0]}" if target else "it has no counterpart in treadle"
    return ModuleNotFoundError(
        f"{name} is not available in treadle scripts: treadle does not provide it ({where})",
        name=name,
    )


class TwistedImporter:
    """An ``__import__`` that serves ``twisted.*`` from treadle and defers the rest.

    It keeps the stand-in modules it has made, so importing ``twisted.web.server`` twice
    gives the same module object.

    Args:
        real_import: The ``__import__`` to use for every name outside ``twisted``; by
            default whatever ``builtins.__import__`` is at the time of each import (so
            hooks installed later, e.g. by a coverage tool, are honoured).
    """

    def __init__(self, real_import: _ImportFunction | None = None) -> None:
        self._real_import = real_import or _current_import
        self._modules: dict[str, Any] = {}

    def __call__(
        self,
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> Any:
        """Import ``name`` the way the ``import`` statement asks ``__import__`` to.

        Returns:
            As ``builtins.__import__``: the top package (``twisted``) for ``import a.b``,
            the named module itself when ``fromlist`` is given.

        Raises:
            ModuleNotFoundError: A ``twisted`` module treadle does not provide.
        """
        if fromlist and level == 0:
            # The usual ``from twisted.web.resource import Resource`` of a script run on
            # every request: a module already made is the whole answer.
            module = self._modules.get(name)
            if module is not None and name not in _PACKAGES:
                return module
        root = name.partition(".")[0]
        if level != 0 or root not in _ROOTS:
            return self._real_import(name, globals, locals, fromlist, level)
        module = self._load(name)
        if not fromlist:
            return self._modules[root]
        if name in _PACKAGES:
            # ``from twisted.web import static``: load submodules named in the list, so a
            # missing one fails here with our message rather than "cannot import name".
            for item in fromlist:
                child = f"{name}.{item}"
                if item != "*" and (child in TWISTED_MODULES or child in _PACKAGES):
                    self._load(child)
                elif item != "*":
                    raise _not_provided(child)
        return module

    def _load(self, name: str) -> Any:
        """Return the stand-in for ``name``, making it and its parent packages as needed."""
        module = self._modules.get(name)
        if module is not None:
            return module
        if name in _PACKAGES:
            module = self._package(name)
        elif name in TWISTED_MODULES:
            module = self._leaf(name)
        else:
            raise _not_provided(name)
        parent, _, child = name.rpartition(".")
        if parent:
            # Bind the child on its parent, as the import system does for real packages.
            setattr(self._load(parent), child, module)
        self._modules[name] = module
        return module

    def _package(self, name: str) -> types.ModuleType:
        package = types.ModuleType(name, f"treadle's stand-in for the {name} package.")
        package.__path__ = []
        package.__package__ = name
        package.__getattr__ = functools.partial(self._package_getattr, name)  # type: ignore[method-assign]
        return package

    def _package_getattr(self, package: str, attribute: str) -> Any:
        # ``import twisted.web`` then ``twisted.web.static.File``: load on first access.
        child = f"{package}.{attribute}"
        if child in TWISTED_MODULES or child in _PACKAGES:
            try:
                return self._load(child)
            except ImportError as e:
                raise AttributeError(str(e)) from e
        raise AttributeError(
            f"module {package!r} has no attribute {attribute!r} ({_not_provided(child)})"
        )

    def _leaf(self, name: str) -> Any:
        target, attribute = TWISTED_MODULES[name]
        try:
            real = importlib.import_module(target)
        except ModuleNotFoundError as e:
            # Only a missing treadle module means "not provided"; a module that fails to
            # import for another reason is a bug that must show its own traceback.
            if e.name != target:
                raise
            raise _not_provided(name) from None
        if attribute is not None:
            return getattr(real, attribute)
        # A view rather than the treadle module itself: it carries the Twisted name the
        # script asked for, and attributes set on it by the script stay in the script.
        leaf = types.ModuleType(name, real.__doc__)
        leaf.__file__ = getattr(real, "__file__", None)
        leaf.__package__ = name.rpartition(".")[0]
        leaf.__getattr__ = functools.partial(_delegate, leaf, real, name)  # type: ignore[method-assign]
        leaf.__dir__ = functools.partial(dir, real)  # type: ignore[method-assign]
        return leaf


def _delegate(view: types.ModuleType, real: types.ModuleType, name: str, attribute: str) -> Any:
    try:
        value = getattr(real, attribute)
    except AttributeError:
        raise AttributeError(
            f"{real.__name__} (standing in for {name}) has no attribute {attribute!r}"
        ) from None
    # Kept on the view, so the next script's ``from ... import`` of it is a dictionary hit
    # rather than this call; treadle's modules do not rebind their public names.
    setattr(view, attribute, value)
    return value


def _current_import(*args: Any) -> Any:
    return builtins.__import__(*args)


_importer: TwistedImporter | None = None
# The dictionary scripts share, and the size of builtins' namespace it was copied at.
_shared: tuple[int, dict[str, Any]] | None = None


def script_builtins() -> dict[str, Any]:
    """Return the builtins dictionary scripts run with.

    Put it in the script's globals as ``__builtins__``: the script then imports ``twisted.*``
    as treadle (see the module docstring) and everything else as usual. Every script gets
    the same dictionary, as every module shares the real builtins (and copying ~160 names
    per request would cost more than a ``stat``); it is copied again when a name is added
    to or removed from :mod:`builtins`, so a later ``gettext.install()`` still reaches
    scripts. A value replaced in place in :mod:`builtins` after the copy is not seen, except
    ``__import__``, which the importer looks up at each import.

    Returns:
        A copy of :mod:`builtins`' namespace whose ``__import__`` is the process's
        :class:`TwistedImporter`.
    """
    global _importer, _shared
    names = builtins.__dict__
    shared = _shared
    if shared is not None and shared[0] == len(names):
        return shared[1]
    if _importer is None:
        _importer = TwistedImporter()
    namespace = dict(names)
    namespace["__import__"] = _importer
    _shared = (len(names), namespace)
    return namespace
