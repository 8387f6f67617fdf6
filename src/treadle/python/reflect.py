"""Finding objects by name and describing them safely (``twisted.python.reflect``).

The names programs use: :func:`namedAny` (and :func:`namedModule`, :func:`namedObject`,
:func:`namedClass`, :func:`requireModule`) to load a dotted name from configuration;
:func:`qual` and :func:`fullyQualifiedName` to print one; :func:`safe_repr` and
:func:`safe_str`, which never raise, for logging objects whose ``__repr__`` may be broken;
:func:`prefixedMethodNames` and :func:`prefixedMethods` for dispatch on method-name
prefixes (``render_*``, ``xmlrpc_*``, ``opt_*``).

Dotted names are looked up as written: a ``"twisted.x"`` string is Twisted's module, not
treadle's (the porting rule rewrites import statements, not strings a program computes).
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

from treadle.python.compat import nativeString

__all__ = [
    "InvalidName",
    "ModuleNotFound",
    "ObjectNotFound",
    "accumulateClassDict",
    "accumulateClassList",
    "accumulateMethods",
    "addMethodNamesToDict",
    "filenameToModuleName",
    "fullFuncName",
    "fullyQualifiedName",
    "getClass",
    "isSame",
    "namedAny",
    "namedClass",
    "namedModule",
    "namedObject",
    "prefixedMethodNames",
    "prefixedMethods",
    "qual",
    "requireModule",
    "safe_repr",
    "safe_str",
]


class InvalidName(ValueError):
    """A dotted name that cannot name anything (empty, or with an empty part)."""


class ModuleNotFound(InvalidName):
    """A one-part name that is no importable module."""


class ObjectNotFound(InvalidName):
    """A dotted name none of whose leading parts is an importable module."""


def _import_if_present(name: str) -> types.ModuleType | None:
    """Import ``name``; None when that module does not exist.

    An :class:`ImportError` raised by the module's own code (a broken import inside it)
    propagates: a typing error in configuration and a bug in a module are different faults.
    """
    try:
        return __import__(name)
    except ImportError as error:
        if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
            return None
        raise


def namedAny(name: str) -> Any:
    """Return the object a fully qualified dotted name names (``"os.path.join"``).

    The longest leading part that is a module is imported; the rest are attributes.

    Raises:
        InvalidName: ``name`` is empty or has an empty part (``"a..b"``, ``".a"``).
        ModuleNotFound: A one-part name that is not a module.
        ObjectNotFound: No leading part is a module.
        AttributeError: An attribute along the way is missing.
    """
    if not name:
        raise InvalidName("Empty module name")
    parts = name.split(".")
    if "" in parts:
        raise InvalidName(f"not a '.'-separated list of Python identifiers: {name!r}")
    for count in range(len(parts), 0, -1):
        top = _import_if_present(".".join(parts[:count]))
        if top is not None:
            break
    else:
        if len(parts) == 1:
            raise ModuleNotFound(f"No module named {name!r}")
        raise ObjectNotFound(f"{name!r} does not name an object")
    found: Any = top
    for part in parts[1:]:
        found = getattr(found, part)
    return found


namedClass = namedAny


def namedModule(name: str) -> types.ModuleType:
    """Import the module ``name`` and return it (the module itself, not its top package)."""
    __import__(name)
    return sys.modules[name]


def namedObject(name: str) -> Any:
    """Return the attribute ``name``'s last part names in the module its other parts name."""
    module_name, _, attribute = name.rpartition(".")
    return getattr(namedModule(module_name), attribute)


def requireModule(name: str, default: Any = None) -> Any:
    """Return the module ``name``, or ``default`` when it cannot be imported."""
    try:
        return namedModule(name)
    except ImportError:
        return default


def qual(clazz: type[object]) -> str:
    """Return ``"module.ClassName"`` for a class."""
    return f"{clazz.__module__}.{clazz.__name__}"


def fullyQualifiedName(obj: object) -> str:
    """Return the dotted name of a module, class, function or method.

    ``fullyQualifiedName(Resource.render)`` is ``"treadle.web.resource.Resource.render"``.
    """
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "")
    if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj):
        return f"{obj.__module__}.{name}"
    return str(name)


def fullFuncName(func: Callable[..., Any]) -> str:
    """Return the dotted name of a module-level function.

    Raises:
        Exception: The name does not lead back to ``func``.
    """
    name = f"{func.__module__}.{func.__name__}"
    if namedObject(name) is not func:
        raise Exception(f"Couldn't find {func} as {name}.")
    return name


def getClass(obj: object) -> type:
    """Return the type of ``obj``."""
    return type(obj)


def isSame(a: object, b: object) -> bool:
    """Return ``a is b``."""
    return a is b


def _class_name(obj: object) -> str:
    """The class name of ``obj``, however broken its class is."""
    try:
        cls = obj.__class__
    except BaseException:
        cls = type(obj)
    try:
        return str(cls.__name__)
    except BaseException:
        try:
            return str(cls)
        except BaseException:
            return f"<BROKEN CLASS AT 0x{id(cls):x}>"


def _describe_failure(formatter: Callable[[object], str], obj: object) -> str:
    """Describe ``obj`` and the exception being handled (its ``str``/``repr`` raised)."""
    return (
        f"<{_class_name(obj)} instance at 0x{id(obj):x} with {formatter.__name__} error:\n"
        f" {traceback.format_exc()}>"
    )


def safe_repr(o: object) -> str:
    """Return ``repr(o)``, or, if that raises, a description of ``o`` with the traceback."""
    try:
        return repr(o)
    except BaseException:
        return _describe_failure(repr, o)


def safe_str(o: object) -> str:
    """Return ``str(o)`` (UTF-8 bytes decoded), or a description if ``str`` raises."""
    if isinstance(o, bytes):
        try:
            return o.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return str(o)
    except BaseException:
        return _describe_failure(str, o)


def _prefixed(cls: type, prefix: str) -> list[tuple[str, str]]:
    """``(suffix, name)`` for each function ``cls`` itself defines named ``prefix...``."""
    return [
        (name[len(prefix) :], name)
        for name, value in vars(cls).items()
        if type(value) is types.FunctionType and name.startswith(prefix) and name != prefix
    ]


def addMethodNamesToDict(
    classObj: type, dict: dict[str, int], prefix: str, baseClass: type | None = None
) -> None:
    """Put ``suffix: 1`` in ``dict`` for each method ``prefix<suffix>`` of ``classObj``.

    Base classes are visited first. With ``baseClass``, only classes that have it as a
    direct base contribute.
    """
    for base in classObj.__bases__:
        addMethodNamesToDict(base, dict, prefix, baseClass)
    if baseClass is None or baseClass in classObj.__bases__:
        for suffix, _name in _prefixed(classObj, prefix):
            dict[suffix] = 1


def prefixedMethodNames(classObj: type, prefix: str) -> list[str]:
    """Return the suffixes of ``classObj``'s methods named ``prefix<suffix>`` (bases too)."""
    names: dict[str, int] = {}
    addMethodNamesToDict(classObj, names, prefix)
    return list(names)


def accumulateMethods(
    obj: object, dict: dict[str, Any], prefix: str = "", curClass: type | None = None
) -> None:
    """Put ``suffix: bound method`` in ``dict`` for each method ``prefix<suffix>`` of ``obj``.

    Classes are visited from ``curClass`` (``obj``'s class by default) up, bases first,
    so a subclass's method wins; ``object``'s own methods are left out.
    """
    cls = curClass or type(obj)
    for base in cls.__bases__:
        if base is not object:
            accumulateMethods(obj, dict, prefix, base)
    for suffix, name in _prefixed(cls, prefix):
        dict[suffix] = getattr(obj, name)


def prefixedMethods(obj: object, prefix: str = "") -> list[Any]:
    """Return ``obj``'s bound methods whose names start with ``prefix``."""
    methods: dict[str, Any] = {}
    accumulateMethods(obj, methods, prefix)
    return list(methods.values())


def accumulateClassDict(
    classObj: type, attr: str, adict: dict[Any, Any], baseClass: type | None = None
) -> None:
    """Merge the dictionaries class attribute ``attr`` holds along ``classObj``'s bases.

    Bases are merged first, so a subclass's entries win.
    """
    for base in classObj.__bases__:
        accumulateClassDict(base, attr, adict)
    if baseClass is None or baseClass in classObj.__bases__:
        adict.update(vars(classObj).get(attr, {}))


def accumulateClassList(
    classObj: type, attr: str, listObj: list[Any], baseClass: type | None = None
) -> None:
    """Extend ``listObj`` with the lists class attribute ``attr`` holds along the bases."""
    for base in classObj.__bases__:
        accumulateClassList(base, attr, listObj)
    if baseClass is None or baseClass in classObj.__bases__:
        listObj.extend(vars(classObj).get(attr, []))


def filenameToModuleName(fn: str | bytes) -> str:
    """Guess the dotted module name of the Python file or package directory ``fn``.

    Parent directories holding an ``__init__.py`` are taken as packages; the Python path is
    not consulted.
    """
    path = os.fsdecode(fn).rstrip(os.sep) or os.sep
    directory = os.path.dirname(os.path.abspath(path))
    name = nativeString(os.path.splitext(os.path.basename(path))[0])
    while os.path.exists(os.path.join(directory, "__init__.py")):
        name = f"{nativeString(os.path.basename(directory))}.{name}"
        parent = os.path.dirname(directory)
        if parent == directory:  # the filesystem root: nothing above it
            break
        directory = parent
    return name
