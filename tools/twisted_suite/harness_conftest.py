import asyncio
import types

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
from twisted.internet import asyncioreactor

asyncioreactor.install(loop)
import twisted.internet.defer as twdefer
import twisted.python.failure as twf
import twisted.trial._asynctest as a
import twisted.trial._synctest as s

import treadle.internet.defer as d
import treadle.python.failure as f
from treadle.internet import reactor as treactor

treactor._loop = loop
s.ensureDeferred = d.ensureDeferred
s.Deferred = d.Deferred


class _Meta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, (twf.Failure, f.Failure))


class AnyFailure(twf.Failure, metaclass=_Meta):
    pass


s.failure = types.SimpleNamespace(Failure=AnyFailure)


def _to_twisted(result):
    if isinstance(result, d.Deferred):
        tw = twdefer.Deferred()
        result.addCallbacks(
            tw.callback,
            lambda fail: tw.errback(twf.Failure(fail.value, fail.type, fail.value.__traceback__)),
        )
        return tw
    return result


class _Defer(types.ModuleType):
    def __getattr__(self, name):
        return getattr(twdefer, name)

    @staticmethod
    def maybeDeferred(f, *args, **kw):
        return twdefer.maybeDeferred(lambda: _to_twisted(f(*args, **kw)))


a.defer = _Defer("defer")

# --- Log bridge: trial's flushLoggedErrors watches Twisted's log; treadle logs to its own.
# Every error event of treadle's global publisher (a `log_failure`, or a legacy isError event
# with a `failure`) is re-published on Twisted's global publisher, with the same Failure
# object (so `flushLoggedErrors(...) == [theFailure]` holds) and the legacy keys trial reads.
import twisted.logger as _twlogger

import treadle.logger as _trlogger


class _BridgedFailure(twf.Failure):
    """A Twisted Failure (so pytest can show an unflushed one's traceback) standing for a
    treadle Failure: equal to it, so `flushLoggedErrors(E) == [theTreadleFailure]` holds."""

    def __eq__(self, other):
        return other is self or other is self._treadle_failure

    def __hash__(self):
        return id(self._treadle_failure)


def _as_twisted_failure(fail):
    if isinstance(fail, twf.Failure):
        return fail
    try:
        tb = fail.getTracebackObject() if hasattr(fail, "getTracebackObject") else None
        bridged = _BridgedFailure(fail.value, fail.type, tb)
    except Exception:
        return fail
    bridged._treadle_failure = fail
    return bridged


def _bridge_to_twisted(event):
    fail = event.get("log_failure")
    if fail is None and event.get("isError") and event.get("failure") is not None:
        fail = event["failure"]
    if fail is None:
        return
    fail = _as_twisted_failure(fail)
    copy = {k: v for k, v in event.items() if k not in ("log_logger", "log_trace")}
    copy["log_failure"] = copy["failure"] = fail
    copy["isError"] = 1
    copy.setdefault("why", None)
    copy.setdefault("log_format", "")
    copy["log_namespace"] = "treadle-bridge:" + str(event.get("log_namespace"))
    level = getattr(event.get("log_level"), "name", "error")
    try:
        copy["log_level"] = _twlogger.LogLevel.levelWithName(level)
    except Exception:
        copy["log_level"] = _twlogger.LogLevel.error
    _twlogger.globalLogPublisher(copy)


import os as _os

if not _os.environ.get("NO_TREADLE_LOG_BRIDGE"):  # set it to see the numbers without the bridge
    _trlogger.globalLogPublisher.addObserver(_bridge_to_twisted)
