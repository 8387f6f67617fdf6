"""A guestbook kept in SQLite through adbapi: queries answer NOT_DONE_YET requests."""

import html
import sys

from twisted.enterprise import adbapi
from twisted.internet import endpoints, reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.util import redirectTo

# One thread, one connection: SQLite writes one at a time anyway.
dbpool = adbapi.ConnectionPool("sqlite3", "guestbook.db", cp_min=1, cp_max=1)
# Handed over before the reactor runs: it waits for the pool to start.
dbpool.runOperation("CREATE TABLE IF NOT EXISTS entries (who TEXT, said TEXT)")


class Book(Resource):
    isLeaf = True

    def render_GET(self, request):
        d = dbpool.runQuery("SELECT who, said FROM entries ORDER BY rowid")
        d.addCallback(self._page, request)
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _page(self, rows, request):
        items = "".join(f"<li>{html.escape(w)}: {html.escape(s)}</li>" for w, s in rows)
        request.write(f"<ul>{items}</ul>".encode())
        request.finish()

    def _failed(self, failure, request):
        request.setResponseCode(500)
        request.write(failure.getErrorMessage().encode())
        request.finish()


def _sign(txn, who, said):
    txn.execute("INSERT INTO entries VALUES (?, ?)", (who, said))
    if said == "undo":
        raise ValueError("rolled back")
    txn.execute("SELECT count(*) FROM entries")
    return txn.fetchone()[0]


class Sign(Resource):
    isLeaf = True

    def render_POST(self, request):
        try:
            who = request.args[b"who"][0].decode()
            said = request.args[b"said"][0].decode()
        except KeyError:
            request.setResponseCode(400)
            return b"who and said, please"
        d = dbpool.runInteraction(_sign, who, said)

        def signed(count):
            request.setHeader(b"x-entries", str(count).encode())
            request.write(redirectTo(b"/", request))
            request.finish()

        def refused(failure):
            request.setResponseCode(409)
            request.write(failure.getErrorMessage().encode())
            request.finish()

        d.addCallbacks(signed, refused)
        return NOT_DONE_YET


def _count(conn):
    cursor = conn.cursor()
    cursor.execute("SELECT count(*) FROM entries")
    return cursor.fetchone()[0]


class Count(Resource):
    isLeaf = True

    def render_GET(self, request):
        d = dbpool.runWithConnection(_count)
        d.addCallback(lambda n: request.write(b"%d entries" % n))
        d.addCallback(lambda _: request.finish())
        return NOT_DONE_YET


root = Resource()
root.putChild(b"", Book())
root.putChild(b"sign", Sign())
root.putChild(b"count", Count())

endpoints.serverFromString(reactor, f"tcp:{sys.argv[1]}:interface=127.0.0.1").listen(Site(root))
reactor.run()
