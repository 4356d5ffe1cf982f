"""The models a sweep keeps, on the dev cluster: trials save to a volume the template mounts,
keep the best themselves, and the finalize pod leaves exactly `keep` and tests them once."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import Kubectl, OperatorProcess, wait_for

from sweeps import SweepManifest

pytestmark = pytest.mark.cluster


def test_a_cluster_sweep_keeps_its_best_model_on_the_templates_volume(
    kubectl: Kubectl,
    operator: Any,
    sweep_manifest: SweepManifest,
    tmp_path: Path,
    movie_reviews: list[dict[str, str]],
) -> None:
    # The "PVC": a folder of this machine that the dev cluster mounts into every trial pod.
    volume = tmp_path / "volume"
    volume.mkdir()
    with (volume / "test.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "category"])
        writer.writeheader()
        for row in movie_reviews[:120]:
            writer.writerow({"text": row["text"], "category": row["label"]})
    manifest = sweep_manifest(
        "keeper", maxTrials=3, parallelism=2, output={"path": "/models/keeper", "keep": 1}
    )
    manifest["spec"]["dataset"]["test"] = "/models/test.csv"
    template = manifest["spec"]["trialTemplate"]
    template["volumes"] = [{"name": "models", "hostPath": {"path": str(volume)}}]
    template["volumeMounts"] = [{"name": "models", "mountPath": "/models"}]
    op: OperatorProcess = operator()
    kubectl.apply(manifest)

    def finalized() -> Any:
        sweep = kubectl.sweep("keeper")
        for c in ((sweep or {}).get("status") or {}).get("conditions") or []:
            if c["type"] == "ModelsKept" and c["reason"] != "Finalizing":
                return sweep
        return None

    sweep = wait_for("the sweep's models to be finalized", finalized, timeout=420, explain=op.tail)
    status = sweep["status"]
    kept = next(c for c in status["conditions"] if c["type"] == "ModelsKept")
    assert (kept["status"], kept["reason"]) == ("True", "Finalized"), kept
    assert status["phase"] == "Succeeded"
    best = status["bestTrial"]
    assert best["modelPath"] == f"/models/keeper/{best['name']}"
    assert sorted(p.name for p in (volume / "keeper").iterdir()) == [best["name"]]
    assert (volume / "keeper" / best["name"] / "model.safetensors").is_file()
    assert {"test_accuracy", "test_loss"} <= best["testMetrics"].keys(), best
    records = {t["metadata"]["name"]: t["status"] for t in kubectl.trials("keeper")}
    assert records[best["name"]]["testMetrics"] == best["testMetrics"]
    assert all(s.get("modelPath") is None for n, s in records.items() if n != best["name"])
    (finalize,) = [p for p in kubectl.pods("keeper") if "finalize" in p["metadata"]["name"]]
    assert finalize["status"]["phase"] == "Succeeded"
    assert finalize["metadata"]["ownerReferences"][0]["kind"] == "BertSweep"
    assert op.alive and "Traceback" not in op.log(), op.tail()


def test_models_on_no_mounted_volume_are_refused(
    kubectl: Kubectl, operator: Any, sweep_manifest: SweepManifest
) -> None:
    op: OperatorProcess = operator()
    kubectl.apply(sweep_manifest("nowhere", output={"path": "/models/x", "keep": 1}))

    def rejected() -> Any:
        sweep = kubectl.sweep("nowhere")
        return sweep if ((sweep or {}).get("status") or {}).get("phase") == "Failed" else None

    sweep = wait_for("the sweep to be refused", rejected, timeout=60, explain=op.tail)
    valid = next(c for c in sweep["status"]["conditions"] if c["type"] == "SpecValid")
    assert "spec.output.path: /models/x is on no volume" in valid["message"]
    assert kubectl.trials("nowhere") == []
