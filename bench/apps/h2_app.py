"""``Hello, world!`` over TLS for the ``h2`` scenario, from treadle or Twisted (this one file).

    python h2_app.py --impl treadle --port 8443 --cert cert.pem --key key.pem

The site listens on an ``ssl:`` endpoint description (``serverFromString``), as a Twisted
program would; HTTP/2 is chosen by ALPN where the server offers it (Twisted does when ``h2`` is
installed). A plain ``hello`` resource answers every path; nobody logs access.
"""

from __future__ import annotations

import argparse
import os
import sys

HELLO = b"Hello, world!"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("treadle", "twisted"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    if args.impl == "treadle":
        from treadle.internet import reactor
        from treadle.internet.endpoints import serverFromString
        from treadle.web.resource import Resource
        from treadle.web.server import Site
    else:
        from twisted.internet import reactor
        from twisted.internet.endpoints import serverFromString
        from twisted.web.resource import Resource
        from twisted.web.server import Site

    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request):
            return HELLO

    site = Site(Hello())
    site.log = lambda request: None  # Twisted's Site logs each request; treadle's logs nothing
    description = (
        f"ssl:port={args.port}:interface={args.host}:privateKey={args.key}:certKey={args.cert}"
    )
    serverFromString(reactor, description).listen(site)
    print(f"{args.impl} h2 hello on {args.host}:{args.port} pid {os.getpid()}", file=sys.stderr)
    reactor.run()


if __name__ == "__main__":
    main()
