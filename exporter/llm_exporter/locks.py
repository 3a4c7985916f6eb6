"""Fork safety: every lock the exporter owns is reset in a forked child.

Why: gunicorn ``--preload``, Celery prefork and ``multiprocessing`` (fork start method)
fork a running app. A lock that another thread held at the moment of the fork stays
held forever in the child (that thread does not exist there), so the child's first
recording would deadlock.

``new_lock()`` / ``new_rlock()`` return plain ``threading`` locks (no cost on the hot
path: no wrapper) and remember them in a ``WeakSet``. One
``os.register_at_fork(after_in_child=...)`` hook re-initialises every remembered lock
*in place* (so references copied elsewhere stay valid), then runs the callbacks
registered with ``at_fork_in_child`` (used for prometheus-client's locks, below).

In-place re-initialisation uses the locks' ``_at_fork_reinit()`` (CPython >= 3.9; the
standard library resets its own locks with it). Where it is missing, a plain ``Lock``
held at the fork is released (any thread may release a ``Lock``); an ``RLock`` cannot
be, which is logged once in the child.

prometheus-client's locks are not ours but our recording takes them:
``reset_client_locks`` resets the locks of the metric families and registries we use
(family ``_lock``, each child's value ``_lock``, the registry ``_lock``) and
``reset_multiprocess_value_lock`` the one lock that guards every value in
multi-process mode (a local of ``prometheus_client.values.MultiProcessValue``, found
through the closure of ``MmapedValue.inc``). Both use private names, checked with
prometheus-client 0.20 and 0.26; if they are not found, the child logs one warning
(docs/exporter.md, "Forking").
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Callable, Iterable, TypeVar

logger = logging.getLogger("llm_exporter")

_LOCK_TYPE = type(threading.Lock())
_RLOCK_TYPE = type(threading.RLock())

_tracked: weakref.WeakSet[Any] = weakref.WeakSet()
_callbacks: list[Callable[[], bool | None]] = []

L = TypeVar("L")


def track(lock: L) -> L:
    """Reset ``lock`` (a ``threading.Lock`` or ``RLock``; None: nothing) in forked children; returns it."""
    if lock is not None:
        _tracked.add(lock)
    return lock


def new_lock() -> threading.Lock:
    """A ``threading.Lock()`` that is reset (unlocked) in a forked child."""
    lock = threading.Lock()
    _tracked.add(lock)
    return lock


def new_rlock() -> threading.RLock:
    """A ``threading.RLock()`` that is reset (unowned) in a forked child."""
    lock = threading.RLock()
    _tracked.add(lock)
    return lock


def at_fork_in_child(callback: Callable[[], bool | None]) -> Callable[[], bool | None]:
    """Run ``callback()`` in every forked child, after the tracked locks are reset.

    It runs with only the forking thread alive. Returning False or raising means a lock
    could not be reset (logged once in the child).
    """
    _callbacks.append(callback)
    return callback


def reinit(lock: Any) -> bool:
    """Make ``lock`` unlocked and unowned, in place. False if that is not possible."""
    try:
        fresh = lock._at_fork_reinit
    except AttributeError:
        fresh = None
    if fresh is not None:
        fresh()
        return True
    if type(lock) is _LOCK_TYPE:  # any thread may release a plain Lock
        if lock.locked():
            lock.release()
        return True
    return False


def _reinit_attr(obj: Any, name: str) -> bool:
    lock = getattr(obj, name, None)
    return lock is None or reinit(lock)


def reset_client_locks(registry: Any, families: Iterable[Any]) -> bool:
    """Reset the locks of prometheus-client objects our recording uses (private names).

    ``registry._lock``; per family its ``_lock`` (taken by ``labels()``) and each child's
    locks (``_lock`` and the ``_lock`` of its values: ``_value``, ``_sum``, ``_buckets``;
    single-process ``MutexValue``s have one each). False if a lock could not be reset.
    """
    ok = _reinit_attr(registry, "_lock")
    for fam in families:
        ok = _reinit_attr(fam, "_lock") and ok
        children = getattr(fam, "_metrics", None)
        if not children:
            continue
        for child in list(children.values()):
            ok = _reinit_attr(child, "_lock") and ok
            for name in ("_value", "_sum"):
                ok = _reinit_attr(getattr(child, name, None), "_lock") and ok
            for value in getattr(child, "_buckets", ()):
                ok = _reinit_attr(value, "_lock") and ok
    return ok


def multiprocess_value_lock() -> Any:
    """The lock guarding every prometheus-client value in multi-process mode, or None
    (not in multi-process mode, or not found: its layout is private)."""
    from prometheus_client import values

    cls = values.ValueClass
    if getattr(cls, "_multiprocess", False) is not True:
        return None
    for cell in getattr(getattr(cls, "inc", None), "__closure__", None) or ():
        try:
            content = cell.cell_contents
        except ValueError:  # empty cell
            continue
        if type(content) in (_LOCK_TYPE, _RLOCK_TYPE):
            return content
    return None


def reset_multiprocess_value_lock() -> bool:
    """Reset prometheus-client's multi-process value lock. True if done or not needed."""
    from prometheus_client import values

    if getattr(values.ValueClass, "_multiprocess", False) is not True:
        return True
    lock = multiprocess_value_lock()
    return lock is not None and reinit(lock)


def _warn(what: str) -> None:
    try:
        import prometheus_client

        version = getattr(prometheus_client, "__version__", None)
        if version is None:
            from importlib.metadata import version as _v

            version = _v("prometheus-client")
    except Exception:
        version = "unknown"
    try:
        logger.warning("llm_exporter: after fork, could not reset %s (prometheus-client %s); a fork while "
                       "other threads record may deadlock this process: fork before starting threads "
                       "(docs/exporter.md, 'Forking')", what, version)
    except Exception:
        pass


def _after_fork_in_child() -> None:
    failed = 0
    for lock in list(_tracked):
        try:
            if not reinit(lock):
                failed += 1
        except Exception:
            failed += 1
    if failed:
        _warn(f"{failed} llm_exporter lock(s)")
    try:
        if not reset_multiprocess_value_lock():
            _warn("prometheus-client's multi-process value lock")
    except Exception:
        _warn("prometheus-client's multi-process value lock")
    for callback in list(_callbacks):
        try:
            ok = callback() is not False
        except Exception:
            ok = False
        if not ok:
            _warn(f"the locks reset by {getattr(callback, '__module__', '')}.{getattr(callback, '__qualname__', '')}")


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
