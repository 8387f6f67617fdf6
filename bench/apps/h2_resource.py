"""The ``h2`` scenario's page for ``treadle web --class h2_resource.Hello --listen ssl:...``.

treadle offers HTTP/2 by ALPN on the listeners ``treadle web`` opens, but not (yet) on a ``Site``
listening through ``serverFromString(reactor, "ssl:...")``, as ``h2_app.py`` does for Twisted: see
bench/README.md.
"""

from __future__ import annotations

from treadle.web.resource import Resource


class Hello(Resource):
    """``Hello, world!`` for every path, as ``h2_app.py``'s."""

    isLeaf = True

    def render_GET(self, request):
        return b"Hello, world!"
