"""Flattening: keeping an event's formatted fields as text, so it formats after a JSON trip.

An event holds live objects; once serialised, ``{request.uri}`` or ``{count()}`` can no longer
be evaluated. :func:`flattenEvent` evaluates every field of ``log_format`` while the objects
are alive and stores the results under ``log_flattened``, keyed by the field as written
(``"name!conversion:spec"``); :func:`flatFormat` rebuilds the text from them.

Unlike Twisted, the stored text has the format spec applied (``{n:>5}`` keeps its padding), and
an event flattened once formats the same before and after: Twisted stored ``str(value)`` and
dropped the spec, so ``{n:>5}`` lost its padding in every observer that ran after a JSON one.
"""

from __future__ import annotations

from collections import defaultdict
from string import Formatter
from typing import Any

from treadle.logger._interfaces import LogEvent

__all__ = ["KeyFlattener", "extractField", "flatFormat", "flattenEvent"]

_formatter = Formatter()


class KeyFlattener:
    """Makes the ``log_flattened`` key of each field, numbering repeats (``a!s:``, ``a!s:/2``)."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = defaultdict(int)

    def flatKey(self, fieldName: str, formatSpec: str | None, conversion: str | None) -> str:
        """Return the key for one occurrence of a field.

        Args:
            fieldName: The field as written (``a.b``, ``x[0]``, ``f()``).
            formatSpec: Its format spec, or None.
            conversion: ``"r"``, ``"s"``, ``""`` or None.
        """
        key = f"{fieldName}!{conversion or ''}:{formatSpec or ''}"
        self.keys[key] += 1
        count = self.keys[key]
        return key if count == 1 else f"{key}/{count}"


def _field_value(fieldName: str, event: LogEvent) -> Any:
    call = fieldName.endswith("()")
    value = _formatter.get_field(fieldName[:-2] if call else fieldName, (), event)[0]
    return value() if call else value


def _formatted(value: Any, conversion: str | None, spec: str) -> str:
    # As str.format does: the spec applies to the value itself unless a conversion is given.
    if conversion == "r":
        value = repr(value)
    elif conversion == "s":
        value = str(value)
    return format(value, spec)


def flattenEvent(event: LogEvent) -> None:
    """Store the text of every field of ``event["log_format"]`` in ``event["log_flattened"]``.

    Each field is stored twice: formatted (key with its conversion, ``r`` or ``s``) and as
    the raw value (key with an empty conversion), as Twisted does. Events without a format
    are left alone; fields flattened already are not evaluated again; a field that cannot be
    evaluated (a missing key, a call that raises) is left out, so formatting the flattened
    event reports it as unformattable.
    """
    log_format = event.get("log_format")
    if log_format is None:
        return
    fields: dict[str, Any] = event.get("log_flattened", {})
    keys = KeyFlattener()
    for _text, fieldName, formatSpec, conversion in _formatter.parse(log_format):
        if fieldName is None:
            continue
        given = conversion
        conversion = "r" if conversion == "r" else "s"
        flat_key = keys.flatKey(fieldName, formatSpec, conversion)
        raw_key = keys.flatKey(fieldName, formatSpec, "")
        if flat_key in fields:
            continue
        try:
            value = _field_value(fieldName, event)
            fields[flat_key] = _formatted(value, given, formatSpec or "")
        except Exception:
            # Left out: formatting the event reports it as unformattable instead of the
            # observer (a JSON file, say) failing on it.
            continue
        fields[raw_key] = value
    if fields:
        event["log_flattened"] = fields


def extractField(field: str, event: LogEvent) -> Any:
    """Return the value of ``field`` (as written in a format, e.g. ``"a.b"``) in ``event``.

    Works on live and on flattened (JSON-loaded) events alike; flattens ``event`` if needed.

    Raises:
        KeyError: The event has no such field.
    """
    [[_text, fieldName, formatSpec, conversion]] = _formatter.parse("{" + field + "}")
    if fieldName is None:
        raise KeyError(field)
    key = KeyFlattener().flatKey(fieldName, formatSpec, conversion)
    if "log_flattened" not in event:
        flattenEvent(event)
    return event["log_flattened"][key]


def flatFormat(event: LogEvent) -> str:
    """Return the text of a flattened event, from ``log_format`` and ``log_flattened``."""
    values = event["log_flattened"]
    keys = KeyFlattener()
    parts = []
    for text, fieldName, formatSpec, conversion in _formatter.parse(event["log_format"]):
        parts.append(text)
        if fieldName is not None:
            key = keys.flatKey(fieldName, formatSpec, conversion or "s")
            parts.append(str(values[key]))
    return "".join(parts)
