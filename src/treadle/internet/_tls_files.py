"""TLS contexts from the PEM files an endpoint description names, on the standard ``ssl``.

``ssl:443:privateKey=key.pem:certKey=cert.pem`` needs a server context, ``ssl:host=...`` and
``tls:...`` a client one. Twisted builds these with pyOpenSSL; treadle needs only the standard
library. Errors say which file and what is wrong with it: a missing or unreadable file raises
:class:`FileNotFoundError` or :class:`PermissionError` (as Twisted's file reads do), an unusable
certificate or key :class:`ValueError`. An encrypted private key is refused rather than
prompted for (a prompt would block a server's start).
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from typing import Final

from treadle.internet._descriptions import SSL_METHODS, ServerDescription

__all__ = ["ReadyClientContext", "client_context", "server_context"]

_PEM_CERTIFICATE: Final = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


class ReadyClientContext:
    """A client context factory around a context built from files: ``getContext()`` and the
    ``hostname`` to verify (unlike :class:`treadle.internet.ssl.ClientTLSOptions`, which builds
    its context from certificate objects).

    Attributes:
        hostname: The name the server's certificate must carry, or None (then the reactor
            sends the connection's host as the server name, unchecked).
    """

    def __init__(self, context: ssl.SSLContext, hostname: str | None) -> None:
        self._context = context
        self.hostname = hostname

    def getContext(self) -> ssl.SSLContext:
        """Return the context connections are made with."""
        return self._context

    def __repr__(self) -> str:
        return f"<ReadyClientContext hostname={self.hostname!r}>"


def _check_readable(path: str, label: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{label} file {path} not found")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{label} file {path} is not readable")


def _refuse_passphrase(key: str) -> str:
    raise ValueError(f"the private key {key} is encrypted; treadle needs an unencrypted key")


def _load_chain(
    context: ssl.SSLContext, cert: str, key: str | None, chain: str | None = None
) -> None:
    """Load a certificate (plus an optional chain file) and its key into ``context``."""
    _check_readable(cert, "certificate")
    if key is not None:
        _check_readable(key, "private key")
    keyfile = key if key is not None else cert
    try:
        if chain is None:
            context.load_cert_chain(cert, keyfile, password=lambda: _refuse_passphrase(keyfile))
            return
        _check_readable(chain, "certificate chain")
        with open(chain, "rb") as f:
            extra = _PEM_CERTIFICATE.findall(f.read())
        if not extra:
            raise ValueError(
                f"the chain file {chain} does not contain any certificate in PEM format"
            )
        with open(cert, "rb") as f:
            leaf = _PEM_CERTIFICATE.findall(f.read())[:1]
        # load_cert_chain takes the leaf and its chain from one file only.
        with tempfile.NamedTemporaryFile(suffix=".pem") as joined:
            joined.write(b"\n".join(leaf + extra) + b"\n")
            joined.flush()
            context.load_cert_chain(
                joined.name, keyfile, password=lambda: _refuse_passphrase(keyfile)
            )
    except ssl.SSLError as e:
        raise ValueError(
            f"cannot use certificate {cert} with key {keyfile}: {e.reason or e}"
        ) from None


def _pin_method(context: ssl.SSLContext, method: str | None) -> None:
    version = SSL_METHODS.get(method or "")
    if version is not None:
        pinned = getattr(ssl.TLSVersion, version)
        context.minimum_version = pinned
        context.maximum_version = pinned


def server_context(description: ServerDescription) -> ssl.SSLContext:
    """Build the server context of an ``ssl:`` description, reading its files now.

    Raises:
        FileNotFoundError: A file it names does not exist.
        PermissionError: One cannot be read.
        ValueError: The certificate and key do not make a pair, the key is encrypted, the
            chain file holds no certificate, or the DH parameters are malformed.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(
        context, description.cert_key, description.private_key, description.extra_cert_chain
    )
    if description.dh_parameters is not None:
        _check_readable(description.dh_parameters, "DH parameters")
        try:
            context.load_dh_params(description.dh_parameters)
        except ssl.SSLError as e:
            raise ValueError(
                f"cannot use DH parameters {description.dh_parameters}: {e.reason or e}"
            ) from None
    _pin_method(context, description.sslmethod)
    return context


def _load_trust_directory(context: ssl.SSLContext, directory: str) -> None:
    """Trust every ``.pem`` CA certificate in ``directory``; unreadable or bad ones are skipped,
    as Twisted skips them."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"CA certificate directory {directory} not found")
    for entry in sorted(os.listdir(directory)):
        if not entry.lower().endswith(".pem"):
            continue
        try:
            with open(os.path.join(directory, entry), encoding="ascii") as f:
                context.load_verify_locations(cadata=f.read())
        except (OSError, ValueError, ssl.SSLError):
            continue


def client_context(
    hostname: str | None,
    trust_directory: str | None = None,
    certificate: str | None = None,
    private_key: str | None = None,
) -> ReadyClientContext:
    """Build a client context factory, as ``ssl:`` and ``tls:`` descriptions ask.

    As Twisted: with a ``hostname`` the server's certificate is verified against it (and
    against ``trust_directory``'s CAs, or the system's); without one it is verified only when
    ``trust_directory`` is given (against those CAs, any name), else not at all.

    Args:
        hostname: The server's name, or None.
        trust_directory: A directory of trusted ``.pem`` CA certificates, or None.
        certificate: A client certificate file, or None.
        private_key: Its key file (the certificate file when None).

    Raises:
        FileNotFoundError: A file or the directory does not exist.
        PermissionError: A file cannot be read.
        ValueError: The client certificate cannot be used, or a key came without one.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if trust_directory is not None:
        _load_trust_directory(context, trust_directory)
    elif hostname is not None:
        context.load_default_certs()
    if hostname is None:
        context.check_hostname = False
        if trust_directory is None:
            context.verify_mode = ssl.CERT_NONE
    if certificate is not None:
        _load_chain(context, certificate, private_key)
    elif private_key is not None:
        raise ValueError("privateKey needs a client certificate (certKey) to go with it")
    return ReadyClientContext(context, hostname)
