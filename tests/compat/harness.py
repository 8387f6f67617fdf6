"""Run one compat program under real Twisted or, ported by the import rule, under treadle.

A program lives in ``programs/<name>/``: its files (a ``.py`` program, a ``.tac`` file or a
``twisted/plugins/`` folder, plus any data it serves) and ``spec.toml``, which says how to
start it and what to send it. :func:`run_program` copies the folder to a fresh directory
(porting its imports for treadle), starts it on free ports, waits until every port accepts
connections, plays the steps with real clients (``http.client``, raw sockets, TLS through
the standard ``ssl`` module), stops it and returns a :class:`Run`: what each step got back,
normalised, ready to compare with the other side's.

``spec.toml``::

    run = "python"          # python: ``python ARGV``; tac: ``twistd -ny FILE`` vs
                            # ``treadle run -y FILE``; plugin: ``twistd -n ARGV`` vs
                            # ``treadle run ARGV``
    argv = ["server.py", "{web}"]   # {NAME} is the port called NAME; {python} the interpreter
    file = "app.tac"        # the .tac file (run = "tac")
    ports = ["web"]         # ports to allocate; also in the environment as PORT_<NAME>,
                            # and the first one as PORT
    wait = ["web"]          # ports to wait for before the steps (default: all)
    exits = false           # the program ends by itself after the steps (else: SIGTERM)
    expect_exit = 0         # ... with this status
    compare_stdout = false  # compare what the program printed (deterministic output only)
    stdout_contains = []    # text both runs must print

    [[step]]                # an HTTP request on a new connection
    http = "GET /path"
    port = "web"            # default: the first port
    tls = false
    headers = {}
    body = ""
    expect = 200            # the status both runs must answer (or a list: any of them)
    expect_body = "..."     # text both bodies must contain
    cookies = true          # send the cookies set so far, and keep those this one sets

    [[step]]                # a raw socket conversation
    raw = [{send = "PING\\r\\n"}, {lines = 1}, {until = "text"}, {eof = true}]
    expect_contains = "..."

Normalised before comparing: ``Date`` and ``Server`` headers are dropped, session cookie
values (``TWISTED_SESSION``, ``TWISTED_SECURE_SESSION``: the names Twisted and treadle both
use) become ``<session-N>`` in order of first appearance, and so do those ids wherever they
appear later; memory addresses in object reprs (`` at 0x...``) are blanked; the header lines
of a raw HTTP response are sorted. Besides these, :data:`DOCUMENTED` lists the differences
that README.md's "Differences from Twisted Web" explains, each ignored for the reason given
there.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import treadle

PROGRAMS = Path(__file__).resolve().parent / "programs"
# The subprocesses import the treadle this test run imports.
SRC = Path(treadle.__file__).resolve().parents[1]

#: How long anything may take before a run is declared stuck. Generous: 2 cores shared by
#: many processes can stall a start-up for seconds; a healthy run never waits this long.
DEADLINE = 15.0

#: ``twistd`` from the interpreter running the tests (``python -m twisted`` is ``twist``,
#: which cannot run .tac files).
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"

# -- the porting rule ----------------------------------------------------------------------

_IMPORT_LINE = re.compile(r"^(\s*(?:from|import)\s+)twisted\b", re.MULTILINE)


def port_source(text: str) -> str:
    """Apply the README's porting rule: ``twisted`` becomes ``treadle`` in import lines only."""
    return _IMPORT_LINE.sub(r"\1treadle", text)


def port_tree(root: Path) -> None:
    """Port every ``.py``, ``.tac`` and ``.rpy`` file under ``root`` in place.

    Folder names stay as they are: a plugin in ``twisted/plugins/`` stays there (treadle
    looks for plugins in ``twisted/plugins/`` and ``treadle/plugins/`` folders).
    """
    for path in root.rglob("*"):
        if path.suffix in {".py", ".tac", ".rpy"} and path.is_file():
            path.write_text(port_source(path.read_text()))


# -- the spec --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What ``spec.toml`` says about one program."""

    name: str
    run: str
    argv: list[str]
    file: str
    ports: list[str]
    wait: list[str]
    exits: bool
    expect_exit: int
    compare_stdout: bool
    stdout_contains: list[str]
    steps: list[dict[str, Any]]

    @classmethod
    def load(cls, name: str) -> Spec:
        data = tomllib.loads((PROGRAMS / name / "spec.toml").read_text())
        ports = list(data.get("ports", ["web"]))
        steps = list(data.get("step", []))
        for step in steps:
            if not {"http", "raw"} & step.keys():
                raise ValueError(f"{name}: a step needs 'http' or 'raw': {step}")
        return cls(
            name=name,
            run=data.get("run", "python"),
            argv=list(data.get("argv", [])),
            file=data.get("file", "app.tac"),
            ports=ports,
            wait=list(data.get("wait", ports)),
            exits=bool(data.get("exits", False)),
            expect_exit=int(data.get("expect_exit", 0)),
            compare_stdout=bool(data.get("compare_stdout", False)),
            stdout_contains=list(data.get("stdout_contains", [])),
            steps=steps,
        )


def program_names() -> list[str]:
    """Every program folder holding a ``spec.toml``, sorted."""
    return sorted(p.parent.name for p in PROGRAMS.glob("*/spec.toml"))


# -- TLS material (one CA for the whole test run) ------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """PEM bytes of a throwaway CA and a server certificate for 127.0.0.1 and localhost."""

    ca: bytes
    cert: bytes
    key: bytes

    @classmethod
    def make(cls) -> Certificates:
        import trustme

        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        chain = b"".join(blob.bytes() for blob in server.cert_chain_pems)
        return cls(ca=ca.cert_pem.bytes(), cert=chain, key=server.private_key_pem.bytes())

    def write(self, folder: Path) -> None:
        """Write ``server.pem``, ``server.key`` (and both in ``server-both.pem``), ``ca.pem``."""
        (folder / "server.pem").write_bytes(self.cert)
        (folder / "server.key").write_bytes(self.key)
        (folder / "server-both.pem").write_bytes(self.key + self.cert)
        (folder / "ca.pem").write_bytes(self.ca)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca.decode("ascii"))


# -- a run -----------------------------------------------------------------------------------


@dataclass
class Run:
    """What one side answered: a record per step, the exit status and the output."""

    side: str
    steps: list[Any] = field(default_factory=list)
    statuses: list[int | None] = field(default_factory=list)
    texts: list[bytes] = field(default_factory=list)
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # why the run could not be played to the end

    def comparable(self) -> dict[str, Any]:
        """The parts both sides must agree on."""
        return {"steps": self.steps, "exit_code": self.exit_code}

    def describe(self) -> str:
        """The run's error and the tail of its output, for failure messages."""
        tail = "\n".join((self.stderr + self.stdout).splitlines()[-25:])
        return f"[{self.side}] error: {self.error}\n--- output (tail) ---\n{tail}"


def command_for(spec: Spec, side: str, ports: dict[str, int]) -> list[str]:
    """The command line that starts ``spec``'s program under ``side`` (twisted or treadle)."""
    argv = [arg.format(python=sys.executable, **ports) for arg in spec.argv]
    if spec.run == "python":
        return [sys.executable, *argv]
    if spec.run == "tac":
        if side == "twisted":
            return [sys.executable, "-c", TWISTD, "-ny", spec.file]
        return [sys.executable, "-m", "treadle", "run", "-y", spec.file]
    if spec.run == "plugin":
        if side == "twisted":
            return [sys.executable, "-c", TWISTD, "-n", *argv]
        return [sys.executable, "-m", "treadle", "run", *argv]
    raise ValueError(f"{spec.name}: unknown run kind {spec.run!r}")


_handed_out: set[int] = set()
_handing_out = threading.Lock()


def free_port() -> int:
    """A port nobody listens on, never handed out before in this process.

    Runs start side by side: without the record, a port one run was given but has not
    bound yet could be given to another.
    """
    with _handing_out:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def child_env(folder: Path, ports: dict[str, int], first: str) -> dict[str, str]:
    env = dict(os.environ)
    # The program's own folder first, so `twisted/plugins/` there and its modules are found.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(folder), str(SRC), env.get("PYTHONPATH")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for name, number in ports.items():
        env[f"PORT_{name.upper()}"] = str(number)
    env["PORT"] = str(ports[first])
    return env


def wait_for_ports(proc: subprocess.Popen[bytes], ports: Iterable[int]) -> None:
    """Return once every port accepts a connection; raise if the process ends first."""
    deadline = time.monotonic() + DEADLINE
    for port in ports:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the program exited ({proc.returncode}) before port {port}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {port} never accepted a connection") from None
                time.sleep(0.02)


def run_program(spec: Spec, side: str, workdir: Path, certs: Certificates) -> Run:
    """Copy, (port,) start, exercise and stop ``spec``'s program under ``side``."""
    folder = workdir / side
    shutil.copytree(PROGRAMS / spec.name, folder, ignore=shutil.ignore_patterns("spec.toml"))
    if side == "treadle":
        port_tree(folder)
    certs.write(folder)
    ports = {name: free_port() for name in spec.ports}
    out_path, err_path = folder / "compat.stdout", folder / "compat.stderr"
    run = Run(side)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            command_for(spec, side, ports),
            cwd=folder,
            env=child_env(folder, ports, spec.ports[0]),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # so that the kill below reaches its children too
        )
        try:
            wait_for_ports(proc, [ports[name] for name in spec.wait])
            play(spec, run, ports, certs)
            run.exit_code = finish(proc, spec.exits)
        except Exception as exc:  # reported, not raised: the other side still runs
            run.error = f"{type(exc).__name__}: {exc}"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(DEADLINE)
    run.stdout = out_path.read_text(errors="replace")
    run.stderr = err_path.read_text(errors="replace")
    return run


def finish(proc: subprocess.Popen[bytes], exits: bool) -> int:
    """Let the program end (or SIGTERM it) and return its exit status."""
    if not exits:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        what = "exit by itself" if exits else "stop on SIGTERM"
        raise RuntimeError(f"the program did not {what} within {DEADLINE} s") from None


def problems(spec: Spec, run: Run) -> list[str]:
    """What is wrong with ``run`` by ``spec``'s expectations (empty when it is right)."""
    if run.error is not None:
        return [run.error]
    wrong = []
    for index, step in enumerate(spec.steps):
        what = f"step {index} ({step.get('http') or 'raw'})"
        expected = step.get("expect")
        allowed = expected if isinstance(expected, list) else [expected]
        if expected is not None and run.statuses[index] not in allowed:
            wrong.append(f"{what}: status {run.statuses[index]}, expected {expected}")
        for key in ("expect_body", "expect_contains"):
            if key in step and step[key].encode() not in run.texts[index]:
                got = run.texts[index][:300]
                wrong.append(f"{what}: {key} {step[key]!r} not in {got!r}")
    if spec.exits and run.exit_code != spec.expect_exit:
        wrong.append(f"exit status {run.exit_code}, expected {spec.expect_exit}")
    wrong.extend(
        f"stdout lacks {text!r}" for text in spec.stdout_contains if text not in run.stdout
    )
    return wrong


# -- clients ---------------------------------------------------------------------------------


class Cookies:
    """A tiny cookie jar: every cookie a response sets goes back with later requests."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def take(self, set_cookies: list[str]) -> None:
        for line in set_cookies:
            name, _, value = line.split(";", 1)[0].partition("=")
            self.values[name.strip()] = value.strip()

    def header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.values.items())


def play(spec: Spec, run: Run, ports: dict[str, int], certs: Certificates) -> None:
    """Play every step of ``spec`` against the running program, recording into ``run``."""
    jar = Cookies()
    for step in spec.steps:
        port = ports[step.get("port", spec.ports[0])]
        context = certs.client_context() if step.get("tls") else None
        if "http" in step:
            status, record, text = http_step(step, port, context, jar)
        else:
            status, record, text = None, raw_step(step, port, context), b""
        run.statuses.append(status)
        run.texts.append(text if "http" in step else record_bytes(record))
        run.steps.append(record)


def http_step(
    step: dict[str, Any], port: int, context: ssl.SSLContext | None, jar: Cookies
) -> tuple[int, dict[str, Any], bytes]:
    method, _, target = step["http"].partition(" ")
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=DEADLINE, context=context)
    headers = dict(step.get("headers", {}))
    if jar.values and step.get("cookies", True):
        headers.setdefault("Cookie", jar.header())
    body = step.get("body")
    try:
        conn.request(method, target or "/", body=body.encode() if body else None, headers=headers)
        response = conn.getresponse()
        content = response.read()
    finally:
        conn.close()
    if step.get("cookies", True):
        jar.take(response.msg.get_all("Set-Cookie") or [])
    record = {
        "request": step["http"],
        "status": response.status,
        "reason": response.reason,
        "headers": sorted((k.lower(), v) for k, v in response.getheaders()),
        "body": content,
    }
    return response.status, record, content


def raw_step(step: dict[str, Any], port: int, context: ssl.SSLContext | None) -> list[Any]:
    """Play a raw conversation; return what was sent and received, in order."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    transcript: list[Any] = []
    buffer = b""
    try:
        for action in step["raw"]:
            if "send" in action:
                data = action["send"].encode("latin-1")
                sock.sendall(data)
                transcript.append(("sent", data))
                continue
            if "lines" in action:
                wanted = action["lines"]
                got, buffer = read_until(sock, buffer, _has_lines(wanted))
                # Keep exactly `wanted` lines; anything after stays for the next action.
                cut = _nth_newline(got, wanted) + 1
                got, buffer = got[:cut], got[cut:] + buffer
            elif "until" in action:
                marker = action["until"].encode("latin-1")
                got, buffer = read_until(sock, buffer, _has(marker))
            elif action.get("eof"):
                got, buffer = read_until(sock, buffer, None)
            else:
                raise ValueError(f"unknown raw action {action}")
            transcript.append(("received", got))
    finally:
        sock.close()
    return transcript


def _has_lines(count: int) -> Callable[[bytes], bool]:
    return lambda data: data.count(b"\n") >= count


def _has(marker: bytes) -> Callable[[bytes], bool]:
    return lambda data: marker in data


def _nth_newline(data: bytes, n: int) -> int:
    index = -1
    for _ in range(n):
        index = data.index(b"\n", index + 1)
    return index


def read_until(
    sock: socket.socket, buffer: bytes, done: Callable[[bytes], bool] | None
) -> tuple[bytes, bytes]:
    """Read until ``done(data)`` (``None``: until EOF); return ``(data, b"")``.

    A timeout or EOF before ``done`` ends the read too, marked in the data, so a run that
    hangs shows up as a difference rather than stalling the suite.
    """
    data = buffer
    while done is None or not done(data):
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data + b"<timeout>", b""
        except ConnectionResetError:
            return data + b"<reset>", b""
        if not chunk:
            return data + (b"<eof>" if done is not None else b""), b""
        data += chunk
    return data, b""


def record_bytes(transcript: list[Any]) -> bytes:
    return b"".join(data for kind, data in transcript if kind == "received")


# -- normalising -----------------------------------------------------------------------------


class SessionIds:
    """Replaces every session id with ``<session-N>``, numbered by first appearance."""

    def __init__(self) -> None:
        self.names: dict[bytes, bytes] = {}

    def learn(self, value: bytes) -> bytes:
        if value not in self.names:
            self.names[value] = b"<session-%d>" % (len(self.names) + 1)
        return self.names[value]

    def scrub(self, data: bytes) -> bytes:
        for value, name in self.names.items():
            data = data.replace(value, name)
        return data


_SESSION_COOKIE = re.compile(rb"\b(TWISTED_(?:SECURE_)?SESSION[A-Za-z0-9_]*)=([^;,\s]+)")
_DROPPED_HEADERS = {"date", "server"}
# Object reprs in error pages carry memory addresses, different in every process.
_ADDRESS = re.compile(rb" at 0x[0-9a-fA-F]+")


def _scrub_set_cookie(value: str, ids: SessionIds) -> str:
    def replace(match: re.Match[bytes]) -> bytes:
        return match.group(1) + b"=" + ids.learn(match.group(2))

    return _SESSION_COOKIE.sub(replace, value.encode("latin-1")).decode("latin-1")


def normalise_http(record: dict[str, Any], ids: SessionIds) -> dict[str, Any]:
    headers = []
    for name, value in record["headers"]:
        if name in _DROPPED_HEADERS:
            continue
        if name == "set-cookie":
            value = _scrub_set_cookie(value, ids)
        headers.append((name, value))
    body = _ADDRESS.sub(b" at 0x...", ids.scrub(record["body"]))
    result = dict(record, headers=headers, body=body)
    for difference in DOCUMENTED:
        result = difference.apply(result)
    return result


_RAW_DROPPED = re.compile(rb"^(?:Date|Server): [^\r\n]*\r\n", re.MULTILINE | re.IGNORECASE)


def _sorted_head(data: bytes) -> bytes:
    """Sort the header lines of an HTTP response head (their order carries no meaning)."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/") or not separator:
        return data
    status, *fields = head.split(b"\r\n")
    fields.sort(key=lambda line: line.lower())
    return b"\r\n".join([status, *fields]) + separator + body


def normalise_raw(transcript: list[Any], ids: SessionIds) -> list[Any]:
    return [
        (kind, ids.scrub(_sorted_head(_RAW_DROPPED.sub(b"", data)))) for kind, data in transcript
    ]


def normalise(run: Run) -> Run:
    """Return a copy of ``run`` with dates, server names and session ids normalised."""
    ids = SessionIds()
    steps = [
        normalise_http(step, ids) if isinstance(step, dict) else normalise_raw(step, ids)
        for step in run.steps
    ]
    exit_code = run.exit_code
    # Documented ("`treadle run`" in README.md): twistd ends by re-raising SIGTERM, so its
    # status is -SIGTERM; treadle run, like treadle web, exits 0 after a clean stop.
    if exit_code == -signal.SIGTERM:
        exit_code = 0
    return replace(run, steps=steps, exit_code=exit_code)


@dataclass(frozen=True)
class Documented:
    """A difference README.md's "Differences from Twisted Web" explains, ignored here.

    Attributes:
        readme: The README entry (its bold title) that gives the reason.
        apply: Maps a normalised HTTP record to one without the difference.
    """

    readme: str
    apply: Callable[[dict[str, Any]], dict[str, Any]]


def _without_headers(*names: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(record: dict[str, Any]) -> dict[str, Any]:
        headers = [(k, v) for k, v in record["headers"] if k not in names]
        return dict(record, headers=headers)

    return apply


_SESSION_EXTRAS = re.compile(r";\s*(?:HttpOnly|SameSite=Lax)\b", re.IGNORECASE)


def _session_cookie_attributes(record: dict[str, Any]) -> dict[str, Any]:
    headers = [
        (k, _SESSION_EXTRAS.sub("", v) if k == "set-cookie" and "<session-" in v else v)
        for k, v in record["headers"]
    ]
    return dict(record, headers=headers)


_CHARSET = re.compile(r";\s*charset=utf-8$", re.IGNORECASE)


def _static_text_charset(record: dict[str, Any]) -> dict[str, Any]:
    headers = [
        (k, _CHARSET.sub("", v) if k == "content-type" and v.startswith("text/") else v)
        for k, v in record["headers"]
    ]
    return dict(record, headers=headers)


def _directory_listing(record: dict[str, Any]) -> dict[str, Any]:
    body = record["body"]
    # Twisted's listing is titled "Directory listing for /x/", treadle's "Index of /x/".
    if b"<title>Directory listing for" not in body and b"<title>Index of" not in body:
        return record
    headers = [(k, v) for k, v in record["headers"] if k != "content-security-policy"]
    return dict(record, headers=headers, body=b"<directory listing>")


def _unsupported_method(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("status") not in (405, 501):
        return record
    headers = [(k, v) for k, v in record["headers"] if k != "allow"]
    return dict(record, status="405 or 501", reason="", headers=headers, body=b"<method page>")


#: The differences README.md documents, with its reasons; everything else must match.
DOCUMENTED: tuple[Documented, ...] = (
    # Twisted sends chunked (or close-delimited) what treadle frames by Content-Length when
    # finish() follows the first write; the body, compared as bytes, is the same.
    Documented(
        "A first `write` waits for the end of the current callback",
        _without_headers("content-length", "transfer-encoding"),
    ),
    Documented("Sessions", _session_cookie_attributes),
    Documented("Static files (ETag)", _without_headers("etag")),
    Documented("Static files (charset of textual types)", _static_text_charset),
    Documented("Static files (directory listings)", _directory_listing),
    Documented("Unsupported methods", _unsupported_method),
)


def first_difference(twisted: Run, treadle: Run, spec: Spec) -> str:
    """One line on how ``treadle`` differs from ``twisted`` ('' when they agree)."""
    wrong = problems(spec, treadle)
    if treadle.error is not None:
        lines = [line for line in treadle.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        return f"{treadle.error} | {last}"[:300]
    left, right = normalise(twisted), normalise(treadle)
    for index, (a, b) in enumerate(zip(left.steps, right.steps, strict=True)):
        if a != b:
            what = spec.steps[index].get("http") or "raw"
            if isinstance(a, dict):
                keys = [k for k in a if a[k] != b.get(k)]
                detail = "; ".join(f"{k}: {a[k]!r} vs {b.get(k)!r}" for k in keys)
            else:
                detail = f"{a!r} vs {b!r}"
            return f"step {index} ({what}): {detail}"[:400]
    if left.exit_code != right.exit_code:
        return f"exit status {left.exit_code} vs {right.exit_code}"
    if spec.compare_stdout and left.stdout != right.stdout:
        return f"stdout {left.stdout!r} vs {right.stdout!r}"[:300]
    return "; ".join(wrong)


def report(names: list[str]) -> None:
    """Run ``names`` on both sides, a few at a time, and print one line per program."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    certs = Certificates.make()
    with tempfile.TemporaryDirectory(prefix="compat-") as tmp, ThreadPoolExecutor(6) as pool:
        root = Path(tmp)
        jobs = {}
        for name in names:
            spec = Spec.load(name)
            for side in ("twisted", "treadle"):
                (root / name).mkdir(exist_ok=True)
                jobs[name, side] = pool.submit(run_program, spec, side, root / name, certs)
        for name in names:
            spec = Spec.load(name)
            twisted, treadle = jobs[name, "twisted"].result(), jobs[name, "treadle"].result()
            if problems(spec, twisted):
                print(f"{name}\tTWISTED FAILS\t{'; '.join(problems(spec, twisted))}")
                continue
            difference = first_difference(twisted, treadle, spec)
            print(f"{name}\t{'differs' if difference else 'passes'}\t{difference}")


def main(argv: list[str]) -> int:
    """``python -m tests.compat.harness [--report] [--side SIDE] [NAME...]``.

    ``--report``: one line per program (passes, or its first difference from Twisted);
    otherwise each run, with what is wrong with it (``COMPAT_VERBOSE=-v``: every answer).
    """
    import pprint
    import tempfile

    if "--report" in argv:
        argv.remove("--report")
        report(argv or program_names())
        return 0
    sides = ["twisted", "treadle"]
    if "--side" in argv:
        at = argv.index("--side")
        sides = [argv[at + 1]]
        del argv[at : at + 2]
    certs = Certificates.make()
    for name in argv or program_names():
        spec = Spec.load(name)
        for side in sides:
            started = time.monotonic()
            with tempfile.TemporaryDirectory(prefix="compat-") as tmp:
                run = run_program(spec, side, Path(tmp), certs)
            took = time.monotonic() - started
            wrong = problems(spec, run)
            verdict = "ok" if not wrong else "WRONG"
            print(f"== {name} [{side}] {verdict} {took:.2f} s exit={run.exit_code}")
            if wrong:
                print("\n".join(wrong))
                print(run.describe())
            elif "-v" in os.environ.get("COMPAT_VERBOSE", ""):
                pprint.pprint(normalise(run).steps, width=100)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
