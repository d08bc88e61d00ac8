"""#12 item 3: the typed contract matches what the cascade reports, with no circle."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, NotRequired, get_origin, get_type_hints

import pytest

from langchain_cascade import CascadeError, CascadingChatModel, events, types
from langchain_cascade.gates import HedgingGate
from tests.unit_tests.fake_models import ScriptedChatModel, call, cascade_meta, tiers
from tests.unit_tests.run_recorder import RunRecorder


def _required_keys(typed: Any) -> set[str]:
    hints = get_type_hints(typed, include_extras=True)
    return {k for k, v in hints.items() if get_origin(v) is not NotRequired}


def _keys(typed: Any) -> set[str]:
    return set(get_type_hints(typed))


def test_metadata_attempts_and_events_have_exactly_the_typed_keys(mode: str) -> None:
    recorder = RunRecorder()
    cascade = CascadingChatModel(
        models=tiers("I'm not sure", "I don't know"),
        gates=[HedgingGate()],
        review_gate=HedgingGate(),
    )
    meta = cascade_meta(call(cascade, mode, "q", {"callbacks": [recorder]}))
    # No router and no formatter: exactly the keys that are always there.
    assert set(meta) == _required_keys(types.CascadeMetadata)
    assert set(meta["cost"]) == _keys(types.CostReport)
    for attempt in meta["attempts"]:
        assert set(attempt) == _keys(types.AttemptInfo)
    by_name = {name: data for name, data, _ in recorder.events}
    assert set(by_name[events.ESCALATION_EVENT]) == _keys(types.EscalationEvent)
    assert set(by_name[events.REVIEW_EVENT]) == _keys(types.ReviewEvent)
    tier_runs = recorder.tagged(events.tier_tag(0))
    assert tier_runs
    assert events.NOSTREAM_TAG in tier_runs[0].tags
    assert recorder.tagged(events.GATE_TAG)


def test_skipped_tiers_have_the_typed_keys() -> None:
    cascade = CascadingChatModel(models=tiers("a", "b"), gates=[HedgingGate()])
    meta = cascade_meta(cascade.invoke("q", first_tier=1))
    assert set(meta["skipped_tiers"][0]) == _keys(types.SkippedTier)


def test_cascade_error_attempts_are_attempt_infos() -> None:
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", script=[RuntimeError("down")])]
    )
    with pytest.raises(CascadeError) as info:
        cascade.invoke("q")
    assert [set(a) for a in info.value.attempts] == [_keys(types.AttemptInfo)]
    assert info.value.attempts[0]["error"] == "RuntimeError: down"


def test_errors_and_events_import_without_the_loop_or_the_model() -> None:
    code = (
        "import sys\n"
        "import langchain_cascade.errors, langchain_cascade.events\n"
        "import langchain_cascade.types\n"
        "bad = [m for m in ('langchain_cascade._run', 'langchain_cascade.chat_models')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    # The package __init__ imports everything; import the modules without it.
    result = subprocess.run(
        [sys.executable, "-c", code.replace("import sys\n", _SKIP_INIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# Load the submodules without running langchain_cascade/__init__.py.
_SKIP_INIT = (
    "import sys, types, importlib.util, pathlib\n"
    "spec = importlib.util.find_spec('langchain_cascade')\n"
    "pkg = types.ModuleType('langchain_cascade')\n"
    "pkg.__path__ = list(spec.submodule_search_locations)\n"
    "sys.modules['langchain_cascade'] = pkg\n"
)


def test_monitor_does_not_import_chat_models() -> None:
    code = (
        _SKIP_INIT + "import langchain_cascade.monitor\n"
        "assert 'langchain_cascade.chat_models' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
