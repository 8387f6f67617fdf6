# finger/tap.py
from twisted.python import usage

from finger import finger


class Options(usage.Options):
    optParameters = [
        ["file", "f", "/etc/users"],
        ["templates", "t", "/usr/share/finger/templates"],
        # Not in the tutorial, which listens on 1079 and 8000: where to listen.
        ["port", None, "tcp:1079", "The finger service's endpoint."],
        ["webport", None, "tcp:8000", "The web site's endpoint."],
        ["pbport", "p", 8889],
    ]

    optFlags = [["ssl", "s"]]


def makeService(config):
    return finger.makeService(config)
