"""What a local sweep leaves a user: exactly `keep` fine-tuned models, never more than
`keep + parallelism` folders while it runs, the best one reloading to the metric it reported,
and the kept models measured once on held-out test data."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from test_run import run

from bertsweep.api import Dataset
from sweeps import SweepManifest

pytestmark = pytest.mark.local


class FolderWatch:
    """Counts the folders under `root` (whole models and half-written ones) every 50 ms."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            if self.root.is_dir():
                self.most = max(self.most, sum(p.is_dir() for p in self.root.iterdir()))

    def __enter__(self) -> FolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_sweep_keeps_its_best_models_and_tests_them_once(
    tmp_path: Path,
    sweep_manifest: SweepManifest,
    table: Any,
    movie_reviews: list[dict[str, str]],
) -> None:
    train = table("train.csv", movie_reviews[:240])
    validation = table("validation.csv", movie_reviews[240:340])
    test = table("test.csv", movie_reviews[340:440])
    keep, parallelism = 2, 2
    document = sweep_manifest(
        "kept",
        dataset={
            "train": str(train),
            "validation": str(validation),
            "test": str(test),
            "maxLength": 32,
        },
        algorithm={"name": "grid"},
        parameters=[
            {"name": "learning_rate", "type": "categorical", "values": [5e-5, 2e-4, 5e-4]},
            # One value TrainingArguments refuses: a failed trial must leave no folder.
            {"name": "lr_scheduler_type", "type": "categorical", "values": ["linear", "bogus"]},
        ],
        maxTrials=6,
        parallelism=parallelism,
        maxFailedTrials=6,
        output={"keep": keep},
    )
    models = tmp_path / "out" / "models"
    with FolderWatch(models) as watch:
        done, output = run(tmp_path, document)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((output / "result.json").read_text())
    trials = result["trials"]
    succeeded = [t for t in trials if t["phase"] == "Succeeded"]
    assert len(succeeded) == 3 and len(trials) == 6

    # Exactly the best `keep`, ranked as the sweep ranks them (ties to the earlier trial).
    ranked = sorted(succeeded, key=lambda t: (-t["metrics"]["eval_accuracy"], t["index"]))
    assert sorted(p.name for p in models.iterdir()) == sorted(t["name"] for t in ranked[:keep])
    assert 0 < watch.most <= keep + parallelism, watch.most
    best = result["bestTrial"]
    assert best["name"] == ranked[0]["name"]
    assert best["modelPath"] == str(models / best["name"])
    assert {"test_accuracy", "test_loss"} <= best["testMetrics"].keys()
    assert 0.0 <= best["testMetrics"]["test_accuracy"] <= 1.0

    # The kept model is what its metrics describe: reloaded as a user would, on the sweep's
    # validation data, it scores what the sweep reported.
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertsweep_trainer.data import load_task

    folder = Path(best["modelPath"])
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.id2label == {0: "fresh", 1: "rotten"}
    task = load_task(Dataset.model_validate(result["spec"]["dataset"]))
    hits = 0
    with torch.no_grad():
        for start in range(0, len(task.validation), 32):
            batch = task.validation[start : start + 32]
            encoded = tokenizer(
                [e.text for e in batch],
                truncation=True,
                max_length=32,
                padding=True,
                return_tensors="pt",
            )
            predicted = model(**encoded).logits.argmax(-1).tolist()
            hits += sum(p == e.label for p, e in zip(predicted, batch, strict=True))
    accuracy = hits / len(task.validation)
    assert accuracy == pytest.approx(best["metrics"]["eval_accuracy"], abs=0.005)
