"""A session's values as a store keeps them: one signed, pickled field per value.

A session shared through a store (:mod:`treadle.web._session_store`) is written as *fields*,
one per value the application keeps in it:

* ``a:NAME`` — an attribute (``session.cart = ...``); names starting with ``_`` are the
  session's own machinery and are not stored;
* ``k:KEY`` — a value stored by key (``session["cart"] = ...``); a key that is not a ``str``
  is pickled into the field name (``K:hex``);
* ``c:MODULE.NAME`` — a component (``setComponent``, or made by an adapter on
  ``ICounter(session)``), named by its interface;
* ``n:NAME`` — an entry of ``sessionNamespaces``.

Each field is pickled on its own, so a value that cannot be pickled is named in the error,
and two requests changing different values of one session do not undo each other. A value
refers to its session or site (an adapter keeping ``self.session``) by reference: those two
are never pickled, they are the session and site of the process that loads the value.

Every field is signed with the site's secret (HMAC-SHA256 over the session id, the field
name and the pickle), and its signature is checked before anything is unpickled: whoever can
write to the store but does not know the secret cannot make the server unpickle their bytes,
nor move a value from one session or field to another.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
from typing import Any

__all__ = [
    "ForgedField",
    "SessionCodec",
    "UnstorableValue",
    "field_values",
    "interface_name",
    "set_field",
    "unset_field",
]

_MAC_SIZE = 32
#: Types whose pickles never refer to anything else (see ``SessionCodec.pickle``).
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})
#: The opcode of a persistent reference in the pickles written here (protocol 2 and up).
_BINPERSID = pickle.BINPERSID


class UnstorableValue(Exception):
    """A session value cannot be stored (it cannot be pickled); names the value."""

    def __init__(self, field: str, error: BaseException) -> None:
        self.field = field
        super().__init__(
            f"session value {describe_field(field)} cannot be stored: "
            f"{type(error).__name__}: {error}"
        )


class ForgedField(Exception):
    """A field read from the store carries no valid signature of this site's secret."""


def describe_field(field: str) -> str:
    """How an error names a field: ``attribute 'cart'``, ``key 'cart'``, ``component I``."""
    kind, _, name = field.partition(":")
    label = {
        "a": "attribute",
        "k": "key",
        "K": "key",
        "c": "component",
        "n": "namespace",
    }.get(kind, "field")
    if kind == "K":
        # Never unpickled here: the name may come from the store, unverified.
        return f"{label} (not a str)"
    return f"{label} {name!r}"


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, anchors: dict[int, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._anchors = anchors

    def persistent_id(self, obj: Any) -> str | None:
        return self._anchors.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, anchors: dict[str, Any]) -> None:
        super().__init__(file)
        self._anchors = anchors

    def persistent_load(self, pid: Any) -> Any:
        try:
            return self._anchors[pid]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"unknown reference {pid!r}") from None


class SessionCodec:
    """Turns session values into signed store fields and back.

    Args:
        secret: The site's secret (at least 32 bytes of randomness).

    Raises:
        ValueError: The secret is shorter than 32 bytes.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the session secret must be at least 32 bytes")
        # Keyed once: each signature starts from a copy of it (cheaper than keying anew), of
        # OpenSSL's own object when the hmac module has one (cheaper than its Python wrapper).
        keyed = hmac.new(secret, digestmod=hashlib.sha256)
        self._keyed: Any = getattr(keyed, "_hmac", None) or keyed

    def _mac(self, uid: bytes, field: str, payload: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(b"%b\x00%b\x00%b" % (uid, field.encode("utf-8"), payload))
        digest: bytes = mac.digest()
        return digest

    def encode(self, uid: bytes, field: str, value: Any, session: Any, site: Any) -> bytes:
        """Pickle and sign ``value``, kept in ``field`` of session ``uid``.

        Raises:
            UnstorableValue: ``value`` cannot be pickled.
        """
        return self.sign(uid, field, self.pickle(field, value, session, site))

    def pickle(self, field: str, value: Any, session: Any, site: Any) -> bytes:
        """``value`` pickled, unsigned (its session and site by reference: see the module).

        Raises:
            UnstorableValue: ``value`` cannot be pickled.
        """
        if type(value) in _PLAIN:
            # Nothing in it can be the session or the site: the same bytes, made faster.
            return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        buffer = io.BytesIO()
        try:
            _Pickler(buffer, {id(session): "session", id(site): "site"}).dump(value)
        except Exception as error:
            raise UnstorableValue(field, error) from error
        return buffer.getvalue()

    def sign(self, uid: bytes, field: str, payload: bytes) -> bytes:
        """The field as stored: ``payload`` (from :meth:`pickle`) behind its signature."""
        return self._mac(uid, field, payload) + payload

    @staticmethod
    def holds(data: bytes, payload: bytes) -> bool:
        """Whether stored field ``data`` (signed by this codec) carries ``payload``."""
        return len(data) == _MAC_SIZE + len(payload) and data.endswith(payload)

    def decode(self, uid: bytes, field: str, data: bytes, session: Any, site: Any) -> Any:
        """Check the signature of ``data``, then unpickle it.

        Raises:
            ForgedField: The signature does not match (the data was not written by a site
                sharing this secret, or belongs to another session or field).
        """
        mac, payload = data[:_MAC_SIZE], data[_MAC_SIZE:]
        if len(mac) < _MAC_SIZE or not hmac.compare_digest(mac, self._mac(uid, field, payload)):
            raise ForgedField(f"{describe_field(field)} of a session has a bad signature")
        if _BINPERSID not in payload:
            # No reference to the session or site in it (the opcode's byte is absent).
            return pickle.loads(payload)
        anchors = {"session": session, "site": site}
        return _Unpickler(io.BytesIO(payload), anchors).load()


def interface_name(interface: Any) -> str:
    """``module.Name`` of an interface (a zope Interface has no ``__qualname__``)."""
    name = getattr(interface, "__qualname__", None) or interface.__name__
    return f"{interface.__module__}.{name}"


def field_values(session: Any) -> dict[str, Any]:
    """Every value the application keeps in ``session``, by field name (see the module)."""
    unstored = session.unstoredAttributes
    fields: dict[str, Any] = {
        "a:" + name: value
        for name, value in vars(session).items()
        if name[0] != "_" and name not in unstored
    }
    if session._values:
        for key, value in session._values.items():
            fields[_key_field(key)] = value
    if session._adapterCache:
        for interface, component in session._adapterCache.items():
            fields["c:" + interface_name(interface)] = component
    if session._stored_components:
        for name, component in session._stored_components.items():
            fields.setdefault("c:" + name, component)  # not asked for here yet, still there
    if session.sessionNamespaces:
        for name, value in session.sessionNamespaces.items():
            fields["n:" + name] = value
    return fields


def _key_field(key: Any) -> str:
    if isinstance(key, str):
        return "k:" + key
    return "K:" + pickle.dumps(key, protocol=pickle.HIGHEST_PROTOCOL).hex()


def set_field(session: Any, field: str, value: Any) -> None:
    """Put ``value`` back where ``field`` says it lives in ``session``.

    A component waits in ``session._stored_components`` until code asks for its interface
    (the interface object is the process's own: it cannot be named from the store alone).
    """
    kind, _, name = field.partition(":")
    if kind == "a":
        setattr(session, name, value)
    elif kind == "k":
        session._values[name] = value
    elif kind == "K":
        session._values[pickle.loads(bytes.fromhex(name))] = value  # signed
    elif kind == "c":
        session._stored_components[name] = value
    elif kind == "n":
        session.sessionNamespaces[name] = value


def unset_field(session: Any, field: str) -> None:
    """Remove the value ``field`` names from ``session`` (nothing if it is not there)."""
    kind, _, name = field.partition(":")
    if kind == "a":
        session.__dict__.pop(name, None)
    elif kind == "k":
        session._values.pop(name, None)
    elif kind == "K":
        session._values.pop(pickle.loads(bytes.fromhex(name)), None)  # signed
    elif kind == "c":
        session._stored_components.pop(name, None)
        for interface in list(session._adapterCache):
            if interface_name(interface) == name:
                del session._adapterCache[interface]
    elif kind == "n":
        session.sessionNamespaces.pop(name, None)
