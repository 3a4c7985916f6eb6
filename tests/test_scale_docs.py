"""docs/scale.md states the series one replica exposes at the reference cardinality: measured
again here (scripts/measure_series.py), so the page changes when the exporter's series do."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "scale.md").read_text()


def _measure_module():
    spec = importlib.util.spec_from_file_location("measure_series", ROOT / "scripts" / "measure_series.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_series_per_replica_in_the_doc_are_measured():
    measure = _measure_module().measure
    plain, outcomes = measure(False), measure(True)
    assert f"**{plain['llm_samples']:,} `llm_` samples**" in DOC
    assert f"**{outcomes['llm_samples']:,}**" in DOC
    assert f"({plain['scrape_bytes'] / 1e6:.1f} MB of" in DOC
    # The per-family table: samples of the plain run, per (model, feature) pair, or per model for
    # the histograms (per provider, model and operation: the series budget).
    pairs = plain["models"] * plain["features"]
    for family, per in (("llm_tokens_per_request", plain["models"]), ("llm_request_duration_seconds", plain["models"]),
                        ("llm_time_to_first_token_seconds", plain["models"]),
                        ("llm_time_per_output_token_seconds", plain["models"]), ("llm_tokens_total", pairs),
                        ("llm_requests_total", pairs), ("llm_errors_total", pairs)):
        n = plain["by_family"][family]
        row = re.search(rf"^\| `{family}`[^|]*\| ([\d,]+) \| (\d+) \|$", DOC, flags=re.M)
        assert row, family
        assert (row.group(1), row.group(2)) == (f"{n:,}", str(n // per)), family


def test_readme_points_kubernetes_users_to_the_one_command_and_the_scale_page():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## On Kubernetes", 1)[1].split("\n## ", 1)[0]
    assert "kubectl apply -k kubernetes/" in section
    assert "[docs/scale.md](docs/scale.md)" in section
