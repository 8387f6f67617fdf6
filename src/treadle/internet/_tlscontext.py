"""TLS settings as :class:`ssl.SSLContext` objects: the context half of :mod:`treadle.internet.ssl`.

Twisted's ``CertificateOptions`` builds a pyOpenSSL ``Context`` that serves either side of a
connection. The standard library's contexts are one-sided (``PROTOCOL_TLS_SERVER`` or
``PROTOCOL_TLS_CLIENT``), so :class:`CertificateOptions` builds each side on demand:
``getContext()`` gives the server side when it holds a certificate and the client side
otherwise, and ``getServerContext()``/``getClientContext()`` name a side explicitly.

Twisted's ``method`` arguments become ``ssl.PROTOCOL_*`` constants here, and its
pyOpenSSL-only knobs (``verifyDepth``, ``verifyOnce``, ``enableSessions``) are accepted and
have no effect: the ``ssl`` module does not offer them.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import ssl
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from zope.interface import implementer

from treadle.internet._tlsbase import (
    DEFAULT_MINIMUM,
    DiffieHellmanParameters,
    IOpenSSLTrustRoot,
    OpenSSLCertificateAuthorities,
    TLSVersion,
    certificate_der,
    cipher_string,
    key_pem,
    load_certificate_and_key,
    method_range,
    platformTrust,
    refuse_password,
    set_versions,
)
from treadle.internet._transport import context_of
from treadle.internet.interfaces import IOpenSSLContextFactory

__all__ = [
    "CertificateOptions",
    "ClientContextFactory",
    "ClientTLSOptions",
    "ContextFactory",
    "DefaultOpenSSLContextFactory",
    "optionsForClientTLS",
]

log = logging.getLogger("treadle.error")

# -- CertificateOptions --------------------------------------------------------------------------

_EXCLUSIVE = (
    ("trustRoot", "requireCertificate"),
    ("trustRoot", "verify"),
    ("trustRoot", "caCerts"),
    ("method", "insecurelyLowerMinimumTo"),
    ("method", "raiseMinimumTo"),
    ("raiseMinimumTo", "insecurelyLowerMinimumTo"),
    ("method", "lowerMaximumSecurityTo"),
)


def _refuse_exclusive(init: Callable[..., None]) -> Callable[..., None]:
    """Raise TypeError when two arguments of a pair in ``_EXCLUSIVE`` are both passed."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def checked(*args: Any, **kwargs: Any) -> None:
        passed = signature.bind(*args, **kwargs).arguments
        for first, second in _EXCLUSIVE:
            if first in passed and second in passed:
                raise TypeError(
                    f"The {first!r} and {second!r} arguments to CertificateOptions "
                    "are mutually exclusive."
                )
        init(*args, **kwargs)

    return checked


def _version_bounds(
    raise_to: TLSVersion | None, lower_to: TLSVersion | None, maximum: TLSVersion | None
) -> TLSVersion:
    """The minimum version Twisted's rules give for these three arguments."""
    if raise_to is not None:
        if maximum is not None and raise_to > maximum:
            raise ValueError("raiseMinimumTo needs to be lower than lowerMaximumSecurityTo")
        if raise_to > DEFAULT_MINIMUM:
            lower_to = raise_to
    if lower_to is None:
        lower_to = DEFAULT_MINIMUM
        if maximum is not None and lower_to > maximum:
            lower_to = maximum
    if maximum is not None and lower_to > maximum:
        raise ValueError("insecurelyLowerMinimumTo needs to be lower than lowerMaximumSecurityTo")
    return lower_to


@implementer(IOpenSSLContextFactory)
class CertificateOptions:
    """The security settings of TLS connections, for servers and clients, as Twisted's.

    ``getContext()`` returns an :class:`ssl.SSLContext`: the server side when a certificate
    and key are given, the client side otherwise. ``getServerContext()`` and
    ``getClientContext()`` choose the side (a client presenting a certificate needs
    ``getClientContext()``). Each side's context is made once and then shared.

    Args:
        privateKey: The private key (a ``KeyPair``, or its PEM/DER bytes).
        certificate: Its certificate (a ``Certificate``, or PEM/DER bytes).
        method: Deprecated (as in Twisted): an ``ssl.PROTOCOL_*`` constant; the ``TLSv1*``
            ones pin that one version.
        verify: Verify the peer's certificate against ``caCerts`` (prefer ``trustRoot``).
        caCerts: Authorities for ``verify``.
        verifyDepth: Accepted; the ``ssl`` module keeps OpenSSL's default depth.
        requireCertificate: With ``verify``, a server refuses clients without a certificate.
        verifyOnce: Accepted for compatibility.
        enableSingleUseKeys: Fresh DH/ECDH keys per handshake (OpenSSL always does today).
        enableSessions: Accepted; the ``ssl`` module keeps OpenSSL's session cache.
        fixBrokenPeers: Set OpenSSL's workarounds for broken peers (``OP_ALL``).
        enableSessionTickets: Allow RFC 5077 session tickets (off by default, as in Twisted).
        extraCertChain: Certificates completing the chain of ``certificate``.
        acceptableCiphers: An ``IAcceptableCiphers`` (default: Python's cipher list).
        dhParameters: :class:`DiffieHellmanParameters` enabling ``DHE`` suites.
        trustRoot: Verify the peer against this: ``platformTrust()``, a ``Certificate``,
            ``trustRootFromCertificates(...)``. Implies ``verify`` and a required
            certificate.
        acceptableProtocols: ALPN protocols (bytes) in order of preference.
        raiseMinimumTo: Use at least this :class:`TLSVersion`, or the default if higher.
        insecurelyLowerMinimumTo: Allow versions down to this one (below TLS 1.2: unsafe).
        lowerMaximumSecurityTo: Use no version newer than this.
        contextForServerName: For a server: called with the SNI name (bytes, or None)
            and returning the ``SSLContext`` (or context factory) to use instead, or None.

    Raises:
        ValueError: Only one of ``privateKey``/``certificate``; ``verify`` without
            ``caCerts``; ``extraCertChain`` without a certificate; inconsistent versions.
        TypeError: Mutually exclusive arguments passed together (``trustRoot`` with
            ``verify``, ``caCerts`` or ``requireCertificate``; ``method`` with the version
            arguments; ``raiseMinimumTo`` with ``insecurelyLowerMinimumTo``).
        VerifyError: The key does not match the certificate (found when a context is made).
    """

    @_refuse_exclusive
    def __init__(
        self,
        privateKey: Any = None,
        certificate: Any = None,
        method: Any = None,
        verify: bool = False,
        caCerts: Sequence[Any] | None = None,
        verifyDepth: int = 9,
        requireCertificate: bool = True,
        verifyOnce: bool = True,
        enableSingleUseKeys: bool = True,
        enableSessions: bool = False,
        fixBrokenPeers: bool = False,
        enableSessionTickets: bool = False,
        extraCertChain: Sequence[Any] | None = None,
        acceptableCiphers: Any = None,
        dhParameters: DiffieHellmanParameters | None = None,
        trustRoot: Any = None,
        acceptableProtocols: Sequence[bytes] | None = None,
        raiseMinimumTo: TLSVersion | None = None,
        insecurelyLowerMinimumTo: TLSVersion | None = None,
        lowerMaximumSecurityTo: TLSVersion | None = None,
        contextForServerName: Callable[[bytes | None], Any] | None = None,
    ) -> None:
        if (privateKey is None) != (certificate is None):
            raise ValueError("Specify neither or both of privateKey and certificate")
        self.privateKey = privateKey
        self.certificate = certificate
        self.method = method
        if method is None:
            self._minimum: TLSVersion | None = _version_bounds(
                raiseMinimumTo, insecurelyLowerMinimumTo, lowerMaximumSecurityTo
            )
            self._maximum = lowerMaximumSecurityTo
        else:
            warnings.warn(
                "Passing method to CertificateOptions is deprecated (as in Twisted 17.1): use "
                "insecurelyLowerMinimumTo, raiseMinimumTo and lowerMaximumSecurityTo",
                DeprecationWarning,
                stacklevel=3,
            )
            self._minimum, self._maximum = method_range(method)
        if verify and not caCerts:
            raise ValueError(
                "Specify client CA certificate information if and only if enabling "
                "certificate verification"
            )
        if extraCertChain is not None and certificate is None:
            raise ValueError(
                "A private key and a certificate are required when adding a supplemental "
                "certificate chain."
            )
        self.verify = verify
        self.caCerts = caCerts
        self.extraCertChain = list(extraCertChain or ())
        self.verifyDepth = verifyDepth
        self.requireCertificate = requireCertificate
        self.verifyOnce = verifyOnce
        self.enableSingleUseKeys = enableSingleUseKeys
        self.enableSessions = enableSessions
        self.fixBrokenPeers = fixBrokenPeers
        self.enableSessionTickets = enableSessionTickets
        self.dhParameters = dhParameters
        self._cipherString = None if acceptableCiphers is None else cipher_string(acceptableCiphers)
        if trustRoot is not None:
            self.verify = True
            self.requireCertificate = True
            trustRoot = IOpenSSLTrustRoot(trustRoot)
        elif verify:
            trustRoot = OpenSSLCertificateAuthorities(caCerts or ())
        self.trustRoot = trustRoot
        self._acceptableProtocols = list(acceptableProtocols or ())
        self._contextForServerName = contextForServerName
        self._contexts: dict[bool, ssl.SSLContext] = {}

    def getContext(self) -> ssl.SSLContext:
        """Return the server context if a certificate was given, else the client context."""
        if self.certificate is not None:
            return self.getServerContext()
        return self.getClientContext()

    def getServerContext(self) -> ssl.SSLContext:
        """Return the context for accepting connections (made once, then shared).

        Raises:
            ValueError: No certificate and key were given: a server needs them.
        """
        if self.certificate is None:
            raise ValueError("a TLS server needs a privateKey and a certificate")
        return self._context(server=True)

    def getClientContext(self) -> ssl.SSLContext:
        """Return the context for making connections (made once, then shared).

        It checks no host name (``optionsForClientTLS`` does); it verifies the server's
        certificate only with ``trustRoot`` (or ``verify``), as Twisted's.
        """
        return self._context(server=False)

    def _context(self, server: bool) -> ssl.SSLContext:
        context = self._contexts.get(server)
        if context is None:
            context = self._contexts[server] = self._make_context(server)
        return context

    def _options(self) -> int:
        options = ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
        if self.enableSingleUseKeys:
            options |= ssl.OP_SINGLE_DH_USE | ssl.OP_SINGLE_ECDH_USE
        if self.fixBrokenPeers:
            options |= ssl.OP_ALL
        if not self.enableSessionTickets:
            options |= ssl.OP_NO_TICKET
        return options

    def _make_context(self, server: bool) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.options |= self._options()
        set_versions(context, self._minimum, self._maximum)
        if self.certificate is not None:
            chain = [certificate_der(c) for c in [self.certificate, *self.extraCertChain]]
            load_certificate_and_key(context, chain, key_pem(self.privateKey))
        if self.verify and self.trustRoot is not None:
            required = self.requireCertificate or not server
            context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
            self.trustRoot._addCACertsToContext(context)
        else:
            context.verify_mode = ssl.CERT_NONE
        if self._cipherString is not None:
            context.set_ciphers(self._cipherString)
        if self.dhParameters is not None:
            context.load_dh_params(self.dhParameters._path())
        if self._acceptableProtocols:
            context.set_alpn_protocols([p.decode("ascii") for p in self._acceptableProtocols])
        if server and self._contextForServerName is not None:
            context.sni_callback = _sni_callback(self._contextForServerName)
        return context


def _sni_callback(choose: Callable[[bytes | None], Any]) -> Callable[..., int | None]:
    """Adapt Twisted's ``contextForServerName`` to ``SSLContext.sni_callback``."""

    def callback(ssl_object: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> int | None:
        try:
            chosen = choose(name.encode("ascii") if name is not None else None)
            if chosen is not None:
                ssl_object.context = context_of(chosen)
        except Exception:
            log.exception("Error while choosing the TLS context for server name %r", name)
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    return callback


# -- clients -------------------------------------------------------------------------------------


@implementer(IOpenSSLContextFactory)
class ClientTLSOptions:
    """The client settings :func:`optionsForClientTLS` returns.

    Contract with the reactor: ``getContext()`` returns the client ``ssl.SSLContext``
    (it verifies the server's certificate and checks its host name), and ``hostname`` is
    the name to pass as ``server_hostname`` — the name the certificate must match, sent
    as SNI. ``connectSSL``, ``startTLS`` and the TLS client endpoints read it with
    ``getattr(contextFactory, "hostname", None)``, so a hand-made context factory can
    offer the same attribute.

    Attributes:
        hostname: The server's name as given (text; an IP address literal is matched
            against the certificate's IP addresses and is not sent as SNI).
    """

    def __init__(self, hostname: str, options: CertificateOptions) -> None:
        self.hostname = hostname
        self._options = options
        self._client_context: ssl.SSLContext | None = None

    def getContext(self) -> ssl.SSLContext:
        """Return the client context (made once, then shared)."""
        context = self._client_context
        if context is None:
            context = self._options.getClientContext()
            context.check_hostname = True
            self._client_context = context
        return context

    getClientContext = getContext

    def __repr__(self) -> str:
        return f"<ClientTLSOptions for {self.hostname!r}>"


def optionsForClientTLS(
    hostname: str,
    trustRoot: Any = None,
    clientCertificate: Any = None,
    acceptableProtocols: Sequence[bytes] | None = None,
    *,
    extraCertificateOptions: dict[str, Any] | None = None,
    sendServerName: bool | None = None,
) -> ClientTLSOptions:
    """Return the settings for a TLS client connection to ``hostname``.

    The server's certificate must be signed by an authority of ``trustRoot`` and name
    ``hostname`` (a DNS name, matched as browsers do, or an IP address).

    Args:
        hostname: The server's name (text).
        trustRoot: Authorities to trust: ``platformTrust()`` by default, a ``Certificate``
            or ``trustRootFromCertificates([...])``.
        clientCertificate: A ``PrivateCertificate`` to present to the server.
        acceptableProtocols: ALPN protocols (bytes) in order of preference.
        extraCertificateOptions: More :class:`CertificateOptions` arguments (versions...).
        sendServerName: None or True: send the name as SNI (never for an IP address).

    Raises:
        TypeError: ``hostname`` is not text.
        ValueError: ``sendServerName=False``: the ``ssl`` module always sends the name it
            verifies.
    """
    if not isinstance(hostname, str):
        raise TypeError(
            "optionsForClientTLS requires text for host names, not " + type(hostname).__name__
        )
    if sendServerName is False:
        raise ValueError("sendServerName=False is not possible with the ssl module")
    extra = dict(extraCertificateOptions or {})
    if clientCertificate is not None:
        extra.update(privateKey=clientCertificate.privateKey, certificate=clientCertificate)
    options = CertificateOptions(
        trustRoot=platformTrust() if trustRoot is None else trustRoot,
        acceptableProtocols=acceptableProtocols,
        **extra,
    )
    return ClientTLSOptions(hostname, options)


# -- Twisted's older context factories -----------------------------------------------------------


@implementer(IOpenSSLContextFactory)
class ContextFactory:
    """Base class of the old-style context factories: subclasses define ``getContext()``."""

    isClient = 0

    def getContext(self) -> ssl.SSLContext:
        """Return the ``ssl.SSLContext`` to use; subclasses must override it.

        Raises:
            NotImplementedError: Always, here.
        """
        raise NotImplementedError


class DefaultOpenSSLContextFactory(ContextFactory):
    """A server context from a private key file and a certificate (chain) file.

    The files are read at once, so a missing file or a key that does not match its
    certificate fails here rather than at the first connection.

    Args:
        privateKeyFileName: PEM file with the private key (unencrypted).
        certificateFileName: PEM file with the certificate, then any chain.
        sslmethod: An ``ssl.PROTOCOL_*`` constant (None: any version from TLS 1.2).

    Raises:
        OSError: A file cannot be read.
        ssl.SSLError: OpenSSL refused the files (their names are in the error's notes).
    """

    _context: ssl.SSLContext | None = None

    def __init__(
        self, privateKeyFileName: Any, certificateFileName: Any, sslmethod: Any = None
    ) -> None:
        self.privateKeyFileName = privateKeyFileName
        self.certificateFileName = certificateFileName
        self.sslmethod = sslmethod
        self.cacheContext()

    def cacheContext(self) -> None:
        """Build the context if it is not built yet."""
        if self._context is not None:
            return
        minimum, maximum = method_range(self.sslmethod)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        set_versions(context, minimum, maximum)
        certificate = _file_name(self.certificateFileName)
        key = _file_name(self.privateKeyFileName)
        try:
            context.load_cert_chain(certificate, key, password=refuse_password)
        except ssl.SSLError as e:
            e.add_note(f"certificate file {certificate!r}, private key file {key!r}")
            raise
        self._context = context

    def getContext(self) -> ssl.SSLContext:
        """Return the server context."""
        assert self._context is not None
        return self._context


def _file_name(name: Any) -> str:
    """A file name given as text, bytes, a path object or anything with ``.path``."""
    return os.fsdecode(getattr(name, "path", name))


class ClientContextFactory(ContextFactory):
    """Twisted's old client factory: TLS 1.2 or newer, and NO verification of the server.

    Anyone between client and server can read the connection. Use
    :func:`optionsForClientTLS` instead; this is here for the programs that use it.
    """

    isClient = 1
    method: Any = None

    def getContext(self) -> ssl.SSLContext:
        """Return a new client context that accepts any server certificate."""
        minimum, maximum = method_range(self.method)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        set_versions(context, minimum, maximum)
        return context
