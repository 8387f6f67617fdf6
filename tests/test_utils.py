"""treadle.internet.utils: getProcessOutput and friends, and the warning suppressors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import run_on_loop
from treadle.internet import reactor
from treadle.internet.defer import Deferred
from treadle.internet.error import ProcessDone
from treadle.internet.utils import (
    ProcessSignalled,
    getProcessOutput,
    getProcessOutputAndValue,
    getProcessValue,
    runWithWarningsSuppressed,
    suppressWarnings,
)

_T = TypeVar("_T")
PY = sys.executable


def test_get_process_output_returns_stdout_with_the_executable_as_argv0(loop_kind: str) -> None:
    async def main() -> bytes:
        code = "import sys; print(sys.orig_argv[0]); print(sys.argv[1:])"
        return await getProcessOutput(PY, ["-c", code, "a", "b"])

    assert run_on_loop(loop_kind, main()).decode().splitlines() == [PY, "['a', 'b']"]


def test_get_process_output_fails_on_stderr_unless_errortoo(loop_kind: str) -> None:
    code = "import sys; sys.stderr.write('oops'); sys.stderr.flush(); print('out')"

    async def main() -> tuple[IOError, Any, bytes]:
        try:
            # Nothing written after stderr: the child ends cleanly once our pipes close.
            await getProcessOutput(PY, ["-c", "import sys; sys.stderr.write('oops')"])
        except OSError as e:
            error = e
        else:
            pytest.fail("stderr output did not fail the Deferred")
        ended: Deferred[Any] = error.processEnded  # type: ignore[attr-defined]
        reasons: list[Any] = []
        await ended.addErrback(reasons.append)
        reason = reasons[0]
        both = await getProcessOutput(PY, ["-c", code], errortoo=True)
        return error, reason, both

    error, reason, both = run_on_loop(loop_kind, main())
    assert str(error) == "got stderr: b'oops'"
    assert reason.check(ProcessDone)  # processEnded errbacks whatever the reason, as Twisted
    # Two pipes: which one is read first is up to the scheduler.
    assert both in (b"oopsout\n", b"out\noops")


def test_get_process_value_is_the_exit_code_or_none_on_a_signal(loop_kind: str) -> None:
    async def main() -> tuple[Any, Any]:
        code = await getProcessValue(PY, ["-c", "import sys; sys.exit(7)"])
        killed = await getProcessValue(PY, ["-c", "import os; os.kill(os.getpid(), 9)"])
        return code, killed

    assert run_on_loop(loop_kind, main()) == (7, None)


def test_get_process_output_and_value_with_stdin(loop_kind: str) -> None:
    code = "import sys; d = sys.stdin.read(); print(d.upper()); sys.stderr.write('e'); sys.exit(2)"

    async def main() -> Any:
        return await getProcessOutputAndValue(PY, ["-c", code], stdinBytes=b"in")

    assert run_on_loop(loop_kind, main()) == (b"IN\n", b"e", 2)


def test_a_signal_fails_with_a_tuple_like_error(loop_kind: str) -> None:
    code = "import os, sys; print('o', flush=True); os.kill(os.getpid(), 15)"

    async def main() -> ProcessSignalled:
        try:
            await getProcessOutputAndValue(PY, ["-c", code])
        except ProcessSignalled as e:
            return e
        pytest.fail("a killed child did not fail the Deferred")

    error = run_on_loop(loop_kind, main())
    out, err, sig = error
    assert (out, err, sig) == (b"o\n", b"", signal.SIGTERM)
    assert error == (b"o\n", b"", signal.SIGTERM) and error[2] == 15 and len(error) == 3


def test_the_environment_is_empty_by_default_and_path_is_the_directory(
    loop_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TREADLE_MARK", "parent")
    code = "import os; print('TREADLE_MARK' in os.environ, os.getcwd())"

    async def main() -> list[bytes]:
        return [
            await getProcessOutput(PY, ["-c", code], path=str(tmp_path), reactor=reactor),
            await getProcessOutput(PY, ["-c", code], env=None),
        ]

    isolated, inherited = run_on_loop(loop_kind, main())
    assert isolated.decode().split() == ["False", str(tmp_path)]
    assert inherited.startswith(b"True ")


def test_a_missing_program_fails_the_deferred(loop_kind: str, tmp_path: Path) -> None:
    async def main() -> None:
        for call in (getProcessOutput, getProcessValue, getProcessOutputAndValue):
            with pytest.raises(FileNotFoundError):
                await call(str(tmp_path / "missing"))

    run_on_loop(loop_kind, main())


def warn(message: str = "old") -> str:
    warnings.warn(message, DeprecationWarning, stacklevel=2)
    return "result"


SUPPRESS = [(("ignore",), {"category": DeprecationWarning})]


def test_run_with_warnings_suppressed_removes_its_filters_after() -> None:
    before = list(warnings.filters)
    assert runWithWarningsSuppressed(SUPPRESS, warn) == "result"
    assert warnings.filters == before  # including a filter it displaced, put back in place
    with pytest.raises(DeprecationWarning):  # pytest turns warnings into errors again
        warn()
    with pytest.raises(ZeroDivisionError):
        runWithWarningsSuppressed(SUPPRESS, lambda: 1 / 0)
    assert warnings.filters == before


def test_a_filter_of_the_programs_own_is_put_back_where_it_was() -> None:
    own = {"message": "displaced", "category": DeprecationWarning}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", **own)  # type: ignore[arg-type]
        warnings.filterwarnings("ignore", category=UserWarning)
        before = list(warnings.filters)
        runWithWarningsSuppressed([(("ignore",), own)], warn, "displaced")
        assert warnings.filters == before


def test_filters_stay_until_a_returned_deferred_fires() -> None:
    before = list(warnings.filters)
    d: Deferred[str] = Deferred()
    assert runWithWarningsSuppressed(SUPPRESS, lambda: d) is d
    assert warnings.filters[0] == ("ignore", None, DeprecationWarning, None, 0)
    assert warn() == "result"  # still suppressed
    d.callback("fired")
    assert warnings.filters == before


def test_suppress_warnings_wraps_a_function() -> None:
    quiet = suppressWarnings(warn, *SUPPRESS)
    assert quiet.__name__ == "warn"
    assert quiet("x") == "result"
    with pytest.raises(DeprecationWarning):
        warn()


PROGRAM = """
import sys
from twisted.internet import reactor, utils, defer

@defer.inlineCallbacks
def main():
    out = yield utils.getProcessOutput(sys.executable, ["-c", "print('hi')"])
    print("output", out)
    code = yield utils.getProcessValue(sys.executable, ["-c", "import sys; sys.exit(3)"])
    print("value", code)
    both = yield utils.getProcessOutputAndValue(
        sys.executable, ["-c", "import sys; sys.stderr.write('e'); print(sys.stdin.read())"],
        stdinBytes=b"fed")
    print("both", both)
    d = utils.getProcessOutputAndValue(
        sys.executable, ["-c", "import os; os.kill(os.getpid(), 15)"])
    result = yield d.addErrback(lambda failure: ("signalled",) + tuple(failure.value))
    print(*result)
    reactor.stop()

reactor.callWhenRunning(main)
reactor.run()
"""


def test_a_twisted_program_gets_the_same_results_under_treadle() -> None:
    pytest.importorskip("twisted")
    results = []
    for text in (PROGRAM, PROGRAM.replace("twisted", "treadle")):
        result = subprocess.run(
            [PY, "-c", text], capture_output=True, text=True, timeout=60, env=dict(os.environ)
        )
        assert result.returncode == 0, result.stderr
        results.append(result.stdout)
    twisted, treadle = results
    assert treadle == twisted
    assert twisted.splitlines() == [
        "output b'hi\\n'",
        "value 3",
        "both (b'fed\\n', b'e', 0)",
        "signalled b'' b'' 15",
    ]
