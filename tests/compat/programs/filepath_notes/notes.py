"""Notes kept as files with FilePath: create, read, list, delete, and refuse escapes."""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.python.filepath import FilePath, InsecurePath
from twisted.web import resource, server

store = FilePath("notes-store")
if not store.exists():
    store.makedirs()


class Note(resource.Resource):
    isLeaf = True

    def note(self, request):
        name = b"/".join(request.postpath).decode()
        return store.child(name)  # raises InsecurePath for "..", or names with a slash

    def render_GET(self, request):
        if not request.postpath or request.postpath == [b""]:
            names = sorted(child.basename() for child in store.children())
            sizes = [f"{n} ({store.child(n).getsize()} bytes)" for n in names]
            return ("\n".join(sizes) + "\n").encode()
        try:
            note = self.note(request)
        except InsecurePath:
            request.setResponseCode(400)
            return b"bad name\n"
        if not note.isfile():
            request.setResponseCode(404)
            return b"no such note\n"
        return note.getContent()

    def render_PUT(self, request):
        note = self.note(request)
        existed = note.exists()
        note.setContent(request.content.read())
        request.setResponseCode(200 if existed else 201)
        return b"%s %s\n" % (note.basename().encode(), b"replaced" if existed else b"created")

    def render_DELETE(self, request):
        note = self.note(request)
        if not note.exists():
            request.setResponseCode(404)
            return b""
        note.remove()
        return b"deleted " + note.basename().encode() + b"\n"


class Info(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        here = FilePath(".")
        facts = [
            f"store under cwd: {store.parent() == here}",
            f"store is dir: {store.isdir()}",
            f"sibling: {store.sibling('other').basename()}",
            f"splitext: {store.child('a.txt').splitext()[1]}",
            f"segments: {store.child('x').segmentsFrom(here)}",
            f"preauth child: {store.preauthChild('sub/x.txt').basename()}",
        ]
        return ("\n".join(facts) + "\n").encode()


root = resource.Resource()
root.putChild(b"notes", Note())
root.putChild(b"info", Info())
TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(server.Site(root))
reactor.run()
