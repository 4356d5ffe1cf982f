"""The finalize task, run once when a sweep has ended: keep exactly the sweep's best models,
and measure them, once, on the test data.

The sweep chose its models by the validation data, so their validation scores are flattered
by the choice; the test data had no part in it, and its scores are reported apart. Each kept
model is loaded from its folder exactly as a user would load it
(`AutoModelForSequenceClassification.from_pretrained`), with its saved tokenizer and its
saved label names, and scored with the trainer's own metrics (`scores.compute_metrics`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from bertsweep.contract import Reason
from bertsweep_trainer.config import TrialConfig
from bertsweep_trainer.data import load_split
from bertsweep_trainer.errors import TrialError
from bertsweep_trainer.models import prune, remove_partials

log = logging.getLogger(__name__)


def finalize(config: TrialConfig) -> dict[str, dict[str, float]]:
    """Remove every model but the kept ones, then each kept model's metrics on dataset.test
    (none without test data)."""
    store = config.models
    if store is None:
        raise TrialError(Reason.invalid_config, "finalize needs the sweep's models (--models)")
    removed = prune(store, keep_only=set(config.kept))
    remove_partials(store)
    log.info("kept the models of %s; removed %d others", ", ".join(config.kept), len(removed))
    if config.dataset.test is None:
        return {}
    return {trial: evaluate(Path(store.root) / trial, config) for trial in config.kept}


def evaluate(folder: Path, config: TrialConfig) -> dict[str, float]:
    """A saved model's metrics on dataset.test, as test_accuracy, test_f1, ..., test_loss."""
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from bertsweep_trainer.features import encode
    from bertsweep_trainer.scores import compute_metrics

    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    if not (folder / "config.json").is_file():
        raise TrialError(Reason.model_unavailable, f"no saved model in {folder}")
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert config.dataset.test is not None
    examples = load_split(config.dataset, config.dataset.test, "test", labels)
    test_set = encode(tokenizer, examples, config.dataset.max_length, by_length=True)
    with tempfile.TemporaryDirectory(prefix="bertsweep-finalize-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            report_to="none",
            disable_tqdm=True,
            per_device_eval_batch_size=32,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=compute_metrics,
        )
        measured = trainer.evaluate(test_set, metric_key_prefix="test")
    metrics = {
        k: float(v)
        for k, v in measured.items()
        if k in ("test_accuracy", "test_f1", "test_precision", "test_recall", "test_loss")
    }
    log.info(
        "%s on %d test examples: %s",
        folder.name,
        len(test_set),
        " ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
    )
    return metrics
