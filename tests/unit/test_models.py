"""Keeping a sweep's best models on disk (bertsweep_trainer.models), with plain files: what a
trial saves, what it removes, and that trials finishing at once need no lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertsweep.api import Goal, Objective
from bertsweep.contract import MODEL_MARKER, PARTIAL_PREFIX, ModelStore
from bertsweep_trainer.models import keep_model, prune, remove_partials, saved_models

pytestmark = pytest.mark.unit


def store(root: Path, keep: int = 2, goal: Goal = Goal.maximize) -> ModelStore:
    metric = "eval_accuracy" if goal is Goal.maximize else "eval_loss"
    return ModelStore(root=str(root), keep=keep, objective=Objective(metric=metric, goal=goal))


def fake_save(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")


def finish(s: ModelStore, trial: str, index: int, value: float) -> str | None:
    metric = s.objective.metric
    return keep_model(s, trial, index, {metric: value, "train_loss": 0.1}, fake_save)


def folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_only_the_best_keep_models_stay(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert finish(s, "t-0000", 0, 0.70) == str(tmp_path / "t-0000")
    assert finish(s, "t-0001", 1, 0.60) is not None
    assert finish(s, "t-0002", 2, 0.80) is not None  # pushes t-0001 out
    assert folders(tmp_path) == ["t-0000", "t-0002"]
    assert finish(s, "t-0003", 3, 0.50) is None, "two better ones are kept: not even saved"
    assert folders(tmp_path) == ["t-0000", "t-0002"]
    assert (tmp_path / "t-0002" / "model.safetensors").read_bytes() == b"weights"
    marker = json.loads((tmp_path / "t-0002" / MODEL_MARKER).read_text())
    assert marker["trial"] == "t-0002" and marker["metrics"]["eval_accuracy"] == 0.80


def test_ties_go_to_the_earlier_trial_and_losses_rank_low_first(tmp_path: Path) -> None:
    s = store(tmp_path, keep=1)
    finish(s, "t-0004", 4, 0.7)
    finish(s, "t-0002", 2, 0.7)
    assert folders(tmp_path) == ["t-0002"]
    losses = store(tmp_path / "l", keep=1, goal=Goal.minimize)
    finish(losses, "a", 0, 0.5)
    finish(losses, "b", 1, 0.3)
    assert folders(tmp_path / "l") == ["b"]


def test_trials_finishing_at_once_need_no_lock(tmp_path: Path) -> None:
    """Two trials that each save without seeing the other: one folder too many at most, and
    the next one to look removes it; neither removes a model the sweep keeps."""
    s = store(tmp_path, keep=1)
    finish(s, "t-0000", 0, 0.5)

    def blind_save(folder: Path) -> None:
        # While t-0001 writes, t-0002 finishes, saves and prunes: it does not see t-0001 yet.
        fake_save(folder)
        finish(s, "t-0002", 2, 0.6)

    keep_model(s, "t-0001", 1, {"eval_accuracy": 0.9}, blind_save)
    assert folders(tmp_path) == ["t-0001"]


def test_a_failed_save_leaves_nothing(tmp_path: Path) -> None:
    s = store(tmp_path)

    def broken(folder: Path) -> None:
        fake_save(folder)
        raise OSError("disk full")

    with pytest.raises(OSError):
        keep_model(s, "t-0000", 0, {"eval_accuracy": 0.9}, broken)
    assert folders(tmp_path) == []


def test_finalize_keeps_exactly_the_named_models_and_no_partials(tmp_path: Path) -> None:
    s = store(tmp_path, keep=3)
    for i, value in enumerate((0.5, 0.6, 0.7)):
        finish(s, f"t-{i:04d}", i, value)
    (tmp_path / f"{PARTIAL_PREFIX}t-0009").mkdir()  # a trial killed while saving
    (tmp_path / "notes.txt").write_text("the user's own file")
    assert prune(s, keep_only={"t-0002"}) == ["t-0001", "t-0000"]
    remove_partials(s)
    assert folders(tmp_path) == ["notes.txt", "t-0002"], "nothing but models is touched"
    assert [m.trial for m in saved_models(tmp_path, s)] == ["t-0002"]


def test_a_model_that_breaks_a_constraint_is_never_kept(tmp_path: Path) -> None:
    from bertsweep.api import Constraint

    s = store(tmp_path).model_copy(
        update={"constraints": [Constraint(metric="model_parameters", max=1e6)]}
    )
    small = {"eval_accuracy": 0.6, "model_parameters": 5e5}
    large = {"eval_accuracy": 0.9, "model_parameters": 5e7}
    assert keep_model(s, "t-0000", 0, small, fake_save) is not None
    assert keep_model(s, "t-0001", 1, large, fake_save) is None
    assert folders(tmp_path) == ["t-0000"]
