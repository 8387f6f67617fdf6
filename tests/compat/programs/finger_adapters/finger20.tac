# The Evolution of Finger, finger20.tac ("Do everything properly, and componentize") with
# the finger proxy of fingerproxy.tac, for Python 3 and without the IRC bot: IFingerService
# implementations adapted with twisted.python.components.registerAdapter to IFingerFactory,
# IFingerSetterFactory and resource.IResource, served by internet.TCPServer services, and
# finger22.py's ssl: strports service for the same site.
import os

from zope.interface import Interface, implementer

from twisted.application import internet, service, strports
from twisted.internet import defer, endpoints, protocol, reactor
from twisted.protocols import basic
from twisted.python import components
from twisted.web import resource, server, xmlrpc


class IFingerService(Interface):
    def getUser(user):
        """
        Return a deferred returning L{bytes}.
        """

    def getUsers():
        """
        Return a deferred returning a L{list} of L{bytes}.
        """


class IFingerSetterService(Interface):
    def setUser(user, status):
        """
        Set the user's status to something.
        """


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


class IFingerFactory(Interface):
    def getUser(user):
        """
        Return a deferred returning a string.
        """

    def buildProtocol(addr):
        """
        Return a protocol returning a string.
        """


@implementer(IFingerFactory)
class FingerFactoryFromService(protocol.ServerFactory):
    protocol = FingerProtocol

    def __init__(self, service):
        self.service = service

    def getUser(self, user):
        return self.service.getUser(user)


components.registerAdapter(FingerFactoryFromService, IFingerService, IFingerFactory)


class FingerSetterProtocol(basic.LineReceiver):
    def connectionMade(self):
        self.lines = []

    def lineReceived(self, line):
        self.lines.append(line)

    def connectionLost(self, reason):
        if len(self.lines) == 2:
            self.factory.setUser(*self.lines)


class IFingerSetterFactory(Interface):
    def setUser(user, status):
        """
        Return a deferred returning a string.
        """

    def buildProtocol(addr):
        """
        Return a protocol returning a string.
        """


@implementer(IFingerSetterFactory)
class FingerSetterFactoryFromService(protocol.ServerFactory):
    protocol = FingerSetterProtocol

    def __init__(self, service):
        self.service = service

    def setUser(self, user, status):
        self.service.setUser(user, status)


components.registerAdapter(
    FingerSetterFactoryFromService, IFingerSetterService, IFingerSetterFactory
)


class UserStatusTree(resource.Resource):
    def __init__(self, service):
        resource.Resource.__init__(self)
        self.service = service

        # add a specific child for the path "RPC2"
        self.putChild(b"RPC2", UserStatusXR(self.service))

        # need to do this for resources at the root of the site
        self.putChild(b"", self)

    def _cb_render_GET(self, users, request):
        userOutput = b"".join(
            [b'<li><a href="%s">%s</a></li>' % (user, user) for user in users]
        )
        request.write(
            b"""
            <html><head><title>Users</title></head><body>
            <h1>Users</h1>
            <ul>
            %s
            </ul></body></html>"""
            % userOutput
        )
        request.finish()

    def render_GET(self, request):
        d = self.service.getUsers()
        d.addCallback(self._cb_render_GET, request)

        # signal that the rendering is not complete
        return server.NOT_DONE_YET

    def getChild(self, path, request):
        return UserStatus(user=path, service=self.service)


components.registerAdapter(UserStatusTree, IFingerService, resource.IResource)


class UserStatus(resource.Resource):
    def __init__(self, user, service):
        resource.Resource.__init__(self)
        self.user = user
        self.service = service

    def _cb_render_GET(self, status, request):
        request.write(
            b"""<html><head><title>%s</title></head>
        <body><h1>%s</h1>
        <p>%s</p>
        </body></html>"""
            % (self.user, self.user, status)
        )
        request.finish()

    def render_GET(self, request):
        d = self.service.getUser(self.user)
        d.addCallback(self._cb_render_GET, request)

        # signal that the rendering is not complete
        return server.NOT_DONE_YET


class UserStatusXR(xmlrpc.XMLRPC):
    def __init__(self, service):
        xmlrpc.XMLRPC.__init__(self)
        self.service = service

    def xmlrpc_getUser(self, user):
        d = self.service.getUser(user.encode("ascii"))
        d.addCallback(lambda status: status.decode("ascii"))
        return d

    def xmlrpc_getUsers(self):
        d = self.service.getUsers()
        d.addCallback(lambda users: [user.decode("ascii") for user in users])
        return d


@implementer(IFingerService, IFingerSetterService)
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

    def setUser(self, user, status):
        self.users[user] = status

    def startService(self):
        self._read()
        service.Service.startService(self)

    def stopService(self):
        service.Service.stopService(self)
        self.call.cancel()


# -- fingerproxy.tac: another IFingerService, adapted by the same registered adapter --------


class FingerClient(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(self.factory.user + b"\r\n")
        self.buf = []

    def dataReceived(self, data):
        self.buf.append(data)

    def connectionLost(self, reason):
        self.factory.gotData(b"".join(self.buf))


class FingerClientFactory(protocol.ClientFactory):
    protocol = FingerClient

    def __init__(self, user):
        self.user = user
        self.d = defer.Deferred()

    def clientConnectionFailed(self, _, reason):
        self.d.errback(reason)

    def gotData(self, data):
        self.d.callback(data)


def finger(user, host, port=79):
    f = FingerClientFactory(user)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, host, port)
    # An endpoint does not call the factory's clientConnectionFailed: pass its failure on.
    endpoint.connect(f).addErrback(lambda reason: f.clientConnectionFailed(None, reason))
    return f.d


@implementer(IFingerService)
class ProxyFingerService(service.Service):
    def __init__(self, port):
        self.port = port

    def getUser(self, user):
        try:
            user, host = user.split(b"@", 1)
            host, _, port = host.partition(b":")
            port = int(port or self.port)
        except ValueError:
            user = user.strip()
            host, port = b"127.0.0.1", self.port
        ret = finger(user, host.decode(), port)
        ret.addErrback(lambda _: b"Could not connect to remote host\r\n")
        return ret

    def getUsers(self):
        return defer.succeed([])


finger_port = int(os.environ["PORT_FINGER"])
application = service.Application("finger")
f = FingerService(os.path.join(os.path.dirname(os.path.abspath(__file__)), "users"))
serviceCollection = service.IServiceCollection(application)
f.setServiceParent(serviceCollection)
internet.TCPServer(finger_port, IFingerFactory(f)).setServiceParent(serviceCollection)
internet.TCPServer(
    int(os.environ["PORT_SETTER"]), IFingerSetterFactory(f), interface="127.0.0.1"
).setServiceParent(serviceCollection)
site = server.Site(resource.IResource(f))
internet.TCPServer(int(os.environ["PORT_WEB"]), site).setServiceParent(serviceCollection)
# finger22.py: the same site over TLS too (with the harness's certificate).
strports.service(
    "ssl:port=%s:certKey=server.pem:privateKey=server.key" % os.environ["PORT_TLS"], site
).setServiceParent(serviceCollection)

proxy = ProxyFingerService(finger_port)
proxy.setServiceParent(serviceCollection)
internet.TCPServer(int(os.environ["PORT_PROXY"]), IFingerFactory(proxy)).setServiceParent(
    serviceCollection
)
