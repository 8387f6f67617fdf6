"""The HTTP/1.1 channel: bytes in, requests out, answered strictly in order.

:class:`HTTPChannel` is put together from its compiled core and plain-Python mixins:

- :class:`~treadle.web._channel_core.ChannelCore` — the state machine and the per-request
  path (parsing, the queue, answering in order, flow control), which mypyc compiles (see
  :mod:`treadle._compiled`);
- :class:`~treadle.web._twisted_channel.TwistedChannelMixin` — Twisted's entry points and the
  rest of the public surface of Twisted's ``HTTPChannel``;
- :class:`~treadle.web._channel_switch.SwitchingMixin` — Upgrade (``101``) and HTTP/2's
  preface;
- :class:`~treadle.web._channel_timeouts.TimeoutsMixin` — one timer per connection for every
  timeout;
- :class:`~treadle.web._channel_extras.ChannelExtras` — the transport's calls once per
  connection (``connection_lost``...), producers, ``drain``, refusals, ending the connection,
  its addresses and the connection as a Twisted transport.

The class itself is plain Python, so that Twisted programs subclass it, set class and
instance attributes on it and weak-reference it as they do Twisted's; the mixins come
before the core so that their methods are the ones the core's stubs stand for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from treadle.web._channel_common import (
    READ_AHEAD,
    ChannelFactory,
    ChannelRequest,
    SwitchedProtocol,
)
from treadle.web._channel_core import ChannelCore
from treadle.web._channel_extras import ChannelExtras
from treadle.web._channel_switch import SwitchingMixin
from treadle.web._channel_timeouts import TimeoutsMixin
from treadle.web._channel_transport import ChannelTransport
from treadle.web._twisted_channel import TwistedChannelMixin

__all__ = [
    "READ_AHEAD",
    "ChannelFactory",
    "ChannelRequest",
    "ChannelTransport",
    "HTTPChannel",
    "SwitchedProtocol",
]


class HTTPChannel(
    TwistedChannelMixin,
    SwitchingMixin,
    TimeoutsMixin,
    ChannelExtras,
    ChannelCore,
    asyncio.Protocol,
):
    """One HTTP/1.x connection: parses requests and answers them strictly in order.

    Parsing is llhttp's (through httptools) with treadle's checks where llhttp is lenient
    or silent (see :mod:`treadle.web._parser`). Any request the channel refuses is answered
    in its turn (after the responses already due) and the connection then closes: no byte
    after a refused request is ever parsed.

    Two ways in: as an :class:`asyncio.Protocol` (``connection_made``/``data_received``,
    how treadle's listening ports drive it), or as a Twisted protocol (``makeConnection``
    with a Twisted transport, then ``dataReceived``/``connectionLost``), as Twisted's own
    tests and programs wrapping it drive it; the second adapts the transport and then runs
    the same code. That way in, and the rest of Twisted's channel surface (``requests``,
    ``checkPersistence``, ``writeHeaders``, ``timeOut``, ``maxHeaders``..., the channel as
    its transport's push producer, requests of Twisted's interface only), come from
    :class:`~treadle.web._twisted_channel.TwistedChannelMixin`.

    Args:
        factory: What made the channel: its limits, timeouts and access log. None (as
            Twisted's ``HTTPChannel()``): set ``factory`` or ``site`` before the connection
            is made, or a plain :class:`~treadle.web.http.HTTPFactory` is used.

    Attributes:
        factory: As given (``site`` is another name for it, as Twisted's ``Site`` sets it).
        asyncio_transport: The connection's asyncio transport (None before it is made and
            after it is lost).
        requestFactory: Called with the channel to make each request. A subclass may set
            its own as a class attribute (Twisted's low-level pattern); otherwise it is the
            factory's. A :class:`~treadle.web.server.Site`'s always wins, as in Twisted.
        call_soon: Runs a callback once the current one is over: the loop's ``call_soon``,
            a test clock's equivalent, or, with no loop running, a call right after the
            current one (set when the connection is made).
    """

    #: Makes the factory of a channel that was given none by the time its connection is
    #: made. :mod:`treadle.web.http` names its ``HTTPFactory`` here: this module cannot
    #: import it.
    default_factory: ClassVar[Callable[[], ChannelFactory] | None] = None

    factory: ChannelFactory

    @property
    def requestFactory(self) -> Callable[[Any], Any]:
        """Called with the channel to make each request (see the class docstring)."""
        make = self._request_factory
        if make is None:  # made without a factory: makeConnection sets it
            raise AttributeError("requestFactory")
        return make  # type: ignore[no-any-return]

    @requestFactory.setter
    def requestFactory(self, value: Callable[[Any], Any]) -> None:
        self._request_factory = value

    def adopt_request_factory(self, factory: ChannelFactory) -> None:
        """Take the factory's ``requestFactory`` unless this channel's class has its own.

        A :class:`~treadle.web.server.Site` imposes its own anyway, as Twisted's
        ``Site.buildProtocol`` does.
        """
        own = getattr(type(self), "requestFactory", None)
        if isinstance(own, property):  # the class names none of its own
            self._request_factory = factory.requestFactory
        elif getattr(factory, "imposesRequestFactory", False):
            # Over the class's own attribute, as an instance attribute would be.
            vars(self)["requestFactory"] = factory.requestFactory
