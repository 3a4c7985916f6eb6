"""Cardinality guard: a per-label budget of distinct values.

Once a label has seen its budget of distinct (sanitised) values, new values
become ``contract.OVERFLOW_VALUE`` and the ``on_overflow`` callback runs (it
increments ``llm_label_overflow_total{label}``). Memory stays flat however many
distinct values arrive: the raw value -> label value cache (which also
remembers recent overflowed values, so repeated ones stay on the fast path) is
bounded and simply cleared when full.
"""

from __future__ import annotations

from typing import Callable

from . import contract, normalise
from .locks import new_lock

_OVERFLOW = contract.OVERFLOW_VALUE

DEFAULT_LIMITS: dict[str, int] = {"provider": 20, "model": 100, "feature": 200, "evaluator": 20}

#: Sanitisers per label; labels not listed use ``normalise.sanitise``.
_SANITISERS: dict[str, Callable[[object], str]] = {"provider": normalise.provider}


class _Budget:
    __slots__ = ("label", "limit", "values", "cache", "cache_max", "sanitise")

    def __init__(self, label: str, limit: int) -> None:
        self.label = label
        self.limit = limit
        self.values: set[str] = set()
        # raw value -> accepted label value; the hot path is one dict lookup
        self.cache: dict[object, str] = {}
        self.cache_max = max(4 * limit, 1024)
        self.sanitise = _SANITISERS.get(label, normalise.sanitise)


class LabelGuard:
    """Bounds the distinct values of free-form labels (provider, model, feature, ...)."""

    def __init__(self, limits: dict[str, int] | None = None,
                 on_overflow: Callable[[str], None] | None = None) -> None:
        merged = dict(DEFAULT_LIMITS)
        for label, limit in (limits or {}).items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"label limit for {label!r} must be an int >= 1, got {limit!r}")
            merged[label] = limit
        self.limits = merged
        self._budgets = {label: _Budget(label, limit) for label, limit in merged.items()}
        self._on_overflow = on_overflow
        self._lock = new_lock()

    def resolve(self, label: str, value: object) -> str:
        """The label value to record for ``value`` (sanitised, or the overflow value)."""
        budget = self._budgets.get(label)
        if budget is None:
            return normalise.sanitise(value)
        try:
            hit = budget.cache.get(value)
        except TypeError:  # unhashable: sanitise its str()
            hit = None
            value = str(value)
        if hit is not None:
            if hit is _OVERFLOW and self._on_overflow is not None:
                self._on_overflow(label)
            return hit
        return self._admit(budget, value)

    def _admit(self, budget: _Budget, value: object) -> str:
        clean = budget.sanitise(value)
        values = budget.values
        if len(values) >= budget.limit and clean not in values:
            # Budget spent: the set never changes again, so no lock is needed.
            cache = budget.cache
            if len(cache) >= budget.cache_max:
                cache.clear()
            cache[value] = _OVERFLOW
            if self._on_overflow is not None:
                self._on_overflow(budget.label)
            return _OVERFLOW
        with self._lock:
            if clean not in budget.values:
                if len(budget.values) >= budget.limit:
                    overflow = True
                else:
                    budget.values.add(clean)
                    overflow = False
            else:
                overflow = False
            if len(budget.cache) >= budget.cache_max:
                # Bounded: forget remembered overflow values (accepted ones are
                # at most `limit` distinct and get re-admitted cheaply).
                budget.cache.clear()
            budget.cache[value] = _OVERFLOW if overflow else clean
        if overflow:
            if self._on_overflow is not None:
                self._on_overflow(budget.label)
            return contract.OVERFLOW_VALUE
        return clean

    def distinct(self, label: str) -> int:
        """Number of distinct values admitted for ``label``."""
        budget = self._budgets.get(label)
        return len(budget.values) if budget else 0
