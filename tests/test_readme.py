"""README.md stays true: its usage example runs as is, its commands exist, CI runs the test command."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_usage_example_runs_as_is_and_prints_cost_series():
    block = README.split("<!-- README example: tests/test_readme.py runs this block as is -->", 1)[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    printed = out.stdout
    assert 'llm_cost_usd_total{feature="order-summary",model="gpt-4o-mini",operation="chat",provider="openai"}' in printed
    assert 'model="claude-haiku-4-5",operation="messages",provider="anthropic"' in printed


def test_quality_example_runs_as_is_and_prints_hedging_and_score_series():
    block = README.split("<!-- README quality example: tests/test_readme.py runs this block as is -->", 1)[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    lines = [l for l in code.splitlines() if l and not l.startswith(("import", "from", "print", "with", " "))]
    assert len(lines) == 2  # the two lines: configure the detector, record a score
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([
        'llm_hedged_responses_total{feature="search",model="gpt-4o-mini",operation="chat",provider="openai"} 1.0',
        'llm_eval_score_sum{evaluator="factual_accuracy",feature="search",model="gpt-4o-mini",provider="openai"} 0.8',
    ])


def test_quickstart_commands_exist_and_ci_runs_the_test_command():
    for command in re.findall(r"^(\./scripts/\w+)", README, re.M):
        assert os.access(ROOT / command, os.X_OK), command
    assert "./scripts/demo" in README and "./scripts/test" in README
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
