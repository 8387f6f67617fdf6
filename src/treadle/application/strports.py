"""Listening services and ports from endpoint descriptions (Twisted's ``strports``).

``twisted.application.strports`` ports to this module: in a ``.tac`` file,
``strports.service("tcp:8080", site).setServiceParent(application)`` serves ``site`` on
port 8080 while the application runs. The descriptions are ``serverFromString``'s (see
:mod:`treadle.internet.endpoints`): ``tcp:``, ``tcp6:``, ``ssl:``, ``unix:``, ``systemd:``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.internet import endpoints
from treadle.python.failure import Failure

if TYPE_CHECKING:
    from treadle.application.internet import StreamServerEndpointService

__all__ = ["listen", "service"]


def service(description: str, factory: Any, reactor: Any = None) -> StreamServerEndpointService:
    """Return a service that listens on ``description`` with ``factory`` while it runs.

    The endpoint is built now (an ``ssl:`` description's files are read now); listening
    starts with the service. As in Twisted, an error while listening (a port in use) is
    raised by ``startService`` (or ``privilegedStartService``) rather than only logged.

    Args:
        description: A server endpoint description, e.g. ``"tcp:8080:interface=127.0.0.1"``.
        factory: The protocol factory, e.g. a :class:`~treadle.web.server.Site`.
        reactor: The reactor to listen with; the global one when None.

    Returns:
        A :class:`~treadle.application.internet.StreamServerEndpointService`.

    Raises:
        ValueError: The description is malformed or its kind unknown.
        OSError: A file an ``ssl:`` description names cannot be read.
    """
    # Imported here: treadle.application.internet and this module are written side by side.
    from treadle.application.internet import StreamServerEndpointService

    if reactor is None:
        from treadle.internet import reactor as global_reactor

        reactor = global_reactor
    svc = StreamServerEndpointService(endpoints.serverFromString(reactor, description), factory)
    svc._raiseSynchronously = True
    return svc


def listen(description: str, factory: Any) -> Any:
    """Listen on ``description`` with ``factory`` now, with the global reactor.

    Args:
        description: A server endpoint description.
        factory: The protocol factory.

    Returns:
        The listening port (``getHost()``, ``stopListening()``).

    Raises:
        ValueError: The description is malformed or its kind unknown.
        CannotListenError: The address cannot be listened on (in use, say).
    """
    from treadle.internet import reactor

    outcome: list[Any] = []
    # treadle's endpoints listen synchronously: the Deferred has fired on return.
    endpoints.serverFromString(reactor, description).listen(factory).addBoth(outcome.append)
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result
