"""Endpoints of ``treadle web``: ``--listen`` descriptions parsed, then opened.

:func:`parse_endpoint` turns ``tcp:8080``, ``ssl:8443:privateKey=...`` or ``unix:PATH`` into an
:class:`Endpoint` without touching the system; :func:`listen` opens one with the reactor,
loading the certificate of a TLS endpoint. :mod:`treadle._cli.main` re-exports both.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Final, Literal

from treadle._cli.errors import StartupError, UsageError
from treadle.internet import reactor
from treadle.internet._reactor import DEFAULT_BACKLOG, ListeningPort
from treadle.internet.error import CannotListenError
from treadle.web.server import Site

__all__ = ["Endpoint", "listen", "listening_on", "parse_endpoint"]


@dataclass(frozen=True)
class Endpoint:
    """One parsed ``--listen`` description.

    Attributes:
        kind: ``"tcp"``, ``"ssl"`` or ``"unix"``.
        description: The text it was parsed from, for messages.
        port: TCP port (0 picks a free one; the startup line shows which).
        interface: Address to bind; ``""`` means all IPv4 interfaces.
        backlog: Kernel accept queue length.
        address: Socket path of a ``unix`` endpoint.
        mode: Permission bits of that socket file.
        private_key: PEM file with the TLS private key (``ssl``).
        cert_key: PEM file with the certificate chain (``ssl``); the key file by default.
    """

    kind: Literal["tcp", "ssl", "unix"]
    description: str
    port: int = 0
    interface: str = ""
    backlog: int = DEFAULT_BACKLOG
    address: str = ""
    mode: int = 0o666
    private_key: str = ""
    cert_key: str = ""


# -- endpoint descriptions --------------------------------------------------------------------


def _split_description(text: str) -> list[str]:
    """Split at unescaped colons; a backslash makes the next character literal."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _number(text: str, what: str, description: str, *, base: int = 10, top: int = 2**31) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise UsageError(
            f"bad endpoint {description!r}: {what} must be a number, not {text!r}"
        ) from None
    if not 0 <= value <= top:
        raise UsageError(f"bad endpoint {description!r}: {what} {value} is out of range")
    return value


#: Positional parameters, then all keywords, accepted per endpoint type (Twisted's names).
_ENDPOINT_PARAMETERS: Final = {
    "tcp": (("port", "interface"), {"port", "interface", "backlog"}),
    "ssl": (("port",), {"port", "interface", "backlog", "privateKey", "certKey"}),
    "unix": (("address",), {"address", "mode", "backlog"}),
}


def parse_endpoint(text: str) -> Endpoint:
    """Parse an endpoint description as ``twistd`` understands it.

    Forms: ``tcp:PORT[:interface=ADDR][:backlog=N]``, a bare ``PORT`` (TCP),
    ``ssl:PORT[:privateKey=KEY][:certKey=CERT][:interface=ADDR]`` (the key defaults to
    ``server.pem`` and the certificate to the key file, as in Twisted) and
    ``unix:PATH[:mode=OCTAL]``. A backslash escapes a colon: ``interface=\\:\\:1``.

    Args:
        text: The description.

    Returns:
        The endpoint; nothing is opened or checked on disk.

    Raises:
        UsageError: The description is malformed.
    """
    if text.isdigit():
        text = f"tcp:{text}"
    kind, *rest = _split_description(text)
    kind = kind.lower()
    if kind not in _ENDPOINT_PARAMETERS:
        raise UsageError(
            f"bad endpoint {text!r}: the type must be tcp, ssl or unix (as in tcp:8080)"
        )
    positional_names, keywords = _ENDPOINT_PARAMETERS[kind]
    values: dict[str, str] = {}
    positional = 0
    for part in rest:
        key, eq, value = part.partition("=")
        if not eq:
            if positional >= len(positional_names):
                raise UsageError(f"bad endpoint {text!r}: unexpected {part!r}")
            key, value = positional_names[positional], part
            positional += 1
        elif key not in keywords:
            raise UsageError(
                f"bad endpoint {text!r}: {kind} endpoints do not take {key!r} "
                f"(they take {', '.join(sorted(keywords))})"
            )
        if key in values:
            raise UsageError(f"bad endpoint {text!r}: {key} given twice")
        values[key] = value
    backlog = _number(values.get("backlog", str(DEFAULT_BACKLOG)), "backlog", text)
    if kind == "unix":
        if not values.get("address"):
            raise UsageError(f"bad endpoint {text!r}: give a socket path, as in unix:/tmp/web.sock")
        return Endpoint(
            "unix",
            text,
            address=values["address"],
            backlog=backlog,
            mode=_number(values.get("mode", "666"), "mode", text, base=8, top=0o7777),
        )
    if "port" not in values:
        raise UsageError(f"bad endpoint {text!r}: give a port, as in {kind}:8080")
    port = _number(values["port"], "port", text, top=65535)
    interface = values.get("interface", "")
    if kind == "tcp":
        return Endpoint("tcp", text, port=port, interface=interface, backlog=backlog)
    private_key = values.get("privateKey") or "server.pem"
    return Endpoint(
        "ssl",
        text,
        port=port,
        interface=interface,
        backlog=backlog,
        private_key=private_key,
        cert_key=values.get("certKey") or private_key,
    )


# -- listening --------------------------------------------------------------------------------


def _tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    for label, path in (("certificate", endpoint.cert_key), ("private key", endpoint.private_key)):
        if not os.path.isfile(path):
            raise StartupError(f"{endpoint.description}: {label} file {path} not found")
        if not os.access(path, os.R_OK):
            raise StartupError(f"{endpoint.description}: {label} file {path} is not readable")

    def no_passphrase() -> str:
        # Without this, OpenSSL would prompt on the terminal and block the start.
        raise StartupError(
            f"{endpoint.description}: the private key {endpoint.private_key} "
            "is encrypted; treadle needs an unencrypted key"
        )

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(endpoint.cert_key, endpoint.private_key, password=no_passphrase)
    except ssl.SSLError as e:
        raise StartupError(
            f"{endpoint.description}: cannot use certificate {endpoint.cert_key} "
            f"with key {endpoint.private_key}: {e.reason or e}"
        ) from None
    except OSError as e:
        raise StartupError(
            f"{endpoint.description}: cannot read certificate or key: {e.strerror or e}"
        ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def listen(endpoint: Endpoint, site: Site, reuse_port: bool = False) -> ListeningPort:
    """Open ``endpoint`` for ``site`` with the reactor (``listenTCP``/``SSL``/``UNIX``).

    Returns:
        The listening port; connections are accepted once the reactor runs.

    Raises:
        StartupError: The port is in use, the address cannot be bound, or the certificate
            or key cannot be loaded.
    """
    port: ListeningPort
    try:
        if endpoint.kind == "tcp":
            port = reactor.listenTCP(
                endpoint.port, site, endpoint.backlog, endpoint.interface, reusePort=reuse_port
            )
        elif endpoint.kind == "ssl":
            port = reactor.listenSSL(
                endpoint.port,
                site,
                _tls_context(endpoint),
                endpoint.backlog,
                endpoint.interface,
                reusePort=reuse_port,
            )
        else:
            port = reactor.listenUNIX(endpoint.address, site, endpoint.backlog, endpoint.mode)
    except CannotListenError as e:
        reason = getattr(e.socketError, "strerror", None) or e.socketError
        raise StartupError(f"cannot listen on {endpoint.description}: {reason}") from None
    except OSError as e:  # e.g. an interface name that does not resolve
        raise StartupError(f"cannot listen on {endpoint.description}: {e.strerror or e}") from None
    return port


def listening_on(endpoint: Endpoint, sock: socket.socket) -> str:
    """Say where ``endpoint``, bound as ``sock``, is reached, for the startup line.

    A specific address gives its URL: ``http://127.0.0.1:8080/``, ``https://[::1]:8443/``.
    A wildcard address is not one a browser can open, so it is named in words, followed by
    the loopback URL that does open from this machine: ``port 8080 of every IPv4 interface
    (open http://127.0.0.1:8080/)``. A UNIX socket gives ``unix:PATH``.
    """
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname() or endpoint.address}"
    scheme = "https" if endpoint.kind == "ssl" else "http"
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        if ipaddress.ip_address(host).is_unspecified:
            # Linux accepts IPv4 on such a socket too unless IPV6_V6ONLY is set (the
            # net.ipv6.bindv6only sysctl decides the default): say what this one does.
            v6only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            which = "IPv6" if v6only else "IPv6 and IPv4"
            return f"port {port} of every {which} interface (open {scheme}://[::1]:{port}/)"
        return f"{scheme}://[{host}]:{port}/"
    if ipaddress.ip_address(host).is_unspecified:
        return f"port {port} of every IPv4 interface (open {scheme}://127.0.0.1:{port}/)"
    return f"{scheme}://{host}:{port}/"
