"""Resource scripts (.rpy) through a real server: Twisted imports, re-execution, cache()."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import zope.interface
from zope.interface.adapter import AdapterRegistry

import treadle
from treadle.internet import reactor
from treadle.python import components
from treadle.web import script, static, vhost
from treadle.web._registry import Registry
from treadle.web._twisted_compat import TwistedImporter
from treadle.web.script import ResourceScript, ResourceScriptDirectory, ResourceScriptWrapper
from treadle.web.server import NOT_DONE_YET, Site
from treadle.web.test.requesthelper import DummyRequest

pytestmark = pytest.mark.timeout(20)

# A script in the style of the asynchronous-responses page (our own), delay shortened.
PAGE_STYLE = """\
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.internet import reactor

class PatientPage(Resource):
    def _renderLater(self, request):
        request.write("<html><body>Thank you for your patience.</body></html>")
        request.finish()

    def render_GET(self, request):
        reactor.callLater(0.2, self._renderLater, request)
        return NOT_DONE_YET

resource = PatientPage()
"""

# Executions are counted in the registry, which outlives each run of the script.
COUNTING = """\
from twisted.web.resource import Resource
runs = registry.getComponent("runs", 0) + 1
registry.setComponent("runs", runs)

class Count(Resource):
    isLeaf = True
    def render_GET(self, request):
        return ("%s %d" % (VERSION, runs)).encode()

VERSION = "v1"
resource = Count()
"""

CACHING = "cache()\n" + COUNTING


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def bump_mtime(path: Path) -> None:
    # Explicitly later than before: an edit within the file system's timestamp
    # granularity would otherwise keep the old stamp.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def site_for(directory: Path, registry: Registry | None = None, **attrs: object) -> Site:
    root = static.File(str(directory), registry=registry or Registry())
    root.processors = {".rpy": ResourceScript}
    site = Site(root)
    for name, value in attrs.items():
        setattr(site, name, value)
    return site


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


def test_page_style_script_answers_after_its_delay(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    write(tmp_path, "delayed.rpy", PAGE_STYLE)
    base = serve(site_for(tmp_path))
    started = time.monotonic()
    response = get(f"{base}/delayed.rpy")
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 200
    assert response.text == "<html><body>Thank you for your patience.</body></html>"


def test_script_runs_on_every_request_from_one_compiled_code_object(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    path = write(tmp_path, "count.rpy", COUNTING)
    base = serve(site_for(tmp_path))
    assert get(f"{base}/count.rpy").text == "v1 1"
    code = script._code_cache[str(path)][1]
    assert get(f"{base}/count.rpy").text == "v1 2"
    assert get(f"{base}/count.rpy").text == "v1 3"
    # Executed three times, compiled once.
    assert script._code_cache[str(path)][1] is code


def test_edited_script_is_recompiled(tmp_path: Path, serve: Callable[..., str]) -> None:
    path = write(tmp_path, "count.rpy", COUNTING)
    base = serve(site_for(tmp_path))
    assert get(f"{base}/count.rpy").text == "v1 1"
    path.write_text(COUNTING.replace('"v1"', '"v2"'))
    bump_mtime(path)
    assert get(f"{base}/count.rpy").text == "v2 2"


def test_builtins_added_later_reach_scripts(
    tmp_path: Path, serve: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path,
        "greet.rpy",
        """\
        from twisted.web.resource import Resource
        class Greet(Resource):
            isLeaf = True
            def render_GET(self, request):
                try:
                    return greeting()
                except NameError:
                    return b"none"
        resource = Greet()
        """,
    )
    base = serve(site_for(tmp_path))
    assert get(f"{base}/greet.rpy").text == "none"
    import builtins

    monkeypatch.setattr(builtins, "greeting", lambda: b"hello", raising=False)
    assert get(f"{base}/greet.rpy").text == "hello"


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links")
def test_script_swapped_for_a_link_out_of_the_tree_is_refused(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    path = write(root, "count.rpy", COUNTING)
    outside = write(tmp_path, "outside.rpy", COUNTING.replace('"v1"', '"outside"'))
    base = serve(site_for(root))
    assert get(f"{base}/count.rpy").text == "v1 1"
    path.unlink()
    path.symlink_to(outside)
    response = get(f"{base}/count.rpy")
    assert response.status_code == 403
    assert "outside" not in response.text


def test_cache_keeps_the_resource_until_the_file_changes(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    path = write(tmp_path, "cached.rpy", CACHING)
    base = serve(site_for(tmp_path))
    assert get(f"{base}/cached.rpy").text == "v1 1"
    assert get(f"{base}/cached.rpy").text == "v1 1"  # not run past cache() again
    path.write_text(CACHING.replace('"v1"', '"v2"'))
    bump_mtime(path)
    assert get(f"{base}/cached.rpy").text == "v2 2"
    assert get(f"{base}/cached.rpy").text == "v2 2"


def test_raising_script_gives_the_processing_failed_page_without_traceback(
    tmp_path: Path, serve: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "a&b.rpy", "x = 1\nraise ZeroDivisionError('secret detail')\n")
    write(tmp_path, "delayed.rpy", PAGE_STYLE)
    base = serve(site_for(tmp_path))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = get(f"{base}/a%26b.rpy")
    assert response.status_code == 500
    # Twisted's server answers a script's error as any unhandled one, byte for byte.
    assert response.headers["content-type"] == "text/html"
    assert response.content == (
        b"<html><head><title>Processing Failed</title></head>"
        b"<body><b>Processing Failed</b></body></html>"
    )
    assert "Traceback" not in response.text
    assert any("a&b.rpy" in r.getMessage() and r.exc_info for r in caplog.records)
    # The server carries on.
    assert get(f"{base}/delayed.rpy").status_code == 200


def test_raising_script_shows_traceback_when_asked(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    write(tmp_path, "broken.rpy", "x = 1\nraise ZeroDivisionError('<detail>')\n")
    base = serve(site_for(tmp_path, displayTracebacks=True))
    response = get(f"{base}/broken.rpy")
    assert response.status_code == 500
    assert "broken.rpy" in response.text
    assert "Traceback" in response.text
    assert "ZeroDivisionError: &lt;detail&gt;" in response.text
    assert 'broken.rpy", line 2' in response.text
    assert "treadle/script.py" not in response.text  # starts in the script


def test_script_without_resource_gives_500(
    tmp_path: Path, serve: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "empty.rpy", "from twisted.web.resource import Resource\n")
    write(tmp_path, "wrong.rpy", "resource = 42\n")
    base = serve(site_for(tmp_path))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        empty = get(f"{base}/empty.rpy")
        wrong = get(f"{base}/wrong.rpy")
    assert empty.status_code == 500
    assert "<title>500 - Whoops! Internal Error</title>" in empty.text
    assert 'You forgot to assign to the variable "resource" in your script.' in empty.text
    assert wrong.status_code == 500
    assert "Processing Failed" in wrong.text and "42" not in wrong.text
    assert any("empty.rpy" in r.getMessage() for r in caplog.records)


def test_script_calling_exit_does_not_stop_the_server(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    write(tmp_path, "exit.rpy", "import sys\nsys.exit(3)\n")
    write(tmp_path, "delayed.rpy", PAGE_STYLE)
    base = serve(site_for(tmp_path))
    assert get(f"{base}/exit.rpy").status_code == 500
    assert get(f"{base}/delayed.rpy").status_code == 200


TWISTED_IMPORTS = """\
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web import static, server, resource as resource_module, http
from twisted.internet import reactor, defer, task
from twisted.internet.task import deferLater
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.failure import Failure
from twisted.web.static import File
import twisted.web.resource
import twisted.internet.reactor

found = {
    "Resource": Resource, "NOT_DONE_YET": NOT_DONE_YET, "Site": Site, "static": static,
    "server": server, "resource": resource_module, "http": http, "reactor": reactor,
    "defer": defer, "task": task, "deferLater": deferLater, "Deferred": Deferred,
    "inlineCallbacks": inlineCallbacks, "Failure": Failure, "File": File,
    "dotted": twisted.web.resource.Resource, "dotted_reactor": twisted.internet.reactor,
}
registry.setComponent("found", found)

class Later(Resource):
    isLeaf = True
    def render_GET(self, request):
        # A Deferred from deferLater, as Twisted code returns one: the server waits for it.
        return deferLater(reactor, 0.01, lambda: b"later")

resource = Later()
"""


def test_twisted_imports_resolve_to_treadle(tmp_path: Path, serve: Callable[..., str]) -> None:
    from treadle.internet import defer, task
    from treadle.python import failure
    from treadle.web import http, resource, server

    registry = Registry()
    write(tmp_path, "imports.rpy", TWISTED_IMPORTS)
    before = {name for name in sys.modules if name.split(".")[0] == "twisted"}
    base = serve(site_for(tmp_path, registry))
    assert get(f"{base}/imports.rpy").text == "later"
    found = registry.getComponent("found")
    assert found["Resource"] is resource.Resource is found["dotted"]
    assert found["NOT_DONE_YET"] is server.NOT_DONE_YET
    assert found["Site"] is server.Site
    assert found["File"] is static.File is found["static"].File
    assert found["server"].Request is server.Request
    assert found["resource"].NoResource is resource.NoResource
    assert found["http"].OK == http.OK
    assert found["reactor"] is reactor is found["dotted_reactor"]
    assert found["defer"].succeed is defer.succeed
    assert found["task"].LoopingCall is task.LoopingCall
    assert found["deferLater"] is task.deferLater
    assert found["Deferred"] is defer.Deferred
    assert found["inlineCallbacks"] is defer.inlineCallbacks
    assert found["Failure"] is failure.Failure
    # Nothing was registered for the process: other code still sees the real import system.
    assert {name for name in sys.modules if name.split(".")[0] == "twisted"} == before


def test_missing_counterpart_names_the_twisted_module(tmp_path: Path) -> None:
    importer = TwistedImporter()
    message = r"twisted\.spread\.pb .*treadle does not provide it \(there is no treadle\.spread"
    with pytest.raises(ModuleNotFoundError, match=message):
        importer("twisted.spread.pb", None, None, (), 0)
    with pytest.raises(ModuleNotFoundError, match=r"twisted\.web\.demo .*treadle does not"):
        importer("twisted.web", None, None, ("demo",), 0)
    # Through a script: logged, and in the traceback of the error page.
    write(tmp_path, "spread.rpy", "from twisted.spread import pb\n")
    base_page = ResourceScript(str(tmp_path / "spread.rpy"), Registry())
    assert "twisted.spread is not available" in str(getattr(base_page, "details", ""))


def test_the_mapping_is_the_one_word_rule() -> None:
    importer = TwistedImporter()
    top = importer("twisted.web.resource", None, None, None, 0)
    assert top is treadle
    assert top.web.resource.Resource.__module__ == "treadle.web.resource"
    assert importer("twisted.web.vhost", None, None, ("NameVirtualHost",), 0) is vhost
    # Other names go to the real __import__, zope.interface included.
    assert importer("os.path", None, None, ("join",), 0) is os.path
    assert importer("zope.interface", None, None, ("Interface",), 0) is zope.interface


REAL_TWISTED_BESIDE_SCRIPTS = """\
import sys
from pathlib import Path
from treadle.web.script import ResourceScript
from treadle.web.static import Registry
from treadle.web.resource import Resource

script = Path(sys.argv[1])
registry = Registry()
ResourceScript(str(script), registry)
assert registry.getComponent("Resource") is Resource
assert not any(name.split(".")[0] == "twisted" for name in sys.modules), "shadowed"
import twisted.web.resource
assert twisted.web.resource.Resource is not Resource
assert twisted.web.resource.__file__.find("treadle") < 0
ResourceScript(str(script), registry)
assert registry.getComponent("Resource") is Resource
print("ok")
"""


def test_real_twisted_is_not_shadowed(tmp_path: Path) -> None:
    # In a fresh interpreter, so that no other test has imported either side first.
    write(
        tmp_path,
        "who.rpy",
        """\
        from twisted.web.resource import Resource
        registry.setComponent("Resource", Resource)
        resource = Resource()
    """,
    )
    result = subprocess.run(
        [sys.executable, "-c", REAL_TWISTED_BESIDE_SCRIPTS, str(tmp_path / "who.rpy")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_resource_script_wrapper_runs_the_script_per_request(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    path = write(tmp_path, "root.rpy", COUNTING + "resource.isLeaf = True\n")
    base = serve(ResourceScriptWrapper(str(path)))
    assert get(f"{base}/").text == "v1 1"
    assert get(f"{base}/any/path").text == "v1 2"
    # A resource that is not a leaf is asked for its children, as any root is.
    path.write_text(
        PAGE_STYLE + "resource = Resource()\nresource.putChild(b'slow', PatientPage())\n"
    )
    bump_mtime(path)
    assert get(f"{base}/slow").text == "<html><body>Thank you for your patience.</body></html>"
    assert get(f"{base}/other").status_code == 404


def test_resource_script_directory(tmp_path: Path, serve: Callable[..., str]) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "count", COUNTING)
    (tmp_path / "secret").write_text("resource = None\n")
    base = serve(ResourceScriptDirectory(str(tmp_path / "sub")))
    assert get(f"{base}/count").text == "v1 1"
    assert get(f"{base}/missing").status_code == 404
    assert get(f"{base}/..%2Fsecret").status_code == 404
    assert get(f"{base}/").status_code == 404


def test_resource_script_directory_takes_a_bytes_path(tmp_path: Path) -> None:
    # Twisted's tests (and programs) hand it FilePath._asBytesPath() and ask for str names.
    write(
        tmp_path,
        "hello.rpy",
        "from twisted.web.static import Data\nresource = Data(b'hello', 'text/plain')\n",
    )
    directory = ResourceScriptDirectory(os.fsencode(tmp_path))
    assert directory.path == str(tmp_path)
    request: Any = DummyRequest([b""])
    for name in (b"hello.rpy", "hello.rpy"):
        assert directory.getChild(name, request).render(request) == b"hello"  # type: ignore[arg-type]


def test_epy_script_raising_with_a_request_double(tmp_path: Path, caplog: Any) -> None:
    # A request of the program's own making may lack startedWriting; the 500 page still goes.
    path = write(tmp_path, "bad.epy", "raise ValueError('nooo')\n")
    request: Any = DummyRequest([b""])
    with caplog.at_level(logging.CRITICAL, logger="treadle.error"):
        assert script.PythonScript(os.fsencode(path), Registry()).render(request) is NOT_DONE_YET
    assert b"Processing Failed" in b"".join(request.written) and request.finished == 1


def test_reactor_is_the_treadle_reactor() -> None:
    # The table maps twisted.internet.reactor to the object scripts schedule on.
    importer = TwistedImporter()
    internet = importer("twisted.internet", None, None, ("reactor",), 0)
    assert internet.reactor is reactor


def test_each_from_import_loads_the_submodules_it_names() -> None:
    # `from twisted.internet import reactor`, then `from twisted.internet import task` with
    # task not loaded yet: the second statement must import task, not be answered with the
    # package the first one got (which has no task). A stand-in import system loads only
    # what each call names, as the real one loads a submodule only when asked for it.
    package = types.ModuleType("treadle.stand_in")
    asked: list[tuple[str, tuple[str, ...]]] = []

    def real_import(
        name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> types.ModuleType:
        asked.append((name, tuple(fromlist or ())))
        for item in fromlist or ():
            setattr(package, item, f"the {item} submodule")
        return package

    importer = TwistedImporter(real_import)
    assert importer("twisted.stand_in", None, None, ("reactor",), 0).reactor == (
        "the reactor submodule"
    )
    assert importer("twisted.stand_in", None, None, ("task",), 0).task == "the task submodule"
    # Each statement's answer is kept: running both again (a script's next execution) asks
    # the import system nothing more.
    importer("twisted.stand_in", None, None, ("reactor",), 0)
    importer("twisted.stand_in", None, None, ("task",), 0)
    assert asked == [("treadle.stand_in", ("reactor",)), ("treadle.stand_in", ("task",))]
    # A fromlist given as a list (a hand-made call, not a statement) is answered too, uncached.
    assert importer("twisted.stand_in", None, None, ["clock"], 0).clock == "the clock submodule"
    importer("twisted.stand_in", None, None, ["clock"], 0)
    assert asked[2:] == [("treadle.stand_in", ("clock",))] * 2


SESSION_COUNTER = """\
cache()

from zope.interface import Attribute, Interface, implementer
from twisted.python.components import registerAdapter
from twisted.web.resource import Resource
from twisted.web.server import Session


class IVisits(Interface):
    count = Attribute("pages seen in this session")


@implementer(IVisits)
class Visits:
    def __init__(self, session):
        self.count = 0


registerAdapter(Visits, Session, IVisits)


class Page(Resource):
    isLeaf = True

    def render_GET(self, request):
        visits = IVisits(request.getSession())
        visits.count += 1
        return "seen %d" % visits.count


resource = Page()
"""


@pytest.fixture
def fresh_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter registry of the test's own: scripts register theirs globally."""
    monkeypatch.setattr(components, "globalRegistry", AdapterRegistry())


@pytest.mark.usefixtures("fresh_adapters")
def test_session_objects_through_zope_interface_imports(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    write(tmp_path, "visits.rpy", SESSION_COUNTER)
    url = serve(site_for(tmp_path))
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{url}/visits.rpy").text == "seen 1"
        assert client.get(f"{url}/visits.rpy").text == "seen 2"
    assert "zope" not in sys.modules or "treadle" not in repr(sys.modules["zope"])


@pytest.mark.usefixtures("fresh_adapters")
def test_registering_an_adapter_on_every_run_is_reported(
    tmp_path: Path, serve: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    # Without cache() before it, the script registers its adapter again on the second
    # request: Twisted raises ValueError there, and so does treadle, instead of silently
    # keeping the first adapter (and the first request's counter) for ever.
    write(tmp_path, "visits.rpy", SESSION_COUNTER.replace("cache()\n", "", 1))
    url = serve(site_for(tmp_path))
    with httpx.Client(timeout=10) as client, caplog.at_level(logging.ERROR, "treadle.error"):
        assert client.get(f"{url}/visits.rpy").text == "seen 1"
        second = client.get(f"{url}/visits.rpy")
    assert second.status_code == 500
    assert any("already registered" in r.getMessage() + str(r.exc_info) for r in caplog.records)


# -- PythonScript (.epy) ---------------------------------------------------------------------


def epy_site(directory: Path, **attrs: object) -> Site:
    root = static.File(str(directory), registry=Registry())
    root.processors = {".epy": script.PythonScript}
    site = Site(root)
    for name, value in attrs.items():
        setattr(site, name, value)
    return site


def test_epy_script_writes_the_page_with_request_in_its_globals(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    path = write(
        tmp_path,
        "page.epy",
        """
        request.setHeader(b"content-type", b"text/plain")
        registry.setComponent(int, registry.getComponent(int, 0) + 1)
        request.write(b"args=%r " % request.args.get(b"name"))
        request.write("file=" + __file__ + " count=%d" % registry.getComponent(int))
        """,
    )
    base = serve(epy_site(tmp_path))
    for count in (1, 2):
        response = get(f"{base}/page.epy?name=x")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain"
        assert response.headers["x-powered-by"] == f"treadle/{treadle.__version__}"
        assert response.text == f"args=[b'x'] file={path} count={count}"


def test_epy_script_that_finishes_the_request_itself_is_finished_once(tmp_path: Path) -> None:
    path = write(tmp_path, "done.epy", "request.write(b'done')\nrequest.finish()\n")
    request: Any = DummyRequest([b""])
    assert script.PythonScript(str(path), Registry()).render(request) is NOT_DONE_YET
    assert request.written == [b"done"]
    assert request.finished == 1


def test_epy_script_raising_gives_500_with_traceback_only_when_asked(
    tmp_path: Path, serve: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "bad.epy", "raise ValueError('<secret>')\n")
    write(tmp_path, "half.epy", "request.write(b'partial')\nraise ValueError('late')\n")
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        quiet = get(serve(epy_site(tmp_path)) + "/bad.epy")
    assert quiet.status_code == 500
    assert "Processing Failed" in quiet.text and "secret" not in quiet.text
    assert any("bad.epy" in r.getMessage() and r.exc_info for r in caplog.records)
    loud = get(serve(epy_site(tmp_path, displayTracebacks=True)) + "/bad.epy")
    assert loud.status_code == 500
    assert "ValueError: &lt;secret&gt;" in loud.text
    half = get(serve(epy_site(tmp_path)) + "/half.epy")
    assert (half.status_code, half.text) == (200, "partial")


def test_epy_script_that_vanished_is_404(tmp_path: Path) -> None:
    epy = script.PythonScript(str(tmp_path / "gone.epy"), Registry())
    request: Any = DummyRequest([b""])
    assert epy.render(request) is NOT_DONE_YET
    assert request.responseCode == 404
    assert b"File not found." in b"".join(request.written)
    assert request.finished


def test_treadle_web_path_serves_epy_rpy_and_cgi_as_twistd_web_does(tmp_path: Path) -> None:
    from treadle._cli.main import _directory_root
    from treadle._cli.options import parse_command_line
    from treadle.web import twcgi

    root = _directory_root(parse_command_line(["web", "--path", str(tmp_path)]), Registry())
    assert root.processors == {  # type: ignore[attr-defined]
        ".epy": script.PythonScript,
        ".rpy": ResourceScript,
        ".cgi": twcgi.CGIScript,
    }
