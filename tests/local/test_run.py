"""`bertsweep run` end to end: real trainer processes fine-tuning the real MiniLM on real text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweeps import SweepManifest

pytestmark = pytest.mark.local

BIN = Path(sys.executable).parent


def small(sweep_manifest: SweepManifest, name: str, **spec: Any) -> dict[str, Any]:
    """The shared tiny sweep, searching depth too and evaluating every 4 steps."""
    defaults: dict[str, Any] = {
        "parameters": [
            {"name": "learning_rate", "type": "float", "min": 1e-4, "max": 5e-4, "scale": "log"},
            {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 2},
        ],
        "fixed": {"num_train_epochs": 1, "per_device_train_batch_size": 16, "eval_steps": 4},
    }
    return sweep_manifest(name, **{**defaults, **spec})


def run(tmp_path: Path, document: dict[str, Any]) -> tuple[subprocess.CompletedProcess[str], Path]:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(document))
    output = tmp_path / "out"
    done = subprocess.run(
        [str(BIN / "bertsweep"), "run", str(path), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return done, output


def test_a_small_sweep_runs_to_the_end_and_reports_its_best_trial(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    done, output = run(tmp_path, small(sweep_manifest, "tiny"))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((output / "result.json").read_text())
    assert result["sweep"] == "tiny" and result["phase"] == "Succeeded"
    trials = result["trials"]
    assert [t["name"] for t in trials] == ["tiny-0000", "tiny-0001", "tiny-0002"]
    assert all(t["phase"] == "Succeeded" for t in trials), trials
    for t in trials:
        assert {"eval_accuracy", "eval_f1", "eval_loss", "train_loss"} <= t["metrics"].keys()
        assert 0.0 <= t["metrics"]["eval_accuracy"] <= 1.0
        # evaluations at steps 4 and 8 come from /metrics while the trial runs
        assert len(t["reports"]) >= 2, t["reports"]
        assert 1e-4 <= t["parameters"]["learning_rate"] <= 5e-4
    best = max(trials, key=lambda t: t["metrics"]["eval_accuracy"])
    assert result["bestTrial"]["name"] == best["name"]
    assert result["bestTrial"]["parameters"] == best["parameters"]
    assert "Leaderboard" in done.stdout and f"Best trial {best['name']}" in done.stdout
    # each trial kept its own log
    assert (output / "trials" / "tiny-0000" / "trainer.log").stat().st_size > 0


def test_a_failure_every_trial_would_share_fails_the_sweep_after_the_first(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    document = small(sweep_manifest, "broken", maxTrials=3, parallelism=1, maxFailedTrials=3)
    document["spec"]["dataset"]["textColumn"] = "review"  # no such column
    done, output = run(tmp_path, document)
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads((output / "result.json").read_text())
    assert result["phase"] == "Failed"
    (failed,) = result["trials"]  # not maxFailedTrials + 1 of them: the next would fail alike
    assert failed["phase"] == "Failed" and failed["reason"] == "InvalidData"
    assert "review" in failed["message"], failed
    condition = result["status"]["conditions"][0]
    assert condition["reason"] == "InvalidData" and "every trial" in condition["message"]
    assert result["bestTrial"] is None


def test_failures_of_a_searched_value_count_up_to_max_failed_trials(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    document = small(
        sweep_manifest,
        "flaky",
        maxTrials=2,
        parallelism=2,
        maxFailedTrials=0,
        algorithm={"name": "grid"},
        parameters=[
            {"name": "lr_scheduler_type", "type": "categorical", "values": ["bogus", "linear"]}
        ],
    )
    done, output = run(tmp_path, document)
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads((output / "result.json").read_text())
    bogus = result["trials"][0]
    assert bogus["reason"] == "InvalidParameter" and "bogus" in bogus["message"]
    assert result["status"]["conditions"][0]["reason"] == "MaxFailedTrialsExceeded"


def test_a_bad_manifest_is_refused_with_a_message_not_a_traceback(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    document = small(sweep_manifest, "bad")
    document["spec"]["parameters"][0]["min"] = 1e-2  # above max
    document["spec"]["parallelism"] = 0
    done, _ = run(tmp_path, document)
    assert done.returncode == 2
    assert "spec.parameters[0]: `min` (0.01) must be less than `max` (0.0005)" in done.stderr
    assert "spec.parallelism" in done.stderr
    assert "Traceback" not in done.stderr
