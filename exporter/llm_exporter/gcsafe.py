"""Finishing a call from a garbage-collector finalizer without deadlock.

A stream dropped without being closed is finished by a finalizer (a generator's close, a
``__del__``). The cyclic garbage collector runs finalizers at any allocation, also while this
thread is inside one of our metric updates, holding a lock that is not reentrant. Code that
takes metric locks runs inside ``section``; a record made meanwhile by this thread waits in a
per-thread list and runs as soon as the outermost section ends, in the same thread.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

_local = threading.local()


class _Section:
    """``with section:`` around code that holds metric locks (nestable, per thread)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _local.depth = getattr(_local, "depth", 0) + 1

    def __exit__(self, *exc: Any) -> None:
        depth = _local.depth - 1
        _local.depth = depth
        if depth == 0:
            waiting = getattr(_local, "waiting", None)
            while waiting:
                run(waiting.pop(0))


section = _Section()


def run(record: Callable[[], None]) -> None:
    """Run ``record`` (which must not raise) in a section now, or, if this thread is inside
    one already (a finalizer interrupted it), when that section ends."""
    if getattr(_local, "depth", 0):
        waiting = getattr(_local, "waiting", None)
        if waiting is None:
            waiting = _local.waiting = []
        waiting.append(record)
        return
    with section:
        record()
