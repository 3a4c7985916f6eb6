"""Render the repository's rules with tests/fast-rules.libsonnet for end-to-end tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = Path(__file__).resolve().parent / "fast-rules.libsonnet"


def load_generate():
    """scripts/generate.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("llm_generate", ROOT / "scripts" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_fast_rules(dest: Path) -> Path:
    """Write the fast rule files into dest/rules and return that directory."""
    rules = dest / "rules"
    rules.mkdir()
    for path, content in load_generate().render(OVERRIDES).items():
        if path.parent == ROOT / "prometheus" / "rules":
            (rules / path.name).write_text(content)
    text = (rules / "llm-alerts.yaml").read_text()
    assert "for: 3s" in text and "interval: 1s" in text and "alert: LLMHighErrorRate" in text
    return rules
