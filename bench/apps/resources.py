"""The benchmark's resources, served by treadle or by Twisted Web from this one file.

Only the imports differ between the two (the porting rule: ``twisted`` becomes ``treadle``), so
both servers run exactly the same resource code::

    python bench/apps/resources.py --impl treadle --scenario hello --port 8080
    python bench/apps/resources.py --impl twisted --scenario async --port 8080
    python bench/apps/resources.py --impl treadle --scenario sessions --port 8080 \
        --sessions redis://127.0.0.1:6379/0 --secret-file /path/to/secret

Scenarios (every one is served at ``/``; the resource is the root and a leaf):

``hello``
    ``render_GET`` returns the 13 bytes ``b"Hello, world!"``.
``async``
    ``render_GET`` returns ``NOT_DONE_YET``; ``reactor.callLater(0, ...)`` writes the same 13 bytes
    and finishes: the cost of one deferred response.
``delayed``
    The "asynchronous responses" example of the Twisted Web documentation, with a 1 s delay:
    ``deferLater(reactor, 1, ...)`` then write and finish.
``post``
    ``render_POST`` echoes the urlencoded form field ``name``: ``request.args[b"name"][0]``.
``sessions``
    A visit counter: ``request.getSession()``, the session attribute ``visits`` incremented, the
    count returned as decimal digits. treadle keeps its sessions where ``--sessions`` says
    (``memory:``, the default, as Twisted does; ``sqlite:/PATH``; ``redis://...``), signed with
    the secret read from ``--secret-file``; Twisted keeps them in memory.
"""

from __future__ import annotations

import argparse
import os
import sys

HELLO = b"Hello, world!"
DELAYED_BODY = b"<html><body>Sorry to keep you waiting.</body></html>"
DELAY = 1.0


def build(impl: str, scenario: str, sessions: str = "memory:", secret: bytes | None = None):
    """Import ``impl``'s API and return ``(reactor, site)`` serving ``scenario``.

    ``sessions`` and ``secret`` choose treadle's session store (``Site(sessionStore=...,
    sessionSecret=...)``); ``memory:`` passes neither, so an earlier treadle runs it too.
    """
    if impl == "treadle":
        try:
            from treadle.internet import reactor
            from treadle.web.resource import Resource
            from treadle.web.server import NOT_DONE_YET, Site
        except ImportError:  # a treadle from before the package layout, as a --baseline
            from treadle.resource import Resource
            from treadle.server import NOT_DONE_YET, Site

            from treadle import reactor
    elif impl == "twisted":
        from twisted.internet import reactor
        from twisted.web.resource import Resource
        from twisted.web.server import NOT_DONE_YET, Site
    else:
        raise SystemExit(f"unknown --impl {impl!r}")
    if scenario == "delayed":  # imported only where used, like the documentation example
        if impl == "treadle":
            try:
                from treadle.internet.task import deferLater
            except ImportError:  # a treadle from before the package layout
                from treadle.task import deferLater
        else:
            from twisted.internet.task import deferLater

    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request):
            return HELLO

    class Async(Resource):
        isLeaf = True

        def _respond(self, request):
            request.write(HELLO)
            request.finish()

        def render_GET(self, request):
            reactor.callLater(0, self._respond, request)
            return NOT_DONE_YET

    class Delayed(Resource):
        isLeaf = True

        def _delayedRender(self, request):
            request.write(DELAYED_BODY)
            request.finish()

        def render_GET(self, request):
            d = deferLater(reactor, DELAY, lambda: request)
            d.addCallback(self._delayedRender)
            return NOT_DONE_YET

    class Echo(Resource):
        isLeaf = True

        def render_POST(self, request):
            return request.args[b"name"][0]

    class Counter(Resource):
        isLeaf = True

        def render_GET(self, request):
            session = request.getSession()
            session.visits = getattr(session, "visits", 0) + 1
            return b"%d" % session.visits

    resources = {
        "hello": Hello,
        "async": Async,
        "delayed": Delayed,
        "post": Echo,
        "sessions": Counter,
    }
    if scenario not in resources:
        raise SystemExit(f"unknown --scenario {scenario!r}; one of {', '.join(resources)}")
    store = {}
    if sessions != "memory:":
        if impl != "treadle":
            raise SystemExit(f"--sessions {sessions}: Twisted keeps its sessions in memory only")
        store = {"sessionStore": sessions, "sessionSecret": secret}
    site = Site(resources[scenario](), **store)
    if impl == "twisted":
        # Access log off: without this, Twisted formats a Combined Log Format line per request and
        # hands it to the logging system. treadle's Site logs nothing unless asked to.
        site.log = lambda request: None
    return reactor, site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["treadle", "twisted"], required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--sessions", default="memory:", help="treadle's session store URL (sessions scenario)"
    )
    parser.add_argument("--secret-file", help="the secret that signs stored sessions")
    args = parser.parse_args()
    secret = None
    if args.secret_file:
        with open(args.secret_file, "rb") as f:
            secret = f.read().strip()
    reactor, site = build(args.impl, args.scenario, args.sessions, secret)
    reactor.listenTCP(args.port, site, backlog=4096, interface=args.host)
    print(
        f"{args.impl} {args.scenario} on {args.host}:{args.port} pid {os.getpid()}", file=sys.stderr
    )
    reactor.run()


if __name__ == "__main__":
    main()
