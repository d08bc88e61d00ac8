"""Every example runs against the real local models and says what it should."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.langsmith_receiver import LangSmithReceiver

pytestmark = pytest.mark.real_models

ROOT = Path(__file__).resolve().parents[2]


def run_example(
    module: str, *args: str, env: dict[str, str | None] | None = None
) -> str:
    """Run ``python -m module``; ``env`` entries of None are unset."""
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=environ,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_demo_shows_tiers_gates_cost_latency_and_totals() -> None:
    out = run_example("examples.demo", "--questions", "3")
    assert "answered by" in out
    assert "gate verdict" in out
    assert "Totals" in out
    assert "Qwen-1.5B alone" in out
    assert "Monitor summary" in out
    png = re.search(r"Frontier picture: (\S+\.png)", out)
    assert png is not None
    assert Path(png.group(1)).read_bytes()[1:4] == b"PNG"
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"cascade vs Qwen-1\.5B alone: accuracy \d+/3 vs \d+/3, "
        r"cost \d+% of it, mean latency \d+% of it",
        last,
    ), last


def test_lcel_chain_example() -> None:
    out = run_example("examples.lcel_chain")
    assert "What is the capital of Italy? ->" in out
    assert "answered by tier" in out


def test_agent_example_runs_a_real_tool_loop_in_both_forms() -> None:
    out = run_example("examples.agent")
    assert "== CascadingChatModel as the agent's model" in out
    assert "== CascadeMiddleware around the 1.5B" in out
    # Both runs: a real tool call, the tool's result, then a final answer.
    assert out.count("('get_weather', {'city': 'Oslo'})") == 2, out
    assert out.count(" tool: Sunny and 21 C in Oslo.") == 2, out
    assert out.count("tier 0 accepted (tool turn: ") == 2, out


def test_langsmith_example_traces_to_the_endpoint_in_the_environment() -> None:
    with LangSmithReceiver() as rx:
        out = run_example("examples.langsmith_tracing", env=rx.env("cascade-example"))
        assert f"traced to {rx.url}" in out
        assert rx.wait_for(
            lambda runs: any("cascade:gate" in (r["tags"] or []) for r in runs.values())
        ), rx.tree()
        (root,) = rx.find(name="cascade-example")
        tags = {t for c in rx.children_of(root["id"]) for t in c["tags"] or []}
        assert "cascade:tier:0" in tags
        assert "cascade:gate" in tags
