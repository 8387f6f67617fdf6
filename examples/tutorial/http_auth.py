"""HTTP authentication: a resource tree only logged-in users reach.

``HTTPAuthSessionWrapper`` stands in front of a tree. It reads the ``Authorization`` header
with a credential factory (here HTTP Basic), asks a ``Portal`` to log the user in, and
renders what the portal's realm returns for that user: the *avatar*, a resource. Missing or
wrong credentials get ``401 Unauthorized`` with a ``WWW-Authenticate`` challenge, which
makes browsers ask for a name and a password.

The portal has two helpers. A *checker* decides whether the credentials are good and names
the user; this one compares against a dict, in constant time. The *realm* turns that name
into the resource the user sees. Basic authentication sends the password itself: use it
over TLS only (``reactor.listenSSL``).

Run ``python http_auth.py [PORT]`` and open http://localhost:8080/ (user ``alice``,
password ``wonderland``).
"""

import hmac
import html
import sys

from zope.interface import implementer

from treadle.cred.checkers import ICredentialsChecker
from treadle.cred.credentials import IUsernamePassword
from treadle.cred.error import UnauthorizedLogin
from treadle.cred.portal import IRealm, Portal
from treadle.internet import reactor
from treadle.web.guard import BasicCredentialFactory, HTTPAuthSessionWrapper
from treadle.web.resource import IResource, Resource
from treadle.web.server import Site

USERS = {b"alice": b"wonderland", b"bob": b"builder"}


@implementer(ICredentialsChecker)
class PasswordDictChecker:
    """Accepts a user name and password found in a dict."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, passwords):
        self.passwords = passwords

    def requestAvatarId(self, credentials):
        expected = self.passwords.get(credentials.username)
        # compare_digest takes as long for a near miss as for a wild guess.
        if expected is not None and hmac.compare_digest(expected, credentials.password):
            return credentials.username
        raise UnauthorizedLogin("wrong user name or password")


class Welcome(Resource):
    isLeaf = True

    def __init__(self, username):
        super().__init__()
        self.username = username

    def render_GET(self, request):
        name = html.escape(self.username.decode("utf-8", "replace"))
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return f"<!DOCTYPE html><html><body><p>Welcome in, {name}.</p></body></html>".encode()


@implementer(IRealm)
class Realm:
    """Gives each logged-in user a page of their own."""

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IResource in interfaces:
            return IResource, Welcome(avatarId), lambda: None
        raise NotImplementedError("only resources are served here")


def make_site(users=USERS):
    """Return a Site whose every page asks for one of ``users`` (name to password)."""
    portal = Portal(Realm(), [PasswordDictChecker(users)])
    wrapper = HTTPAuthSessionWrapper(portal, [BasicCredentialFactory(b"tutorial")])
    return Site(wrapper)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
