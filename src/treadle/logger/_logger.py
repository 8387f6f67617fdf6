""":class:`Logger`: what code logs with (``log = Logger(); log.info("got {n} items", n=3)``)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, Protocol

from treadle.logger._levels import InvalidLogLevelError, LogLevel
from treadle.logger._observer import globalLogPublisher
from treadle.python.failure import Failure

__all__ = ["Logger", "Operation"]


class Operation(Protocol):
    """What :meth:`Logger.failuresHandled` gives the ``with`` block: how it ended."""

    @property
    def succeeded(self) -> bool:
        """True once the block ended without an exception."""

    @property
    def failure(self) -> Failure | None:
        """The failure the block raised (and that was logged), or None."""

    @property
    def failed(self) -> bool:
        """True when the block raised."""


class _Handled:
    succeeded = False
    failure: Failure | None = None

    def __init__(self, log_failure: Any) -> None:
        self._log_failure = log_failure

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def __enter__(self) -> _Handled:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> bool:
        if exc_value is None:
            self.succeeded = True
            return True
        self.failure = Failure(exc_value, exc_type, traceback)
        self._log_failure(self.failure)
        return True


class Logger:
    """Emits events with a namespace and a source to an observer.

    Used as a module attribute (``log = Logger()``: the namespace is the module's name) or a
    class attribute, where it is a descriptor: ``self.log`` is a logger whose namespace is
    ``module.Class`` and whose source is the instance (the class, through the class).

    Each method takes a :meth:`str.format` string whose fields are the keyword arguments,
    kept in the event as they are (not formatted until an observer needs the text):
    ``log.info("{user} logged in from {peer.host}", user=name, peer=address)``. Events reach
    the observer — the global publisher by default, and through it :mod:`logging` (logger
    named after the namespace).

    Args:
        namespace: Dotted name of what logs; default: the calling module's ``__name__``.
        source: The object on whose behalf events are logged.
        observer: Receives the events; default :data:`~treadle.logger.globalLogPublisher`.
    """

    @staticmethod
    def _namespaceFromCallingContext() -> str:
        """Return the ``__name__`` of the module that called the caller."""
        try:
            return str(sys._getframe(2).f_globals["__name__"])
        except (KeyError, ValueError):
            return "<unknown>"

    def __init__(
        self, namespace: str | None = None, source: object = None, observer: Any = None
    ) -> None:
        self.namespace = self._namespaceFromCallingContext() if namespace is None else namespace
        self.source = source
        self.observer = globalLogPublisher if observer is None else observer

    def __get__(self, instance: object, owner: type | None = None) -> Logger:
        """Return a logger for the class (``module.Class``) with the instance as source."""
        if owner is None:
            owner = type(instance)
        source = owner if instance is None else instance
        return self.__class__(f"{owner.__module__}.{owner.__name__}", source, self.observer)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self.namespace!r}>"

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        """Emit an event at ``level`` with ``format`` and the fields ``kwargs``.

        A ``level`` that is not a :class:`LogLevel` is not emitted as such: a critical event
        reporting an :class:`InvalidLogLevelError` is emitted instead.
        """
        if not isinstance(level, LogLevel):
            self.failure(
                "Got invalid log level {invalidLevel!r} in {logger}.emit().",
                Failure(InvalidLogLevelError(level)),
                invalidLevel=level,
                logger=self,
            )
            return
        event = kwargs
        event.update(
            log_logger=self,
            log_level=level,
            log_namespace=self.namespace,
            log_source=self.source,
            log_format=format,
            log_time=time.time(),
        )
        trace = event.get("log_trace")
        if isinstance(trace, list):
            trace.append((self, self.observer))
        self.observer(event)

    def failure(
        self,
        format: str,
        failure: Failure | None = None,
        level: LogLevel = LogLevel.critical,
        **kwargs: object,
    ) -> None:
        """Emit an event carrying a failure (``log_failure``), critical by default.

        Args:
            format: The message.
            failure: The failure; default: the exception being handled.
            level: The level.
            **kwargs: The fields of ``format``.

        Raises:
            NoCurrentExceptionError: ``failure`` was not given and no exception is being
                handled.
        """
        if failure is None:
            failure = Failure()
        self.emit(level, format, log_failure=failure, **kwargs)

    def debug(self, format: str | None = None, **kwargs: object) -> None:
        """Emit a debug event."""
        self.emit(LogLevel.debug, format, **kwargs)

    def info(self, format: str | None = None, **kwargs: object) -> None:
        """Emit an info event."""
        self.emit(LogLevel.info, format, **kwargs)

    def warn(self, format: str | None = None, **kwargs: object) -> None:
        """Emit a warning event."""
        self.emit(LogLevel.warn, format, **kwargs)

    def error(self, format: str | None = None, **kwargs: object) -> None:
        """Emit an error event."""
        self.emit(LogLevel.error, format, **kwargs)

    def critical(self, format: str | None = None, **kwargs: object) -> None:
        """Emit a critical event."""
        self.emit(LogLevel.critical, format, **kwargs)

    def failuresHandled(
        self, format: str, level: LogLevel = LogLevel.critical, **kwargs: object
    ) -> _Handled:
        """Return a context manager that logs (and swallows) an exception of its block.

        ``with log.failuresHandled("while saving {name}", name=n) as op: save()`` logs a
        failure event if ``save`` raises; afterwards ``op.succeeded``, ``op.failed`` and
        ``op.failure`` tell how it went.
        """
        return _Handled(lambda failure: self.failure(format, failure, level, **kwargs))

    def failureHandler(self, staticMessage: str, level: LogLevel = LogLevel.critical) -> _Handled:
        """Like :meth:`failuresHandled` with a fixed message, for reuse in a hot loop."""
        return _Handled(lambda failure: self.failure(staticMessage, failure, level))


_log = Logger(namespace=__name__)


def _loggerFor(obj: object) -> Logger:
    """Return the logger ``obj``'s methods would get from a ``log = Logger()`` attribute."""
    return _log.__get__(obj, obj.__class__)
