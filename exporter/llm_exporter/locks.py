"""Fork safety: no lock the exporter's recording takes is held in a forked child.

Why: gunicorn ``--preload``, Celery prefork and ``multiprocessing`` (fork start method) fork a
running app. A lock another thread held at the moment of the fork stays held forever in the
child (that thread does not exist there), so the child's first recording would deadlock.

* Our own locks: ``new_lock()`` / ``new_rlock()`` return plain ``threading`` locks (no wrapper,
  no cost per call) remembered in a ``WeakSet``; after a fork, in the child, every one is made
  unlocked again, in place (references copied elsewhere stay valid).
* prometheus-client's locks (a family's, a value's, and in multi-process mode the one lock
  guarding every value): we never reach into them. Every update we make to a prometheus-client
  object runs inside ``client_update``, which holds one lock of ours, and ``os.fork()`` takes that
  lock first (``register_at_fork(before=...)``): no thread is inside such an update while the
  process forks, so the child inherits those locks free.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

from . import gcsafe

logger = logging.getLogger("llm_exporter")

_LOCK_TYPE = type(threading.Lock())

_tracked: weakref.WeakSet[Any] = weakref.WeakSet()


def new_lock() -> threading.Lock:
    """A ``threading.Lock()`` that is unlocked in a forked child."""
    lock = threading.Lock()
    _tracked.add(lock)
    return lock


def new_rlock() -> threading.RLock:
    """A ``threading.RLock()`` that is unowned in a forked child."""
    lock = threading.RLock()
    _tracked.add(lock)
    return lock


def reinit(lock: Any) -> bool:
    """Make ``lock`` unlocked and unowned, in place; False if that is not possible.

    ``_at_fork_reinit`` is how CPython (3.9+) resets its own locks in a child; without it, a plain
    ``Lock`` is released (any thread may release one) and an ``RLock`` cannot be reset.
    """
    fresh = getattr(lock, "_at_fork_reinit", None)
    if fresh is not None:
        fresh()
        return True
    if type(lock) is _LOCK_TYPE:
        if lock.locked():
            lock.release()
        return True
    return False


_gate = new_lock()


class _ClientUpdate:
    """``with client_update:`` around an update of a prometheus-client object (a ``gcsafe``
    section too: a finalizer's record waits until it ends instead of taking the gate again)."""

    __slots__ = ()

    def __enter__(self) -> None:
        gcsafe.section.__enter__()
        _gate.acquire()

    def __exit__(self, *exc: Any) -> None:
        _gate.release()
        gcsafe.section.__exit__()


client_update = _ClientUpdate()


def _after_fork_in_child() -> None:
    failed = 0
    for lock in list(_tracked):
        try:
            if not reinit(lock):
                failed += 1
        except Exception:
            failed += 1
    if failed:
        try:
            logger.warning("llm_exporter: after fork, %d lock(s) could not be reset; a fork while other threads "
                           "record may deadlock this process (docs/exporter.md, 'Forking')", failed)
        except Exception:
            pass


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    # the gate is taken last before the fork and released first after it (hooks run in reverse)
    os.register_at_fork(before=_gate.acquire, after_in_parent=_gate.release, after_in_child=_after_fork_in_child)
