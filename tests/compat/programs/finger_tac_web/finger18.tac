# The Evolution of Finger, finger18.tac ("Do everything properly"), for Python 3 and without
# the IRC bot: a FingerService that reads a users file at start and re-reads it every 30 s,
# serving finger (getFingerFactory) and a web tree with an XML-RPC child (getResource) on two
# strports services. cgi.escape is html.escape now; the user names are bytes.
# A third port serves finger17.tac's earlier getResource: a bare Resource whose getChild is
# replaced on the instance, and a bare XMLRPC() given an xmlrpc_getUser attribute.
import html
import os

from twisted.application import service, strports
from twisted.internet import defer, protocol, reactor
from twisted.protocols import basic
from twisted.web import resource, server, static, xmlrpc


def catchError(err):
    return b"Internal error in server"


class FingerProtocol(basic.LineReceiver):
    def lineReceived(self, user):
        d = self.factory.getUser(user)
        d.addErrback(catchError)

        def writeValue(value):
            self.transport.write(value + b"\r\n")
            self.transport.loseConnection()

        d.addCallback(writeValue)


class UserStatusTree(resource.Resource):
    def __init__(self, service):
        resource.Resource.__init__(self)
        self.service = service

    def render_GET(self, request):
        d = self.service.getUsers()

        def formatUsers(users):
            l = [b'<li><a href="%s">%s</a></li>' % (user, user) for user in users]
            return b"<ul>" + b"".join(l) + b"</ul>"

        d.addCallback(formatUsers)
        d.addCallback(request.write)
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET

    def getChild(self, path, request):
        if path == b"":
            return UserStatusTree(self.service)
        else:
            return UserStatus(path, self.service)


class UserStatus(resource.Resource):
    def __init__(self, user, service):
        resource.Resource.__init__(self)
        self.user = user
        self.service = service

    def render_GET(self, request):
        d = self.service.getUser(self.user)
        d.addCallback(lambda m: html.escape(m.decode()).encode())
        d.addCallback(lambda m: b"<h1>%s</h1>" % self.user + b"<p>%s</p>" % m)
        d.addCallback(request.write)
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


class UserStatusXR(xmlrpc.XMLRPC):
    def __init__(self, service):
        xmlrpc.XMLRPC.__init__(self)
        self.service = service

    def xmlrpc_getUser(self, user):
        # As in the tutorial: the name comes as str, the users are keyed by bytes.
        return self.service.getUser(user)

    def xmlrpc_getUserText(self, user):
        d = self.service.getUser(user.encode())
        d.addCallback(bytes.decode)
        return d

    def xmlrpc_getUsers(self):
        return self.service.getUsers()


class FingerService(service.Service):
    def __init__(self, filename):
        self.filename = filename
        self.users = {}

    def _read(self):
        self.users.clear()
        with open(self.filename, "rb") as f:
            for line in f:
                user, status = line.split(b":", 1)
                user = user.strip()
                status = status.strip()
                self.users[user] = status
        self.call = reactor.callLater(30, self._read)

    def getUser(self, user):
        return defer.succeed(self.users.get(user, b"No such user"))

    def getUsers(self):
        return defer.succeed(list(self.users.keys()))

    def getFingerFactory(self):
        f = protocol.ServerFactory()
        f.protocol = FingerProtocol
        f.getUser = self.getUser
        return f

    def getResource(self):
        r = UserStatusTree(self)
        x = UserStatusXR(self)
        r.putChild(b"RPC2", x)
        return r

    def getResource17(self):
        def getData(path, request):
            user = self.users.get(path, b"No such user <p/> usage: site/user")
            path = path.decode("ascii")
            user = user.decode("ascii")
            text = "<h1>{}</h1><p>{}</p>".format(path, user)
            text = text.encode("ascii")
            return static.Data(text, "text/html")

        r = resource.Resource()
        r.getChild = getData
        x = xmlrpc.XMLRPC()
        x.xmlrpc_getUser = self.getUser
        r.putChild(b"RPC2", x)
        return r

    def startService(self):
        self._read()
        service.Service.startService(self)

    def stopService(self):
        service.Service.stopService(self)
        self.call.cancel()


application = service.Application("finger")
f = FingerService(os.path.join(os.path.dirname(os.path.abspath(__file__)), "users"))
serviceCollection = service.IServiceCollection(application)
f.setServiceParent(serviceCollection)
strports.service("tcp:%s" % os.environ["PORT_FINGER"], f.getFingerFactory()).setServiceParent(
    serviceCollection
)
strports.service(
    "tcp:%s:interface=127.0.0.1" % os.environ["PORT_WEB"], server.Site(f.getResource())
).setServiceParent(serviceCollection)
strports.service(
    "tcp:%s:interface=127.0.0.1" % os.environ["PORT_WEB17"], server.Site(f.getResource17())
).setServiceParent(serviceCollection)
