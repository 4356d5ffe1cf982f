"""A local multi-objective sweep end to end: real trainer processes report what their models
cost, and the Pareto front in result.json is exactly the non-dominated set of the trials that
meet the constraints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_run import run

from bertsweep.pareto import dominates
from sweeps import SweepManifest

pytestmark = pytest.mark.local

LIMIT = 17e6  # MiniLM with 1 or 2 layers fits (13.8M, 15.6M), with 3 it does not (17.4M)


def test_the_front_is_the_non_dominated_set_of_the_trials_that_meet_the_constraints(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    document = sweep_manifest(
        "trade",
        objectives=[
            {"metric": "eval_accuracy", "goal": "maximize"},
            {"metric": "inference_latency_ms", "goal": "minimize"},
        ],
        constraints=[{"metric": "model_parameters", "max": LIMIT}],
        algorithm={"name": "grid"},
        parameters=[
            {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 3},
            {"name": "learning_rate", "type": "categorical", "values": [3e-4, 1e-3]},
        ],
        fixed={"num_train_epochs": 2, "per_device_train_batch_size": 16},
        maxTrials=6,
        parallelism=2,
        output={"keep": 1},
    )
    done, output = run(tmp_path, document)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((output / "result.json").read_text())
    assert len(result["trials"]) == 6
    for t in result["trials"]:
        assert {"model_parameters", "model_size_mb", "inference_latency_ms"} <= t["metrics"].keys()
        assert t["metrics"]["inference_latency_ms"] > 0
        for report in t["reports"]:
            assert report["metrics"]["model_parameters"] == t["metrics"]["model_parameters"]
    # A model over its size budget can never be selected, so it stops at its first report
    # instead of training on: the budget is cost, and it is spent on models that can win.
    deep = [t for t in result["trials"] if t["parameters"]["num_hidden_layers"] == 3]
    assert len(deep) == 2
    for t in deep:
        assert t["metrics"]["model_parameters"] > LIMIT
        assert t["phase"] == "Pruned", t
        assert "breaks the constraint model_parameters" in t["message"], t
        assert t["reports"][-1]["epoch"] < 2, "it trained on to the end"
    trials = [t for t in result["trials"] if t["phase"] == "Succeeded"]
    assert len(trials) == 4

    eligible = [t for t in trials if t["metrics"]["model_parameters"] <= LIMIT]

    def point(t: dict[str, object]) -> tuple[float, float]:
        metrics = t["metrics"]
        assert isinstance(metrics, dict)
        return (-metrics["eval_accuracy"], metrics["inference_latency_ms"])

    expected = {
        t["name"]
        for t in eligible
        if not any(dominates(point(o), point(t)) for o in eligible if o is not t)
    }
    front = {t["name"] for t in result["paretoFront"]}
    assert front == expected
    assert result["status"]["paretoFrontSize"] == len(expected)
    # The best on the primary; a tie goes to the better on the next objective, then the earlier.
    best = min(eligible, key=lambda t: (*point(t), t["index"]))
    assert result["bestTrial"]["name"] == best["name"]
    assert best["name"] in front
    assert "Pareto front" in done.stdout and "inference_latency_ms" in done.stdout
