"""The compatibility suite: Twisted programs run under Twisted and, ported, under treadle.

Each folder in ``programs/`` is a small Twisted program written the way people write them
(endpoints, ``serverFromString``, ``.tac`` files with ``strports``, ``twistd`` plugins, line
protocols beside a web site, threads, processes, TLS, ...) with a ``spec.toml`` that says how
to start it and what to ask it (see :mod:`tests.compat.harness`). For each program:

- ``test_under_twisted`` runs it under real Twisted (a test extra) and checks that it is
  right: the statuses and texts the spec expects. This keeps the programs honest: a program
  that fails identically on both sides would otherwise pass.
- ``test_under_treadle`` ports it by the README's rule (``twisted`` → ``treadle`` in import
  lines, nothing else), runs it under treadle with the same requests, checks the same
  expectations and compares every answer with Twisted's after normalising ``Date``,
  ``Server``, session ids and the differences README.md documents
  (:data:`~tests.compat.harness.DOCUMENTED`).

Every run starts when the module's first test does, on a small pool of threads, so the
programs boot side by side; each test waits only for the runs it checks.
"""

from __future__ import annotations

import difflib
import pprint
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from .harness import (
    DEADLINE,
    Certificates,
    Run,
    Spec,
    normalise,
    port_source,
    problems,
    program_names,
    run_program,
)

NAMES = program_names()
SIDES = ("twisted", "treadle")
#: Runs at once. Each is mostly waiting on sockets; start-up is the CPU cost.
WORKERS = 6


class Runs:
    """The runs the selected tests need, started together, awaited one by one.

    Args:
        root: A fresh directory for the programs' copies.
        wanted: ``(name, side)`` pairs to run, in the order the tests will want them.
    """

    def __init__(self, root: Path, wanted: list[tuple[str, str]]) -> None:
        self.certs = Certificates.make()
        self.specs = {name: Spec.load(name) for name in NAMES}
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="compat")
        self.futures: dict[tuple[str, str], Future[Run]] = {}
        for name, side in wanted:
            workdir = root / name
            workdir.mkdir(exist_ok=True)
            self.futures[name, side] = self.pool.submit(
                run_program, self.specs[name], side, workdir, self.certs
            )

    def get(self, name: str, side: str) -> Run:
        # Generous: runs queue behind one another on a loaded machine.
        return self.futures[name, side].result(timeout=3 * DEADLINE)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def wanted_runs(items: list[pytest.Item]) -> list[tuple[str, str]]:
    """The runs the selected tests of this module need: Twisted's first, as tests come."""
    wanted: dict[tuple[str, str], None] = {}
    for side in SIDES:
        for item in items:
            if item.module is not sys.modules[__name__] or not hasattr(item, "callspec"):
                continue
            name = item.callspec.params["name"]
            if side == "twisted" or item.originalname == "test_under_treadle":
                wanted[name, side] = None
    return list(wanted)


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    everything = Runs(tmp_path_factory.mktemp("compat"), wanted_runs(request.session.items))
    try:
        yield everything
    finally:
        everything.close()


def check_right(spec: Spec, run: Run) -> None:
    """Fail unless ``run`` finished and got what ``spec`` expects."""
    wrong = problems(spec, run)
    if wrong:
        pytest.fail("\n".join(wrong) + "\n" + run.describe(), pytrace=False)


def difference(twisted: Run, treadle: Run, spec: Spec) -> str:
    """A readable diff of the two runs' comparable parts ('' when they agree)."""
    left, right = twisted.comparable(), treadle.comparable()
    if spec.compare_stdout:
        left["stdout"], right["stdout"] = twisted.stdout, treadle.stdout
    if left == right:
        return ""
    lines = difflib.unified_diff(
        pprint.pformat(left, width=100).splitlines(),
        pprint.pformat(right, width=100).splitlines(),
        "twisted",
        "treadle",
        lineterm="",
    )
    return "\n".join(lines)


@pytest.mark.parametrize("name", NAMES)
def test_under_twisted(runs: Runs, name: str) -> None:
    check_right(runs.specs[name], runs.get(name, "twisted"))


@pytest.mark.parametrize("name", NAMES)
def test_under_treadle(runs: Runs, name: str) -> None:
    spec = runs.specs[name]
    treadle = runs.get(name, "treadle")
    check_right(spec, treadle)
    twisted = normalise(runs.get(name, "twisted"))
    assert twisted.error is None, "the program fails under Twisted: see test_under_twisted"
    diff = difference(twisted, normalise(treadle), spec)
    if diff:
        pytest.fail(f"treadle answers differently from Twisted:\n{diff}", pytrace=False)


def test_there_are_enough_programs() -> None:
    assert len(NAMES) >= 30


def test_the_porting_rule_changes_import_lines_only() -> None:
    source = (
        "from twisted.web import server\n"
        "import twisted.internet.reactor\n"
        "    from twisted.internet import (\n"
        "        reactor,\n"
        "    )\n"
        "import twistedish\n"
        "NAME = 'twisted'  # from twisted.web import nothing\n"
    )
    assert port_source(source) == (
        "from treadle.web import server\n"
        "import treadle.internet.reactor\n"
        "    from treadle.internet import (\n"
        "        reactor,\n"
        "    )\n"
        "import twistedish\n"
        "NAME = 'twisted'  # from twisted.web import nothing\n"
    )


def test_normalising_numbers_session_ids_by_first_appearance() -> None:
    def answer(cookie: str, body: bytes) -> dict[str, object]:
        headers = [
            ("date", "Sat, 05 Dec 2026 05:00:07 GMT"),
            ("server", "X"),
            ("set-cookie", cookie),
        ]
        return {"status": 200, "reason": "OK", "headers": headers, "body": body}

    run = Run("twisted")
    run.steps = [
        answer("TWISTED_SESSION=abc123; Path=/; HttpOnly", b"<Request at 0x7f00ab>"),
        answer("TWISTED_SECURE_SESSION=def456; Path=/; Secure", b"was abc123"),
    ]
    first, second = normalise(run).steps
    assert first["headers"] == [("set-cookie", "TWISTED_SESSION=<session-1>; Path=/")]
    assert first["body"] == b"<Request at 0x...>"
    assert second["headers"] == [
        ("set-cookie", "TWISTED_SECURE_SESSION=<session-2>; Path=/; Secure")
    ]
    assert second["body"] == b"was <session-1>"
