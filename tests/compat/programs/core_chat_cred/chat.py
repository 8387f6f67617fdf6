"""chatserver.py behind Twisted Cred: a LineReceiver that logs in through a Portal.

Checkers: a FilePasswordDB of sha256-hashed passwords (case-insensitive names) and
AllowAnonymousAccess. The realm hands out IChatUser avatars; logout is called when the
connection goes. A bot in the same process (a ClientFactory) logs in and answers.
"""

import hashlib
import sys

from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, protocol, reactor
from twisted.protocols import basic
from zope.interface import Interface, implementer


class IChatUser(Interface):
    def send(line):
        """Say something to this user."""


class IAdmin(Interface):
    pass


class ICustomCredentials(credentials.ICredentials):
    pass


@implementer(ICustomCredentials)
class Custom:
    pass


@implementer(IChatUser)
class ChatUser:
    def __init__(self, name, mind):
        self.name = name
        self.mind = mind

    def send(self, line):
        self.mind.sendLine(line.encode())


@implementer(portal.IRealm)
class ChatRealm:
    def __init__(self):
        self.users = {}
        self.guests = 0

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IChatUser not in interfaces:
            raise NotImplementedError("no such avatar interface")
        if avatarId is checkers.ANONYMOUS:
            self.guests += 1
            name = "guest%d" % self.guests
        else:
            name = avatarId.decode() if isinstance(avatarId, bytes) else avatarId
        user = ChatUser(name, mind)
        self.users[name] = user

        def logout():
            del self.users[name]
            self.broadcast(None, f"* {name} left")

        self.broadcast(user, f"* {name} joined")
        return IChatUser, user, logout

    def broadcast(self, sender, line):
        for name in sorted(self.users):
            user = self.users[name]
            if user is not sender:
                user.send(line)


def hashed(username, password, stored):
    return hashlib.sha256(password).hexdigest().encode()


class Chat(basic.LineReceiver):
    def __init__(self, portal, realm):
        self.portal = portal
        self.realm = realm
        self.avatar = None
        self.logout = None

    def connectionMade(self):
        self.sendLine(b"LOGIN name password, GUEST, or PEEK")

    def connectionLost(self, reason):
        if self.logout is not None:
            self.logout()
            self.logout = None

    def lineReceived(self, line):
        if self.avatar is None:
            return self.handleLogin(line)
        text = line.decode()
        if text == "/who":
            self.sendLine((" ".join(sorted(self.realm.users))).encode())
        elif text == "/quit":
            self.sendLine(b"bye")
            self.transport.loseConnection()
        else:
            self.realm.broadcast(self.avatar, f"<{self.avatar.name}> {text}")

    def handleLogin(self, line):
        words = line.split()
        if words[:1] == [b"LOGIN"] and len(words) == 3:
            d = self.portal.login(credentials.UsernamePassword(words[1], words[2]), self, IChatUser)
        elif words == [b"GUEST"]:
            d = self.portal.login(credentials.Anonymous(), self, IChatUser)
        elif words == [b"ADMIN"]:
            d = self.portal.login(credentials.Anonymous(), self, IAdmin)
        elif words == [b"PEEK"]:
            d = self.portal.login(Custom(), self, IChatUser)
        else:
            self.sendLine(b"?")
            return
        d.addCallbacks(self.loggedIn, self.failed)

    def loggedIn(self, result):
        interface, avatar, logout = result
        self.avatar = avatar
        self.logout = logout
        self.sendLine((f"welcome {avatar.name} ({interface.__name__})").encode())

    def failed(self, failure):
        kind = failure.trap(
            error.UnauthorizedLogin, error.UnhandledCredentials, NotImplementedError
        )
        self.sendLine((f"denied: {kind.__name__}: {failure.getErrorMessage()}").encode())


class ChatFactory(protocol.ServerFactory):
    def __init__(self, portal, realm):
        self.portal = portal
        self.realm = realm

    def buildProtocol(self, addr):
        p = Chat(self.portal, self.realm)
        p.factory = self
        return p


class Bot(basic.LineReceiver):
    heard = ()

    def connectionMade(self):
        self.heard = []
        self.sendLine(b"LOGIN BOB builder")

    def lineReceived(self, line):
        text = line.decode()
        if text.startswith("welcome"):
            print("bot:", text)
            self.factory.ready.callback(None)
        elif text.startswith("<") and "bob," in text:
            speaker = text[1 : text.index(">")]
            said = text.split("bob,", 1)[1].strip()
            self.sendLine((f"hi {speaker}, you said {said!r}; I heard {self.heard}").encode())
        else:
            self.heard.append(text)


class BotFactory(protocol.ClientFactory):
    protocol = Bot

    def __init__(self):
        self.ready = defer.Deferred()


def main(port):
    realm = ChatRealm()
    db = checkers.FilePasswordDB("passwords.txt", caseSensitive=False, hash=hashed)
    p = portal.Portal(realm, [db, checkers.AllowAnonymousAccess()])
    print("interfaces:", sorted(i.__name__ for i in p.listCredentialsInterfaces()))
    bot = BotFactory()
    # The bot comes in by a private port; the public one opens once it is in the room.
    private = reactor.listenTCP(0, ChatFactory(p, realm), interface="127.0.0.1")
    reactor.connectTCP("127.0.0.1", private.getHost().port, bot)
    bot.ready.addCallback(
        lambda _: reactor.listenTCP(port, ChatFactory(p, realm), interface="127.0.0.1")
    )
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
