"""Endpoint descriptions (Twisted's "strports"): the one grammar of ``serverFromString``,
``clientFromString``, ``strports.service`` and ``treadle web --listen``.

A description is a kind, then colon-separated parameters: ``tcp:8080:interface=127.0.0.1``.
A parameter is positional (``8080``) or a keyword (``interface=127.0.0.1``: the first ``=``
separates, later ones belong to the value); a backslash makes the next character literal, so
``interface=\\:\\:1`` is ``::1``. Positional parameters fill the kind's parameter names in
order, as Python binds arguments.

This module only reads text: nothing is opened, bound or checked on disk, so a malformed
description is reported before anything starts. :func:`parse_server_description` gives a typed
:class:`ServerDescription`; :func:`parse_client_description` a kind and the keyword arguments
of its endpoint class. Both raise :class:`ValueError` with a message that names the parameter
at fault (Twisted raises ``TypeError`` for some of these, from a Python call that did not bind).

Differences from Twisted, on purpose: kinds are case-insensitive for servers too (Twisted
accepts ``TCP`` for clients only); a keyword given twice is refused (Twisted keeps the last); a
port out of 0-65535, an ``interface`` that is neither an address nor a host name, a lone
trailing backslash and an empty keyword name are refused with a message rather than failing
later; a client ``timeout`` may have a fraction.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from treadle.internet._reactor import DEFAULT_BACKLOG

__all__ = [
    "SERVER_KINDS",
    "ServerDescription",
    "parse_client_description",
    "parse_server_description",
    "quoteStringArgument",
    "split_description",
]

ServerKind = Literal["tcp", "tcp6", "unix", "ssl", "systemd"]

#: The kinds ``serverFromString`` knows, in the order error messages list them.
SERVER_KINDS: Final[tuple[ServerKind, ...]] = ("tcp", "tcp6", "ssl", "unix", "systemd")

#: ``sslmethod`` values (pyOpenSSL's constant names, as Twisted takes them) and the one TLS
#: version each pins; None leaves the version to negotiation.
SSL_METHODS: Final[Mapping[str, str | None]] = {
    "SSLv23_METHOD": None,
    "TLS_METHOD": None,
    "TLS_SERVER_METHOD": None,
    "TLSv1_METHOD": "TLSv1",
    "TLSv1_1_METHOD": "TLSv1_1",
    "TLSv1_2_METHOD": "TLSv1_2",
}


@dataclasses.dataclass(frozen=True)
class ServerDescription:
    """A parsed server description; which fields matter depends on ``kind``.

    Attributes:
        kind: ``"tcp"``, ``"tcp6"``, ``"ssl"``, ``"unix"`` or ``"systemd"``.
        description: The text it was parsed from (after any rewriting by the caller).
        port: TCP port of ``tcp``, ``tcp6`` and ``ssl`` (0 picks a free one).
        interface: Address or host name to bind; ``""`` (``tcp``, ``ssl``) is every IPv4
            interface, ``"::"`` (the ``tcp6`` default) every IPv6 one.
        backlog: Kernel accept queue length.
        address: Socket path of ``unix``.
        mode: Permission bits of that socket file.
        lockfile: ``unix``'s ``lockfile``: refuse to replace a socket another process serves.
        private_key: ``ssl``: PEM file with the private key (``server.pem`` by default).
        cert_key: ``ssl``: PEM file with the certificate; the key file by default.
        extra_cert_chain: ``ssl``: PEM file with the chain of CA certificates to send.
        dh_parameters: ``ssl``: PEM file with Diffie-Hellman parameters.
        sslmethod: ``ssl``: a key of :data:`SSL_METHODS`, or None.
        domain: ``systemd``: ``"INET"``, ``"INET6"`` or ``"UNIX"``.
        index: ``systemd``: position of the socket among those passed, or None.
        name: ``systemd``: its ``FileDescriptorName``, or None.
    """

    kind: ServerKind
    description: str
    port: int = 0
    interface: str = ""
    backlog: int = DEFAULT_BACKLOG
    address: str = ""
    mode: int = 0o666
    lockfile: bool = True
    private_key: str = ""
    cert_key: str = ""
    extra_cert_chain: str | None = None
    dh_parameters: str | None = None
    sslmethod: str | None = None
    domain: str = ""
    index: int | None = None
    name: str | None = None


# -- the grammar -------------------------------------------------------------------------------


def split_description(description: str) -> tuple[list[str], dict[str, str]]:
    """Split ``description`` into its positional and keyword parameters.

    The kind is the first positional one. ``split_description("a:b\\\\:c:d=e=f")`` gives
    ``(["a", "b:c"], {"d": "e=f"})``.

    Raises:
        ValueError: A keyword is empty or given twice, or the text ends with a lone backslash.
    """
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for key, value in _segments(description):
        if key is None:
            args.append(value)
        elif not key:
            raise ValueError(f"a parameter has no name before '=': {'=' + value!r}")
        elif key in kwargs:
            raise ValueError(f"{key} is given twice")
        else:
            kwargs[key] = value
    return args, kwargs


def _segments(description: str) -> list[tuple[str | None, str]]:
    """``(keyword or None, value)`` per colon-separated segment, escapes resolved."""
    segments: list[tuple[str | None, str]] = []
    key: str | None = None
    current: list[str] = []
    chars = iter(description)
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ValueError("the description ends with a lone backslash")
            current.append(escaped)
        elif ch == ":":
            segments.append((key, "".join(current)))
            key, current = None, []
        elif ch == "=" and key is None:
            key, current = "".join(current), []
        else:
            current.append(ch)
    segments.append((key, "".join(current)))
    return segments


def quoteStringArgument(argument: str) -> str:
    """Escape ``argument`` for use as one parameter of a description.

    ``"ssl:443:privateKey=" + quoteStringArgument(path)`` is safe whatever the path holds.
    """
    return argument.replace("\\", "\\\\").replace(":", "\\:")


def _bind(
    kind: str,
    args: list[str],
    kwargs: dict[str, str],
    names: tuple[str, ...],
    required: tuple[str, ...] = (),
) -> dict[str, str]:
    """Bind positional ``args`` to ``names`` in order, then the keywords, as a call would."""
    if len(args) > len(names):
        extra = args[len(names)]
        raise ValueError(
            f"unexpected {extra!r}: {kind} takes at most {len(names)} positional "
            f"parameter{'s' if len(names) != 1 else ''} ({', '.join(names)})"
        )
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise ValueError(f"{kind} does not take {key!r} (it takes {', '.join(names)})")
        if key in bound:
            raise ValueError(f"{key} is given twice")
        bound[key] = value
    for key in required:
        if key not in bound:
            raise ValueError(f"{kind} needs a {key}")
    return bound


# -- values ------------------------------------------------------------------------------------


def _integer(text: str, what: str, *, base: int = 10, top: int = 2**31 - 1) -> int:
    try:
        value = int(text, base)
    except ValueError:
        kind = "an octal number" if base == 8 else "a number"
        raise ValueError(f"{what} must be {kind}, not {text!r}") from None
    if not 0 <= value <= top:
        shown = oct(value) if base == 8 else str(value)
        raise ValueError(f"{what} {shown} is out of range")
    return value


def _port(text: str) -> int:
    return _integer(text, "port", top=65535)


_HOST_NAME: Final = re.compile(
    r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?"
)


def _interface(text: str) -> str:
    """An IP address (IPv6 scope allowed) or a host name; a bare number is neither."""
    if not text:
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOST_NAME.fullmatch(text) or text.replace(".", "").isdigit():
            raise ValueError(f"interface {text!r} is neither an address nor a host name") from None
    return text


def _flag(text: str, what: str) -> bool:
    try:
        return bool(int(text))
    except ValueError:
        raise ValueError(f"{what} must be 0 or 1, not {text!r}") from None


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"timeout must be a number of seconds, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"timeout must be more than 0 seconds, not {text!r}")
    return int(value) if value.is_integer() else value


def _non_empty(text: str, what: str) -> str:
    if not text:
        raise ValueError(f"{what} is empty")
    return text


# -- server descriptions -----------------------------------------------------------------------


def parse_server_description(description: str) -> ServerDescription:
    """Parse a server description as ``serverFromString`` understands it.

    Kinds (positional parameters in the order shown; each may also be given as a keyword):

    - ``tcp:port[:interface][:backlog]``, ``tcp6:port[:backlog][:interface]`` (``interface``
      ``::`` by default);
    - ``ssl:port[:privateKey][:certKey][:sslmethod][:interface][:backlog]`` with keywords
      ``extraCertChain`` and ``dhParameters`` too;
    - ``unix:address[:mode][:backlog][:lockfile]`` (``mode`` octal, 666 by default);
    - ``systemd:domain=INET|INET6|UNIX:index=N`` or ``...:name=NAME``.

    A bare port (``"8080"``) is refused as current Twisted refuses it.

    Args:
        description: The description.

    Returns:
        The typed description; nothing was opened or checked on disk.

    Raises:
        ValueError: The kind is unknown or a parameter is missing, unknown or malformed.
    """
    args, kwargs = split_description(description)
    kind = args.pop(0).lower()
    parse = _SERVER_PARSERS.get(kind)
    if parse is None:
        raise ValueError(_unknown_kind(kind, SERVER_KINDS, bare=not args and not kwargs))
    return parse(description, args, kwargs)


def _unknown_kind(kind: str, known: tuple[str, ...], *, bare: bool = False) -> str:
    """Twisted's message, with the known kinds and, for a bare port, the fix."""
    text = f"Unknown endpoint type: {kind!r} (known: {', '.join(known)})"
    if kind.isdigit() and bare:
        text += f"; for TCP port {kind} write tcp:{kind}"
    return text


def _server_tcp(description: str, args: list[str], kwargs: dict[str, str]) -> ServerDescription:
    bound = _bind("tcp", args, kwargs, ("port", "interface", "backlog"), ("port",))
    return ServerDescription(
        "tcp",
        description,
        port=_port(bound["port"]),
        interface=_interface(bound.get("interface", "")),
        backlog=_integer(bound.get("backlog", str(DEFAULT_BACKLOG)), "backlog"),
    )


def _server_tcp6(description: str, args: list[str], kwargs: dict[str, str]) -> ServerDescription:
    # Twisted's order for tcp6 really is port, backlog, interface.
    bound = _bind("tcp6", args, kwargs, ("port", "backlog", "interface"), ("port",))
    return ServerDescription(
        "tcp6",
        description,
        port=_port(bound["port"]),
        interface=_interface(bound.get("interface", "::")) or "::",
        backlog=_integer(bound.get("backlog", str(DEFAULT_BACKLOG)), "backlog"),
    )


_SSL_NAMES: Final = (
    "port",
    "privateKey",
    "certKey",
    "sslmethod",
    "interface",
    "backlog",
    "extraCertChain",
    "dhParameters",
)


def _server_ssl(description: str, args: list[str], kwargs: dict[str, str]) -> ServerDescription:
    bound = _bind("ssl", args, kwargs, _SSL_NAMES, ("port",))
    private_key = bound.get("privateKey") or "server.pem"
    method = bound.get("sslmethod")
    if method is not None and method not in SSL_METHODS:
        raise ValueError(f"sslmethod {method!r} is not one of {', '.join(SSL_METHODS)}")
    return ServerDescription(
        "ssl",
        description,
        port=_port(bound["port"]),
        interface=_interface(bound.get("interface", "")),
        backlog=_integer(bound.get("backlog", str(DEFAULT_BACKLOG)), "backlog"),
        private_key=private_key,
        cert_key=bound.get("certKey") or private_key,
        extra_cert_chain=bound.get("extraCertChain") or None,
        dh_parameters=bound.get("dhParameters") or None,
        sslmethod=method,
    )


def _server_unix(description: str, args: list[str], kwargs: dict[str, str]) -> ServerDescription:
    bound = _bind("unix", args, kwargs, ("address", "mode", "backlog", "lockfile"), ("address",))
    if not bound["address"]:
        raise ValueError("give a socket path, as in unix:/run/app.sock")
    return ServerDescription(
        "unix",
        description,
        address=bound["address"],
        mode=_integer(bound.get("mode", "666"), "mode", base=8, top=0o7777),
        backlog=_integer(bound.get("backlog", str(DEFAULT_BACKLOG)), "backlog"),
        lockfile=_flag(bound.get("lockfile", "1"), "lockfile"),
    )


#: The address families a ``systemd:`` socket may have.
SYSTEMD_DOMAINS: Final = ("INET", "INET6", "UNIX")


def _server_systemd(description: str, args: list[str], kwargs: dict[str, str]) -> ServerDescription:
    bound = _bind("systemd", args, kwargs, ("domain", "index", "name"), ("domain",))
    domain = bound["domain"].upper()
    if domain not in SYSTEMD_DOMAINS:
        raise ValueError(f"domain {bound['domain']!r} is not one of {', '.join(SYSTEMD_DOMAINS)}")
    if ("index" in bound) == ("name" in bound):
        raise ValueError("give exactly one of index= and name= (as in systemd:domain=INET:index=0)")
    index = _integer(bound["index"], "index") if "index" in bound else None
    name = _non_empty(bound["name"], "name") if "name" in bound else None
    return ServerDescription("systemd", description, domain=domain, index=index, name=name)


_SERVER_PARSERS: Final[
    Mapping[str, Callable[[str, list[str], dict[str, str]], ServerDescription]]
] = {
    "tcp": _server_tcp,
    "tcp6": _server_tcp6,
    "ssl": _server_ssl,
    "unix": _server_unix,
    "systemd": _server_systemd,
}


# -- client descriptions -----------------------------------------------------------------------

#: The kinds ``clientFromString`` knows.
CLIENT_KINDS: Final = ("tcp", "ssl", "unix", "tls")


def parse_client_description(description: str) -> tuple[str, dict[str, Any]]:
    """Parse a client description as ``clientFromString`` understands it.

    Kinds:

    - ``tcp:HOST:PORT`` or ``tcp:host=HOST:port=PORT`` (either may be positional), with
      ``timeout`` (seconds) and ``bindAddress`` (a local address);
    - ``ssl:`` as ``tcp`` plus ``hostname`` (the name to verify the certificate against),
      ``caCertsDir`` (a directory of trusted ``.pem`` CA certificates), ``certKey`` and
      ``privateKey`` (a client certificate and its key);
    - ``unix:PATH`` or ``unix:path=PATH``, with ``timeout`` and ``lockfile``/``checkPID``;
    - ``tls:HOST:PORT`` (verified against ``HOST``) with ``timeout``, ``bindAddress``,
      ``certificate``, ``privateKey``, ``trustRoots`` (a directory of CA certificates).

    Args:
        description: The description.

    Returns:
        The kind and the keyword arguments of its endpoint (file names still unread):
        ``host``, ``port``, ``timeout``, ``bindAddress`` (a ``(host, 0)`` pair), ``path``,
        ``checkPID``, ``hostname``, ``caCertsDir``, ``certKey``, ``privateKey``,
        ``certificate``, ``trustRoots`` as given.

    Raises:
        ValueError: The kind is unknown or a parameter is missing, unknown or malformed.
    """
    args, kwargs = split_description(description)
    kind = args.pop(0).lower()
    if kind == "unix":
        return kind, _client_unix(args, kwargs)
    if kind in ("tcp", "ssl", "tls"):
        return kind, _client_inet(kind, args, kwargs)
    raise ValueError(_unknown_kind(kind, CLIENT_KINDS))


_CLIENT_EXTRAS: Final[Mapping[str, tuple[str, ...]]] = {
    "tcp": (),
    "ssl": ("hostname", "caCertsDir", "certKey", "privateKey"),
    "tls": ("certificate", "privateKey", "trustRoots"),
}


def _client_inet(kind: str, args: list[str], kwargs: dict[str, str]) -> dict[str, Any]:
    # As Twisted: one positional parameter is the port when host= is given, else the host.
    first = ("port", "host") if "host" in kwargs and "port" not in kwargs else ("host", "port")
    names = (*first, "timeout", "bindAddress", *_CLIENT_EXTRAS[kind])
    bound = _bind(kind, args, kwargs, names, ("host", "port"))
    result: dict[str, Any] = {
        "host": _non_empty(bound["host"], "host"),
        "port": _port(bound["port"]),
    }
    if "timeout" in bound:
        result["timeout"] = _timeout(bound["timeout"])
    if "bindAddress" in bound:
        result["bindAddress"] = (_interface(bound["bindAddress"]), 0)
    for extra in _CLIENT_EXTRAS[kind]:
        if extra in bound:
            result[extra] = _non_empty(bound[extra], extra)
    return result


def _client_unix(args: list[str], kwargs: dict[str, str]) -> dict[str, Any]:
    bound = _bind("unix", args, kwargs, ("path", "timeout", "lockfile", "checkPID"), ("path",))
    if "lockfile" in bound and "checkPID" in bound:
        raise ValueError("give lockfile or checkPID, not both (they are the same setting)")
    result: dict[str, Any] = {"path": _non_empty(bound["path"], "path")}
    if "timeout" in bound:
        result["timeout"] = _timeout(bound["timeout"])
    check = bound.get("lockfile", bound.get("checkPID"))
    if check is not None:
        result["checkPID"] = _flag(check, "lockfile")
    return result
