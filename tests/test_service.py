"""The service tree: Service, MultiService, Application, loadApplication, ServiceMaker."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from treadle.application import service
from treadle.internet.defer import Deferred, succeed
from treadle.plugin import IPlugin
from treadle.python.failure import Failure


class Recording(service.Service):
    """Appends ``(event, name)`` to a shared list; ``stopService`` may return a Deferred."""

    def __init__(self, name: str, events: list[tuple[str, str]], stop_result: Any = None):
        self.setName(name)
        self.events = events
        self.stop_result = stop_result

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self.events.append(("privileged", str(self.name)))

    def startService(self) -> None:
        super().startService()
        self.events.append(("start", str(self.name)))

    def stopService(self) -> Any:
        super().stopService()
        self.events.append(("stop", str(self.name)))
        return self.stop_result


def test_service_bookkeeping() -> None:
    svc = service.Service()
    assert verifyObject(service.IService, svc)
    assert (svc.name, svc.parent, svc.running) == (None, None, False)
    svc.startService()
    assert svc.running
    assert svc.stopService() is None
    assert not svc.running
    svc.setName("one")
    assert svc.name == "one"


def test_name_cannot_change_once_parented() -> None:
    parent = service.MultiService()
    child = service.Service()
    child.setName("a")
    child.setServiceParent(parent)
    with pytest.raises(RuntimeError, match="cannot change name when parent exists"):
        child.setName("b")


def test_parenting_and_disowning() -> None:
    first, second = service.MultiService(), service.MultiService()
    child = service.Service()
    child.setName("c")
    child.setServiceParent(first)
    assert child.parent is first and list(first) == [child]
    assert first.getServiceNamed("c") is child
    # A new parent: the old one forgets the child.
    child.setServiceParent(second)
    assert list(first) == [] and list(second) == [child] and child.parent is second
    with pytest.raises(KeyError):
        first.getServiceNamed("c")
    assert child.disownServiceParent() is None
    assert child.parent is None and list(second) == []


def test_duplicate_names_are_refused() -> None:
    parent = service.MultiService()
    a, b = service.Service(), service.Service()
    a.setName("same")
    b.setName("same")
    a.setServiceParent(parent)
    with pytest.raises(RuntimeError, match="two services with same name 'same'"):
        b.setServiceParent(parent)
    with pytest.raises(ValueError):
        parent.removeService(b)


def test_multiservice_starts_in_order_and_stops_in_reverse() -> None:
    events: list[tuple[str, str]] = []
    parent = service.MultiService()
    for name in ("a", "b", "c"):
        Recording(name, events).setServiceParent(parent)
    parent.privilegedStartService()
    parent.startService()
    assert events == [
        ("privileged", "a"),
        ("privileged", "b"),
        ("privileged", "c"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]
    assert all(child.running for child in parent)
    events.clear()
    results: list[Any] = []
    parent.stopService().addCallback(results.append)
    assert events == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert results == [[(True, None), (True, None), (True, None)]]
    assert not parent.running and not any(child.running for child in parent)


def test_multiservice_stop_waits_for_every_child() -> None:
    events: list[tuple[str, str]] = []
    slow_a, slow_c = Deferred(), Deferred()
    parent = service.MultiService()
    Recording("a", events, slow_a).setServiceParent(parent)
    Recording("b", events, "b stopped").setServiceParent(parent)
    Recording("c", events, slow_c).setServiceParent(parent)
    parent.startService()
    results: list[Any] = []
    parent.stopService().addCallback(results.append)
    # Children do not wait for one another: all three were asked at once.
    assert [e for e in events if e[0] == "stop"] == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert results == []
    slow_a.callback("a stopped")
    assert results == []
    slow_c.callback("c stopped")
    assert results == [[(True, "c stopped"), (True, "b stopped"), (True, "a stopped")]]


def test_multiservice_stop_reports_a_failing_child() -> None:
    events: list[tuple[str, str]] = []

    class Broken(Recording):
        def stopService(self) -> Any:
            super().stopService()
            raise RuntimeError("cannot stop")

    parent = service.MultiService()
    Broken("a", events).setServiceParent(parent)
    Recording("b", events).setServiceParent(parent)
    parent.startService()
    results: list[Any] = []
    parent.stopService().addCallback(results.append)
    (ok_b, _), (ok_a, failure) = results[0]
    assert ok_b and not ok_a
    assert isinstance(failure, Failure) and failure.check(RuntimeError)
    failure.cleanFailure()
    assert events[-2:] == [("stop", "b"), ("stop", "a")]


def test_adding_to_a_running_collection_starts_the_child() -> None:
    events: list[tuple[str, str]] = []
    parent = service.MultiService()
    parent.startService()
    late = Recording("late", events, succeed("done"))
    late.setServiceParent(parent)
    assert events == [("privileged", "late"), ("start", "late")]
    # Removing it from a running parent stops it and hands back its Deferred.
    results: list[Any] = []
    late.disownServiceParent().addCallback(results.append)
    assert results == ["done"] and events[-1] == ("stop", "late")


def test_application_components() -> None:
    application = service.Application("web", uid=1000, gid=100)
    root = service.IService(application)
    assert isinstance(root, service.MultiService)
    assert root.name == "web"
    assert service.IServiceCollection(application) is root
    process = service.IProcess(application)
    assert (process.uid, process.gid, process.processName) == (1000, 100, None)
    child = service.Service()
    child.setServiceParent(application)  # adapted to its IServiceCollection
    assert child.parent is root and list(root) == [child]


def test_service_pickles_without_running_state() -> None:
    svc = service.Service()
    svc.setName("p")
    svc.startService()
    copy = pickle.loads(pickle.dumps(svc))
    assert copy.name == "p" and not copy.running


def write_tac(tmp_path: Path, text: str) -> str:
    path = tmp_path / "app.tac"
    path.write_text(text)
    return str(path)


def test_load_application_runs_the_file(tmp_path: Path) -> None:
    path = write_tac(
        tmp_path,
        "from treadle.application import service\n"
        "application = service.Application('x')\n"
        "where = __file__\n"
        "service.IService(application).setName('from ' + where)\n",
    )
    # setName after Application's own: the root has no parent, so it may be renamed.
    application = service.loadApplication(path, "python")
    assert service.IService(application).name == f"from {path}"


def test_load_application_with_twisted_imports(tmp_path: Path) -> None:
    path = write_tac(
        tmp_path,
        "# -*- coding: utf-8 -*-\n"
        "from twisted.application import service, internet\n"
        "from twisted.internet import reactor\n"
        "application = service.Application('café')\n",
    )
    application = service.loadApplication(path, "python")
    # The twisted.* names were treadle's: the object adapts to treadle's interfaces.
    assert service.IService(application).name == "café"


def test_load_application_errors(tmp_path: Path) -> None:
    missing = write_tac(tmp_path, "x = 1\n")
    with pytest.raises(KeyError, match="application"):
        service.loadApplication(missing, "python")
    with pytest.raises(ValueError, match="Python"):
        service.loadApplication(missing, "pickle")
    with pytest.raises(ValueError, match="encrypted"):
        service.loadApplication(missing, "python", passphrase="secret")
    with pytest.raises(FileNotFoundError):
        service.loadApplication(str(tmp_path / "nope.tac"), "python")
    broken = write_tac(tmp_path, "raise ZeroDivisionError('in the tac')\n")
    with pytest.raises(ZeroDivisionError, match="in the tac"):
        service.loadApplication(broken, "python")


def test_service_maker_reads_its_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "maker_module_for_test.py").write_text(
        "from treadle.python import usage\n"
        "from treadle.application import service\n"
        "class Options(usage.Options):\n"
        "    optParameters = [['name', 'n', 'x', 'A name.']]\n"
        "def makeService(options):\n"
        "    s = service.Service()\n"
        "    s.setName(options['name'])\n"
        "    return s\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    maker = service.ServiceMaker("Test", "maker_module_for_test", "A test.", "test")
    assert verifyObject(service.IServiceMaker, maker)
    assert IPlugin.providedBy(maker)
    options = maker.options()
    options.parseOptions(["-n", "given"])
    assert maker.makeService(options).name == "given"
