"""Classification scores for `Trainer(compute_metrics=...)`, with numpy only.

Macro averages follow scikit-learn's defaults (no sklearn in the image): precision, recall and
F1 are computed per class and averaged over the classes that occur in the labels or in the
predictions, a class never predicted has precision 0, and F1 is the mean of per-class F1s (not
the F1 of the mean precision and recall).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def classification_scores(predictions: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, float]:
    """accuracy, precision, recall, f1 from logits (n, classes) or class ids (n,), and labels."""
    pred = np.asarray(predictions)
    if pred.ndim == 2:
        pred = pred.argmax(axis=-1)
    true = np.asarray(labels).reshape(-1).astype(np.int64)
    pred = pred.reshape(-1).astype(np.int64)
    if true.size == 0:
        return {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    classes = int(max(true.max(), pred.max())) + 1
    confusion = np.bincount(true * classes + pred, minlength=classes * classes).reshape(
        classes, classes
    )
    hits = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    actual = confusion.sum(axis=1).astype(np.float64)
    present = (predicted + actual) > 0
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(hits), where=denominator > 0
    )
    return {
        "accuracy": float(hits.sum() / true.size),
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "f1": float(f1[present].mean()),
    }


def compute_metrics(prediction: Any) -> dict[str, float]:
    """`Trainer`'s hook: an `EvalPrediction`; some models return a tuple whose first is logits."""
    logits = prediction.predictions
    if isinstance(logits, tuple):
        logits = logits[0]
    return classification_scores(logits, prediction.label_ids)
