# finger.py module: the tutorial's organized finger (part 11, "configuration of the finger
# service") for Python 3, without the IRC bot and Perspective Broker parts. One change beyond
# that: the users file is re-read by an internet.TimerService instead of reactor.callLater.

from twisted.application import internet, service, strports
from twisted.internet import defer, protocol
from twisted.protocols import basic
from twisted.python import components, log
from twisted.web import resource, server, xmlrpc
from zope.interface import Interface, implementer


class IFingerService(Interface):
    def getUser(user):
        """
        Return a deferred returning a L{bytes}.
        """

    def getUsers():
        """
        Return a deferred returning a L{list} of L{bytes}.
        """


def catchError(err):
    return b"Internal error in server"


class FingerProtocol(basic.LineReceiver):
    def lineReceived(self, user):
        d = self.factory.getUser(user)
        d.addErrback(catchError)

        def writeValue(value):
            self.transport.write(value + b"\n")
            self.transport.loseConnection()

        d.addCallback(writeValue)


class IFingerFactory(Interface):
    def getUser(user):
        """
        Return a deferred returning L{bytes}.
        """

    def buildProtocol(addr):
        """
        Return a protocol returning L{bytes}.
        """


@implementer(IFingerFactory)
class FingerFactoryFromService(protocol.ServerFactory):
    protocol = FingerProtocol

    def __init__(self, service):
        self.service = service

    def getUser(self, user):
        return self.service.getUser(user)


components.registerAdapter(FingerFactoryFromService, IFingerService, IFingerFactory)


class UserStatusTree(resource.Resource):
    template = """<html><head><title>Users</title></head><body>
    <h1>Users</h1>
    <ul>
    %(users)s
    </ul>
    </body>
    </html>"""

    def __init__(self, service):
        resource.Resource.__init__(self)
        self.service = service

    def getChild(self, path, request):
        if path == b"":
            return self
        elif path == b"RPC2":
            return UserStatusXR(self.service)
        else:
            return UserStatus(path, self.service)

    def render_GET(self, request):
        users = self.service.getUsers()

        def cbUsers(users):
            request.write(
                (
                    self.template
                    % {
                        "users": "".join(
                            [
                                # Name should be quoted properly these uses.
                                f'<li><a href="{name}">{name}</a></li>'
                                for name in (u.decode() for u in users)
                            ]
                        )
                    }
                ).encode()
            )
            request.finish()

        users.addCallback(cbUsers)

        def ebUsers(err):
            log.err(err, "UserStatusTree failed")
            request.finish()

        users.addErrback(ebUsers)
        return server.NOT_DONE_YET


components.registerAdapter(UserStatusTree, IFingerService, resource.IResource)


class UserStatus(resource.Resource):
    template = """<html><head><title>%(title)s</title></head>
    <body><h1>%(name)s</h1><p>%(status)s</p></body></html>"""

    def __init__(self, user, service):
        resource.Resource.__init__(self)
        self.user = user
        self.service = service

    def render_GET(self, request):
        status = self.service.getUser(self.user)

        def cbStatus(status):
            name = self.user.decode()
            request.write(
                (self.template % {"title": name, "name": name, "status": status.decode()}).encode()
            )
            request.finish()

        status.addCallback(cbStatus)

        def ebStatus(err):
            log.err(err, "UserStatus failed")
            request.finish()

        status.addErrback(ebStatus)
        return server.NOT_DONE_YET


class UserStatusXR(xmlrpc.XMLRPC):
    def __init__(self, service):
        xmlrpc.XMLRPC.__init__(self)
        self.service = service

    def xmlrpc_getUser(self, user):
        return self.service.getUser(user.encode()).addCallback(bytes.decode)

    def xmlrpc_getUsers(self):
        # As in the tutorial: a dict's keys view, which XML-RPC cannot marshal.
        return self.service.getUsers()


@implementer(IFingerService)
class FingerService(service.Service):
    def __init__(self, filename):
        self.filename = filename
        self.users = {}

    def _read(self):
        users = {}
        with open(self.filename, "rb") as f:
            for line in f:
                user, status = line.split(b":", 1)
                user = user.strip()
                status = status.strip()
                users[user] = status
        self.users = users

    def getUser(self, user):
        return defer.succeed(self.users.get(user, b"No such user"))

    def getUsers(self):
        return defer.succeed(self.users.keys())


# Easy configuration


def makeService(config):
    s = service.MultiService()
    f = FingerService(config["file"])
    f.setServiceParent(s)
    internet.TimerService(30, f._read).setServiceParent(s)

    # finger on port 79
    h = strports.service(config["port"], IFingerFactory(f))
    h.setServiceParent(s)

    # website on port 8000
    r = resource.IResource(f)
    r.templateDirectory = config["templates"]
    site = server.Site(r)
    j = strports.service(config["webport"], site)
    j.setServiceParent(s)

    return s
