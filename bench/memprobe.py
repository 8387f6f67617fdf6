"""What one pending ``NOT_DONE_YET`` request costs in memory, and who owns the bytes.

The delayed scenario of ``bench/run.py`` reports ``(peak RSS - idle RSS) / connections``; this
probe breaks that figure down. It serves ``bench/apps/resources.py``'s delayed resource in this
process (its delay raised so that nothing fires during the probe), has a child process open
``-n`` raw-socket connections each sending one GET, waits until every request is pending
(``render_GET`` returned ``NOT_DONE_YET``), collects, and prints per pending request:

- the RSS growth (``VmRSS``), what ``run.py`` measures, less the kernel's socket buffers;
- the tracemalloc growth, in total and by allocation site (file:line of the innermost
  treadle/uvloop/asyncio frame);
- the growth in live objects by type (``gc.get_objects()`` and ``sys.getsizeof``, dicts and
  lists owned by a type counted under their own type), which names the owner.

Usage::

    python bench/memprobe.py -n 2000
    python bench/memprobe.py -n 10000 --no-tracemalloc   # RSS and object counts only
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import subprocess
import sys
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "apps"))

import resources  # noqa: E402  # bench/apps/resources.py

CLIENT = r"""
import socket, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
# wrk's request, as bench/run.py's delayed scenario sends it
req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    socks.append(s)
sys.stdout.write("sent\n"); sys.stdout.flush()
sys.stdin.readline()
"""


WARM = r"""
import socket, sys
for _ in range(20):
    with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
"""


def rss_kib() -> int:
    """This process's resident set, KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def type_census() -> collections.Counter[tuple[str, str]]:
    """Bytes of live gc-tracked objects by (kind, type name)."""
    sizes: collections.Counter[tuple[str, str]] = collections.Counter()
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for obj in gc.get_objects():
        key = ("obj", type(obj).__qualname__)
        sizes[key] += sys.getsizeof(obj)
        counts[key] += 1
    return sizes, counts  # type: ignore[return-value]


#: Types whose instances are shared by every connection: the walk stops there.
SHARED = frozenset(
    ("Site", "Delayed", "module", "code", "Loop", "TimerHeap", "Limits", "method", "Server")
)


def owners(site: object) -> list[str]:
    """One pending request's objects, found from its ``server.Request`` through
    ``gc.get_referents`` (the objects every connection shares left out), one line each."""
    import treadle.web.server as server

    reqs = [o for o in gc.get_objects() if isinstance(o, server.Request)]
    if not reqs:
        return []
    req = reqs[len(reqs) // 2]
    lines: list[str] = []
    seen: set[int] = set()

    def walk(obj: object, path: str, depth: int) -> None:
        for ref in gc.get_referents(obj):
            if id(ref) in seen or isinstance(ref, (type, type(len), type(gc))):
                continue
            if ref is site or type(ref).__name__ in SHARED:
                continue
            if isinstance(ref, dict) and ref is getattr(obj, "__dict__", None):
                pass
            elif isinstance(ref, dict) and len(ref) > 50:
                continue  # a shared table
            if isinstance(ref, (str, bytes)) and sys.getrefcount(ref) > 50:
                continue  # interned / shared
            seen.add(id(ref))
            where = f"{path}>{type(ref).__qualname__}"
            lines.append(f"  {sys.getsizeof(ref):5d} B  {where}  {repr(ref)[:70]}")
            if depth < 4 and not isinstance(ref, (str, bytes)):
                walk(ref, where, depth + 1)

    seen.add(id(req))
    walk(req, "Request", 0)
    chan = req.channel
    for ref in gc.get_referents(chan):
        if type(ref).__name__ in ("method", "builtin_function_or_method"):
            lines.append(f"  {sys.getsizeof(ref):5d} B  HTTPChannel>{ref!r:.90}")
    return lines


def holders(types: str, n: int) -> list[str]:
    """For each type named in ``types``: how many of its live objects each referrer type
    holds, where that is at least half the pending requests (so, about one per request).

    One pass over every tracked object's referents (``gc.get_referrers`` per object would
    walk the whole heap once per object: quadratic, minutes at ``-n 2000``).
    """
    wanted = set(types.split(","))
    held: dict[int, set[str]] = {}
    kinds: dict[int, str] = {}
    for obj in gc.get_objects():
        holder = type(obj).__qualname__
        for ref in gc.get_referents(obj):
            name = type(ref).__name__
            if name in wanted and ref is not obj:
                key = id(ref)
                kinds[key] = name
                held.setdefault(key, set()).add(holder)
    by: collections.Counter[tuple[str, str]] = collections.Counter()
    for key, names in held.items():
        by[(kinds[key], ",".join(sorted(names)))] += 1
    return [
        f"  {count / n:5.2f}  {name} held by {holder}"
        for (name, holder), count in by.most_common()
        if count >= n // 2
    ]


def heap_bytes() -> tuple[int, int]:
    """Bytes in use in pymalloc's blocks and in the C allocator (glibc's ``mallinfo2``).

    RSS alone misleads for a few hundred requests: the idle process's arenas hold free
    pools that absorb them, so the growth in RSS is well below what they use.
    """
    import ctypes
    import tempfile

    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    small = 0
    for line in text.splitlines():
        if line.startswith("# bytes in allocated blocks"):
            small = int(line.split("=")[1].replace(",", ""))

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in [
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            ]
        ]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        large = info.uordblks + info.hblkhd
    except (OSError, AttributeError):
        large = 0
    return small, large


def site_key(trace: tracemalloc.Trace | tracemalloc.Statistic) -> str:
    """The innermost frame of interest of an allocation's traceback."""
    frames = list(trace.traceback)[::-1]
    for frame in frames:  # most recent first
        name = frame.filename
        if "treadle" in name or "resources.py" in name:
            return f"{name.split('site-packages/')[-1].split('src/')[-1]}:{frame.lineno}"
    f = frames[0]
    return f"{f.filename.split('/')[-1]}:{f.lineno}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="pending requests (default 2000)")
    ap.add_argument("--no-tracemalloc", action="store_true", help="RSS and object census only")
    ap.add_argument("--top", type=int, default=25, help="rows of each table")
    ap.add_argument(
        "--who",
        default="list,tuple,method,builtin_function_or_method,KeyedRef,dict,Context",
        help="types whose holders (the types referring to them) are counted",
    )
    ap.add_argument("--freeze", action="store_true", help="gc.freeze() at start-up, as the CLI")
    opts = ap.parse_args()

    resources.DELAY = 3600.0  # nothing fires while we look
    reactor, site = resources.build("treadle", "delayed")
    pending = [0]
    delayed_cls = type(site.resource)
    original = delayed_cls.render_GET

    def counting(self, request):  # type: ignore[no-untyped-def]
        pending[0] += 1
        return original(self, request)

    delayed_cls.render_GET = counting
    port = reactor.listenTCP(0, site, backlog=4096, interface="127.0.0.1")
    portno = port.getHost().port
    result: dict[str, object] = {}

    def probe() -> None:
        # Warm the paths (imports, caches, the Date header) with a few requests answered at
        # once, made by a child process (a blocking client here would stall the reactor).
        resources.DELAY = 0.0
        warm = subprocess.Popen([sys.executable, "-c", WARM, str(portno)])
        wait_warm(warm)

    def wait_warm(warm: subprocess.Popen) -> None:  # type: ignore[type-arg]
        if warm.poll() is None:
            reactor.callLater(0.05, wait_warm, warm)
            return
        resources.DELAY = 3600.0
        pending[0] = 0
        gc.collect()
        if opts.freeze:
            gc.freeze()
        sizes0, counts0 = type_census()
        rss0 = rss_kib()
        result["heap0"] = heap_bytes()
        if not opts.no_tracemalloc:
            tracemalloc.start(8)
        snap0 = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(opts.n), str(portno)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        result["client"] = client
        result.update(sizes0=sizes0, counts0=counts0, rss0=rss0, snap0=snap0)
        wait()

    def wait() -> None:
        if pending[0] < opts.n:
            reactor.callLater(0.05, wait)
            return
        # Every request is pending: the deadline was for that; the census takes its time.
        timeout.cancel()
        gc.collect()
        snap1 = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
        tracemalloc.stop()
        result["rss1"] = rss_kib()
        result["heap1"] = heap_bytes()
        result["sizes1"], result["counts1"] = type_census()
        result["snap1"] = snap1
        result["owners"] = owners(site)
        result["holders"] = holders(opts.who, opts.n)
        reactor.stop()

    reactor.callWhenRunning(probe)
    # Only waiting for the requests to become pending is bounded (120 s): the census after
    # it walks the heap and takes as long as -n makes it.
    timeout = reactor.callLater(120, reactor.stop)
    reactor.run()
    client = result["client"]
    assert isinstance(client, subprocess.Popen)
    if "rss1" not in result:
        client.kill()
        raise SystemExit(f"only {pending[0]} of {opts.n} requests became pending")
    report(opts, result)
    client.stdin.close()  # type: ignore[union-attr]
    client.wait()


def report(opts: argparse.Namespace, r: dict) -> None:  # type: ignore[type-arg]
    n = opts.n
    print(f"{n} pending requests (treadle compiled: {__import__('treadle').compiled})")
    print(f"RSS growth: {(r['rss1'] - r['rss0']) * 1024 / n:8.0f} B per pending request")
    (small0, large0), (small1, large1) = r["heap0"], r["heap1"]
    print(
        f"heap growth: {(small1 - small0 + large1 - large0) / n:8.0f} B per pending request "
        f"(pymalloc {(small1 - small0) / n:.0f} B, C allocator {(large1 - large0) / n:.0f} B)"
    )
    if r["snap0"] is not None:
        stats = r["snap1"].compare_to(r["snap0"], "traceback")
        total = sum(s.size_diff for s in stats)
        print(f"tracemalloc growth: {total / n:8.0f} B per pending request")
        by_site: collections.Counter[str] = collections.Counter()
        for s in stats:
            by_site[site_key(s)] += s.size_diff
        print("\nby allocation site (B per pending request):")
        for key, size in by_site.most_common(opts.top):
            if size / n >= 4:
                print(f"  {size / n:7.0f}  {key}")
    print("\nper pending request, objects by the types referring to them:")
    print("\n".join(r["holders"]))
    print("\none pending request's objects (shallow sizes):")
    print("\n".join(r["owners"]))
    sizes0, sizes1 = r["sizes0"], r["sizes1"]
    counts0, counts1 = r["counts0"], r["counts1"]
    diff = collections.Counter()
    for key in set(sizes1) | set(sizes0):
        diff[key] = sizes1[key] - sizes0[key]
    print("\ngc-tracked objects by type (B and count per pending request; getsizeof, shallow):")
    for key, size in diff.most_common(opts.top):
        if size / n >= 4:
            count = (counts1[key] - counts0[key]) / n
            print(f"  {size / n:7.0f}  {count:5.2f}  {key[1]}")


if __name__ == "__main__":
    main()
