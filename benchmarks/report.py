"""Markdown report from the sections' JSON results (targets first)."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import fmt

MiB = 1024 * 1024
#: the ceilings (issue: performance held, as ceilings, not races)
RECORD_CEILING = 0.5
SCRAPE_CEILING = 0.1
#: one replica's series at the reference cardinality (20 models x 50 features)
MAX_SAMPLES = 25_000
MAX_BYTES = 3_000_000


def _ratio(r: list[float] | None, digits: int = 2) -> str:
    if not r:
        return "n/a"
    return f"{r[0]:.{digits}f}x ({r[1]:.{digits}f}-{r[2]:.{digits}f})"


def targets(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, status) rows."""
    rows: list[tuple[str, str, str]] = []
    sec = data["sections"]
    rec = sec.get("record", {})
    ratios = rec.get("ratios", {})
    r = ratios.get("ours: record_call / floor: cached children")  # the ceiling (start_call..finish: below)
    if r:
        rows.append((f"record path `record_call` <= {RECORD_CEILING}x cached-children floor", _ratio(r, 3),
                     "met" if r[0] <= RECORD_CEILING else "MISSED"))
    ins = sec.get("instrument", {})
    for t in ins.get("targets", []):
        rows.append((t["target"], t["measured"], "met" if t["met"] else "MISSED"))
    scr = sec.get("scrape", {})
    r = scr.get("ratios", {}).get("ours: single-process / otel: PrometheusMetricReader")
    if r:
        rows.append((f"scrape time (single-process) <= {SCRAPE_CEILING}x OTel Prometheus reader", _ratio(r),
                     "met" if r[0] <= SCRAPE_CEILING else "MISSED"))
    ours = scr.get("per_case", {}).get("ours: single-process")
    if ours and ours.get("samples"):
        rows.append((f"samples per scrape at the reference cardinality <= {MAX_SAMPLES:,}", f"{ours['samples']:,}",
                     "met" if ours["samples"] <= MAX_SAMPLES else "MISSED"))
        rows.append((f"bytes per text scrape at the reference cardinality <= {MAX_BYTES / 1e6:.0f} MB",
                     f"{ours['bytes'] / 1e6:.1f} MB ({ours['bytes']:,})", "met" if ours["bytes"] <= MAX_BYTES else "MISSED"))
    r = scr.get("ratios", {}).get(f"ours: multi-process ({scr.get('info', {}).get('workers', 4)} workers) / "
                                  "otel: PrometheusMetricReader")
    if r:
        rows.append((f"scrape time (multi-process, 4 worker files) <= {SCRAPE_CEILING}x OTel reader", _ratio(r),
                     "met" if r[0] <= SCRAPE_CEILING else "MISSED"))
    return rows


def before_after(baseline: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The targets measured on the baseline tree and on this one, in the same run."""
    before = {t: m for t, m, _ in targets(baseline)}
    out = ["## Before and after", "",
           f"Before: the exporter of `{baseline['ref']}`, measured in the same run with the same harness "
           "(`benchmarks/run --baseline REF`).", "",
           "| target | before | after | after's status |", "|---|---|---|---|"]
    out += [f"| {t} | {before.get(t, 'n/a')} | {m} | {st} |" for t, m, st in targets(after)]
    return out + [""]


def _cases_table(comp: dict[str, Any], extra: dict[str, str] | None = None, extra_head: str = "") -> list[str]:
    unit = comp["unit"]
    head = f"| case | median {unit} | q1-q3 |" + (f" {extra_head} |" if extra_head else "")
    lines = [head, "|" + "---|" * (3 + bool(extra_head))]
    for name, c in comp["cases"].items():
        row = f"| {name} | {fmt(c['median'])} | {fmt(c['q1'])}-{fmt(c['q3'])} |"
        if extra_head:
            row += f" {(extra or {}).get(name, '')} |"
        lines.append(row)
    return lines


def _record(r: dict[str, Any]) -> list[str]:
    out = [f"{r['updates_per_call']} metric updates per call; {r['label_sets']:,} rotating label sets; "
           f"{r['rounds']} interleaved rounds of {r['ops_per_block']:,} calls per case. Ratios are medians of "
           "per-round ratios (q1-q3 in brackets).", ""]
    extra = {name: _ratio(r["ratios"].get(f"{name} / floor: cached children"))
             for name in r["comparison"]["cases"]}
    extra["floor: cached children"] = "1x"
    out += _cases_table(r["comparison"], extra, "vs cached-children floor")
    otel = {k: v for k, v in r["ratios"].items() if k.startswith("otel")}
    if otel:
        out += ["", "| OTel SDK / ours (side by side) | ratio |", "|---|---|"]
        out += [f"| {k} | {_ratio(v)} |" for k, v in otel.items()]
    return out


def _mib(x: float | None) -> str:
    return "" if x is None else f"{x / MiB:.1f}"


def _scrape(r: dict[str, Any]) -> list[str]:
    info = r.get("info", {})
    out = [f"Reference data: {info.get('reference', '')}. Time = `generate_latest` (text format 0.0.4), "
           f"{r['rounds']} interleaved rounds; HTTP row = GET /metrics over loopback. Memory: peak RSS growth "
           "during one scrape (a lower bound: memory kept by the allocator from earlier scrapes is reused), and the "
           "Python heap held by the filled metric state (tracemalloc; the multi-process state lives in the workers' "
           "files).", ""]
    otel_ratio = {k.split(" / ")[0]: _ratio(v) for k, v in r["ratios"].items()
                  if k.endswith("/ otel: PrometheusMetricReader")}
    lines = ["| case | median ms/scrape | q1-q3 | vs OTel reader | bytes | gzip bytes | samples | "
             "scrape peak RSS MiB | state heap MiB |", "|" + "---|" * 9]
    for name, c in r["comparison"]["cases"].items():
        pc = r["per_case"].get(name, {})
        state = pc.get("state_heap_bytes")
        lines.append(
            f"| {name} | {fmt(c['median'])} | {fmt(c['q1'])}-{fmt(c['q3'])} | "
            f"{otel_ratio.get(name, '1x' if 'otel' in name else 'n/a')} | "
            f"{pc.get('bytes', 0):,} | {pc.get('gzip_bytes', 0):,} | {pc.get('samples', 0):,} | "
            f"{_mib(pc.get('scrape_peak_heap_bytes'))} | {_mib(state)} |")
    out += lines
    for key in [k for k in info if k.startswith("samples_per_family")]:
        fam = info[key]
        out += ["", f"Samples per family {key[len('samples_per_family'):].strip()}: "
                + ", ".join(f"`{k}` {v:,}" for k, v in fam.items()) + f" (total {sum(fam.values()):,})."]
    for key in [k for k in info if k.startswith("distinct_values_per_label")]:
        out += ["", f"Distinct values per label {key[len('distinct_values_per_label'):].strip()}: "
                + ", ".join(f"`{k}` {v}" for k, v in info[key].items()) + "."]
    if "prototype_same_samples" in info:
        out += ["", "Prototype row: `benchmarks/prototype_exposition.py` renders our families with each series' "
                "label text built once and cached (not used by the exporter; sizes the gain of that design). "
                f"Same samples as generate_latest: {info['prototype_same_samples']}; byte-identical body: "
                f"{info['prototype_body_identical']}."]
    if "multiprocess_dir_bytes" in info:
        out += ["", f"Multi-process: {len(info.get('multiprocess_files', []))} files, "
                f"{info['multiprocess_dir_bytes'] / MiB:.1f} MiB on disk; filling them took "
                f"{info.get('multiprocess_fill_s', 0):.1f}s (4 workers in parallel)."]
    return out


def _concurrency(r: dict[str, Any]) -> list[str]:
    t, p = r["threads"], r["processes"]
    out = [f"Threads: the same total calls by 1 thread or split over 2 (GIL switch interval "
           f"{r['switch_interval_s'] * 1000:.0f} ms), {t['rounds']} interleaved rounds.", ""]
    out += _cases_table(t["comparison"])
    out += ["", "| ratio | median (q1-q3) |", "|---|---|"] + [f"| {k} | {_ratio(v)} |" for k, v in t["ratios"].items()]
    out += ["", f"Processes: each worker records {p['calls_per_worker']:,} calls after a common start signal; "
            f"plain = in-memory values, multiprocess = mmap files under PROMETHEUS_MULTIPROC_DIR; "
            f"{p['rounds']} rounds.", ""]
    out += _cases_table(p["comparison"])
    out += ["", "| ratio | median (q1-q3) |", "|---|---|"] + [f"| {k} | {_ratio(v)} |" for k, v in p["ratios"].items()]
    return out


def _instrument(r: dict[str, Any]) -> list[str]:
    out = [r.get("method", ""), ""]
    for table in r.get("tables", []):
        out += [f"**{table['title']}**", "", "| " + " | ".join(table["head"]) + " |",
                "|" + "---|" * len(table["head"])]
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
        out.append("")
    return out


RENDER = {"record": ("1. Record path: ns per recorded call", _record),
          "instrument": ("2. Instrumentation overhead on real SDK calls", _instrument),
          "scrape": ("3. Scrape at the reference cardinality", _scrape),
          "concurrency": ("4. Threads and processes", _concurrency)}


def render(data: dict[str, Any]) -> str:
    m = data["machine"]
    v = m["versions"]
    out = ["# Benchmark results", ""]
    if m.get("quick"):
        out += ["**QUICK RUN (--quick): harness check only, numbers are not meaningful.**", ""]
    out += ["## Targets", "", "| target | measured (the ratios: median, q1-q3; the rest as each row says) | status |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in targets(data)]
    out += ["", "## Machine and versions", "",
            f"{m['date_utc']}; {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['os']}; {m['python']}; "
            f"load average {', '.join(f'{x:.2f}' for x in m['loadavg_start'] or [])} at start, "
            f"{', '.join(f'{x:.2f}' for x in m.get('loadavg_end') or [])} at end; repo {m['git']}; "
            f"whole run {m.get('total_wall_s', 0):.0f}s.", "",
            ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".", ""]
    if data.get("baseline"):
        out += before_after(data["baseline"], data)
    order = [s for s in ("record", "instrument", "scrape", "concurrency") if s in data["sections"]]
    for name in order:
        r = data["sections"][name]
        title, fn = RENDER[name]
        out += [f"## {title}", ""]
        if "error" in r:
            out += [f"Not measured: {r['error']}", ""]
            continue
        out += fn(r)
        if r.get("notes"):
            out += [""] + [f"Note: {n}" for n in r["notes"]]
        out.append("")
    return "\n".join(out)


# --- README splice -------------------------------------------------------------------

START, END = "<!-- results:start -->", "<!-- results:end -->"
#: what the README shows of a run (results.md has every table)
README_SECTIONS = ("Targets", "Before and after", "Machine and versions")


def splice_readme(results_md: str, readme_path: str) -> None:
    """Replace the README's results block with a results.md (headings shifted one level down)."""
    with open(readme_path) as f:
        readme = f.read()
    if START not in readme or END not in readme:
        raise SystemExit(f"{readme_path}: no {START} ... {END} block")
    kept: list[str] = []
    keep = False
    for line in results_md.splitlines():
        if line.startswith("## "):
            keep = line[3:].strip() in README_SECTIONS
        if keep:
            kept.append("#" + line if line.startswith("#") else line)
    kept += ["", "Every table of the run: [results/results.md](results/results.md)."]
    body = "\n".join(kept).strip()
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(readme_path, "w") as f:
        f.write(f"{head}{START}\n{body}\n{END}{tail}")


if __name__ == "__main__":
    # python -m benchmarks.report results/results.md README.md   (paste into the README)
    # python -m benchmarks.report results/results.json           (re-render results.md)
    import json
    import sys

    if sys.argv[1].endswith(".json"):
        with open(sys.argv[1]) as fh:
            md = render(json.load(fh))
        with open(sys.argv[1][: -len(".json")] + ".md", "w") as fh:
            fh.write(md)
    else:
        with open(sys.argv[1]) as fh:
            splice_readme(fh.read(), sys.argv[2])
