"""``err`` and ``msg``: Twisted's legacy logging calls, writing to Python's ``logging``.

``from twisted.python import log; log.err(failure, "why")`` ports as
``from treadle import log``. Errors go to the ``treadle.error`` logger with their traceback,
messages to ``treadle.log`` at INFO.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from treadle.python.failure import Failure

__all__ = ["err", "msg"]

_errors = logging.getLogger("treadle.error")
_messages = logging.getLogger("treadle.log")


def err(_stuff: Any = None, _why: str | None = None, **kw: Any) -> None:
    """Log an error with its traceback.

    Args:
        _stuff: A :class:`~treadle.python.failure.Failure`, an exception, or None for the exception
            being handled.
        _why: What was being done when it happened.
    """
    why = _why or "Unhandled Error"
    if _stuff is None:
        _errors.error(why, exc_info=sys.exc_info())
    elif isinstance(_stuff, Failure):
        _errors.error(why, exc_info=(_stuff.type, _stuff.value, _stuff.tb))
    elif isinstance(_stuff, BaseException):
        _errors.error(why, exc_info=(type(_stuff), _stuff, _stuff.__traceback__))
    else:
        _errors.error("%s: %r", why, _stuff)


def msg(*message: Any, **kw: Any) -> None:
    """Log the space-joined ``message`` at INFO."""
    _messages.info(" ".join(str(m) for m in message))
