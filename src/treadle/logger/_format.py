"""Turning events into text: :func:`formatEvent`, :func:`eventAsText`, :func:`formatTime`.

An event's text is its ``log_format`` (a :meth:`str.format` string) filled from the event's
own keys. As in Twisted, a field may call a method: ``"{request.getHeader(b'host')}"`` is not
allowed, but ``"{count()}"`` and ``"{obj.describe()}"`` call ``count`` and ``obj.describe``
with no arguments. Formatting never raises: an event that cannot be formatted gives a line
saying so, with the event's repr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from string import Formatter
from typing import Any

from treadle.logger._flatten import flatFormat
from treadle.logger._interfaces import LogEvent

__all__ = [
    "eventAsText",
    "formatEvent",
    "formatEventAsClassicLogText",
    "formatTime",
    "formatUnformattableEvent",
    "formatWithCall",
    "timeFormatRFC3339",
]

#: The default time format of text log files: ``2024-05-01T12:30:00+0200``.
timeFormatRFC3339 = "%Y-%m-%dT%H:%M:%S%z"

_formatter = Formatter()


def formatEvent(event: LogEvent) -> str:
    """Return the text of ``event``'s ``log_format``, without time, system or traceback.

    Returns:
        The text; ``""`` when the event has no format; a line beginning ``Unable to format
        event`` when a field is missing or raises.
    """
    return eventAsText(event, includeTraceback=False, includeTimestamp=False, includeSystem=False)


def formatUnformattableEvent(event: LogEvent, error: BaseException) -> str:
    """Return the text that stands for an event whose format failed with ``error``."""
    try:
        return f"Unable to format event {event!r}: {error}"
    except BaseException:
        items = ", ".join(f"{_safe_repr(k)} = {_safe_repr(v)}" for k, v in event.items())
        return (
            f"MESSAGE LOST: unformattable object logged: {_safe_repr(error)}\n"
            f"Recoverable data: {items}"
        )


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except BaseException:
        return f"<unrepresentable {type(value).__name__} object>"


class _FixedOffset(tzinfo):
    # The local offset at one instant. %Z gives "UTC+0100", as Twisted's zone names itself
    # (datetime.timezone would say "UTC+01:00").
    def __init__(self, offset: timedelta) -> None:
        self._offset = offset

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return self._offset

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        sign = "-" if self._offset < timedelta(0) else "+"
        minutes = abs(self._offset) // timedelta(minutes=1)
        return f"UTC{sign}{minutes // 60:02d}{minutes % 60:02d}"


def formatTime(
    when: float | None, timeFormat: str | None = timeFormatRFC3339, default: str = "-"
) -> str:
    """Format a POSIX timestamp in local time.

    Args:
        when: Seconds since the epoch, or None.
        timeFormat: A :meth:`~datetime.datetime.strftime` format; ``%z`` gives the local
            offset at that instant (``+0200``).
        default: What to return when ``when`` or ``timeFormat`` is None.
    """
    if when is None or timeFormat is None:
        return default
    local = datetime.fromtimestamp(when)
    utc = datetime.fromtimestamp(when, UTC).replace(tzinfo=None)
    return local.replace(tzinfo=_FixedOffset(local - utc)).strftime(timeFormat)


class _Callable:
    # Wraps a value met while resolving a field, so ``name()`` in an attribute or key calls.
    __slots__ = ("_wrapped",)

    def __init__(self, wrapped: object) -> None:
        self._wrapped = wrapped

    def __getattr__(self, name: str) -> object:
        return _resolve(name, lambda attribute: getattr(self._wrapped, attribute))

    def __getitem__(self, key: Any) -> object:
        return _Callable(self._wrapped[key])  # type: ignore[index]

    def __format__(self, spec: str) -> str:
        return format(self._wrapped, spec)

    def __repr__(self) -> str:
        return repr(self._wrapped)

    def __str__(self) -> str:
        return str(self._wrapped)


def _resolve(key: str, get: Callable[[str], Any]) -> _Callable:
    call = key.endswith("()")
    value = get(key[:-2] if call else key)
    return _Callable(value() if call else value)


class _CallMapping(Mapping[str, Any]):
    def __init__(self, event: Mapping[str, Any]) -> None:
        self._event = event

    def __iter__(self) -> Iterator[str]:
        return iter(self._event)

    def __len__(self) -> int:
        return len(self._event)

    def __getitem__(self, key: str) -> Any:
        return _resolve(key, self._event.__getitem__)


def formatWithCall(formatString: str, mapping: Mapping[str, Any]) -> str:
    """Format ``formatString`` from ``mapping``, calling fields written ``name()``.

    Raises:
        KeyError, AttributeError, ValueError: A field is missing or badly written.
    """
    return str(_formatter.vformat(formatString, (), _CallMapping(mapping)))


def _format_event(event: LogEvent) -> str:
    try:
        if "log_flattened" in event:
            return flatFormat(event)
        log_format = event.get("log_format")
        if log_format is None:
            return ""
        if isinstance(log_format, bytes):
            log_format = log_format.decode("utf-8")
        elif not isinstance(log_format, str):
            raise TypeError(f"Log format must be str, not {log_format!r}")
        return formatWithCall(log_format, event)
    except BaseException as e:
        return formatUnformattableEvent(event, e)


def _format_traceback(failure: Any) -> str:
    try:
        return str(failure.getTraceback())
    except BaseException as e:
        return f"(UNABLE TO OBTAIN TRACEBACK FROM EVENT):{e}"


def formatSystem(event: LogEvent) -> str:
    """Return what goes between the brackets of a log line: ``log_system``, else
    ``namespace#level`` (``-`` for what is missing)."""
    system = event.get("log_system")
    if system is not None:
        try:
            return str(system)
        except Exception:
            return "UNFORMATTABLE"
    level = event.get("log_level")
    level_name = "-" if level is None else getattr(level, "name", str(level))
    return f"{event.get('log_namespace', '-')}#{level_name}"


def eventAsText(
    event: LogEvent,
    includeTraceback: bool = True,
    includeTimestamp: bool = True,
    includeSystem: bool = True,
    formatTime: Callable[[float | None], str] = formatTime,
) -> str:
    """Return ``event`` as text: ``time [system] message``, then its traceback if any.

    Args:
        event: The event.
        includeTraceback: Append the traceback of ``log_failure`` on the following lines.
        includeTimestamp: Start with ``formatTime(event["log_time"])``.
        includeSystem: Then ``[log_system]`` (or ``[namespace#level]``).
        formatTime: Formats the timestamp (None when the event has no time).

    Returns:
        The text, or ``""`` when the event has neither message nor traceback (the time and
        system are then left out too).
    """
    text = _format_event(event)
    if includeTraceback and "log_failure" in event:
        text = "\n".join((text, _format_traceback(event["log_failure"])))
    if not text:
        return text
    stamp = formatTime(event.get("log_time")) + " " if includeTimestamp else ""
    system = f"[{formatSystem(event)}] " if includeSystem else ""
    return f"{stamp}{system}{text}"


def formatEventAsClassicLogText(
    event: LogEvent, formatTime: Callable[[float | None], str] = formatTime
) -> str | None:
    """Return one line of a text log file: ``time [system] message\\n``.

    Continuation lines (a multi-line message, a traceback) are indented with a tab, so each
    event still starts a line of its own.

    Returns:
        The line with its newline, or None for an event with no text.
    """
    text = eventAsText(event, formatTime=formatTime)
    if not text:
        return None
    return text.replace("\n", "\n\t") + "\n"
