"""Reactor installers: epollreactor, pollreactor, selectreactor, asyncioreactor, default.

Installing is once per process, so each case runs in a child interpreter.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from treadle.internet._reactor import Reactor
from treadle.internet.asyncioreactor import AsyncioSelectorReactor
from treadle.internet.epollreactor import EPollReactor
from treadle.internet.pollreactor import PollReactor
from treadle.internet.selectreactor import SelectReactor

INSTALLERS = ["default", "epollreactor", "pollreactor", "selectreactor", "asyncioreactor"]


def run_program(source: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("installer", INSTALLERS)
def test_install_keeps_treadles_reactor_and_a_second_install_raises(installer: str) -> None:
    output = run_program(
        f"""
        from treadle.internet import {installer}
        {installer}.install()
        from treadle.internet import reactor
        from treadle.internet._reactor import Reactor
        from treadle.internet.error import ReactorAlreadyInstalledError
        print(isinstance(reactor, Reactor))
        for other in ("default", "selectreactor", "asyncioreactor"):
            module = __import__("treadle.internet." + other, fromlist=["install"])
            try:
                module.install()
            except ReactorAlreadyInstalledError as e:
                print("refused:", e)
        reactor.callLater(0.01, print, "ran")
        reactor.callLater(0.02, reactor.stop)
        reactor.run()
        """
    )
    refusal = f"refused: reactor already installed (by treadle.internet.{installer}.install())"
    assert output.splitlines() == ["True", refusal, refusal, refusal, "ran"]


def test_install_after_the_reactor_was_imported_succeeds_once() -> None:
    output = run_program(
        """
        from treadle.internet import reactor
        from treadle.internet import epollreactor
        epollreactor.install()
        print("installed")
        try:
            epollreactor.install()
        except AssertionError as e:  # ReactorAlreadyInstalledError is one, as in Twisted
            print(type(e).__name__)
        """
    )
    assert output.splitlines() == ["installed", "ReactorAlreadyInstalledError"]


def test_asyncioreactor_install_with_a_loop_runs_the_reactor_on_it() -> None:
    output = run_program(
        """
        import asyncio
        from treadle.internet import asyncioreactor
        loop = asyncio.new_event_loop()
        asyncioreactor.install(loop)
        from treadle.internet import reactor

        def check():
            print(asyncio.get_running_loop() is loop, asyncio.get_event_loop() is loop)
            reactor.stop()

        reactor.callLater(0.01, check)
        reactor.run()
        """
    )
    assert output.splitlines() == ["True True"]


def test_asyncioreactor_install_refuses_a_closed_loop_and_a_late_loop() -> None:
    output = run_program(
        """
        import asyncio
        from treadle.internet import asyncioreactor, reactor
        closed = asyncio.new_event_loop()
        closed.close()
        try:
            asyncioreactor.install(closed)
        except ValueError as e:
            print("ValueError:", e)
        reactor.callLater(10, print, "scheduled on the reactor's own loop")
        try:
            asyncioreactor.install(asyncio.new_event_loop())
        except RuntimeError as e:
            print("RuntimeError")
        asyncioreactor.install()  # the refusals did not count as installs
        print("installed")
        """
    )
    assert output.splitlines() == [
        "ValueError: cannot install a closed event loop",
        "RuntimeError",
        "installed",
    ]


def test_the_reactor_classes_are_treadles_reactor() -> None:
    for cls in (EPollReactor, PollReactor, SelectReactor, AsyncioSelectorReactor):
        assert issubclass(cls, Reactor)
    loop = asyncio.new_event_loop()
    try:
        assert AsyncioSelectorReactor(loop).loop is loop
        assert AsyncioSelectorReactor()._loop is None  # its own, made when first needed
    finally:
        loop.close()


TWISTED_PROGRAM = """
from twisted.internet import selectreactor
selectreactor.install()
from twisted.internet import reactor, error
try:
    from twisted.internet import pollreactor
    pollreactor.install()
except error.ReactorAlreadyInstalledError:
    print("second install refused")
reactor.callLater(0.01, print, "ran")
reactor.callLater(0.02, reactor.stop)
reactor.run()
"""


def test_a_twisted_program_choosing_a_reactor_runs_the_same() -> None:
    pytest.importorskip("twisted")
    twisted = run_program(TWISTED_PROGRAM)
    assert run_program(TWISTED_PROGRAM.replace("twisted", "treadle")) == twisted
    assert twisted.splitlines() == ["second install refused", "ran"]
