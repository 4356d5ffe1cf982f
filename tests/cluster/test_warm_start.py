"""Warm start on the dev cluster: a second sweep names a finished first one (and one that does
not exist) in `spec.warmStart`; the operator reads the first's BertSweep and BertTrial records,
its WarmStarted condition counts the trials it used, and nothing of the first sweep appears in
the second's status or records. The trials are simulated (`bertsweep-trainer --simulate`), so
the test is about the operator, and quick."""

from __future__ import annotations

from typing import Any

import pytest
from cluster_helpers import Kubectl, OperatorProcess, wait_for

from sweeps import SweepManifest

pytestmark = pytest.mark.cluster


def simulated(sweep_manifest: SweepManifest, name: str, **spec: Any) -> Any:
    defaults: dict[str, Any] = {
        "algorithm": {"name": "bayesian", "seed": 5, "startupTrials": 2},
        "parameters": [
            {"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-3, "scale": "log"},
            {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 6},
        ],
        "fixed": {"num_train_epochs": 2},
        "maxTrials": 4,
        "parallelism": 2,
    }
    manifest = sweep_manifest(name, **{**defaults, **spec})
    manifest["spec"]["trialTemplate"]["args"] = ["--simulate", "1"]
    return manifest


def test_a_sweep_warm_started_from_a_finished_one_learns_from_it_and_shows_only_its_own(
    kubectl: Kubectl, operator: Any, sweep_manifest: SweepManifest
) -> None:
    op: OperatorProcess = operator()

    def succeeded(name: str) -> Any:
        def probe() -> Any:
            sweep = kubectl.sweep(name)
            phase = ((sweep or {}).get("status") or {}).get("phase")
            return sweep if phase == "Succeeded" else None

        return probe

    kubectl.apply(simulated(sweep_manifest, "first"))
    wait_for("the first sweep to end", succeeded("first"), timeout=300, explain=op.tail)
    first = {t["metadata"]["name"] for t in kubectl.trials("first")}
    assert len(first) == 4

    kubectl.apply(
        simulated(sweep_manifest, "second", maxTrials=3, warmStart={"sweeps": ["first", "later"]})
    )
    sweep = wait_for("the second sweep to end", succeeded("second"), timeout=300, explain=op.tail)
    status = sweep["status"]
    (condition,) = [c for c in status["conditions"] if c["type"] == "WarmStarted"]
    assert (condition["status"], condition["reason"]) == ("True", "EarlierTrialsUsed")
    assert condition["message"] == (
        "4 of 4 earlier trials used; first: 4 of 4; later: not found (yet)"
    )

    # Nothing of the first sweep in the second's status or records.
    own = [t["metadata"]["name"] for t in kubectl.trials("second")]
    assert own == ["second-0000", "second-0001", "second-0002"]
    assert [t["spec"]["index"] for t in kubectl.trials("second")] == [0, 1, 2]
    assert status["trials"]["total"] == 3 and status["done"] == "3/3"
    shown = {s["name"] for s in status["leaderboard"]} | {status["bestTrial"]["name"]}
    assert shown <= set(own) and not shown & first
    assert all("/" not in s["name"] for s in status["leaderboard"])
    # ... and the first sweep is as it was.
    assert {t["metadata"]["name"] for t in kubectl.trials("first")} == first
    assert op.alive and "Traceback" not in op.log(), op.tail()
