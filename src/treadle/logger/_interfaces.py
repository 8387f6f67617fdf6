# mypy: disable-error-code="misc, no-untyped-def"
# (zope interfaces declare methods without self and derive from an untyped base.)
"""What an observer is: :class:`ILogObserver`, and the event it receives (:data:`LogEvent`)."""

from __future__ import annotations

from typing import Any, TypeAlias

from zope.interface import Interface

__all__ = ["ILogObserver", "LogEvent"]

#: An event: a dict of ``log_*`` keys (``log_level``, ``log_namespace``, ``log_format``,
#: ``log_time``, ``log_source``, ``log_logger``, maybe ``log_failure``) plus the fields named
#: in its format.
LogEvent: TypeAlias = dict[str, Any]


class ILogObserver(Interface):
    """Something that is given every event published to it.

    Any callable taking one event dict will do; declaring the interface only documents it.
    """

    def __call__(event):
        """Handle ``event``; must not raise (a publisher reports and survives it if it does)."""
