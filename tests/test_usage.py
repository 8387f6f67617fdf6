"""``treadle.python.usage.Options`` against Twisted's: the same declarations, the same argv.

Each Options class below is written once, as a function of the ``usage`` module, and built
twice: on Twisted's module and on treadle's. Both parse the same command lines; the values,
the error messages and the help text must agree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from twisted.python import usage as twisted_usage

from treadle.python import usage

Builder = Callable[[Any], type]


def basic(u: Any) -> type:
    class Options(u.Options):
        optFlags = [["verbose", "v", "Say more."], ["quiet", "q", "Say less."], ["debug", None]]
        optParameters = [
            ["port", "p", 8080, "The port to listen on.", int],
            ["host", "h", "localhost", "The host."],
            ["outfile", None, None, "Where to write. A long description that will certainly "
             "need to be wrapped over more than one line of the help text."],
            ["strict", "s", "0", "A port, checked.", u.portCoerce],
        ]  # fmt: skip
        longdesc = "A program that does things, described at some length for the help."

        def __init__(self) -> None:
            super().__init__()
            self["headers"] = []

        def opt_header(self, value: str) -> None:
            """Add a header (may be given several times)."""
            self["headers"].append(value)

        def opt_x(self) -> None:
            """Turn on x."""
            self["x"] = True

        def opt_colour(self, value: str) -> None:
            """The colour."""
            self["colour"] = value

        opt_c = opt_colour

    return Options


def with_arguments(u: Any) -> type:
    class Options(u.Options):
        optFlags = [["force", "f", "Force it."]]
        longdesc = ""

        def parseArgs(self, source: str, target: str = "out") -> None:
            self["source"] = source
            self["target"] = target

        def postOptions(self) -> None:
            if self["source"] == "bad":
                raise u.UsageError("source may not be 'bad'")

    return Options


def with_sub_commands(u: Any) -> type:
    class Serve(u.Options):
        optParameters = [["port", "p", "80", "Port."]]
        longdesc = "Serve things."

    class Clean(u.Options):
        optFlags = [["all", "a", "Everything."]]
        longdesc = ""

        def parseArgs(self, *names: str) -> None:
            self["names"] = names

    class Options(u.Options):
        optFlags = [["verbose", "v", "Say more."]]
        subCommands = [
            ["serve", "s", Serve, "Serve the site."],
            ["clean", None, Clean, "Remove files."],
        ]
        defaultSubCommand = "serve"
        longdesc = "Top level."

    return Options


def inherited(u: Any) -> type:
    class Base(u.Options):
        optFlags = [["base-flag", "b", "From the base."]]
        optParameters = [["level", "l", "1", "Level."]]
        longdesc = ""

        def opt_trace(self) -> None:
            """Trace."""
            self["trace"] = 1

    class Options(Base):
        optFlags = [["own", "o", "Our own."]]
        optParameters = [["level", "L", "2", "Level again."]]
        synopsis = "Usage: thing [options] FILE"

    return Options


BUILDERS = [basic, with_arguments, with_sub_commands, inherited]

ARGVS: dict[Builder, list[list[str]]] = {
    basic: [
        [],
        ["-v"],
        ["-vq"],
        ["--verbose", "--port=9000"],
        ["-p", "9000", "--host", "example.org"],
        ["-p9000"],
        ["--verb"],  # a unique prefix
        ["--po", "1"],
        ["--port=notanumber"],
        ["--strict=70000"],
        ["--strict", "443"],
        ["--header", "A: b", "--header=C: d"],
        ["-x", "-c", "red"],
        ["-cblue"],
        ["--colour=green"],
        ["--nope"],
        ["-z"],
        ["--port"],
        ["--verbose=yes"],
        ["extra"],
        ["-v", "--", "-q"],
        ["--debug", "--outfile", "/tmp/x"],
    ],
    with_arguments: [
        [],
        ["src"],
        ["src", "dst"],
        ["src", "dst", "more"],
        ["-f", "src"],
        ["src", "-f"],  # options end at the first argument
        ["bad"],
    ],
    with_sub_commands: [
        [],
        ["serve"],
        ["s", "-p", "8080"],
        ["-v", "clean", "-a", "x", "y"],
        ["clean"],
        ["unknown"],
        ["serve", "--nope"],
        ["-v"],
    ],
    inherited: [
        [],
        ["-b", "-o", "--trace"],
        ["-l", "5"],
        ["-L", "6"],
        ["--level=7"],
        ["--base-flag", "--own"],
    ],
}


def outcome(options_class: type, argv: list[str]) -> tuple[str, Any]:
    """Parse ``argv``; return ("ok", values) or ("error", message)."""
    options = options_class()
    try:
        options.parseOptions(argv)
    except Exception as e:
        return "error", (type(e).__name__, str(e))
    values = dict(options)
    sub = getattr(options, "subOptions", None)
    return "ok", (values, options.subCommand, None if sub is None else dict(sub))


def twisted_text(text: str) -> str:
    """Twisted's help text with the one line that differs on purpose (``--version``)."""
    return text.replace("Display Twisted version and exit.", "Display treadle version and exit.")


CASES = [(builder, argv) for builder in BUILDERS for argv in ARGVS[builder]]


@pytest.mark.parametrize(("builder", "argv"), CASES, ids=[f"{b.__name__}-{a}" for b, a in CASES])
def test_parsing_agrees_with_twisted(builder: Builder, argv: list[str]) -> None:
    ours = outcome(builder(usage), argv)
    theirs = outcome(builder(twisted_usage), argv)
    if theirs[0] == "error":
        # The same message; the class is each side's own UsageError.
        assert ours == ("error", ("UsageError", theirs[1][1]))
    else:
        assert ours == theirs


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("width", [None, 60, 120])
def test_help_text_agrees_with_twisted(
    builder: Builder, width: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/thing"])
    monkeypatch.setenv("COLUMNS", "72")
    ours, theirs = builder(usage)(), builder(twisted_usage)()
    assert ours.getUsage(width) == twisted_text(theirs.getUsage(width))
    assert ours.getSynopsis() == theirs.getSynopsis()
    assert str(ours) == twisted_text(str(theirs))


def test_sub_command_help_agrees_with_twisted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["thing"])
    ours, theirs = with_sub_commands(usage)(), with_sub_commands(twisted_usage)()
    ours.parseOptions(["clean", "-a"])
    theirs.parseOptions(["clean", "-a"])
    assert str(ours) == twisted_text(str(theirs))
    assert ours.subOptions.getSynopsis() == "Usage: thing [options] clean [options]"


def test_help_prints_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    options = basic(usage)()
    with pytest.raises(SystemExit) as exit:
        options.parseOptions(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out == str(basic(usage)()) + "\n"
    assert "  -p, --port=" in out and "[default: 8080]" in out
    assert "Must be an int between 0 and 65535." in " ".join(out.split())


def test_version_prints_treadles_version(capsys: pytest.CaptureFixture[str]) -> None:
    from treadle import __version__

    with pytest.raises(SystemExit) as exit:
        basic(usage)().parseOptions(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"treadle version: {__version__}\n"


def test_python_dash_m_synopsis(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("")
    monkeypatch.setattr(sys, "argv", [str(package / "__main__.py")])
    for u in (usage, twisted_usage):
        assert basic(u)().getSynopsis().startswith("Usage: python") or (
            basic(u)().getSynopsis().endswith("-m pkg [options]")
        )
    assert basic(usage)().getSynopsis() == basic(twisted_usage)().getSynopsis()


def test_completion_metadata_is_accepted() -> None:
    class Options(usage.Options):
        optParameters = [["file", "f", None, "A file."]]
        compData = usage.Completions(
            descriptions={"file": "the file"},
            multiUse=["file"],
            mutuallyExclusive=[("file", "other")],
            optActions={"file": usage.CompleteFiles("*.txt"), "x": usage.CompleteList(["a"])},
            extraActions=[usage.CompleteDirs(descr="dir", repeat=True)],
        )

    options = Options()
    options.parseOptions(["-f", "a.txt"])
    assert options["file"] == "a.txt"
    assert options.compData.optActions["file"]._globPattern == "*.txt"


def test_type_error_inside_parse_args_is_not_hidden() -> None:
    # Twisted reports "Wrong number of arguments." for any TypeError raised in parseArgs.
    class Options(usage.Options):
        def parseArgs(self, one: str) -> None:
            raise TypeError("a bug in the program")

    with pytest.raises(TypeError, match="a bug in the program"):
        Options().parseOptions(["x"])
    with pytest.raises(usage.UsageError, match="Wrong number of arguments"):
        Options().parseOptions(["x", "y"])


def test_long_sub_command_shortcut_does_not_break_help() -> None:
    class Sub(usage.Options):
        pass

    class Options(usage.Options):
        subCommands = [["inquisition", "inquest", Sub, "Perform an inquisition."]]

    text = str(Options())
    assert "    inquisition      Perform an inquisition." in text
    options = Options()
    options.parseOptions(["inquest"])
    assert options.subCommand == "inquisition"


def test_two_long_names_for_one_handler() -> None:
    # Twisted parses these but fails with a KeyError formatting the help.
    class Options(usage.Options):
        def opt_colour(self, value: str) -> None:
            """The colour."""
            self["colour"] = value

        opt_color = opt_colour

    options = Options()
    options.parseOptions(["--color", "red"])
    assert options["colour"] == "red"
    text = options.getUsage(80)
    assert "--color=" in text and "--colour=" in text


def test_declaration_errors() -> None:
    class NoName(usage.Options):
        optFlags = [[None, "x", "nameless"]]

    class TooLong(usage.Options):
        optFlags = [["a", "b", "c", "d"]]

    class BadHandler(usage.Options):
        def opt_two(self, a: str, b: str) -> None:
            """Takes two."""

    with pytest.raises(ValueError, match="without a name"):
        NoName()
    with pytest.raises(ValueError, match="4 elements is more than 3"):
        TooLong()
    with pytest.raises(usage.UsageError, match="Invalid Option function for two"):
        BadHandler()


def test_options_are_hashable_by_identity() -> None:
    a, b = usage.Options(), usage.Options()
    assert a == b and len({a, b}) == 2
    assert usage.error is usage.UsageError
