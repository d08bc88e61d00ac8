"""The ``langchain-cascade`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from langchain_cascade.cli import main
from langchain_cascade.collect import CollectedScores

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    """200 queries, 2 tiers: the cheap tier is right when its score is high."""
    rng = np.random.default_rng(0)
    n = 200
    p = rng.random(n)
    right0 = (rng.random(n) < p).astype(float)
    right1 = (rng.random(n) < 0.9).astype(float)
    scores = np.column_stack(
        [np.round(p + 0.2 * rng.standard_normal(n), 3), np.full(n, np.nan)]
    )
    path = tmp_path / "syn.npz"
    np.savez(
        path,
        scores=scores,
        correct=np.column_stack([right0, right1]),
        costs=np.tile([1e-4, 1e-2], (n, 1)),
        gate_costs=np.zeros((n, 2)),
    )
    return path


def test_calibrate_prints_the_metrics_and_writes_plot_and_json(
    npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot, out = tmp_path / "frontier.png", tmp_path / "result.json"
    code = main(
        [
            "calibrate",
            str(npz),
            "--min-quality",
            "0.85",
            "--plot",
            str(plot),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    for needle in [
        "Thresholds",
        "quality",
        "cost per query",
        "escalation rate",
        "APGR",
        "CPT(50%)",
        "CPT(80%)",
        "cheap tier only",
        "final tier only",
        "perfect gate",
    ]:
        assert needle in text
    assert plot.read_bytes()[:8] == PNG_SIGNATURE
    result = json.loads(out.read_text())
    assert result["quality"] >= 0.85
    assert result["source"] == str(npz)
    assert set(result["cpt"]) == {"0.5", "0.8"}


def test_calibrate_matches_the_library(npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["calibrate", str(npz), "--max-cost", "0.005", "--json", str(out)]) == 0
    expected = CollectedScores.load(npz).calibrate(max_cost=0.005)
    got = json.loads(out.read_text())
    assert got["thresholds"] == list(expected.thresholds)
    assert got["cost"] <= 0.005
    assert got["quality"] == pytest.approx(expected.quality)


def test_min_quality_ratio_is_relative_to_the_final_tier(
    npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    assert (
        main(["calibrate", str(npz), "--min-quality-ratio", "0.95", "--json", str(out)])
        == 0
    )
    got = json.loads(out.read_text())
    assert got["quality"] >= 0.95 * got["premium_quality"] - 1e-9
    assert "0.87875" in got["constraint"]


def test_calibrate_reads_the_collect_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    lines = []
    for i, (score, right) in enumerate([(0.9, 1), (0.8, 1), (0.2, 0), (0.1, 0)]):
        tiers = [
            {"tier": 0, "model": "cheap", "score": score, "correct": right,
             "cost": 1.0, "gate_cost": 0.0, "latency_s": 0.1},
            {"tier": 1, "model": "strong", "score": None, "correct": 1,
             "cost": 10.0, "gate_cost": None, "latency_s": 0.2},
        ]  # fmt: skip
        lines.append(json.dumps({"index": i, "input_hash": f"h{i}", "tiers": tiers}))
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.json"
    assert main(["calibrate", str(path), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["thresholds"] == [0.8]
    assert got["model_names"] == ["cheap", "strong"]
    assert got["quality"] == 1.0
    assert got["cost"] == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calibrate"], "the following arguments are required: file"),
        (["calibrate", "{npz}", "--min-quality", "1.5"], "must lie in [0, 1]"),
        (["calibrate", "{npz}", "--min-quality", "high"], "expected a number"),
        (["calibrate", "{npz}", "--max-cost", "-1"], "positive number"),
        (
            ["calibrate", "{npz}", "--min-quality", "0.9", "--max-cost", "1"],
            "not allowed with argument",
        ),
        (["calibrate", "{missing}"], "no such file"),
        (["calibrate", "{txt}"], "expected a collect JSON-lines file"),
        (["collect", "--out", "x.jsonl"], "--config"),
        (["collect", "--config", "nocolon", "--out", "x.jsonl"], "module:factory"),
        (
            ["collect", "--config", "no_such_module_xyz:f", "--out", "x.jsonl"],
            "cannot import",
        ),
        (["frobnicate"], "invalid choice"),
        ([], "required: COMMAND"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    argv: list[str],
    message: str,
    npz: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    txt = tmp_path / "scores.txt"
    txt.write_text("x")
    paths = {"npz": str(npz), "missing": str(tmp_path / "nope.npz"), "txt": str(txt)}
    with pytest.raises(SystemExit) as exited:
        main([a.format(**paths) for a in argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert message in err


def test_infeasible_target_exits_1(
    npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calibrate", str(npz), "--min-quality", "0.999"]) == 1
    err = capsys.readouterr().err
    assert "infeasible" in err
    assert err.startswith("langchain-cascade calibrate: error:")


def test_unknown_costs_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nan.npz"
    np.savez(path, scores=[[0.5, np.nan]], correct=[[1, 1]], costs=[[np.nan, 1.0]])
    assert main(["calibrate", str(path)]) == 1
    assert "cost of tier" in capsys.readouterr().err


FACTORY = """
    from langchain_core.messages import AIMessage
    from langchain_cascade import CascadingChatModel
    from langchain_cascade.pricing import ModelPrice
    from tests.unit_tests.fake_models import ScriptedChatModel

    USAGE = {"input_tokens": 10, "output_tokens": 1, "total_tokens": 11}

    def model(name, good):
        def respond(messages):
            q = messages[-1].text
            text = q.split("=")[1] if good or q.startswith("easy") else "?"
            return AIMessage(text, usage_metadata=USAGE)
        return ScriptedChatModel(model=name, responder=respond)

    def factory(data):
        lines = data.read_text().splitlines()
        examples = [(line, line.split("=")[1]) for line in lines]
        cascade = CascadingChatModel(
            models=[model("cheap", False), model("strong", True)],
            gates=[lambda gi: gi.text != "?"],
            prices={
                "cheap": ModelPrice(input_per_million=1, output_per_million=1),
                "strong": ModelPrice(input_per_million=100, output_per_million=100),
            },
        )
        return cascade, examples, lambda answer, ref: answer.text == ref
"""


def _in_factory_dir(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    source: str,
    data: str,
) -> Path:
    """Writes the factory ``module`` and a data file, and works in ``tmp_path``.

    The repository root goes on ``sys.path`` (the factories import the fakes).

    Returns:
        The data file.
    """
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    path = tmp_path / "data.txt"
    path.write_text(data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2]))
    return path


def test_collect_then_calibrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _in_factory_dir(
        tmp_path, monkeypatch, "my_factory", FACTORY, "easy=1\nhard=2\neasy=3\nhard=4\n"
    )
    out = tmp_path / "scores.jsonl"
    argv = ["collect", "--config", "my_factory:factory", "--data", str(data)]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert "Collected 4 examples x 2 tiers (cheap, strong)" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 4
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0  # resumes: no-op
    assert len(out.read_text().splitlines()) == 4
    result = tmp_path / "r.json"
    assert main(["calibrate", str(out), "--json", str(result)]) == 0
    got = json.loads(result.read_text())
    assert got["quality"] == 1.0
    assert got["escalation_rate"] == 0.5  # the gate catches exactly the "?" answers


def test_collect_factory_must_return_a_triple(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad_factory.py").write_text("def factory():\n    return 42\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["collect", "--config", "bad_factory:factory", "--out", "o.jsonl"]
    assert main(argv) == 1
    assert "must return (cascade, examples, evaluate)" in capsys.readouterr().err


def test_runs_as_a_module(npz: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "langchain_cascade.cli", "calibrate", str(npz)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "APGR" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "langchain_cascade.cli", "calibrate"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "usage:" in bad.stderr


FACTORY3 = """
    from langchain_core.messages import AIMessage
    from langchain_cascade import CascadingChatModel
    from langchain_cascade.pricing import ModelPrice
    from tests.unit_tests.fake_models import ScriptedChatModel

    USAGE = {"input_tokens": 10, "output_tokens": 1, "total_tokens": 11}

    def model(name, knows):
        def respond(messages):
            q = messages[-1].text
            return AIMessage(q.split("=")[1] if knows(q) else "?", usage_metadata=USAGE)
        return ScriptedChatModel(model=name, responder=respond)

    def factory(data):
        lines = data.read_text().splitlines()
        examples = [(line, line.split("=")[1]) for line in lines]
        price = lambda p: ModelPrice(input_per_million=p, output_per_million=p)
        cascade = CascadingChatModel(
            models=[
                model("cheap", lambda q: q.startswith("easy")),
                model("middle", lambda q: q.startswith("easy")),  # knows no more
                model("strong", lambda q: True),
            ],
            gates=[lambda gi: gi.text != "?"],
            prices={"cheap": price(1), "middle": price(10), "strong": price(100)},
        )
        return cascade, examples, lambda answer, ref: answer.text == ref
"""


def test_collect_says_drop_the_tier_that_does_not_pay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _in_factory_dir(
        tmp_path,
        monkeypatch,
        "three",
        FACTORY3,
        "easy=1\nhard=2\neasy=3\nhard=4\neasy=5\nhard=6\n",
    )
    argv = [
        "collect",
        "--config",
        "three:factory",
        "--data",
        str(data),
        "--no-progress",
    ]
    shards = [tmp_path / f"s{i}.jsonl" for i in range(2)]
    for i, shard in enumerate(shards):
        assert main([*argv, "--out", str(shard), "--shard", f"{i}/2"]) == 0
    text = capsys.readouterr().out
    assert "Drop tier 1 (middle)" in text
    assert "tier 0 (cheap): pays for itself" in text
    out = tmp_path / "all.jsonl"
    assert main([*argv, "--out", str(out)]) == 0
    assert "Drop tier 1 (middle)" in capsys.readouterr().out
    result = tmp_path / "r.json"
    assert main(["calibrate", str(out), "--select-tiers", "--json", str(result)]) == 0
    assert "Tiers kept: [0, 2]" in capsys.readouterr().out
    assert json.loads(result.read_text())["tiers"] == [0, 2]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--out", str(out), "--shard", "2/2"])
    assert exited.value.code == 2
    assert "0 <= I < N" in capsys.readouterr().err


def test_calibrate_with_confidence(
    npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    argv = ["calibrate", str(npz), "--min-quality", "0.8", "--json", str(out)]
    assert main([*argv, "--confidence", "0.9"]) == 0
    assert "Bootstrap bounds at 0.9" in capsys.readouterr().out
    got = json.loads(out.read_text())
    assert got["confidence"] == 0.9
    assert got["quality_interval"][0] >= 0.8


@pytest.fixture
def useless_cheap_npz(tmp_path: Path) -> Path:
    """200 queries, 3 tiers: the two cheap ones are right half the time, at random."""
    rng = np.random.default_rng(1)
    n = 200
    path = tmp_path / "useless.npz"
    np.savez(
        path,
        scores=np.column_stack([rng.random(n), rng.random(n), np.full(n, np.nan)]),
        correct=np.column_stack(
            [rng.random(n) < 0.5, rng.random(n) < 0.5, np.ones(n)]
        ).astype(float),
        costs=np.tile([1e-4, 1e-3, 1e-2], (n, 1)),
        gate_costs=np.zeros((n, 3)),
        model_names=np.asarray(["cheap", "middle", "strong"]),
    )
    return path


def test_calibrate_select_tiers_keeps_the_final_tier_alone(
    useless_cheap_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot, out = tmp_path / "alone.png", tmp_path / "alone.json"
    argv = ["calibrate", str(useless_cheap_npz), "--select-tiers"]
    assert main([*argv, "--plot", str(plot), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "x 1 tiers" in text
    assert (
        "  none: no cascade pays at this target; call tier 2 (strong) alone, "
        "without a cascade"
    ) in text
    assert "answered per tier  2: 100.0%" in text
    assert "APGR               n/a" in text
    assert "cheap tier only" not in text  # it would be the final tier itself
    assert "final tier only      100.0%         $0.01" in text
    assert "Tiers kept: [2]" in text
    assert "tier 0 (cheap): does not pay: drop it" in text
    assert "tier 1 (middle): does not pay: drop it" in text
    assert plot.read_bytes()[:8] == PNG_SIGNATURE
    got = json.loads(out.read_text())
    assert (got["tiers"], got["thresholds"], got["n_tiers"]) == ([2], [], 1)
    assert got["apgr"] is None
    assert [r["kept"] for r in got["tier_report"]] == [False, False]


def test_calibrate_names_the_kept_tiers_of_select_tiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # tier 0 is never right, tier 1 is right when its score is high: keep 1 -> 2
    rng = np.random.default_rng(2)
    n = 200
    score1 = rng.random(n)
    path = tmp_path / "middle.npz"
    np.savez(
        path,
        scores=np.column_stack([rng.random(n), score1, np.full(n, np.nan)]),
        correct=np.column_stack([np.zeros(n), score1 > 0.3, np.ones(n)]),
        costs=np.tile([1e-4, 1e-3, 1e-2], (n, 1)),
        model_names=np.asarray(["cheap", "middle", "strong"]),
    )
    assert main(["calibrate", str(path), "--select-tiers"]) == 0
    text = capsys.readouterr().out
    assert "Tiers kept: [1, 2]" in text
    assert "  tier 1 (middle): 0.302303\n" in text  # named by its column
    assert "tier 0 (cheap): 0" not in text
    assert "answered per tier  1: 67.5%, 2: 32.5%" in text
