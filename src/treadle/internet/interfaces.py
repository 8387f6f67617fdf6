# mypy: disable-error-code="misc, no-untyped-def, empty-body"
# (zope interfaces declare methods without self and derive from an untyped base.)
"""The interfaces of ``twisted.internet.interfaces``, as zope Interfaces.

``from twisted.internet.interfaces import IPushProducer`` ports to this module unchanged:
classes declare ``@implementer(...)``, and ``IPushProducer.providedBy(x)`` answers as in
Twisted for treadle's transports, ports, protocols and factories. Every interface Twisted
declares here is declared, with the same bases, so ``verifyObject`` checks a program's own
implementations the same way (``tests/test_interfaces.py`` compares the two modules).

The module holds declarations only. It stays one module, long as it is, because an
interface's identity (``__identifier__``, its ``repr``) names the module that declares it.
Some interfaces describe parts of Twisted that treadle does not implement (UDP, multicast,
file-descriptor readers, Win32 events, the DNS ``IResolver``); they are here so that code
naming them imports, and so a program can still implement them itself.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface

__all__ = [
    "IAcceptableCiphers",
    "IAddress",
    "ICipher",
    "IConnector",
    "IConsumer",
    "IDelayedCall",
    "IFileDescriptor",
    "IFileDescriptorReceiver",
    "IHalfCloseableDescriptor",
    "IHalfCloseableProtocol",
    "IHandshakeListener",
    "IHostResolution",
    "IHostnameResolver",
    "IListeningPort",
    "ILoggingContext",
    "IMulticastTransport",
    "INegotiated",
    "IOpenSSLClientConnectionCreator",
    "IOpenSSLContextFactory",
    "IOpenSSLServerConnectionCreator",
    "IProcessProtocol",
    "IProcessTransport",
    "IProducer",
    "IProtocol",
    "IProtocolFactory",
    "IProtocolNegotiationFactory",
    "IPullProducer",
    "IPushProducer",
    "IReactorCore",
    "IReactorDaemonize",
    "IReactorFDSet",
    "IReactorFromThreads",
    "IReactorInThreads",
    "IReactorMulticast",
    "IReactorPluggableNameResolver",
    "IReactorPluggableResolver",
    "IReactorProcess",
    "IReactorSSL",
    "IReactorSocket",
    "IReactorTCP",
    "IReactorTCP2",
    "IReactorThreads",
    "IReactorTime",
    "IReactorUDP",
    "IReactorUNIX",
    "IReactorUNIXDatagram",
    "IReactorWin32Events",
    "IReadDescriptor",
    "IReadWriteDescriptor",
    "IResolutionReceiver",
    "IResolver",
    "IResolverSimple",
    "ISSLTransport",
    "IServiceCollection",
    "IStreamClientEndpoint",
    "IStreamClientEndpointStringParserWithReactor",
    "IStreamServerEndpoint",
    "IStreamServerEndpointStringParser",
    "ISystemHandle",
    "ITCPTransport",
    "ITLSTransport",
    "ITransport",
    "IUDPTransport",
    "IUNIXDatagramConnectedTransport",
    "IUNIXDatagramTransport",
    "IUNIXTransport",
    "IWriteDescriptor",
]


# -- addresses and logging --------------------------------------------------------------------


class IAddress(Interface):
    """A network address: :class:`~treadle.internet.address.IPv4Address`, ``IPv6Address``,
    ``UNIXAddress``. A marker; addresses compare equal by value."""


class ILoggingContext(Interface):
    """Something that names itself in log lines."""

    def logPrefix() -> str:
        """Return the prefix of this object's log lines (usually its class name)."""


# -- the reactor ------------------------------------------------------------------------------


class IConnector(Interface):
    """An outgoing connection attempt, as ``connectTCP``/``connectSSL``/``connectUNIX`` return.

    The factory's ``startedConnecting``, ``clientConnectionFailed`` and
    ``clientConnectionLost`` receive it, and may call :meth:`connect` on it to try again.
    """

    def stopConnecting() -> None:
        """Abandon the attempt in progress.

        Raises:
            NotConnectingError: No attempt is in progress.
        """

    def disconnect() -> None:
        """Close the connection if it is up, or abandon the attempt if it is not."""

    def connect() -> None:
        """Try to connect again (after a failure or a lost connection)."""

    def getDestination() -> Any:
        """Return the :class:`IAddress` being connected to."""


class IResolverSimple(Interface):
    """Turns a host name into one IPv4 address."""

    def getHostByName(name: str, timeout: Any = ()) -> Any:
        """Look ``name`` up.

        Args:
            name: The host name.
            timeout: Seconds to wait for each attempt, in turn.

        Returns:
            A Deferred firing with the dotted-quad address, or failing with
            :class:`~treadle.internet.error.DNSLookupError`.
        """


class IHostResolution(Interface):
    """A name lookup in progress (handed to :meth:`IResolutionReceiver.resolutionBegan`)."""

    name = Attribute("The host name being looked up (str).")

    def cancel() -> None:
        """Stop the lookup: no more addresses will be delivered."""


class IResolutionReceiver(Interface):
    """Receives the results of :meth:`IHostnameResolver.resolveHostName`, one by one."""

    def resolutionBegan(resolutionInProgress: Any) -> None:
        """The lookup started; ``resolutionInProgress`` is its :class:`IHostResolution`."""

    def addressResolved(address: Any) -> None:
        """One address was found (an :class:`IAddress` carrying the requested port)."""

    def resolutionComplete() -> None:
        """No more addresses will follow (possibly none came at all)."""


class IHostnameResolver(Interface):
    """Resolves a host name to all its addresses, IPv4 and IPv6."""

    def resolveHostName(
        resolutionReceiver: Any,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> Any:
        """Look ``hostName`` up and report to ``resolutionReceiver``.

        Args:
            resolutionReceiver: An :class:`IResolutionReceiver`.
            hostName: The name (or an address literal).
            portNumber: The port to put in each address delivered.
            addressTypes: The address classes wanted (IPv4Address, IPv6Address); all when None.
            transportSemantics: ``"TCP"`` or ``"UDP"``.

        Returns:
            The :class:`IHostResolution`, also given to ``resolutionBegan``.
        """


class IResolver(IResolverSimple):
    """A full DNS resolver: each ``lookup*`` method queries one record type.

    Each returns a Deferred firing with ``(answers, authority, additional)``, three lists of
    resource records. treadle has no DNS client; the interface is declared for programs
    that provide their own.
    """

    def query(query: Any, timeout: Any) -> Any:
        """Send an arbitrary query (a ``Query`` object)."""

    def lookupAddress(name: bytes, timeout: Any) -> Any:
        """Look up A records."""

    def lookupAddress6(name: bytes, timeout: Any) -> Any:
        """Look up A6 records."""

    def lookupIPV6Address(name: bytes, timeout: Any) -> Any:
        """Look up AAAA records."""

    def lookupMailExchange(name: bytes, timeout: Any) -> Any:
        """Look up MX records."""

    def lookupNameservers(name: bytes, timeout: Any) -> Any:
        """Look up NS records."""

    def lookupCanonicalName(name: bytes, timeout: Any) -> Any:
        """Look up CNAME records."""

    def lookupMailBox(name: bytes, timeout: Any) -> Any:
        """Look up MB records."""

    def lookupMailGroup(name: bytes, timeout: Any) -> Any:
        """Look up MG records."""

    def lookupMailRename(name: bytes, timeout: Any) -> Any:
        """Look up MR records."""

    def lookupPointer(name: bytes, timeout: Any) -> Any:
        """Look up PTR records."""

    def lookupAuthority(name: bytes, timeout: Any) -> Any:
        """Look up SOA records."""

    def lookupNull(name: bytes, timeout: Any) -> Any:
        """Look up NULL records."""

    def lookupWellKnownServices(name: bytes, timeout: Any) -> Any:
        """Look up WKS records."""

    def lookupHostInfo(name: bytes, timeout: Any) -> Any:
        """Look up HINFO records."""

    def lookupMailboxInfo(name: bytes, timeout: Any) -> Any:
        """Look up MINFO records."""

    def lookupText(name: bytes, timeout: Any) -> Any:
        """Look up TXT records."""

    def lookupResponsibility(name: bytes, timeout: Any) -> Any:
        """Look up RP records."""

    def lookupAFSDatabase(name: bytes, timeout: Any) -> Any:
        """Look up AFSDB records."""

    def lookupService(name: bytes, timeout: Any) -> Any:
        """Look up SRV records."""

    def lookupAllRecords(name: bytes, timeout: Any) -> Any:
        """Look up records of every type (ALL_RECORDS)."""

    def lookupSenderPolicy(name: bytes, timeout: Any) -> Any:
        """Look up SPF records."""

    def lookupNamingAuthorityPointer(name: bytes, timeout: Any) -> Any:
        """Look up NAPTR records."""

    def lookupZone(name: bytes, timeout: Any) -> Any:
        """Transfer a whole zone (AXFR)."""


class IReactorTCP(Interface):
    """A reactor that listens on and connects to TCP ports."""

    def listenTCP(port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        """Accept TCP connections on ``port``, each served by ``factory.buildProtocol(addr)``.

        Args:
            port: The port number; 0 lets the system pick one (see ``getHost()``).
            factory: An :class:`IProtocolFactory`.
            backlog: Length of the kernel's queue of connections not yet accepted.
            interface: The address to bind; all IPv4 interfaces when empty, IPv6 for an
                IPv6 literal.

        Returns:
            An :class:`IListeningPort`.

        Raises:
            CannotListenError: The address cannot be bound.
        """

    def connectTCP(
        host: str, port: int, factory: Any, timeout: float = 30.0, bindAddress: Any = None
    ) -> Any:
        """Connect to ``host:port``; ``factory`` (a ClientFactory) hears how it goes.

        Args:
            host: A host name or address literal.
            port: The port number.
            factory: A :class:`~treadle.internet.protocol.ClientFactory`.
            timeout: Seconds before the attempt fails.
            bindAddress: A ``(host, port)`` to connect from, or None.

        Returns:
            An :class:`IConnector`.
        """


class IReactorTCP2(IReactorTCP):
    """:class:`IReactorTCP` whose ``listenTCP`` takes ``interface=None`` as "the default"."""

    def listenTCP(port: int, factory: Any, backlog: int = 50, interface: Any = None) -> Any:
        """As :meth:`IReactorTCP.listenTCP`; ``interface=None`` binds the default."""

    def connectTCP(
        host: str, port: int, factory: Any, timeout: float = 30.0, bindAddress: Any = None
    ) -> Any:
        """As :meth:`IReactorTCP.connectTCP`."""


class IReactorSSL(Interface):
    """A reactor that listens and connects over TLS."""

    def connectSSL(
        host: str, port: int, factory: Any, contextFactory: Any, timeout: float, bindAddress: Any
    ) -> Any:
        """Connect to ``host:port`` over TLS, configured by ``contextFactory``.

        Returns:
            An :class:`IConnector`.
        """

    def listenSSL(
        port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        """Accept TLS connections on ``port`` (arguments as :meth:`IReactorTCP.listenTCP`).

        Returns:
            An :class:`IListeningPort`.
        """


class IReactorUNIX(Interface):
    """A reactor that listens on and connects to UNIX-domain stream sockets."""

    def connectUNIX(address: str, factory: Any, timeout: float = 30, checkPID: bool = False) -> Any:
        """Connect to the socket at path ``address``.

        Args:
            address: The socket's path.
            factory: A ClientFactory.
            timeout: Seconds before the attempt fails.
            checkPID: Refuse to connect when the server's lock file names a dead process.

        Returns:
            An :class:`IConnector`.
        """

    def listenUNIX(
        address: str, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: bool = False
    ) -> Any:
        """Accept connections on a socket created at path ``address``.

        Args:
            address: The socket's path.
            factory: An :class:`IProtocolFactory`.
            backlog: Length of the accept queue.
            mode: Permissions of the socket file.
            wantPID: Write a lock file holding this process's id next to the socket.

        Returns:
            An :class:`IListeningPort`.
        """


class IReactorUNIXDatagram(Interface):
    """A reactor with UNIX-domain datagram sockets (not provided by treadle)."""

    def connectUNIXDatagram(
        address: str, protocol: Any, maxPacketSize: int, mode: int, bindAddress: Any
    ) -> Any:
        """Connect a datagram protocol to the socket at ``address``."""

    def listenUNIXDatagram(address: str, protocol: Any, maxPacketSize: int, mode: int) -> Any:
        """Receive datagrams on a socket created at ``address``."""


class IReactorWin32Events(Interface):
    """A reactor that waits on Win32 event objects (Windows only; not provided by treadle)."""

    def addEvent(event: Any, fd: Any, action: str) -> None:
        """Call ``getattr(fd, action)()`` each time ``event`` is signalled."""

    def removeEvent(event: Any) -> None:
        """Stop waiting on ``event``."""


class IReactorUDP(Interface):
    """A reactor with UDP sockets (not provided by treadle)."""

    def listenUDP(port: int, protocol: Any, interface: str, maxPacketSize: int) -> Any:
        """Receive datagrams on ``port`` with a ``DatagramProtocol``; returns its port."""


class IReactorMulticast(Interface):
    """A reactor with multicast UDP sockets (not provided by treadle)."""

    def listenMulticast(
        port: int,
        protocol: Any,
        interface: str = "",
        maxPacketSize: int = 8192,
        listenMultiple: bool = False,
    ) -> Any:
        """Receive multicast datagrams on ``port`` (``listenMultiple``: share the port)."""


class IReactorSocket(Interface):
    """A reactor that takes over sockets created elsewhere (e.g. by systemd)."""

    def adoptStreamPort(fileDescriptor: int, addressFamily: Any, factory: Any) -> Any:
        """Serve connections on an already listening stream socket.

        The reactor works on a duplicate of ``fileDescriptor``; the caller may close its own.

        Args:
            fileDescriptor: A bound, listening, non-blocking socket.
            addressFamily: Its family, e.g. ``socket.AF_INET6``.
            factory: An :class:`IProtocolFactory`.

        Returns:
            An :class:`IListeningPort`.

        Raises:
            UnsupportedAddressFamily: The family is not supported.
        """

    def adoptStreamConnection(fileDescriptor: int, addressFamily: Any, factory: Any) -> None:
        """Serve one already connected stream socket with ``factory.buildProtocol``.

        The factory's ``startFactory``/``stopFactory`` are not called: there is no natural
        moment for them. The caller may close its descriptor once this returns.
        """

    def adoptDatagramPort(
        fileDescriptor: int, addressFamily: Any, protocol: Any, maxPacketSize: int
    ) -> Any:
        """Receive datagrams on an already bound datagram socket; returns its port."""


class IReactorProcess(Interface):
    """A reactor that runs child processes."""

    def spawnProcess(
        processProtocol: Any,
        executable: Any,
        args: Any,
        env: Any = None,
        path: Any = None,
        uid: Any = None,
        gid: Any = None,
        usePTY: bool = False,
        childFDs: Any = None,
    ) -> Any:
        """Start ``executable`` with ``args`` and connect ``processProtocol`` to it.

        Args:
            processProtocol: An :class:`IProcessProtocol`.
            executable: The program; a bare name is looked up on ``PATH``.
            args: The full argument list, program name first.
            env: The child's environment (the reactor's default, ``{}``, is an empty one);
                None passes the parent's.
            path: The working directory; the parent's when None.
            uid: User id to run as (POSIX, needs privilege).
            gid: Group id to run as.
            usePTY: Run on a pseudo-terminal.
            childFDs: Maps the child's descriptors to ``"r"``, ``"w"`` or a parent
                descriptor; stdin/stdout/stderr pipes when None.

        Returns:
            An :class:`IProcessTransport`.
        """


class IReactorTime(Interface):
    """Time and timed calls: what ``callLater`` users (and :class:`~treadle.internet.task.Clock`)
    provide."""

    def seconds() -> float:
        """Return the current time in seconds, as the reactor measures it."""

    def callLater(delay: float, callable: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``callable(*args, **kwargs)`` in ``delay`` seconds.

        Returns:
            An :class:`IDelayedCall`, to cancel, reset or delay it.
        """

    def getDelayedCalls() -> Any:
        """Return the pending :class:`IDelayedCall` objects."""


class IDelayedCall(Interface):
    """A call scheduled by ``callLater``."""

    def getTime() -> float:
        """Return when the call will run, in the reactor's seconds."""

    def cancel() -> None:
        """Unschedule the call.

        Raises:
            AlreadyCancelled: It was cancelled before.
            AlreadyCalled: It has run.
        """

    def delay(secondsLater: float) -> None:
        """Push the call ``secondsLater`` seconds further out (raises as :meth:`cancel`)."""

    def reset(secondsFromNow: float) -> None:
        """Reschedule the call ``secondsFromNow`` seconds from now (raises as :meth:`cancel`)."""

    def active() -> bool:
        """Return True while the call is neither run nor cancelled."""


class IReactorFromThreads(Interface):
    """The one reactor method other threads may call."""

    def callFromThread(callable: Any, *args: Any, **kwargs: Any) -> None:
        """Run ``callable(*args, **kwargs)`` in the reactor's thread, soon, in call order."""


class IReactorInThreads(Interface):
    """A reactor that runs work in a thread pool."""

    def callInThread(callable: Any, *args: Any, **kwargs: Any) -> None:
        """Run ``callable(*args, **kwargs)`` in a pool thread."""


class IReactorThreads(IReactorFromThreads, IReactorInThreads):
    """A reactor with a thread pool that other threads can hand work back to."""

    def getThreadPool() -> Any:
        """Return the reactor's thread pool (created on first use)."""

    def suggestThreadPoolSize(size: int) -> None:
        """Ask for at most ``size`` pool threads."""


class IReactorCore(Interface):
    """Running, stopping, and the startup/shutdown events."""

    running = Attribute(
        "True from during startup until during shutdown: while run() is in progress."
    )

    def resolve(name: str, timeout: Any = (1, 3, 11, 45)) -> Any:
        """Return a Deferred firing with an IPv4 address of ``name``."""

    def run() -> None:
        """Fire the startup event, run until :meth:`stop`, then fire the shutdown event."""

    def stop() -> None:
        """End :meth:`run` after the shutdown event's triggers have run.

        Raises:
            ReactorNotRunning: The reactor is not running.
        """

    def crash() -> None:
        """End :meth:`run` at once, without the shutdown triggers (for tests)."""

    def iterate(delay: float) -> None:
        """Run one round of the event loop, waiting at most ``delay`` seconds for events."""

    def fireSystemEvent(eventType: str) -> None:
        """Run the ``before``, ``during`` and ``after`` triggers of ``eventType``."""

    def addSystemEventTrigger(
        phase: str, eventType: str, callable: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """Call ``callable`` at a phase of an event.

        Args:
            phase: ``"before"``, ``"during"`` or ``"after"``.
            eventType: ``"startup"``, ``"shutdown"`` or a program's own event name.
            callable: Called with ``*args, **kwargs``; a Deferred returned by a ``before``
                trigger holds the event back until it fires.
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Returns:
            An id for :meth:`removeSystemEventTrigger`.
        """

    def removeSystemEventTrigger(triggerID: Any) -> None:
        """Remove a trigger added by :meth:`addSystemEventTrigger`.

        Raises:
            ValueError: The id is unknown or already removed.
        """

    def callWhenRunning(callable: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``callable`` once the reactor runs (at once if it already does).

        Returns:
            A trigger id when the call was deferred, else None.
        """


class IReactorPluggableResolver(Interface):
    """A reactor whose :class:`IResolverSimple` can be replaced (deprecated by Twisted in
    favour of :class:`IReactorPluggableNameResolver`)."""

    def installResolver(resolver: Any) -> Any:
        """Use ``resolver`` from now on; return the one it replaces."""


class IReactorPluggableNameResolver(Interface):
    """A reactor whose :class:`IHostnameResolver` can be replaced."""

    nameResolver = Attribute("The IHostnameResolver in use (read-only).")

    def installNameResolver(resolver: Any) -> Any:
        """Use ``resolver`` from now on; return the one it replaces."""


class IReactorDaemonize(Interface):
    """A reactor that must prepare for the process turning into a daemon (``fork``)."""

    def beforeDaemonize() -> None:
        """Called just before the process daemonizes."""

    def afterDaemonize() -> None:
        """Called in the daemon just after it daemonized."""


class IReactorFDSet(Interface):
    """A reactor that watches raw file descriptors for reading and writing."""

    def addReader(reader: Any) -> None:
        """Call ``reader.doRead()`` whenever its descriptor is readable."""

    def addWriter(writer: Any) -> None:
        """Call ``writer.doWrite()`` whenever its descriptor is writable."""

    def removeReader(reader: Any) -> None:
        """Stop watching ``reader`` (nothing happens if it was not watched)."""

    def removeWriter(writer: Any) -> None:
        """Stop watching ``writer`` (nothing happens if it was not watched)."""

    def removeAll() -> Any:
        """Stop watching everything; return the readers and writers removed."""

    def getReaders() -> Any:
        """Return the readers being watched."""

    def getWriters() -> Any:
        """Return the writers being watched."""


class IListeningPort(Interface):
    """A listening socket: what ``listenTCP``, ``listenSSL``, ``listenUNIX`` and server
    endpoints return."""

    def startListening() -> None:
        """Start listening (already done by ``listenTCP``; for ports made by hand).

        Raises:
            CannotListenError: The address cannot be bound.
        """

    def stopListening() -> Any:
        """Stop accepting connections; those already accepted carry on.

        Returns:
            None, or a Deferred that fires once the socket is closed.
        """

    def getHost() -> Any:
        """Return the :class:`IAddress` listened on (with the real port when 0 was asked)."""


# -- file descriptors -------------------------------------------------------------------------


class IFileDescriptor(ILoggingContext):
    """Something that wraps an operating-system file descriptor."""

    def fileno() -> int:
        """Return the descriptor (-1 once it is closed)."""

    def connectionLost(reason: Any) -> None:
        """The descriptor is no longer in use; ``reason`` is a Failure."""


class IReadDescriptor(IFileDescriptor):
    """A descriptor the reactor reads from."""

    def doRead() -> Any:
        """Read what is available; return a Failure or exception to close the descriptor."""


class IWriteDescriptor(IFileDescriptor):
    """A descriptor the reactor writes to."""

    def doWrite() -> Any:
        """Write what is buffered; return a Failure or exception to close the descriptor."""


class IReadWriteDescriptor(IReadDescriptor, IWriteDescriptor):
    """A descriptor both read from and written to."""


class IHalfCloseableDescriptor(Interface):
    """A descriptor whose two directions close separately."""

    def writeConnectionLost(reason: Any) -> None:
        """The writing direction closed."""

    def readConnectionLost(reason: Any) -> None:
        """The reading direction closed."""


class ISystemHandle(Interface):
    """Something wrapping a platform object (a socket, a process handle)."""

    def getHandle() -> Any:
        """Return the platform object, e.g. the ``socket.socket`` of a TCP transport."""


# -- protocols and factories ------------------------------------------------------------------


class IProtocol(Interface):
    """A stream protocol: receives a connection's bytes and its end."""

    def dataReceived(data: bytes) -> None:
        """Bytes arrived from the peer.

        They may be any part of what was sent: TCP has no message boundaries, so a
        protocol buffers until it has a whole unit.
        """

    def connectionLost(reason: Any) -> None:
        """The connection ended; ``reason`` is a Failure (``ConnectionDone`` if clean)."""

    def makeConnection(transport: Any) -> None:
        """Attach the transport, then call :meth:`connectionMade`."""

    def connectionMade() -> None:
        """The connection is up and ``self.transport`` can be written to."""


class IProcessProtocol(Interface):
    """Receives a child process's output and exit."""

    def makeConnection(process: Any) -> None:
        """The process started; ``process`` is its :class:`IProcessTransport`."""

    def childDataReceived(childFD: int, data: bytes) -> None:
        """Output arrived from the child on ``childFD``."""

    def childConnectionLost(childFD: int) -> None:
        """The child's ``childFD`` closed."""

    def processExited(reason: Any) -> None:
        """The child exited (``ProcessDone`` or ``ProcessTerminated``); pipes may be open."""

    def processEnded(reason: Any) -> None:
        """The child exited and every pipe to it is closed."""


class IHalfCloseableProtocol(Interface):
    """A protocol told when each direction of its connection closes.

    A transport that sees such a protocol keeps the connection open after the peer stops
    sending, so the protocol can still answer.
    """

    def readConnectionLost() -> None:
        """The peer will send nothing more (it shut down its writing side)."""

    def writeConnectionLost() -> None:
        """This side's writing direction closed (after ``loseWriteConnection``)."""


class IHandshakeListener(Interface):
    """A protocol told when a TLS handshake on its connection has completed."""

    def handshakeCompleted() -> None:
        """The handshake is done: certificates and the negotiated protocol are known."""


class IFileDescriptorReceiver(Interface):
    """A protocol that receives file descriptors passed over a UNIX socket."""

    def fileDescriptorReceived(descriptor: int) -> None:
        """A descriptor arrived; the protocol now owns (and must close) it."""


class IProtocolFactory(Interface):
    """Builds protocols for connections."""

    def buildProtocol(addr: Any) -> Any:
        """Return a protocol for a connection with ``addr``, or None to refuse it.

        Args:
            addr: The peer's :class:`IAddress`.
        """

    def doStart() -> None:
        """Called before the factory's first port or connection."""

    def doStop() -> None:
        """Called after its last port or connection."""


class IProtocolNegotiationFactory(Interface):
    """A factory that names the protocols it speaks, for TLS ALPN negotiation."""

    def acceptableProtocols() -> Any:
        """Return the protocol names (bytes, e.g. ``b"h2"``), most preferred first."""


# -- producers and consumers ------------------------------------------------------------------


class IProducer(Interface):
    """Produces data for a consumer."""

    def stopProducing() -> None:
        """Stop for good: the consumer goes away; nothing more may be written."""


class IPushProducer(IProducer):
    """Produces on its own until paused (a streaming producer)."""

    def pauseProducing() -> None:
        """Stop writing until :meth:`resumeProducing` (the consumer's buffers are full)."""

    def resumeProducing() -> None:
        """Writing may go on."""


class IPullProducer(IProducer):
    """Produces one piece each time it is asked (a non-streaming producer)."""

    def resumeProducing() -> None:
        """Write one piece to the consumer."""


class IConsumer(Interface):
    """Takes data written to it, paced through its producer."""

    def registerProducer(producer: Any, streaming: bool) -> None:
        """Attach a producer.

        Args:
            producer: An :class:`IPushProducer` (``streaming`` True), paused and resumed as
                the consumer's buffer fills and drains, or an :class:`IPullProducer`
                (``streaming`` False), asked for each piece.
            streaming: Which kind ``producer`` is.

        Raises:
            RuntimeError: A producer is already registered.
        """

    def unregisterProducer() -> None:
        """Detach the producer."""

    def write(data: bytes) -> None:
        """Take ``data``; never blocks (the consumer buffers and pauses the producer)."""


# -- transports -------------------------------------------------------------------------------


class ITransport(Interface):
    """A connection's writing end and addresses: what a protocol's ``transport`` offers."""

    def write(data: bytes) -> None:
        """Send ``data`` (buffered; never blocks).

        Raises:
            TypeError: ``data`` is not bytes.
        """

    def writeSequence(data: Any) -> None:
        """Send the concatenation of an iterable of bytes."""

    def loseConnection() -> None:
        """Close once what is buffered has been sent.

        ``disconnecting`` becomes true at once; ``connectionLost`` follows once the socket
        has closed. Calling it again does nothing.
        """

    def getPeer() -> Any:
        """Return the peer's :class:`IAddress`."""

    def getHost() -> Any:
        """Return this side's :class:`IAddress`."""


class ITCPTransport(ITransport):
    """A TCP connection."""

    def loseWriteConnection() -> None:
        """Send what is buffered, then shut the writing direction down (half-close)."""

    def abortConnection() -> None:
        """Close at once, dropping what is buffered; ``connectionLost`` gets
        ``ConnectionAborted``."""

    def getTcpNoDelay() -> bool:
        """Return whether Nagle's algorithm is off (``TCP_NODELAY``)."""

    def setTcpNoDelay(enabled: bool) -> None:
        """Turn ``TCP_NODELAY`` on or off."""

    def getTcpKeepAlive() -> bool:
        """Return whether ``SO_KEEPALIVE`` is on."""

    def setTcpKeepAlive(enabled: bool) -> None:
        """Turn ``SO_KEEPALIVE`` on or off."""

    def getHost() -> Any:
        """Return this side's IPv4Address or IPv6Address."""

    def getPeer() -> Any:
        """Return the peer's IPv4Address or IPv6Address."""


class IUNIXTransport(ITransport):
    """A UNIX-domain stream connection."""

    def sendFileDescriptor(descriptor: int) -> None:
        """Pass ``descriptor`` to the peer with the next bytes written (at least one must
        follow)."""


class ITLSTransport(ITCPTransport):
    """A TCP connection that can switch to TLS."""

    def startTLS(contextFactory: Any) -> None:
        """Start TLS on the connection once what is already written has been sent.

        Args:
            contextFactory: TLS settings (an ``ssl.SSLContext`` or an object with
                ``getContext()``, such as ``CertificateOptions``).
        """


class ISSLTransport(ITCPTransport):
    """A TLS connection."""

    def getPeerCertificate() -> Any:
        """Return the peer's certificate, or None if it sent none."""


class INegotiated(ISSLTransport):
    """A TLS connection that negotiated an application protocol (ALPN)."""

    negotiatedProtocol = Attribute(
        "The protocol chosen (bytes), or None if none was negotiated; None also before "
        "the handshake completes."
    )


class ICipher(Interface):
    """A TLS cipher."""

    fullName = Attribute("The cipher's full OpenSSL name (str).")


class IAcceptableCiphers(Interface):
    """Chooses which of the available ciphers to allow."""

    def selectCiphers(availableCiphers: Any) -> Any:
        """Return the :class:`ICipher` objects to use, in order of preference."""


class IProcessTransport(ITransport):
    """The transport of a child process (what ``spawnProcess`` returns)."""

    pid = Attribute(
        "The child's process id: set before makeConnection and until the process has "
        "ended, None afterwards."
    )

    def closeStdin() -> None:
        """Close the child's standard input (after what was written is sent)."""

    def closeStdout() -> None:
        """Close the pipe of the child's standard output."""

    def closeStderr() -> None:
        """Close the pipe of the child's standard error."""

    def closeChildFD(descriptor: int) -> None:
        """Close the pipe connected to the child's ``descriptor``."""

    def writeToChild(childFD: int, data: bytes) -> None:
        """Write ``data`` to the child's ``childFD``.

        Raises:
            KeyError: ``childFD`` is not a descriptor the child reads from.
        """

    def loseConnection() -> None:
        """Close every pipe to the child."""

    def signalProcess(signalID: Any) -> None:
        """Send a signal: ``"KILL"``, ``"TERM"``, ``"INT"`` or a number.

        Raises:
            ProcessExitedAlready: The child has already exited.
        """


class IUDPTransport(Interface):
    """A UDP port (treadle has none; declared for programs' own implementations)."""

    def write(packet: bytes, addr: Any) -> None:
        """Send ``packet`` to ``addr`` (a ``(host, port)``), or to the connected peer."""

    def connect(host: str, port: int) -> None:
        """Send to and receive from ``host:port`` only."""

    def getHost() -> Any:
        """Return the address bound to."""

    def stopListening() -> Any:
        """Close the port; may return a Deferred."""

    def setBroadcastAllowed(enabled: bool) -> None:
        """Allow or forbid sending to broadcast addresses."""

    def getBroadcastAllowed() -> bool:
        """Return whether broadcast is allowed."""


class IUNIXDatagramTransport(Interface):
    """A UNIX-domain datagram socket."""

    def write(packet: bytes, addr: str) -> None:
        """Send ``packet`` to the socket at ``addr``."""

    def getHost() -> Any:
        """Return the address bound to."""


class IUNIXDatagramConnectedTransport(Interface):
    """A UNIX-domain datagram socket connected to one peer."""

    def write(packet: bytes) -> None:
        """Send ``packet`` to the peer."""

    def getHost() -> Any:
        """Return the address bound to."""

    def getPeer() -> Any:
        """Return the peer's address."""


class IMulticastTransport(IUDPTransport):
    """A multicast UDP port."""

    def getOutgoingInterface() -> str:
        """Return the interface multicast packets are sent from."""

    def setOutgoingInterface(addr: str) -> Any:
        """Send multicast packets from interface ``addr``."""

    def getLoopbackMode() -> bool:
        """Return whether packets sent are received by this host too."""

    def setLoopbackMode(mode: bool) -> None:
        """Set whether packets sent are received by this host too."""

    def getTTL() -> int:
        """Return the time-to-live of packets sent."""

    def setTTL(ttl: int) -> None:
        """Set the time-to-live of packets sent."""

    def joinGroup(addr: str, interface: str = "") -> Any:
        """Join multicast group ``addr``; returns a Deferred."""

    def leaveGroup(addr: str, interface: str = "") -> Any:
        """Leave multicast group ``addr``; returns a Deferred."""


# -- endpoints --------------------------------------------------------------------------------


class IStreamClientEndpoint(Interface):
    """Where to connect, and how: ``endpoint.connect(factory)``."""

    def connect(protocolFactory: Any) -> Any:
        """Connect a protocol built by ``protocolFactory``.

        Returns:
            A Deferred firing with the connected protocol, or failing with a
            ``ConnectError``; cancelling it abandons the attempt.
        """


class IStreamServerEndpoint(Interface):
    """Where to listen, and how: ``endpoint.listen(factory)``."""

    def listen(protocolFactory: Any) -> Any:
        """Listen, serving each connection with ``protocolFactory``.

        Returns:
            A Deferred firing with an :class:`IListeningPort`, or failing with
            ``CannotListenError``.
        """


class IStreamServerEndpointStringParser(Interface):
    """A plugin adding a prefix to ``serverFromString`` descriptions."""

    prefix = Attribute('The description prefix handled, e.g. "tcp" (str).')

    def parseStreamServer(reactor: Any, *args: Any, **kwargs: Any) -> Any:
        """Return an :class:`IStreamServerEndpoint` for the description's arguments
        (positional fields in ``args``, ``name=value`` fields in ``kwargs``)."""


class IStreamClientEndpointStringParserWithReactor(Interface):
    """A plugin adding a prefix to ``clientFromString`` descriptions."""

    prefix = Attribute('The description prefix handled, e.g. "tcp" (str).')

    def parseStreamClient(reactor: Any, *args: Any, **kwargs: Any) -> Any:
        """Return an :class:`IStreamClientEndpoint` for the description's arguments."""


# -- TLS connection creators ------------------------------------------------------------------


class IOpenSSLContextFactory(Interface):
    """Hands out a TLS context (a pyOpenSSL ``Context`` in Twisted; treadle also accepts an
    ``ssl.SSLContext``)."""

    def getContext() -> Any:
        """Return the context to use for a connection."""


class IOpenSSLClientConnectionCreator(Interface):
    """Makes the TLS connection object of each outgoing connection (``optionsForClientTLS``)."""

    def clientConnectionForTLS(tlsProtocol: Any) -> Any:
        """Return the TLS connection object for ``tlsProtocol``."""


class IOpenSSLServerConnectionCreator(Interface):
    """Makes the TLS connection object of each accepted connection."""

    def serverConnectionForTLS(tlsProtocol: Any) -> Any:
        """Return the TLS connection object for ``tlsProtocol``."""


# -- services ---------------------------------------------------------------------------------


class IServiceCollection(Interface):
    """A container of named services (as :mod:`treadle.application.service` declares too;
    Twisted has both)."""

    def getServiceNamed(serviceName: str) -> Any:
        """Return the child service called ``serviceName``.

        Raises:
            KeyError: No child has that name.
        """

    def addService(service: Any) -> None:
        """Add a child service.

        Raises:
            RuntimeError: A child of the same name exists.
        """

    def removeService(service: Any) -> Any:
        """Remove a child service; may return a Deferred (its stopping)."""
