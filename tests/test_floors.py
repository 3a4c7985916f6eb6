"""The floors scripts/test-floors installs are the ones pyproject.toml declares."""

from __future__ import annotations

import re
import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def declared_floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {"prometheus-client", "pyyaml", "openai", "anthropic", "httpx", "opentelemetry-api",
              "opentelemetry-sdk", "pytest"}
    out: dict[str, str] = {}
    for req in project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(>=|==)([0-9.]+)", req.strip())
        assert m, f"every dependency is declared with a floor (or pinned): {req!r}"
        name = m.group(1).lower()
        if name in wanted:
            assert m.group(2) == ">=", f"{name}: the floor run needs a range, not a pin"
            assert out.setdefault(name, m.group(3)) == m.group(3), f"{name} declared with two floors"
    return out


def installed_floors() -> dict[str, str]:
    lines = (ROOT / "scripts" / "floors.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {name.lower(): version for name, version in pins}


def test_every_declared_floor_is_the_pinned_version_the_floor_run_installs():
    declared, pinned = declared_floors(), installed_floors()
    assert set(declared) == set(pinned)
    for name, version in declared.items():
        padded = version + ".0" * (2 - version.count("."))  # ">=0.20" means 0.20.0
        assert pinned[name] == padded, (name, version, pinned[name])
