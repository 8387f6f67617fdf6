"""What twistd needs from a tap module: Options and makeService."""

from twisted.python import usage

from greeterapp.web import makeService


class Options(usage.Options):
    optParameters = [
        ["listen", "l", "tcp:8080", "Where to listen (an endpoint description)."],
        ["extra", "e", None, "One more greeting, as code=word."],
    ]


__all__ = ["Options", "makeService"]
