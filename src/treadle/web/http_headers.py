"""``Headers``: a case-insensitive multimap of raw HTTP header values, as Twisted's.

Names are stored lowercased; values keep every occurrence in order. ``str`` names and values
are accepted and returned as ``str`` (ISO-8859-1 for names, UTF-8 for values, as in Twisted), so
code written for either flavour ports unchanged.

A request's headers stay as the parser read them, one flat list (see
:meth:`Headers._adopt_fields`), until they are changed or read as a whole: a pending request
then holds a tenth of what a dict of lists costs, and looking up a field scans that list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import overload

from mypy_extensions import mypyc_attr

__all__ = ["Headers", "InvalidHeaderName"]


class InvalidHeaderName(ValueError):
    """A header name given to set a value is not an RFC 9110 token (§5.1).

    A ``ValueError``, so code catching that keeps working.
    """


# Names whose canonical capitalisation is not simply "Each-Word-Capitalised".
_CANONICAL_EXCEPTIONS = {
    b"content-md5": b"Content-MD5",
    b"dnt": b"DNT",
    b"etag": b"ETag",
    b"p3p": b"P3P",
    b"te": b"TE",
    b"www-authenticate": b"WWW-Authenticate",
    b"x-xss-protection": b"X-XSS-Protection",
}
_canonical_cache: dict[bytes, bytes] = {}


def canonical_name(name: bytes) -> bytes:
    """Return a lowercased header name in its conventional capitalisation (``Content-Type``)."""
    found = _canonical_cache.get(name)
    if found is None:
        found = _CANONICAL_EXCEPTIONS.get(name) or b"-".join(
            part.capitalize() for part in name.split(b"-")
        )
        if len(_canonical_cache) < 1024:  # bounded: header names come from clients
            _canonical_cache[name] = found
    return found


def _encode_name(name: str | bytes) -> bytes:
    if isinstance(name, str):
        return name.lower().encode("iso-8859-1")
    return name.lower()


# RFC 9110 §5.6.2: field-name = token.
_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_names_checked: set[bytes] = set()


def _settable_name(name: str | bytes) -> bytes:
    """Encode a name a value is being set for; refuse anything but a token."""
    encoded = _encode_name(name)
    if encoded not in _names_checked:
        # A name with a colon, space, CR or LF would let data given to setHeader split the
        # response into headers (or a body) of the client's choosing.
        if not encoded or encoded.translate(None, _TOKEN):
            raise InvalidHeaderName(f"header name is not a token: {name!r}")
        if len(_names_checked) < 1024:  # bounded: names may come from clients (proxies)
            _names_checked.add(encoded)
    return encoded


def _encode_value(value: str | bytes) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    # A value carrying CR or LF would let the application split the response: refuse it
    # rather than emit a second header or body smuggled through user data. NUL is as
    # dangerous to recipients (RFC 9110 §5.5). Searched as ints (CR 13, LF 10, NUL 0): a bytes
    # needle first fails as an int inside bytes.__contains__ (a TypeError made and cleared).
    if 13 in value or 10 in value or 0 in value:
        raise ValueError(f"header value contains CR, LF or NUL: {value!r}")
    return value


@mypyc_attr(allow_interpreted_subclasses=True)
class Headers:
    """Case-insensitive header multimap.

    Args:
        rawHeaders: Optional mapping of header name to a sequence of values.
    """

    __slots__ = ("_dict", "_fields")

    def __init__(
        self, rawHeaders: Mapping[str | bytes, Sequence[str | bytes]] | None = None
    ) -> None:
        # The table, lowercased name -> values; None while a request's fields are still kept
        # as the parser read them (``_fields``), until something changes or lists them all.
        self._dict: dict[bytes, list[bytes]] | None = {}
        # A request's field lines, flat: name, value, name, value, ... (names lowercased).
        # A pending request keeps them so: a dict and a list per name cost about 290 bytes
        # for wrk's one field and over a kilobyte for a browser's ten, a flat list a tenth
        # of that; the usual reads (getRawHeaders, hasHeader) scan it without building more.
        self._fields: list[bytes] | None = None
        if rawHeaders:
            for name, values in rawHeaders.items():
                self.setRawHeaders(name, values)

    @property
    def _raw(self) -> dict[bytes, list[bytes]]:
        """The table as a dict (lowercased name -> values), made from the fields if need be."""
        raw = self._dict
        if raw is None:
            fields = self._fields
            raw = self._dict = {} if fields is None else _table_of(fields)
            self._fields = None
        return raw

    @_raw.setter
    def _raw(self, raw: dict[bytes, list[bytes]]) -> None:
        self._dict = raw
        self._fields = None

    @classmethod
    def _from_raw(cls, raw: dict[bytes, list[bytes]]) -> Headers:
        """Wrap an already lowercased dict without copying it (the parser's fast path)."""
        # Made through __init__ (an empty dict, dropped at once): a class mypyc compiles
        # has no way around it.
        headers = cls()
        headers._dict = raw
        return headers

    def _adopt_fields(self, fields: list[bytes]) -> None:
        """Hold a request's fields as the parser read them: flat, names lowercased."""
        self._fields = fields
        self._dict = None

    def _get(self, key: bytes) -> list[bytes] | None:
        """The values of ``key``, a lowercased name, or None (not a copy: do not change it)."""
        fields = self._fields
        if fields is None:
            return self._raw.get(key)
        return _values_in(fields, key)

    def _pairs(self) -> list[tuple[bytes, bytes]]:
        """Every field as a ``(lowercased name, value)`` pair: as received for a request's
        fields, else grouped by name in the order the names were first set."""
        pairs = []
        fields = self._fields
        if fields is not None:
            for i in range(0, len(fields), 2):
                pairs.append((fields[i], fields[i + 1]))
            return pairs
        for name, values in self._raw.items():
            for value in values:
                pairs.append((name, value))
        return pairs

    def _has(self, key: bytes) -> bool:
        """Whether a value is present for ``key``, a lowercased name."""
        fields = self._fields
        if fields is None:
            return key in self._raw
        return any(fields[i] == key for i in range(0, len(fields), 2))

    def hasHeader(self, name: str | bytes) -> bool:
        """Return True if at least one value is present for ``name``."""
        return self._has(_encode_name(name))

    def removeHeader(self, name: str | bytes) -> None:
        """Remove every value of ``name``; absent names are ignored."""
        self._raw.pop(_encode_name(name), None)

    def setRawHeaders(self, name: str | bytes, values: Sequence[str | bytes]) -> None:
        """Replace every value of ``name`` with ``values``.

        Raises:
            TypeError: ``values`` is a single string rather than a sequence of them.
            InvalidHeaderName: The name is not a token.
            ValueError: A value contains CR, LF or NUL.
        """
        if type(values) is list and len(values) == 1 and name in _names_checked:
            # The usual setHeader(b"etag", b"...") of a name already validated: only the
            # value needs its check (a str name never matches the set of bytes names).
            value = values[0]
            if type(value) is bytes and not (13 in value or 10 in value or 0 in value):
                self._raw[name] = [value]
                return
        if isinstance(values, str | bytes):
            raise TypeError(f"setRawHeaders expects a list of values, not {type(values).__name__}")
        self._raw[_settable_name(name)] = [_encode_value(v) for v in values]

    def addRawHeader(self, name: str | bytes, value: str | bytes) -> None:
        """Append one more value for ``name``.

        Raises:
            InvalidHeaderName: The name is not a token.
            ValueError: The value contains CR, LF or NUL.
        """
        self._raw.setdefault(_settable_name(name), []).append(_encode_value(value))

    @overload
    def getRawHeaders(self, name: bytes, default: None = None) -> list[bytes] | None: ...
    @overload
    def getRawHeaders(self, name: str, default: None = None) -> list[str] | None: ...
    @overload
    def getRawHeaders(self, name: bytes, default: list[bytes]) -> list[bytes]: ...
    @overload
    def getRawHeaders(self, name: str, default: list[str]) -> list[str]: ...

    def getRawHeaders(self, name: str | bytes, default: object = None) -> object:
        """Return every value of ``name`` in order, or ``default`` when absent.

        A ``str`` name gives ``str`` values (decoded as UTF-8), a ``bytes`` name ``bytes``.
        """
        fields = self._fields
        values = self._get(_encode_name(name))
        if values is None:
            return default
        if isinstance(name, str):
            return [v.decode("utf-8", "replace") for v in values]
        # A list made by the scan of the fields is already the caller's own.
        return values if fields is not None else list(values)

    def getAllRawHeaders(self) -> Iterator[tuple[bytes, list[bytes]]]:
        """Yield ``(canonical name, values)`` for every header."""
        for name, values in self._raw.items():
            yield canonical_name(name), values

    def copy(self) -> Headers:
        """Return an independent copy."""
        return Headers._from_raw({k: list(v) for k, v in self._raw.items()})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._raw == other._raw
        return NotImplemented

    def __repr__(self) -> str:
        """``Headers({b'Content-Type': [b'text/html']})``: canonical names, raw values, and
        the name of the class (a subclass shows its own)."""
        shown = {canonical_name(name): values for name, values in self._raw.items()}
        return f"{type(self).__name__}({shown!r})"


def _values_in(fields: list[bytes], key: bytes) -> list[bytes] | None:
    """Every value of ``key`` (lowercased) among flat fields (name, value, ...), in order;
    None when there is none (no list made for it)."""
    found: list[bytes] | None = None
    for i in range(0, len(fields), 2):
        if fields[i] == key:
            if found is None:
                found = [fields[i + 1]]
            else:
                found.append(fields[i + 1])
    return found


def _table_of(fields: list[bytes]) -> dict[bytes, list[bytes]]:
    """The dict of flat fields (name, value, ...): each name's values in order."""
    table: dict[bytes, list[bytes]] = {}
    for i in range(0, len(fields), 2):
        name = fields[i]
        values = table.get(name)
        if values is None:
            table[name] = [fields[i + 1]]
        else:
            values.append(fields[i + 1])
    return table
