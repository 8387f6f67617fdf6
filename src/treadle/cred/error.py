"""The errors of logging in (Twisted's ``twisted.cred.error``).

A :class:`~treadle.cred.portal.Portal` login fails with one of these: :class:`UnauthorizedLogin`
when a checker finds the credentials wrong, :class:`UnhandledCredentials` when no checker
takes their kind, :class:`LoginDenied` when the realm refuses valid ones. All of them are
:class:`LoginFailed`, so one ``except LoginFailed`` (or ``failure.check(LoginFailed)``)
catches every refusal.
"""

from __future__ import annotations

__all__ = [
    "LoginDenied",
    "LoginFailed",
    "Unauthorized",
    "UnauthorizedLogin",
    "UnhandledCredentials",
]


class Unauthorized(Exception):
    """The client may not have what it asked for."""


class LoginFailed(Exception):
    """A login attempt failed, for whatever reason (the base of the login errors)."""


class UnauthorizedLogin(LoginFailed, Unauthorized):
    """The credentials were checked and found wrong (unknown user, bad password)."""


class UnhandledCredentials(LoginFailed):
    """No checker of the portal takes credentials of this kind.

    A configuration error rather than a client's: the portal lacks a checker for something a
    protocol in front of it can send (for HTTP, usually anonymous credentials, sent when the
    request has no ``Authorization`` header).
    """


class LoginDenied(LoginFailed):
    """The realm refused an avatar for credentials the checker accepted.

    Raised by realms, for reasons of their own: a disabled account, a quota used up, a
    server too busy.
    """
