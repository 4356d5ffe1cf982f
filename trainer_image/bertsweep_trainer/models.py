"""Keeping a sweep's best models on disk, with no one to coordinate the trials.

Each model folder ROOT/TRIAL/ holds the model in Hugging Face's save_pretrained layout and a
marker (`contract.MODEL_MARKER`) with the trial's index and final metrics, from which every
trial ranks every saved model the same way (`ModelStore.rank_key`, the sweep's own ranking).
A finished trial

1. skips saving when `keep` saved models already rank above it (it can never be kept);
2. else writes ROOT/.partial-TRIAL, then renames it to ROOT/TRIAL (a reader never sees half a
   model, and a folder without a marker is never a model);
3. then removes every model that ranks below the best `keep` it sees.

No lock is needed: a trial that misses a model saved at the same moment by another keeps at
most one folder too many, which the other removes; and a model removed on what one trial saw
would be removed on what all of them see, since more models only push others further down.
So at most `keep` + (trials finishing at once) folders exist. Pure file handling: the save
itself is a callback, so this is tested without torch.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bertsweep.contract import MODEL_MARKER, PARTIAL_PREFIX, ModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedModel:
    trial: str
    key: tuple[float, ...]
    """Where the sweep ranks it (`ModelStore.rank_key`): lower is better."""


def saved_models(root: Path, store: ModelStore) -> list[SavedModel]:
    """The whole models under `root`, best first."""
    found = []
    for marker in root.glob(f"*/{MODEL_MARKER}"):
        try:
            data = json.loads(marker.read_text())
            metrics = {str(k): float(v) for k, v in data["metrics"].items()}
            if store.objective.metric not in metrics:
                continue
            found.append(
                SavedModel(str(data["trial"]), store.rank_key(metrics, int(data["index"])))
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # being removed, or not ours: not a model to rank
    return sorted(found, key=lambda m: m.key)


def keep_model(
    store: ModelStore,
    trial: str,
    index: int,
    metrics: Mapping[str, float],
    save: Callable[[Path], None],
) -> str | None:
    """Save this trial's model if it can be among the best `keep`, then remove what can no
    longer be; the model's folder if it is kept, else None."""
    root = Path(store.root)
    broken = [c.metric for c in store.constraints if not c.met(metrics)]
    if broken:
        log.info("model not saved: it breaks the constraints on %s", ", ".join(broken))
        return None
    if store.objective.metric not in metrics:
        log.warning("no %s to rank the model by: not saved", store.objective.metric)
        return None
    mine = store.rank_key(metrics, index)
    ahead = [m for m in saved_models(root, store) if m.trial != trial and m.key < mine]
    if len(ahead) >= store.keep:
        log.info("model not saved: %d better ones are kept already", len(ahead))
        return None
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f"{PARTIAL_PREFIX}{trial}"
    final = root / trial
    shutil.rmtree(partial, ignore_errors=True)
    try:
        save(partial)
        marker = {"trial": trial, "index": index, "metrics": dict(metrics)}
        (partial / MODEL_MARKER).write_text(json.dumps(marker))
        shutil.rmtree(final, ignore_errors=True)  # an earlier attempt of this trial
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    prune(store)
    return str(final) if final.exists() else None


def prune(store: ModelStore, keep_only: set[str] | None = None) -> list[str]:
    """Remove the models below the best `keep` (or all but `keep_only`); the trials removed."""
    models = saved_models(Path(store.root), store)
    doomed = (
        models[store.keep :]
        if keep_only is None
        else [m for m in models if m.trial not in keep_only]
    )
    for model in doomed:
        shutil.rmtree(Path(store.root) / model.trial, ignore_errors=True)
        log.info(
            "removed the model of %s: it can no longer be among the best %d",
            model.trial,
            store.keep,
        )
    return [m.trial for m in doomed]


def remove_partials(store: ModelStore) -> None:
    """Folders left half-written by trials that died while saving (once none is running)."""
    for partial in Path(store.root).glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(partial, ignore_errors=True)
