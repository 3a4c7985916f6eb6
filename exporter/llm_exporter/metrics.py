"""The contract's metric families in one registry, and the per-label-set bundles.

``current()`` returns the active ``Metrics`` (created on first use in
``prometheus_client.REGISTRY`` unless ``configure(...)`` chose otherwise).

Hot path: labels are resolved through the cardinality guard once per call, then
``Metrics.bundle(key)`` returns the cached bundle for that (provider, model,
feature, operation) tuple; ``bundle.apply(...)`` makes all updates of one call.
Two storages behind that interface:

* single-process (the default): ``store.StoreBundle``, flat values with one lock
  per call, exposed by ``store.StoreCollector`` registered in the registry;
* multi-process (``PROMETHEUS_MULTIPROC_DIR``): ``ClientBundle``, bound
  prometheus-client children (their values live in the shared files).

Families not updated per call (feedback, rate limits, label overflow, info) are
prometheus-client objects in both modes (``Metrics.families``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

from . import __version__, contract, locks, normalise, pricing, store
from .errors import logger
from .labels import LabelGuard
from .locks import client_update
from .pricing import PriceTable

Key = tuple[str, str, str, str]

#: Raw label tuples remembered by ``Metrics.lookup`` (cleared when full: memory stays bounded).
_FAST_MAX = 8192


def multiprocess_mode() -> bool:
    """True when prometheus-client writes values to PROMETHEUS_MULTIPROC_DIR files.

    prometheus-client decides this when it is first imported, so the variable
    must be set before the app imports it.
    """
    return getattr(values.ValueClass, "__name__", "") == "MmapedValue"


@dataclass
class Settings:
    """What ``configure(...)`` controls. See ``config.configure`` for meanings."""

    registry: CollectorRegistry
    pricing_path: str | None = None
    label_limits: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, tuple[float, ...]] = field(default_factory=dict)
    created_series: bool = False
    refusal_detector: Any = None  # quality.RefusalDetector | None
    hedging_detector: Any = None  # quality.HedgingDetector | None
    exemplars: bool = True
    #: histograms per (provider, model, feature, operation) instead of (provider, model, operation)
    feature_histograms: bool = False


class _ClientInFlight:
    """``llm_in_flight_requests`` of one (provider, model, feature) in multi-process mode: a
    prometheus-client child, updated inside ``locks.client_update``."""

    __slots__ = ("_child",)

    def __init__(self, child: Any) -> None:
        self._child = child

    def inc(self) -> None:
        with client_update:
            self._child.inc()

    def dec(self) -> None:
        with client_update:
            self._child.dec()


class ClientBundle:
    """Bound prometheus-client children of one label tuple (multi-process mode)."""

    __slots__ = ("key", "_m", "duration", "cost", "retries", "in_flight", "_ttft", "_tpot", "_refusals", "_savings",
                 "_requests", "_errors", "_tokens", "_per_request", "_unpriced", "_token_children", "_size_children",
                 "_hkey")

    def __init__(self, m: Metrics, key: Key, unpriced_model: bool) -> None:
        """Called inside ``locks.client_update`` (prometheus-client objects are made)."""
        f = m.families
        self.key = key
        self._m = m
        # Created eagerly (series at 0 from the first call on, so rate() sees the
        # first increment); stream-only histograms and rarer counters are lazy.
        #: the histograms' label values: without the feature unless ``feature_histograms``
        self._hkey = key if m.settings.feature_histograms else (key[0], key[1], key[3])
        self.duration = f["llm_request_duration_seconds"].labels(*self._hkey)
        self.cost = f["llm_cost_usd_total"].labels(*key)
        self.retries = f["llm_retries_total"].labels(*key)
        self.in_flight = _ClientInFlight(f["llm_in_flight_requests"].labels(*key[:3]))
        self._ttft: Any = None
        self._tpot: Any = None
        self._refusals: Any = None
        self._savings: Any = None
        self._requests: dict[str, Any] = {}
        self._errors: dict[str, Any] = {}
        self._tokens: dict[str, Any] = {}
        self._per_request: dict[str, Any] = {}
        self._unpriced: Any = None
        self._token_children: tuple[Any, ...] | None = None
        self._size_children: tuple[Any, Any] | None = None
        if unpriced_model:
            self.unpriced()  # unpriced request model: expose the 0 so increase() works
        for reason in contract.EAGER_FINISH_REASONS:  # at 0, so rate() sees their first increment
            self.requests(reason)
        for error_type in contract.EAGER_ERROR_TYPES:
            self.errors(error_type)

    def apply(self, finish_reason: str, error_type: str | None, duration: float, ttft: float | None,
              tpot: float | None, parts: Any, cost: float | None, savings: float | None, unpriced: bool,
              retries: int, refused: bool, ex: dict[str, str] | None) -> None:
        """Every update of one finished call (see ``recorder.record``)."""
        with client_update:
            self._apply(finish_reason, error_type, duration, ttft, tpot, parts, cost, savings, unpriced, retries,
                        refused, ex)

    def _apply(self, finish_reason: str, error_type: str | None, duration: float, ttft: float | None,
               tpot: float | None, parts: Any, cost: float | None, savings: float | None, unpriced: bool,
               retries: int, refused: bool, ex: dict[str, str] | None) -> None:
        self.requests(finish_reason).inc()
        if error_type is not None:
            self.errors(error_type).inc()
        self.duration.observe(duration, ex)
        if ttft is not None:
            self.ttft().observe(ttft, ex)
            if tpot is not None:
                self.tpot().observe(tpot, ex)
        if parts is not None:
            inp, cr, cw, out, rs = parts
            t_in, t_cr, t_cw, t_out, t_rs = self.token_children()
            t_in.inc(inp)
            t_cr.inc(cr)
            t_cw.inc(cw)
            t_out.inc(out)
            t_rs.inc(rs)
            s_in, s_out = self.size_children()
            s_in.observe(inp + cr + cw, ex)
            s_out.observe(out + rs, ex)
        if savings is not None:
            self.savings().inc(savings)
        if unpriced:
            self.unpriced().inc()
        if cost:
            self.cost.inc(cost)
        if retries:
            self.retries.inc(retries)
        if refused:
            self.refusals().inc()

    def _child(self, cache: dict[str, Any], family: str, value: str) -> Any:
        child = cache.get(value)
        if child is None:
            child = cache[value] = self._m.families[family].labels(*self.key, value)
        return child

    def requests(self, finish_reason: str) -> Any:
        c = self._requests.get(finish_reason)
        return c if c is not None else self._child(self._requests, "llm_requests_total", finish_reason)

    def errors(self, error_type: str) -> Any:
        c = self._errors.get(error_type)
        return c if c is not None else self._child(self._errors, "llm_errors_total", error_type)

    def tokens(self, token_type: str) -> Any:
        c = self._tokens.get(token_type)
        return c if c is not None else self._child(self._tokens, "llm_tokens_total", token_type)

    def per_request(self, direction: str) -> Any:
        c = self._per_request.get(direction)
        if c is None:
            c = self._per_request[direction] = self._m.families["llm_tokens_per_request"].labels(*self._hkey,
                                                                                                 direction)
        return c

    def token_children(self) -> tuple[Any, ...]:
        """``llm_tokens_total`` children in ``contract.TOKEN_TYPES`` order."""
        c = self._token_children
        if c is None:
            c = self._token_children = tuple(self.tokens(t) for t in contract.TOKEN_TYPES)
        return c

    def size_children(self) -> tuple[Any, Any]:
        """``llm_tokens_per_request`` children (input, output)."""
        c = self._size_children
        if c is None:
            c = self._size_children = (self.per_request("input"), self.per_request("output"))
        return c

    def savings(self) -> Any:
        if self._savings is None:
            self._savings = self._m.families["llm_cache_savings_usd_total"].labels(*self.key)
        return self._savings

    def ttft(self) -> Any:
        if self._ttft is None:
            self._ttft = self._m.families["llm_time_to_first_token_seconds"].labels(*self._hkey)
        return self._ttft

    def tpot(self) -> Any:
        if self._tpot is None:
            self._tpot = self._m.families["llm_time_per_output_token_seconds"].labels(*self._hkey)
        return self._tpot

    def mark_refusals(self) -> None:
        with client_update:
            self.refusals()

    def refusals(self) -> Any:
        if self._refusals is None:
            self._refusals = self._m.families["llm_refusals_total"].labels(*self.key)
        return self._refusals

    def unpriced(self) -> Any:
        if self._unpriced is None:
            self._unpriced = self._m.families["llm_unpriced_requests_total"].labels(*self.key[:2])
        return self._unpriced


def _build(spec: contract.MetricSpec, registry: CollectorRegistry, buckets: tuple[float, ...] | None,
           detail: bool) -> Any:
    if spec.type == "counter":
        return Counter(spec.base_name, spec.help, spec.labels, registry=registry)
    if spec.type == "histogram":
        return Histogram(spec.name, spec.help, spec.labels_with(detail), registry=registry,
                         buckets=buckets or spec.buckets)
    if spec.type == "gauge":
        return Gauge(spec.name, spec.help, spec.labels, registry=registry,
                     multiprocess_mode=spec.multiprocess_mode or "all")
    raise ValueError(f"unsupported metric type {spec.type!r} for {spec.name}")


Bundle = ClientBundle | store.StoreBundle


class Metrics:
    """One set of metric families in one registry, with its guard, prices and caches."""

    def __init__(self, settings: Settings, pricing: PriceTable) -> None:
        limits = dict(settings.label_limits)
        #: the cap on (provider, model, feature, operation) label sets (``label_limits["label_sets"]``)
        self.max_label_sets = limits.pop("label_sets", contract.MAX_LABEL_SETS)
        if type(self.max_label_sets) is not int or self.max_label_sets < 1:
            raise ValueError(f"label limit for 'label_sets' must be an int >= 1, got {self.max_label_sets!r}")
        self.settings = settings
        self.registry = settings.registry
        self.pricing = pricing
        self.multiprocess = multiprocess_mode()
        # prometheus-client does not support exemplars in multiprocess mode
        self.exemplars = settings.exemplars and not self.multiprocess
        #: prometheus-client objects registered in ``registry`` (every family in multi-process mode)
        self.families: dict[str, Any] = {}
        self.store: store.Store | None = None
        self.collector: store.StoreCollector | None = None
        if not self.multiprocess:
            self.store = store.Store(settings.buckets, settings.feature_histograms)
            self.collector = store.StoreCollector(self.store)
        try:
            for spec in contract.METRICS:
                if self.collector is not None and spec.name in store.FAMILIES:
                    if spec.name == store.FAMILIES[0]:  # the collector takes the first store family's place
                        self.registry.register(self.collector)
                    continue
                self.families[spec.name] = _build(spec, self.registry, settings.buckets.get(spec.name),
                                                  settings.feature_histograms)
        except Exception:
            self.unregister()
            raise
        self._lock = locks.new_lock()
        self._bundles: dict[Key, Any] = {}
        self._fast: dict[Any, Bundle] = {}
        self._overflow: dict[str, Any] = {}
        #: (provider, model) -> recorder.RateLimits
        self.ratelimits: dict[tuple[str, str], Any] = {}
        self.guard = LabelGuard(limits, on_overflow=self._count_overflow)
        with client_update:
            self.families["llm_exporter_info"].labels(__version__, pricing.version).set(1)

    def bundle(self, key: Key) -> Bundle:
        b = self._bundles.get(key)
        if b is None and key[2] != contract.OVERFLOW_VALUE and len(self._bundles) >= self.max_label_sets:
            # the series budget: past the cap a new label set folds its feature (counted each time)
            self._count_overflow("label_sets")
            key = (key[0], key[1], contract.OVERFLOW_VALUE, key[3])
            b = self._bundles.get(key)
        if b is None:
            with self._lock:
                b = self._bundles.get(key)
                if b is None:
                    if self.store is not None:
                        b = self.store.bundle(key)
                        if self.pricing.lookup(key[1]) is None:
                            b.mark_unpriced()  # unpriced request model: expose the 0 so increase() works
                    else:
                        unpriced = self.pricing.lookup(key[1]) is None
                        with client_update:
                            b = ClientBundle(self, key, unpriced)
                    if self.settings.refusal_detector is not None:
                        b.mark_refusals()
                    self._bundles[key] = b
        return b

    def _count_overflow(self, label: str) -> None:
        child = self._overflow.get(label)
        if child is None:
            with client_update:
                child = self._overflow[label] = self.families["llm_label_overflow_total"].labels(label)
        with client_update:
            child.inc()

    def resolve(self, provider: object, model: object, feature: object, operation: str) -> Key:
        g = self.guard.resolve
        return (g("provider", provider), g("model", model), g("feature", feature), operation)

    def lookup(self, provider: object, model: object, feature: object, operation: object) -> Bundle:
        """Bundle for raw label values: one dict lookup once the values are known.

        Only tuples whose values all fit their budgets are remembered (admitted
        values stay admitted, so the entry stays right); folded ones go through
        the guard each time so ``llm_label_overflow_total`` counts every fold.
        """
        raw: Any = (provider, model, feature, operation)
        try:
            b = self._fast.get(raw)
        except TypeError:  # unhashable label value
            b, raw = None, None
        if b is not None:
            return b
        key = self.resolve(provider, model, feature, normalise.operation(operation))
        b = self.bundle(key)
        if raw is not None and contract.OVERFLOW_VALUE not in key:
            if len(self._fast) >= _FAST_MAX:
                self._fast.clear()
            self._fast[raw] = b
        return b

    def _collectors(self) -> tuple[Any, ...]:
        return (*self.families.values(), *([self.collector] if self.collector is not None else []))

    def unregister(self) -> None:
        """Remove our families from the registry (used when reconfiguring)."""
        for metric in self._collectors():
            try:
                self.registry.unregister(metric)
            except KeyError:
                pass

    def register_again(self) -> None:
        """Undo ``unregister`` (a reconfiguration failed: keep serving the old metrics)."""
        for metric in self._collectors():
            try:
                self.registry.register(metric)
            except ValueError:
                pass


# --- the active instance ----------------------------------------------------------

_active: Metrics | None = None
_active_lock = locks.new_rlock()


def current() -> Metrics:
    """The active ``Metrics``; built with default settings on first use."""
    m = _active
    if m is None:
        with _active_lock:
            if _active is None:
                _activate_default()  # falls back (logged once) rather than failing every call
            m = _active
    assert m is not None
    return m


def _activate_default() -> None:
    """The first configuration when the app never called ``configure`` (``current()``).

    Never fails per call: a bad ``LLM_EXPORTER_PRICING`` file is logged once (error) and the
    bundled table is used instead; if the default registry refuses our families (names taken),
    they go to a private registry, which ``/metrics`` from ``start_http_server``/``make_*_app``
    still serves. Either way every call is recorded and nothing is parsed again per call.
    An explicit ``configure(...)`` still raises.
    """
    s = Settings(registry=prometheus_client.REGISTRY, pricing_path=pricing.user_path_from_env())
    while True:
        try:
            activate(s)
            return
        except pricing.PricingError as e:
            if s.pricing_path is None:
                raise  # the bundled table itself: a broken installation
            logger.error("llm_exporter: %s (from $%s); using the bundled price table only. Fix the file, "
                         "or call configure(pricing=...)", e, pricing.ENV_VAR)
            s.pricing_path = None
        except ValueError as e:
            if s.registry is not prometheus_client.REGISTRY:
                raise
            logger.error("llm_exporter: the default registry refused the llm_* metrics (%s); recording into a "
                         "private registry, served by llm_exporter's /metrics helpers only", e)
            s.registry = CollectorRegistry()


def activate(s: Settings) -> Metrics:
    """Build the families for ``s`` and make them the active ones, in place of the previous set.

    The price table is loaded first: a bad file raises before anything changes.
    """
    with _active_lock:
        table = pricing.load(s.pricing_path)
        if s.created_series:
            prometheus_client.enable_created_metrics()
        else:
            prometheus_client.disable_created_metrics()
        old = _active
        if old is not None:
            old.unregister()  # frees the names if the registry is the same
        try:
            new = Metrics(s, table)
        except Exception:
            if old is not None:  # keep serving the previous metrics
                old.register_again()
            raise
        install(new)
        return new


def install(m: Metrics) -> Metrics | None:
    """Make ``m`` active; returns the previous instance (the caller unregisters it)."""
    global _active
    with _active_lock:
        old, _active = _active, m
    return old
