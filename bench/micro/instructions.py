"""Instructions per request on the hot path, counted by callgrind (deterministic, no sockets).

Feeds ``-n`` requests of one kind to a channel over a discarding transport (as
``test_hotpath.py`` does), after a warm-up. Run it twice under callgrind and divide the
difference by the difference in requests::

    for n in 1000 6000; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
            python bench/micro/instructions.py --kind hello -n $n
    done
    # instructions per request: (total(6000) - total(1000)) / 5000, "totals" in callgrind_annotate

``--kind``: ``hello`` (wrk's request), ``browser`` (a 7-field browser request with a query),
``headers`` (the browser request to a resource that reads three of its fields), ``static``
(wrk's request for a 1 KiB file served by ``static.File``, as ``treadle web --path`` does),
``pipelined`` (16 of wrk's requests in one read: divide by 16 for one request), ``rpy``
(wrk's request for the benchmark's ``.rpy`` script, which runs again for every request),
``rpy-class-once`` (the same script with its class imported from a module instead of defined
in it: the difference from ``rpy`` is what the class statement costs each execution).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_hotpath import BROWSER_GET, WRK_GET, Hello, channel_for

from treadle.web import script
from treadle.web.resource import Resource
from treadle.web.server import Request
from treadle.web.static import File


class ReadsHeaders(Resource):
    """Reads three request fields, as a typical page does (host, user agent, a cookie)."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.getHeader(b"user-agent")
        request.getHeader(b"accept-language")
        request.getCookie(b"a")
        return b"Hello, world!"


def static_root() -> Resource:
    """A directory holding the benchmark's 1 KiB file, served as ``treadle web --path``."""
    root = tempfile.mkdtemp(prefix="treadle-instructions-")
    with open(os.path.join(root, "1k.bin"), "wb") as f:
        f.write(b"x" * 1024)
    return File(root)


def rpy_root(class_once: bool = False) -> Resource:
    """A directory holding the benchmark's ``.rpy`` script, served as ``treadle web --path``.

    With ``class_once``, the script's class lives in a module the script imports, so each
    execution makes an instance but no class.
    """
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from run import RPY_FILE, RPY_SOURCE

    root = tempfile.mkdtemp(prefix="treadle-instructions-")
    source = RPY_SOURCE
    if class_once:
        body, assignment = RPY_SOURCE.rsplit("\n\n\n", 1)
        with open(os.path.join(root, "rpy_class_once.py"), "w") as f:
            # An ordinary module imports through the real import system: treadle by name.
            f.write(body.replace("from twisted.", "from treadle.") + "\n")
        sys.path.insert(0, root)
        source = f"from rpy_class_once import Hello\n\n\n{assignment}"
    with open(os.path.join(root, RPY_FILE), "w") as f:
        f.write(source)
    files = File(root)
    files.processors = {".rpy": script.ResourceScript}
    return files


KINDS = {
    "hello": (Hello, WRK_GET),
    "browser": (Hello, BROWSER_GET),
    "headers": (ReadsHeaders, BROWSER_GET),
    "static": (static_root, WRK_GET.replace(b"GET / ", b"GET /1k.bin ")),
    "pipelined": (Hello, WRK_GET * 16),
    "rpy": (rpy_root, WRK_GET.replace(b"GET / ", b"GET /hello.rpy ")),
    "rpy-class-once": (
        lambda: rpy_root(class_once=True),
        WRK_GET.replace(b"GET / ", b"GET /hello.rpy "),
    ),
}


def main() -> None:
    """Feed the requests."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=sorted(KINDS), default="hello")
    ap.add_argument("-n", type=int, default=1000)
    opts = ap.parse_args()
    resource, data = KINDS[opts.kind]
    channel = channel_for(resource())
    for _ in range(500):  # warm-up: caches, specialisation
        channel.data_received(data)
    for _ in range(opts.n):
        channel.data_received(data)


if __name__ == "__main__":
    main()
