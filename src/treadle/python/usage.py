"""Command-line options the way Twisted programs declare them (``twisted.python.usage``).

A program subclasses :class:`Options` and lists what it accepts in class attributes::

    from treadle.python import usage

    class Options(usage.Options):
        optFlags = [["verbose", "v", "Say more."]]
        optParameters = [["port", "p", 8080, "The port to listen on.", int]]

        def opt_header(self, value):
            "Add a header (may be given several times)."
            self.setdefault("headers", []).append(value)

    options = Options()
    options.parseOptions(["-v", "--port=9000"])
    options["port"]  # 9000

The object is a ``dict`` of the option values. Flags start at 0 and become 1, parameters
start at their default; ``opt_NAME`` methods handle ``--NAME`` themselves (one argument:
the option takes a value; none: it is a flag; a one-letter name makes a short option).
``subCommands`` hands the rest of the line to another ``Options`` class, ``parseArgs``
receives the arguments that are not options, ``postOptions`` checks the whole. ``--help``
prints :meth:`Options.__str__` and ``--version`` the version, both then exit.

The grammar is the standard library's :mod:`getopt`, as in Twisted: options stop at the
first argument that is not one, ``-abc`` groups flags, and a long option may be abbreviated
to any unique prefix. Bad input raises :class:`UsageError` with a message meant for the
user.

``compData`` and the ``Complete*`` classes (shell completion) are accepted so that programs
declaring them run, and otherwise ignored: treadle generates no completion scripts.

Differences from Twisted, on purpose:

* A ``TypeError`` raised inside ``parseArgs`` propagates; only arguments that do not fit its
  signature become "Wrong number of arguments." (Twisted turns every TypeError into that
  message, hiding the bug.)
* A sub-command whose shortcut is longer than one letter, and a handler with two long names
  (``opt_color = opt_colour``), do not break ``--help`` (Twisted raises TypeError and
  KeyError formatting them); the help text is otherwise the same, byte for byte.
* ``--version`` prints treadle's version.
"""

from __future__ import annotations

import getopt
import inspect
import os
import sys
import textwrap
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from treadle.python._completions import (
    CompleteDirs,
    CompleteFiles,
    CompleteGroups,
    CompleteHostnames,
    CompleteList,
    CompleteMultiList,
    CompleteNetInterfaces,
    Completer,
    CompleteUserAtHost,
    CompleteUsernames,
    Completions,
)

__all__ = [
    "CoerceParameter",
    "CompleteDirs",
    "CompleteFiles",
    "CompleteGroups",
    "CompleteHostnames",
    "CompleteList",
    "CompleteMultiList",
    "CompleteNetInterfaces",
    "CompleteUserAtHost",
    "CompleteUsernames",
    "Completer",
    "Completions",
    "Options",
    "UsageError",
    "docMakeChunks",
    "error",
    "flagFunction",
    "portCoerce",
]


class UsageError(Exception):
    """The command line is wrong; the message says how, for the user to read."""


#: Twisted's older name for :class:`UsageError`.
error = UsageError

_Dispatcher = Callable[..., None]


class CoerceParameter:
    """Stores a parameter's value after passing it through a conversion function.

    Args:
        options: The :class:`Options` the value goes into.
        coerce: Called with the string from the command line; its result is stored. Its
            ``coerceDoc`` attribute, if any, is added to the option's help.
    """

    def __init__(self, options: Options, coerce: Callable[[str], Any]) -> None:
        self.options = options
        self.coerce = coerce
        self.doc: str = getattr(coerce, "coerceDoc", "")

    def dispatch(self, parameterName: str, value: str | None) -> None:
        """Convert ``value`` and store it under ``parameterName``.

        Raises:
            UsageError: No value was given, or the conversion raised ``ValueError``.
        """
        if value is None:
            raise UsageError(f"Parameter '{parameterName}' requires an argument.")
        try:
            converted = self.coerce(value)
        except ValueError as e:
            raise UsageError(f"Parameter type enforcement failed: {e}") from None
        self.options.opts[parameterName] = converted


def _padded(n: int, seq: Sequence[Any]) -> list[Any]:
    """Return ``seq`` as a list of ``n`` items, the missing ones None.

    Raises:
        ValueError: ``seq`` has more than ``n`` items.
    """
    if len(seq) > n:
        raise ValueError(f"{len(seq)} elements is more than {n}.")
    return [*seq, *([None] * (n - len(seq)))]


def _class_lists(cls: type, attribute: str) -> list[Any]:
    """Concatenate ``attribute`` of ``cls`` and every base class, bases first (depth first).

    A class reached twice through a diamond contributes twice, as in Twisted.
    """
    collected: list[Any] = []
    for base in cls.__bases__:
        collected.extend(_class_lists(base, attribute))
    collected.extend(cls.__dict__.get(attribute, []))
    return collected


def _handler_names(cls: type, names: dict[str, None]) -> None:
    """Record in ``names`` the ``NAME`` of every ``opt_NAME`` function, bases first."""
    for base in cls.__bases__:
        _handler_names(base, names)
    for attribute, value in cls.__dict__.items():
        if (
            type(value) is types.FunctionType
            and attribute.startswith("opt_")
            and len(attribute) > len("opt_")
        ):
            names[attribute[len("opt_") :]] = None


class _Declared:
    """What one kind of declaration (flags, parameters, handlers) adds to the parser."""

    def __init__(self) -> None:
        self.long: list[str] = []
        self.short = ""
        self.docs: dict[str, str | None] = {}
        self.settings: dict[str, Any] = {}
        self.synonyms: dict[str, str] = {}
        self.dispatch: dict[str, _Dispatcher | CoerceParameter] = {}


class Options(dict[str, Any]):
    """A command line's options, parsed into this dictionary.

    Class attributes a subclass sets (each list is combined with those of its bases):

    * ``optFlags``: ``[long, short, doc]`` lists; the value is 0, or 1 when given.
    * ``optParameters``: ``[long, short, default, doc, coerce]`` lists; the value is the
      default, or the given string passed through ``coerce`` (when there is one).
    * ``subCommands``: ``[name, shortcut, OptionsClass, doc]`` lists. The first argument
      that is not an option, when it names one, makes :attr:`subCommand` that name and
      :attr:`subOptions` an instance of its class, which parses the rest of the line.
    * ``defaultSubCommand``: the sub-command used when none is given.
    * ``synopsis`` and ``longdesc``: the first line and the description of ``--help``.

    Methods named ``opt_NAME`` handle ``--NAME`` (``opt_x``: ``-x``) themselves, and their
    docstring is the option's help. Two names for one method (``opt_v = opt_verbose``) are
    synonyms.

    Attributes:
        opts: This dictionary (Twisted's name for it).
        defaults: The value of every flag and parameter before parsing.
        subCommand: The sub-command given, or None.
        subOptions: The sub-command's Options, once one was parsed.
        parent: The Options whose sub-command this one is, or None.
    """

    subCommand: str | None = None
    defaultSubCommand: str | None = None
    parent: Options | None = None
    completionData: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.opts = self
        self.defaults: dict[str, Any] = {}
        self.longOpt: list[str] = []
        self.shortOpt = ""
        self.docs: dict[str, str | None] = {}
        self.synonyms: dict[str, str] = {}
        self._dispatch: dict[str, _Dispatcher | CoerceParameter] = {}
        # Handlers come last: their help falls back on the docs of a flag or parameter of
        # the same name, and their dispatch replaces that flag's or parameter's.
        for gather in (self._gather_flags, self._gather_parameters, self._gather_handlers):
            declared = gather()
            self.longOpt.extend(declared.long)
            self.shortOpt += declared.short
            self.docs.update(declared.docs)
            self.update(declared.settings)
            self.defaults.update(declared.settings)
            self.synonyms.update(declared.synonyms)
            self._dispatch.update(declared.dispatch)

    # A dict is unhashable; Options are used as dictionary keys (and in sets) by identity.
    __hash__ = object.__hash__  # type: ignore[assignment]

    # -- declarations ----------------------------------------------------------------------

    def _gather_flags(self) -> _Declared:
        declared = _Declared()
        for flag in _class_lists(type(self), "optFlags"):
            long, short, doc = _padded(3, flag)
            if not long:
                raise ValueError("A flag cannot be without a name.")
            declared.docs[long] = doc
            declared.settings[long] = 0
            if short:
                declared.short += short
                declared.synonyms[short] = long
            declared.long.append(long)
            declared.synonyms[long] = long
            declared.dispatch[long] = self._generic_flag
        return declared

    def _gather_parameters(self) -> _Declared:
        declared = _Declared()
        for parameter in _class_lists(type(self), "optParameters"):
            long, short, default, doc, coerce = _padded(5, parameter)
            if not long:
                raise ValueError("A parameter cannot be without a name.")
            declared.docs[long] = doc
            declared.settings[long] = default
            if short:
                declared.short += short + ":"
                declared.synonyms[short] = long
            declared.long.append(long + "=")
            declared.synonyms[long] = long
            declared.dispatch[long] = CoerceParameter(self, str if coerce is None else coerce)
        return declared

    def _gather_handlers(self) -> _Declared:
        declared = _Declared()
        names: dict[str, None] = {}
        _handler_names(type(self), names)
        by_method: dict[Any, list[str]] = {}
        for name in names:
            method = getattr(self, "opt_" + name)
            takes_value = not flagFunction(method, name)
            pretty = name.replace("_", "-")
            declared.docs[pretty] = method.__doc__ or self.docs.get(pretty)
            declared.synonyms[pretty] = pretty
            declared.dispatch[pretty] = _handler_call(method, takes_value)
            if len(name) == 1:
                declared.short += name + (":" if takes_value else "")
            else:
                declared.long.append(pretty + ("=" if takes_value else ""))
            # Bound methods of the same function compare equal: aliases group together.
            by_method.setdefault(method, []).append(pretty)
        for aliases in by_method.values():
            if len(aliases) > 1:
                longest = max(aliases, key=len)
                for alias in aliases:
                    declared.synonyms[alias] = longest
        return declared

    def _generic_flag(self, flagName: str, value: str | None = None) -> None:
        if value not in ("", None):
            raise UsageError(f"Flag '{flagName}' takes no argument. Not even \"{value}\".")
        self.opts[flagName] = 1

    # -- built-in options ------------------------------------------------------------------

    def opt_help(self) -> None:
        """Display this help and exit."""
        print(self.__str__())
        sys.exit(0)

    def opt_version(self) -> None:
        """Display treadle version and exit."""
        from treadle import __version__

        print("treadle version:", __version__)
        sys.exit(0)

    # -- parsing ---------------------------------------------------------------------------

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Parse ``options`` (``sys.argv[1:]`` when None) into this dictionary.

        Options are handled in the order given; then a sub-command takes the rest of the
        line, or :meth:`parseArgs` receives the remaining arguments; :meth:`postOptions`
        runs last.

        Raises:
            UsageError: The line does not fit the declarations (unknown option, missing
                value, failed conversion, unknown sub-command, wrong number of arguments),
                or a handler, :meth:`parseArgs` or :meth:`postOptions` said so.
        """
        argv = list(sys.argv[1:] if options is None else options)
        try:
            pairs, args = getopt.getopt(argv, self.shortOpt, self.longOpt)
        except getopt.GetoptError as e:
            raise UsageError(str(e)) from None
        for option, value in pairs:
            self._dispatch_option(option, value)
        subCommands = getattr(self, "subCommands", None)
        if subCommands and (args or self.defaultSubCommand is not None):
            self._parse_sub_command(subCommands, args or [self.defaultSubCommand])
        else:
            self._parse_arguments(args)
        self.postOptions()

    def _dispatch_option(self, option: str, value: str) -> None:
        name = option[2:] if option.startswith("--") else option[1:]
        key = name
        if key not in self.synonyms:
            key = name.replace("-", "_")
            if key not in self.synonyms:
                raise UsageError(f"No such option '{name}'")
        canonical = self.synonyms[key]
        handler = self._dispatch[canonical]
        if isinstance(handler, CoerceParameter):
            handler.dispatch(canonical, value)
        else:
            handler(canonical, value)

    def _parse_sub_command(self, subCommands: Iterable[Sequence[Any]], args: list[Any]) -> None:
        given, rest = args[0], args[1:]
        for name, shortcut, parser, _doc in subCommands:
            if given in (name, shortcut):
                self.subCommand = name
                self.subOptions = parser()
                self.subOptions.parent = self
                self.subOptions.parseOptions(rest)
                return
        raise UsageError(f"Unknown command: {given}")

    def _parse_arguments(self, args: list[str]) -> None:
        try:
            inspect.signature(self.parseArgs).bind(*args)
        except TypeError:
            raise UsageError("Wrong number of arguments.") from None
        except ValueError:  # no signature to check (a builtin): let the call decide
            pass
        self.parseArgs(*args)

    def parseArgs(self, *args: str) -> None:
        """Receive the arguments that are not options; override to accept some.

        The default accepts none: any argument is a :class:`UsageError` ("Wrong number of
        arguments."), as is a number of arguments an override's signature does not take.
        """
        if args:
            raise UsageError("Wrong number of arguments.")

    def postOptions(self) -> None:
        """Called once everything is parsed; override to check the options as a whole.

        Raise :class:`UsageError` to reject the command line.
        """

    # -- help ------------------------------------------------------------------------------

    def __str__(self) -> str:
        """The ``--help`` text: the synopsis line, then :meth:`getUsage`."""
        return self.getSynopsis() + "\n" + self.getUsage(width=None)

    def getSynopsis(self) -> str:
        """Return the first line of the help: ``Usage: PROGRAM [options]`` by default.

        The class attribute ``synopsis`` replaces it; a sub-command's synopsis follows its
        parent's and the sub-command's name.
        """
        if self.parent is None:
            options = " [options]" if self.longOpt else ""
            default = f"Usage: {_program_name()}{options}"
        else:
            default = "[options]" if self.longOpt else ""
        synopsis = str(getattr(self, "synopsis", default)).rstrip()
        if self.parent is not None:
            parent = self.parent
            synopsis = f"{parent.getSynopsis()} {parent.subCommand} {synopsis}"
        return synopsis

    def getUsage(self, width: int | None = None) -> str:
        """Return the help after the synopsis: options, description, sub-commands.

        Args:
            width: Columns to wrap to; ``$COLUMNS`` (else 80) when None or 0.

        Returns:
            ``Options:`` and a line per option (sorted by short name, else long name), the
            ``longdesc`` (or the ``__main__`` module's docstring), then ``Commands:`` when
            there are sub-commands. Once a sub-command was parsed, its usage instead.
        """
        if hasattr(self, "subOptions"):
            sub: Options = self.subOptions
            return sub.getUsage(width=width)
        if not width:
            width = int(os.environ.get("COLUMNS", "80"))
        commands = ""
        if hasattr(self, "subCommands"):
            rows = [
                {"long": name, "short": shortcut, "doc": doc, "optType": "command", "default": None}
                for name, shortcut, _parser, doc in self.subCommands
            ]
            commands = "Commands:\n" + "".join(docMakeChunks(rows, width))
        rows = [self._option_row(option) for option in self.longOpt]
        body = "Options:\n" + "".join(docMakeChunks(rows, width)) if rows else "Options: None\n"
        return body + self._long_description(width) + commands

    def _option_row(self, option: str) -> dict[str, Any]:
        short_names: dict[str, str | None] = {}
        for alias, canonical in self.synonyms.items():
            if alias != canonical and len(alias) == 1:
                short_names[canonical] = alias
            else:
                short_names.setdefault(canonical, None)
        kind = "parameter" if option.endswith("=") else "flag"
        name = option.removesuffix("=")
        return {
            "long": name,
            # A second long name of a handler is no key here (Twisted fails on it).
            "short": short_names.get(name),
            "doc": self.docs[name],
            "optType": kind,
            "default": self.defaults.get(name),
            "dispatch": self._dispatch.get(name),
        }

    def _long_description(self, width: int) -> str:
        text = getattr(self, "longdesc", None)
        if text is None:
            import __main__

            text = getattr(__main__, "__doc__", None) or ""
        if not text:
            return ""
        return "\n" + "\n".join(textwrap.wrap(text, width)).strip() + "\n"


def _handler_call(method: Callable[..., Any], takes_value: bool) -> _Dispatcher:
    """Give an ``opt_*`` method the dispatch signature ``(name, value)``."""
    if takes_value:

        def with_value(name: str, value: str) -> None:
            method(value)

        return with_value

    def flag(name: str, value: str | None = None) -> None:
        method()

    return flag


def _program_name() -> str:
    """The program as the help names it: its module path, or ``python -m package``."""
    name = _module_name_of(sys.argv[0])
    if name.endswith(".__main__"):
        name = f"{os.path.basename(sys.executable)} -m {name.removesuffix('.__main__')}"
    return name


def _module_name_of(filename: str) -> str:
    """The dotted module name of a file: its name, prefixed by each enclosing package."""
    base = os.path.basename(filename) or os.path.basename(filename[:-1])
    name = os.path.splitext(base)[0]
    directory = os.path.dirname(os.path.abspath(filename))
    while os.path.exists(os.path.join(directory, "__init__.py")):
        name = f"{os.path.basename(directory)}.{name}"
        directory = os.path.dirname(directory)
    return name


def docMakeChunks(optList: list[dict[str, Any]], width: int = 80) -> list[str]:
    """Format the help lines of options or sub-commands.

    Args:
        optList: One dictionary per entry, with the keys ``long``, ``short``, ``doc``,
            ``optType`` (``"flag"``, ``"parameter"`` or ``"command"``), ``default`` and,
            for parameters, ``dispatch``. Sorted in place by short name, else long name.
        width: The width to wrap the descriptions in.

    Returns:
        One string per entry (an entry whose names were already shown is skipped), each
        one or more lines ending in a newline.
    """
    optList.sort(key=_sort_key)
    widest = 0
    for row in optList:
        length = len(row.get("long") or "")
        if length and row.get("optType") == "parameter":
            length += 1  # the "="
        widest = max(widest, length)
    first_column = widest + len("  -s, --  ")
    indent = " " * first_column
    chunks = []
    seen: set[str] = set()
    for row in optList:
        short, long = row.get("short"), row.get("long")
        if short in seen or long in seen:
            continue
        seen.update(name for name in (short, long) if name is not None)
        lines = textwrap.wrap(_row_doc(row), width - first_column) or [""]
        text = _first_column(row, widest) + lines[0] + "\n"
        chunks.append(text + "".join(f"{indent}{line}\n" for line in lines[1:]))
    return chunks


def _sort_key(row: dict[str, Any]) -> str:
    return str(row.get("short") or row.get("long"))


def _first_column(row: dict[str, Any], widest: int) -> str:
    long = row.get("long")
    kind = row.get("optType")
    if long:
        long = (long + "=" if kind == "parameter" else long).ljust(widest)
    else:
        long = " " * (widest + len("--"))
    if kind == "command":
        return f"    {long}      "
    short = row.get("short")
    letter = f"-{short}" if short else ""
    comma = "," if short and row.get("long") else " "
    return f"  {letter:>2}{comma} --{long}  "


def _row_doc(row: dict[str, Any]) -> str:
    doc = (row.get("doc") or "").strip()
    if row.get("optType") == "parameter":
        if row.get("default") is not None:
            doc = f"{doc} [default: {row['default']}]"
        dispatch = row.get("dispatch")
        if isinstance(dispatch, CoerceParameter) and dispatch.doc:
            doc = f"{doc}. {dispatch.doc}"
    return doc


def flagFunction(method: Callable[..., Any], name: str | None = None) -> bool:
    """Tell whether an ``opt_*`` method handles a flag (no argument) or an option (one).

    Args:
        method: The bound method.
        name: The option's name, for the error message.

    Returns:
        True for a flag, False for an option taking a value.

    Raises:
        UsageError: The method takes more than one argument.
    """
    count = len(inspect.signature(method).parameters)
    if count > 1:
        raise UsageError(f"Invalid Option function for {name or method.__name__}")
    return count == 0


def portCoerce(value: str) -> int:
    """Convert a port number for an ``optParameters`` entry.

    Raises:
        ValueError: It is not an integer from 0 to 65535.
    """
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"Port number not in range: {port}")
    return port


portCoerce.coerceDoc = "Must be an int between 0 and 65535."  # type: ignore[attr-defined]
