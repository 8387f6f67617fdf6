"""JSON logs: :func:`eventAsJSON`, :func:`eventFromJSON`, :func:`jsonFileLogObserver` and
:func:`eventsFromJSONLogFile`, in Twisted's format so either can read the other's files.

An event is flattened first (see :mod:`._flatten`), so a loaded event formats to the same
text. Levels are written as ``{"name": "info", "__class_uuid__": ...}`` and failures as a dict
of their type, message and frames (with Twisted's UUIDs), and both load back: a level as the
:class:`~treadle.logger.LogLevel`, a failure as a :class:`~treadle.python.failure.Failure`
whose exception type is a stand-in class of the same module and name and whose
``getTraceback()`` gives the original text. Any other value JSON cannot hold is written as
``{"unpersistable": true}``; bytes are written as text (Latin-1).

The file format is a record separator (``\\x1e``, RFC 7464) before each event and a newline
after it; files without separators (one event per line) are read too.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from typing import IO, Any
from uuid import UUID

from treadle.logger._file import FileLogObserver
from treadle.logger._flatten import flattenEvent
from treadle.logger._interfaces import LogEvent
from treadle.logger._levels import LogLevel
from treadle.logger._logger import Logger
from treadle.python.failure import Failure

__all__ = ["eventAsJSON", "eventFromJSON", "eventsFromJSONLogFile", "jsonFileLogObserver"]

log = Logger()

_LEVEL_UUID = UUID("02E59486-F24D-46AD-8224-3ACDF2A5732A")
_FAILURE_UUID = UUID("E76887E2-20ED-49BF-A8F8-BA25CC586F2D")
_RECORD_SEPARATOR = b"\x1e"


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def failureAsJSON(failure: Failure) -> dict[str, Any]:
    """Return a JSON-able dict for ``failure`` (Twisted's keys, plus ``traceback`` text)."""
    frames: list[list[Any]] = [
        [frame.name, frame.filename, frame.lineno, [], []]
        for frame in traceback.extract_tb(failure.tb)
    ]
    return {
        "type": {"__module__": failure.type.__module__, "__name__": failure.type.__name__},
        "value": failure.getErrorMessage(),
        "tb": None,
        "frames": frames,
        "stack": [],
        "parents": [_qualified(cls) for cls in failure.type.__mro__],
        "count": 0,
        "pickled": 1,
        "captureVars": False,
        "traceback": failure.getTraceback(),
    }


class _LoadedFailure(Failure):
    """A failure read back from JSON: the original traceback text, no live frames."""

    __slots__ = ("_text",)
    _text: str

    def getTraceback(self, elideFrameworkCode: int = 0, detail: str = "default") -> str:
        """Return the traceback text as it was written."""
        return self._text


def _text_from_frames(frames: list[Any], type_name: str, message: str) -> str:
    lines = ["Traceback (most recent call last):\n"]
    for frame in frames:
        name, filename, lineno = frame[0], frame[1], frame[2]
        lines.append(f'  File "{filename}", line {lineno}, in {name}\n')
    lines.append(f"{type_name}: {message}\n" if message else f"{type_name}\n")
    return "".join(lines) if frames else lines[-1]


def failureFromJSON(failureDict: dict[str, Any]) -> Failure:
    """Return a :class:`Failure` from :func:`failureAsJSON` output (or Twisted's)."""
    info = failureDict.get("type") or {}
    name = str(info.get("__name__", "Exception"))
    module = str(info.get("__module__", "builtins"))
    value = failureDict.get("value")
    message = value if isinstance(value, str) else ""
    stand_in = type(name, (Exception,), {"__module__": module})
    failure = _LoadedFailure(stand_in(message))
    text = failureDict.get("traceback")
    if not isinstance(text, str):
        shown = name if module in ("builtins", "__main__") else f"{module}.{name}"
        text = _text_from_frames(list(failureDict.get("frames") or []), shown, message)
    failure._text = text
    return failure


def _save(value: object) -> Any:
    if isinstance(value, bytes):
        return value.decode("charmap")
    if isinstance(value, LogLevel):
        return {"name": value.name, "__class_uuid__": str(_LEVEL_UUID)}
    if isinstance(value, Failure):
        return {**failureAsJSON(value), "__class_uuid__": str(_FAILURE_UUID)}
    return {"unpersistable": True}


def _load(mapping: dict[str, Any]) -> object:
    kind = mapping.get("__class_uuid__")
    if kind is None:
        return mapping
    try:
        uuid = UUID(kind)
    except (TypeError, ValueError):
        return mapping
    if uuid == _LEVEL_UUID:
        return LogLevel.__members__.get(mapping.get("name"))  # type: ignore[arg-type]
    if uuid == _FAILURE_UUID:
        return failureFromJSON(mapping)
    return mapping


def eventAsJSON(event: LogEvent) -> str:
    """Return ``event`` as one line of JSON (flattening ``event`` in place first).

    Keys that are not strings are left out; values JSON cannot hold become
    ``{"unpersistable": true}``.
    """
    flattenEvent(event)
    return json.dumps(event, default=_save, skipkeys=True)


def eventFromJSON(eventText: str) -> LogEvent:
    """Return the event written by :func:`eventAsJSON`.

    Raises:
        ValueError: ``eventText`` is not JSON.
    """
    event: LogEvent = json.loads(eventText, object_hook=_load)
    return event


def jsonFileLogObserver(outFile: IO[Any], recordSeparator: str = "\x1e") -> FileLogObserver:
    """Return an observer writing each event as JSON to ``outFile``.

    Args:
        outFile: A text or binary file.
        recordSeparator: Written before each record; ``""`` gives plain JSON lines.
    """
    return FileLogObserver(outFile, lambda event: f"{recordSeparator}{eventAsJSON(event)}\n")


def _as_bytes(data: str | bytes) -> bytes:
    return data if isinstance(data, bytes) else data.encode("utf-8")


def _event_from_record(record: bytes) -> LogEvent | None:
    try:
        text = record.decode("utf-8")
    except UnicodeDecodeError:
        log.error("Unable to decode UTF-8 for JSON record: {record!r}", record=record)
        return None
    try:
        event = eventFromJSON(text)
    except ValueError:
        log.error("Unable to read JSON record: {record!r}", record=record)
        return None
    if not isinstance(event, dict):
        log.error("JSON record is not an event: {record!r}", record=record)
        return None
    return event


def eventsFromJSONLogFile(
    inFile: IO[Any], recordSeparator: str | None = None, bufferSize: int = 4096
) -> Iterator[LogEvent]:
    """Yield the events of a JSON log file, reading it ``bufferSize`` bytes at a time.

    Records that are not valid UTF-8 JSON (or, with separators, lack their final newline:
    a record cut off by a crash) are skipped and reported as error events.

    Args:
        inFile: A text or binary file opened for reading.
        recordSeparator: The separator; None detects it: ``\\x1e`` when the file starts
            with one, else one record per line.
        bufferSize: Bytes read at a time.
    """
    if recordSeparator is None:
        first = _as_bytes(inFile.read(1))
        separator = first if first == _RECORD_SEPARATOR else b""
    else:
        first = b""
        separator = _as_bytes(recordSeparator)
    newline_separated = separator == b""
    if newline_separated:
        separator = b"\n"
    buffer = bytearray(first)
    while True:
        data = inFile.read(bufferSize)
        if data:
            buffer += _as_bytes(data)
            records = buffer.split(separator)
            buffer = records.pop()
        else:
            records, buffer = [buffer], bytearray()
        for record in records:
            if not record.strip():
                continue
            if not newline_separated and not record.endswith(b"\n"):
                log.error("Unable to read truncated JSON record: {record!r}", record=bytes(record))
                continue
            event = _event_from_record(bytes(record))
            if event is not None:
                yield event
        if not data:
            return
