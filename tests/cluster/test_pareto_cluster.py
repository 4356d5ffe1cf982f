"""A multi-objective sweep on the dev cluster: the operator's status names the Pareto front of
the BertTrial records that meet the constraints. The trials are simulated
(`bertsweep-trainer --simulate`: the trial contract, costs included, without a model), so the
test is about the operator, and quick."""

from __future__ import annotations

from typing import Any

import pytest
from cluster_helpers import Kubectl, OperatorProcess, wait_for

from bertsweep.pareto import dominates
from sweeps import SweepManifest

pytestmark = pytest.mark.cluster

LIMIT = 8e7  # parameters: a simulated BERT of up to 9 layers (hidden 384) fits


def test_the_status_names_the_front_of_the_records_meeting_the_constraints(
    kubectl: Kubectl, operator: Any, sweep_manifest: SweepManifest
) -> None:
    manifest = sweep_manifest(
        "front",
        objectives=[
            {"metric": "eval_accuracy", "goal": "maximize"},
            {"metric": "inference_latency_ms", "goal": "minimize"},
        ],
        constraints=[{"metric": "model_parameters", "max": LIMIT}],
        algorithm={"name": "bayesian", "seed": 3, "startupTrials": 4},
        parameters=[
            {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 12},
            {"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-3, "scale": "log"},
        ],
        fixed={"num_train_epochs": 2},
        maxTrials=10,
        parallelism=3,
    )
    manifest["spec"]["trialTemplate"]["args"] = ["--simulate", "1"]
    op: OperatorProcess = operator()
    kubectl.apply(manifest)

    def ended() -> Any:
        sweep = kubectl.sweep("front")
        return sweep if ((sweep or {}).get("status") or {}).get("phase") == "Succeeded" else None

    sweep = wait_for("the sweep to end", ended, timeout=300, explain=op.tail)
    everything = kubectl.trials("front")
    assert len(everything) == 10
    for t in everything:
        assert {"model_parameters", "inference_latency_ms"} <= t["status"]["metrics"].keys()
    # A model over the budget can never be selected: it is stopped at its first report.
    for t in everything:
        if t["status"]["metrics"]["model_parameters"] > LIMIT:
            assert t["status"]["phase"] == "Pruned", t["status"]
            assert "breaks the constraint model_parameters" in t["status"]["message"]
    records = [t for t in everything if t["status"]["phase"] == "Succeeded"]
    eligible = [t for t in records if t["status"]["metrics"]["model_parameters"] <= LIMIT]
    assert eligible, "some trial meets the budget"

    def point(t: Any) -> tuple[float, float]:
        m = t["status"]["metrics"]
        return (-m["eval_accuracy"], m["inference_latency_ms"])

    expected = {
        t["metadata"]["name"]
        for t in eligible
        if not any(dominates(point(o), point(t)) for o in eligible if o is not t)
    }
    status = sweep["status"]
    assert {s["name"] for s in status["paretoFront"]} == expected
    assert status["paretoFrontSize"] == len(expected)
    best = min(eligible, key=lambda t: (*point(t), t["spec"]["index"]))
    assert status["bestTrial"]["name"] == best["metadata"]["name"]
    assert op.alive and "Traceback" not in op.log(), op.tail()
