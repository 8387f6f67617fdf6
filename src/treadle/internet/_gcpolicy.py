"""The cyclic garbage collector's thresholds while ``reactor.run()`` serves.

A server holding thousands of pending responses keeps tens of thousands of tracked objects
alive for as long as each waits (a ``deferLater`` of one second: the request, its channel,
headers, Deferred, timer...). Python's default thresholds ``(700, 10, 10)`` then collect the
youngest generation every few dozen requests, and every second or so walk the whole heap: with
10,000 pending requests, measured on 2026-12-05 (bench/run.py's delayed scenario), ten
full collections of up to 135 ms in 7.5 s, about 15 µs of collector per request, and a p99
latency of 1.24 s where nginx's is 1.03 s. With :data:`SERVING_THRESHOLDS` the same load
made one full collection, and p99 fell to 1.10 s at the same throughput.

The thresholds are raised only while the loop runs, only when the program left Python's
defaults (one that chose its own keeps them), never when ``TREADLE_GC=default`` is set, and
put back when ``run()`` returns unless the program changed them meanwhile. Twisted's reactor
leaves the collector alone: this is a difference, listed in the README.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from typing import Final

__all__ = ["DEFAULT_THRESHOLDS", "ENV", "SERVING_THRESHOLDS", "serving_thresholds"]

#: Python's own thresholds (``gc.get_threshold()`` of a fresh interpreter).
DEFAULT_THRESHOLDS: Final = (700, 10, 10)

#: The thresholds while the reactor serves: the youngest generation collected ten times less
#: often (each collection then sees a response's short-lived objects already freed by
#: reference counting), the oldest only after a hundred middle ones rather than ten.
SERVING_THRESHOLDS: Final = (7000, 20, 100)

#: Set to ``default`` to keep Python's thresholds while the reactor runs.
ENV: Final = "TREADLE_GC"


@contextlib.contextmanager
def serving_thresholds() -> Iterator[None]:
    """Raise the collector's thresholds for the block, as the module docstring says."""
    before = gc.get_threshold()
    if before != DEFAULT_THRESHOLDS or os.environ.get(ENV, "") == "default":
        yield
        return
    gc.set_threshold(*SERVING_THRESHOLDS)
    try:
        yield
    finally:
        if gc.get_threshold() == SERVING_THRESHOLDS:
            gc.set_threshold(*before)
