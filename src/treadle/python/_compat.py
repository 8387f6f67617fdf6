"""Twisted's import names inside code treadle runs for a Twisted program, and nowhere else.

Code written for Twisted starts with ``from twisted.web.resource import Resource``. treadle's
packages mirror Twisted's, so the mapping is the porting rule itself: the word ``twisted``
becomes ``treadle`` (``twisted.web.resource`` is :mod:`treadle.web.resource`,
``twisted.internet.reactor`` the reactor). :func:`script_builtins` returns the builtins
dictionary such code runs with, whose ``__import__`` applies that rule to ``twisted`` and
``twisted.*`` and hands every other import (``zope.interface`` included, which is the real
one) to the real ``__import__``. Three kinds of files run with it: ``.rpy`` scripts
(:mod:`treadle.web.script`), ``.tac`` files (``treadle run -y``) and plugin modules found in
a ``twisted/plugins`` folder (:mod:`treadle.plugin`).

Why a builtins dictionary rather than an import hook: a ``sys.meta_path`` finder or entries in
``sys.modules`` would be seen by the whole process, so a real Twisted installed next to treadle
would be shadowed for every other library. A frame looks ``__import__`` up in the builtins of
its globals, so the mapping reaches exactly the code compiled from the file (its module
body, and the functions and classes it defines, which run later) and nothing else. The
dictionary is made once and shared by all such files, as real modules share the builtins:
running a script costs no copy of it.

Limits, on purpose: code the file calls into (another module it imports, or
``importlib.import_module("twisted...")``) sees the real import system, and a Twisted module
treadle has no counterpart for raises :class:`ModuleNotFoundError` saying so rather than
falling back to a real Twisted, which would mix two reactors in one process.

This module lives on the ground floor (it imports nothing of treadle: the treadle modules it
hands out are imported by name, when a file asks for them) so that every layer can use it.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

__all__ = ["TwistedImporter", "script_builtins", "treadle_name"]

_TWISTED: Final = "twisted"

_ImportFunction = Callable[..., Any]


def treadle_name(name: str) -> str | None:
    """Return the treadle module that Twisted module ``name`` ports to, or None.

    ``twisted`` and ``twisted.*`` port by the one-word rule; other names are not Twisted's.
    """
    if name == _TWISTED or name.startswith("twisted."):
        return "treadle" + name[len(_TWISTED) :]
    return None


def _not_provided(name: str, missing: str | None = None) -> ModuleNotFoundError:
    """The error for a Twisted module ``name`` whose treadle counterpart ``missing`` is absent."""
    return ModuleNotFoundError(
        f"{name} is not available under treadle: treadle does not provide it "
        f"(there is no {missing or treadle_name(name)})",
        name=name,
    )


class TwistedImporter:
    """An ``__import__`` that serves ``twisted.*`` from treadle and defers the rest.

    Args:
        real_import: The ``__import__`` to use; by default whatever ``builtins.__import__``
            is at the time of each import (so hooks installed later, e.g. by a coverage
            tool, are honoured).
    """

    def __init__(self, real_import: _ImportFunction | None = None) -> None:
        self._real_import = real_import or _current_import
        # ``from twisted.x import y`` answers, by Twisted name and the names imported: a script
        # runs its imports on every request, and a hit here is the whole cost of one. The
        # names are part of the key because a ``from`` import may name a submodule, which only
        # the import itself loads: the package answered for ``from twisted.internet import
        # reactor`` lacks ``task`` until ``from twisted.internet import task`` imports it.
        self._answers: dict[tuple[str, tuple[str, ...]], Any] = {}

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
            As ``builtins.__import__``: the top package (``treadle``, standing for
            ``twisted``) for ``import a.b``, the named module itself when ``fromlist`` is
            given.

        Raises:
            ModuleNotFoundError: A ``twisted`` module treadle does not provide.
        """
        if level != 0:
            return self._real_import(name, globals, locals, fromlist, level)
        # The compiler hands a tuple; a list (a hand-made call) is imported without the cache.
        key = (name, fromlist) if fromlist and type(fromlist) is tuple else None
        if key is not None:
            answer = self._answers.get(key)
            if answer is not None:
                return answer
        target = treadle_name(name)
        if target is None:
            return self._real_import(name, globals, locals, fromlist, level)
        try:
            module = self._real_import(target, globals, locals, fromlist, level)
        except ModuleNotFoundError as e:
            # Only a missing treadle module means "not provided"; a module that fails to
            # import for another reason is a bug that must show its own traceback.
            if e.name is None or not (target == e.name or target.startswith(e.name + ".")):
                raise
            raise _not_provided(name, e.name) from None
        if fromlist:
            self._check_fromlist(name, module, fromlist)
            if key is not None:
                self._answers[key] = module
        return module

    def _check_fromlist(self, name: str, module: Any, fromlist: Sequence[str]) -> None:
        """Fail with the Twisted name when ``from twisted.x import y`` names a missing module.

        The import system skips a submodule of ``fromlist`` that does not exist and leaves
        the ``from`` statement to fail with "cannot import name"; saying which Twisted
        module treadle lacks is more useful.
        """
        if not hasattr(module, "__path__"):
            return  # a module, not a package: its names are attributes, checked by Python
        for item in fromlist:
            if item == "*" or hasattr(module, item):
                continue
            try:
                importlib.import_module(f"{module.__name__}.{item}")
            except ModuleNotFoundError:
                raise _not_provided(f"{name}.{item}") from None


def _current_import(*args: Any) -> Any:
    return builtins.__import__(*args)


_importer: TwistedImporter | None = None
# The dictionary ported files share, and the size of builtins' namespace it was copied at.
_shared: tuple[int, dict[str, Any]] | None = None


def script_builtins() -> dict[str, Any]:
    """Return the builtins dictionary ported files (``.rpy``, ``.tac``, plugins) run with.

    Put it in the file's globals as ``__builtins__``: the file then imports ``twisted.*``
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
