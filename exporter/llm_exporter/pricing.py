"""Offline price table: USD per 1M tokens, bundled YAML plus an optional user file.

No network access, ever. The bundled table (``pricing.yaml``) is versioned and
dated; a user file (``LLM_EXPORTER_PRICING`` or ``configure(pricing=path)``) in
the same format overrides or extends it. Model ids resolve through, in order:
exact id, the alias map, then dropping a date suffix (``-2024-08-06``,
``-20250929``, ``-0613``) or ``-latest``.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .locks import new_lock
from .normalise import TokenParts

BUNDLED_PATH = Path(__file__).with_name("pricing.yaml")
ENV_VAR = "LLM_EXPORTER_PRICING"

_TOP_KEYS = {"version", "as_of", "currency", "unit", "models", "aliases"}
_PRICE_KEYS = {"input", "output", "cache_read", "cache_write"}
_REQUIRED_PRICE_KEYS = ("input", "output")
#: A price file is a few KB; refuse to read more (``/dev/zero`` must not fill the memory).
MAX_FILE_BYTES = 16 * 1024 * 1024
_SUFFIXES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # claude-sonnet-4-5-20250929
    re.compile(r"-\d{4}$"),  # gpt-4-0613
    re.compile(r"-latest$"),  # claude-3-5-sonnet-latest
)


class PricingError(ValueError):
    """A price file that cannot be used; the message names the file, key and problem."""


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. Reasoning tokens are billed at the output rate."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, parts: TokenParts) -> float:
        return (
            parts.input * self.input
            + parts.cache_read * self.cache_read
            + parts.cache_write * self.cache_write
            + (parts.output + parts.reasoning) * self.output
        ) / 1_000_000

    def cache_savings(self, parts: TokenParts) -> float:
        """What the cache reads would have cost as uncached input, minus what they cost."""
        return parts.cache_read * max(self.input - self.cache_read, 0.0) / 1_000_000


class PriceTable:
    """Resolved prices; ``lookup(model)`` is cached and safe to call per request."""

    def __init__(self, models: dict[str, Price], aliases: dict[str, str], version: str, as_of: str) -> None:
        self.models = models
        self.aliases = aliases
        self.version = version
        self.as_of = as_of
        self._cache: dict[str, Price | None] = {}
        self._lock = new_lock()

    def lookup(self, model: str | None) -> Price | None:
        if not model:
            return None
        try:
            return self._cache[model]
        except KeyError:
            pass
        price = self._resolve(model)
        with self._lock:
            if len(self._cache) > 4096:  # response model ids are free-form; bound the cache
                self._cache.clear()
            self._cache[model] = price
        return price

    def _resolve(self, model: str) -> Price | None:
        candidates = [model, model.strip().lower()]
        if "/" in candidates[-1]:  # "openai/gpt-4o" style ids from gateways
            candidates.append(candidates[-1].rsplit("/", 1)[1])
        for cand in candidates:
            for _ in range(4):
                price = self.models.get(cand)
                if price is not None:
                    return price
                alias = self.aliases.get(cand)
                if alias is not None:
                    cand = alias
                    continue
                for pattern in _SUFFIXES:
                    stripped = pattern.sub("", cand)
                    if stripped != cand:
                        cand = stripped
                        break
                else:
                    break
        return None


def _problem(path: str, key: str, problem: str) -> PricingError:
    return PricingError(f"pricing file {path}: {key}: {problem}")


def _number(path: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _problem(path, key, f"must be a number (USD per 1M tokens), got {value!r:.80}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise _problem(path, key, f"must be a finite number >= 0, got {value!r:.80}")
    return number


def _parse(path: str, data: Any) -> tuple[dict[str, Price], dict[str, str], dict[str, Any]]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _problem(path, "<top level>", f"must be a mapping, got {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _problem(path, sorted(map(str, unknown))[0], f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    if data.get("currency", "USD") != "USD":
        raise _problem(path, "currency", f"only USD is supported, got {data['currency']!r}")
    if data.get("unit", "per_1m_tokens") != "per_1m_tokens":
        raise _problem(path, "unit", f"only per_1m_tokens is supported, got {data['unit']!r}")
    models_raw = data.get("models") or {}
    if not isinstance(models_raw, dict):
        raise _problem(path, "models", f"must be a mapping of model id -> prices, got {type(models_raw).__name__}")
    models: dict[str, Price] = {}
    for model_id, entry in models_raw.items():
        key = f"models.{model_id}"
        if not isinstance(model_id, str) or not model_id.strip():
            raise _problem(path, key, "model id must be a non-empty string")
        if not isinstance(entry, dict):
            raise _problem(path, key, f"must be a mapping with input/output prices, got {entry!r}")
        extra = set(entry) - _PRICE_KEYS
        if extra:
            raise _problem(path, f"{key}.{sorted(map(str, extra))[0]}",
                           f"unknown price key (allowed: {', '.join(sorted(_PRICE_KEYS))})")
        for req in _REQUIRED_PRICE_KEYS:
            if req not in entry:
                raise _problem(path, f"{key}.{req}", "missing (required: input and output)")
        vals = {k: _number(path, f"{key}.{k}", v) for k, v in entry.items()}
        # Without a cache price, cached tokens cost the input rate (no discount assumed).
        models[model_id.strip().lower()] = Price(
            input=vals["input"], output=vals["output"],
            cache_read=vals.get("cache_read", vals["input"]),
            cache_write=vals.get("cache_write", vals["input"]),
        )
    aliases_raw = data.get("aliases") or {}
    if not isinstance(aliases_raw, dict):
        raise _problem(path, "aliases", f"must be a mapping of alias -> model id, got {type(aliases_raw).__name__}")
    aliases: dict[str, str] = {}
    for alias, target in aliases_raw.items():
        if not isinstance(alias, str) or not isinstance(target, str) or not target.strip():
            raise _problem(path, f"aliases.{alias}", f"must map a model id to a model id string, got {target!r}")
        aliases[alias.strip().lower()] = target.strip().lower()
    meta = {k: data.get(k) for k in ("version", "as_of")}
    for k, v in meta.items():
        # YAML reads an unquoted 2025-12-15 as a date; accept it as text
        if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float, datetime.date))):
            raise _problem(path, k, f"must be a string, got {v!r}")
    return models, aliases, meta


def _read(path: str | os.PathLike[str]) -> Any:
    """The parsed YAML of ``path``; every way of failing is a ``PricingError`` naming the file."""
    p = str(path)
    try:
        if not stat.S_ISREG(os.stat(p).st_mode):  # a FIFO would block, a device never end
            raise PricingError(f"pricing file {p}: <file>: not a regular file")
        with open(p, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PricingError(f"pricing file {p}: <file>: not found") from None
    except OSError as e:
        raise PricingError(f"pricing file {p}: <file>: cannot read ({e})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PricingError(f"pricing file {p}: <file>: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PricingError(f"pricing file {p}: <file>: not UTF-8 text (invalid byte at offset {e.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PricingError(f"pricing file {p}: <yaml>: invalid YAML ({e})".replace("\n", " ")) from None
    except RecursionError:
        raise PricingError(f"pricing file {p}: <yaml>: nested too deeply") from None


def _load_file(path: str) -> tuple[dict[str, Price], dict[str, str], dict[str, Any]]:
    data = _read(path)
    try:
        return _parse(path, data)
    except PricingError:
        raise
    except Exception as e:  # a shape _parse did not foresee: still the documented error, naming the file
        raise _problem(path, "<file>", f"unusable content ({type(e).__name__}: {e})") from None


def load(user_path: str | os.PathLike[str] | None = None) -> PriceTable:
    """Bundled table merged with ``user_path`` (if given). Raises ``PricingError``."""
    b_path = str(BUNDLED_PATH)
    models, aliases, meta = _load_file(b_path)
    version = str(meta.get("version") or "unversioned")
    as_of = str(meta.get("as_of") or "")
    if user_path is not None:
        u_path = str(user_path)
        u_models, u_aliases, u_meta = _load_file(u_path)
        models.update(u_models)
        aliases.update(u_aliases)
        version = f"{version}+{u_meta.get('version') or 'custom'}"
        if u_meta.get("as_of"):
            as_of = str(u_meta["as_of"])
        where = u_path
    else:
        where = b_path
    for alias, target in aliases.items():
        if target not in models and target not in aliases:
            raise _problem(where, f"aliases.{alias}", f"target {target!r} is not a model in the price table")
    return PriceTable(models, aliases, version, as_of)


def user_path_from_env() -> str | None:
    return os.environ.get(ENV_VAR) or None
