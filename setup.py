"""Build treadle, compiling its per-request modules with mypyc when that is possible.

Everything about the package is in ``pyproject.toml``; this file only adds the C extensions.
The modules listed in ``src/treadle/_compiled.py`` are compiled by mypyc (which ships with
mypy, a build requirement) into one extension library. When they cannot be built — mypyc
or a C compiler is missing, the build fails, or ``TREADLE_PURE_PYTHON=1`` is set — the
install still succeeds, with the same modules as pure Python. After a successful build,
``treadle/_build_stamp.py`` records a digest of the sources compiled: at run time treadle
loads the extensions only while the sources still match it (see ``treadle._compiled``).
"""

from __future__ import annotations

import glob
import os
import runpy
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(HERE, "src", "treadle")
# Read without importing the package (its dependencies need not be installed yet).
_COMPILED = runpy.run_path(os.path.join(PACKAGE_DIR, "_compiled.py"), run_name="_compiled")
MODULES: tuple[str, ...] = _COMPILED["COMPILED_MODULES"]
PURE_ENV: str = _COMPILED["PURE_ENV"]
STAMP = "_build_stamp.py"
#: The commands that build the package (the others only write its metadata).
_BUILD_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}
#: The name of the shared library holding every compiled module (``treadle__mypyc``).
GROUP = "treadle"


def _say(message: str) -> None:
    print(f"treadle setup: {message}", file=sys.stderr, flush=True)


def _pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def _remove_inplace_build() -> None:
    """Delete extensions and the stamp a previous in-place (editable) build left in src/."""
    paths = [os.path.join(PACKAGE_DIR, STAMP)]
    for module in MODULES:
        base = os.path.join(HERE, "src", *module.split("."))
        paths += glob.glob(base + ".*.so") + glob.glob(base + ".*.pyd")
    paths += glob.glob(os.path.join(HERE, "src", f"{GROUP}__mypyc.*"))
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def _extensions() -> list[Any]:
    """mypyc's extensions for MODULES, or none (pure Python) when mypyc cannot make them.

    Going pure also deletes what an earlier in-place build left, so that an editable install
    made pure does not keep loading old extensions.
    """
    if _pure_requested():
        _say(f"{PURE_ENV} is set: installing pure Python")
        _remove_inplace_build()
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as e:
        _say(f"mypyc is not available ({e}): installing pure Python")
        _remove_inplace_build()
        return []
    sources = [os.path.join("src", *module.split(".")) + ".py" for module in MODULES]
    # The build runs in an environment holding only the build requirements: the third-party
    # packages treadle imports are missing there, and only the compiled modules' own types
    # matter to mypyc (errors elsewhere are mypy's business, checked in CI).
    options = ["--ignore-missing-imports", "--follow-imports=silent", "--no-warn-unused-ignores"]
    try:
        return list(mypycify([*options, *sources], opt_level="3", group_name=GROUP))
    except (Exception, SystemExit) as e:  # mypyc exits on type errors it cannot compile
        _say(f"mypyc could not compile treadle ({e!r}): installing pure Python")
        _remove_inplace_build()
        return []


class OptionalBuildExt(build_ext):
    """``build_ext`` that makes mypyc's extensions, or falls back to pure Python.

    mypyc runs here rather than when setup.py is read, so that the other steps of an
    install (requirements, metadata) do not type-check and translate treadle each time.
    """

    def finalize_options(self) -> None:
        # Before setuptools prepares the list (it marks each extension it holds). The
        # steps of an install that only write metadata (egg_info, dist_info: each its own
        # run of this file) need none: mypyc runs once, in the step that builds.
        building = _BUILD_COMMANDS.intersection(self.distribution.commands)
        self.distribution.ext_modules = _extensions() if building else []
        super().finalize_options()

    def run(self) -> None:
        if not self.extensions:
            self._drop_extensions()
            return
        try:
            super().run()
        except Exception as e:  # no compiler, missing headers, a compile error...
            _say(f"building the C extensions failed ({e!r}): installing pure Python")
            self._drop_extensions()
            return
        self._write_stamp()

    def _drop_extensions(self) -> None:
        none: list[Any] = []
        self.extensions = self.distribution.ext_modules = none
        _remove_inplace_build()

    def _write_stamp(self) -> None:
        """Record what was compiled, next to the built package (in place or in build/)."""
        digest = _COMPILED["source_digest"](PACKAGE_DIR)
        target = PACKAGE_DIR if self.inplace else os.path.join(self.build_lib, "treadle")
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, STAMP), "w", encoding="ascii") as stamp:
            stamp.write(
                '"""Written by setup.py after compiling treadle (see treadle._compiled)."""\n\n'
                f'SOURCE_DIGEST = "{digest}"\n'
            )

    def get_outputs(self) -> list[str]:
        outputs: list[str] = super().get_outputs()
        if self.extensions:
            outputs.append(os.path.join(self.build_lib, "treadle", STAMP))
        return outputs


# A stand-in, replaced by mypyc's extensions when build_ext runs: it makes setuptools run
# build_ext and tag the wheel for this platform.
setup(
    ext_modules=[Extension(f"{GROUP}__mypyc", sources=[])],
    cmdclass={"build_ext": OptionalBuildExt},
)
