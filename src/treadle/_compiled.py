"""Which of treadle's modules run compiled (mypyc), and the switch back to pure Python.

The modules of the per-request path (:data:`COMPILED_MODULES`) are compiled to C extensions
by mypyc when treadle is installed (``setup.py``), and the same ``.py`` files run as they are
wherever no compiler was found or the build failed. This module, imported first by
``treadle/__init__.py``, decides once per process which of the two is loaded:

- ``TREADLE_PURE_PYTHON=1`` in the environment: pure Python, always (CI runs the suite both
  ways with it; a way to tell a compiled-only bug from a logic one);
- otherwise the compiled modules, when the build left them and its record of their sources
  (``treadle/_build_stamp.py``, written by ``setup.py`` after a successful build) still
  matches the ``.py`` files byte for byte. An editable install (``pip install -e .``) builds
  the extensions next to the sources, and Python would import a stale extension rather
  than an edited ``.py`` beside it: a source that changed since the build therefore turns
  the compiled modules off (all of them: they are one library whose modules assume one
  another's native classes), until the next ``pip install -e .``.

When the compiled modules are off, an import hook (:class:`_SourceFinder`) loads those
modules from their ``.py`` files, so nothing else in treadle knows the difference.
:data:`compiled` (``treadle.compiled``) tells which way this process went.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Final

__all__ = ["COMPILED_MODULES", "PURE_ENV", "compiled", "source_digest"]

#: The modules mypyc compiles, lowest layer first: the deadline heap, the HTTP/1.1 channel's
#: state machine and its parser glue, the wire-level request, framing, headers and status
#: tables, the WebSocket frame codec, and the ASGI request cycle. ``setup.py`` reads this list.
COMPILED_MODULES: Final = (
    "treadle.internet._timers",
    "treadle.web._status",
    "treadle.web._state",
    "treadle.web._framing",
    "treadle.web.http_headers",
    "treadle.web._parser",
    "treadle.web._channel_core",
    "treadle.web._request_core",
    "treadle.web._websocket_frames",
    "treadle.web._asgi_scope",
    "treadle.web._asgi_calls",
    "treadle.web._asgi_http",
)

#: The environment variable that forces pure Python when set to anything but ``""``/``0``.
PURE_ENV: Final = "TREADLE_PURE_PYTHON"

_ROOT: Final = os.path.dirname(os.path.abspath(__file__))


def _source_path(root: str, module: str) -> str:
    """The ``.py`` file of ``module`` (a name under ``treadle``) below package dir ``root``."""
    parts = module.split(".")[1:]
    return os.path.join(root, *parts) + ".py"


def source_digest(root: str = _ROOT, modules: Sequence[str] = COMPILED_MODULES) -> str:
    """SHA-256 over the sources of ``modules``, as ``setup.py`` records it after a build.

    Args:
        root: The directory of the ``treadle`` package.
        modules: The module names (under ``treadle``), in order.
    """
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.encode("ascii") + b"\0")
        with open(_source_path(root, module), "rb") as source:
            digest.update(source.read())
    return digest.hexdigest()


def _extension_present(root: str, module: str) -> bool:
    """Whether a C extension of ``module`` for this interpreter lies next to its source."""
    base = _source_path(root, module)[: -len(".py")]
    return any(os.path.exists(base + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def use_compiled(
    environ: Mapping[str, str] = os.environ,
    root: str = _ROOT,
    built_digest: str | None = None,
) -> bool:
    """Decide whether the compiled modules are loaded (see the module docstring).

    Args:
        environ: Where ``TREADLE_PURE_PYTHON`` is read.
        root: The directory of the ``treadle`` package.
        built_digest: The digest the build recorded (None: read ``treadle._build_stamp``;
            no record means no compiled build).
    """
    if environ.get(PURE_ENV, "") not in ("", "0"):
        return False
    if built_digest is None:
        built_digest = _recorded_digest(root)
        if built_digest is None:
            return False
    if not all(_extension_present(root, module) for module in COMPILED_MODULES):
        return False
    try:
        return source_digest(root) == built_digest
    except OSError:
        return False  # a source is missing: nothing to compare the build with


def _recorded_digest(root: str) -> str | None:
    """The digest ``setup.py`` wrote in ``_build_stamp.py`` (None when there is none)."""
    try:
        with open(os.path.join(root, "_build_stamp.py"), encoding="ascii") as stamp:
            text = stamp.read()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("SOURCE_DIGEST = "):
            return line.partition("=")[2].strip().strip("\"'")
    return None


class _SourceFinder:
    """An import hook that loads :data:`COMPILED_MODULES` from their ``.py`` files.

    Installed first on ``sys.meta_path`` when the compiled modules are off, so that an
    extension module lying next to a source (an editable install's build) is never
    imported instead of it.
    """

    def __init__(self, modules: Sequence[str]) -> None:
        self._modules = frozenset(modules)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """A spec loading ``fullname`` from source, for the compiled modules only."""
        if fullname not in self._modules or not path:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for directory in path:
            candidate = os.path.join(directory, leaf)
            if os.path.exists(candidate):
                return importlib.util.spec_from_file_location(fullname, candidate)
        return None


def _install_source_finder() -> None:
    if not any(isinstance(finder, _SourceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder(COMPILED_MODULES))


#: True when this process runs the compiled modules, False when it runs them as pure Python
#: (``treadle.compiled``).
compiled: Final = use_compiled()
if not compiled and any(_extension_present(_ROOT, module) for module in COMPILED_MODULES):
    _install_source_finder()
