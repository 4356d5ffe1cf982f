"""A simulated trial (`bertsweep-trainer --simulate SECONDS`): the trainer's whole contract
(the /metrics series, one evaluation per epoch, the result file, stopping on SIGTERM), with
no model, no data and no torch, so that a benchmark of the operator measures the operator.

The learning curve is a fixed function of the trial's parameters: a quality in [0, 1) from a
hash of their values, approached over the epochs (num_train_epochs, default 3). The same
parameters always give the same curve, so the search and the early-stopping rules have
something consistent to work on.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping

from bertsweep.api import Scalar
from bertsweep.contract import Reason, ResultStatus, TrialResult

STEPS_PER_EPOCH = 10
DEFAULT_EPOCHS = 3


def quality(parameters: Mapping[str, Scalar]) -> float:
    """How good a configuration is, in [0, 1): a fixed function of its values."""
    text = json.dumps(
        {k: v for k, v in parameters.items() if k != "num_train_epochs"}, sort_keys=True
    )
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _number(parameters: Mapping[str, Scalar], name: str, default: float) -> float:
    value = parameters.get(name, default)
    return float(value) if isinstance(value, int | float) else default


def costs(parameters: Mapping[str, Scalar]) -> dict[str, float]:
    """What a BERT of this depth and width would cost (its encoder layers and embeddings)."""
    layers = _number(parameters, "num_hidden_layers", 6)
    hidden = _number(parameters, "hidden_size", 384)
    count = layers * 12 * hidden**2 + 30522 * hidden
    return {
        "model_parameters": count,
        "model_size_mb": count * 4 / 1e6,
        "inference_latency_ms": 0.5 + 0.6 * layers * hidden / 384,
        "pretrained_share": 1.0 if hidden == 384 else 0.0,
    }


def curve(parameters: Mapping[str, Scalar], epoch: float, epochs: float) -> dict[str, float]:
    """The metrics of an evaluation after `epoch` of `epochs` epochs: a deeper model learns
    more (so that accuracy trades against cost)."""
    q = quality(parameters) * (
        0.6 + 0.4 * min(_number(parameters, "num_hidden_layers", 6), 12) / 12
    )
    reached = 1 - math.exp(-3 * epoch / max(epochs, 1e-9))
    accuracy = 0.5 + 0.45 * q * reached
    loss = 0.7 - 0.5 * q * reached
    return {
        "eval_accuracy": accuracy,
        "eval_f1": accuracy - 0.02,
        "eval_precision": accuracy - 0.01,
        "eval_recall": accuracy - 0.03,
        "eval_loss": loss,
        "train_loss": loss - 0.05,
        **costs(parameters),
    }


def simulate(
    parameters: Mapping[str, Scalar],
    seconds: float,
    record: Callable[[int, float, dict[str, float]], None],
    wait: Callable[[float], bool],
) -> TrialResult:
    """Train for `seconds` in all, evaluating once per epoch: `record(step, epoch, metrics)`
    publishes each evaluation, `wait(s)` sleeps and says whether a stop was asked for."""
    epochs_value = parameters.get("num_train_epochs", DEFAULT_EPOCHS)
    epochs = max(1, math.ceil(float(epochs_value)) if isinstance(epochs_value, int | float) else 3)
    last: dict[str, float] = {}
    step = 0
    for epoch in range(1, epochs + 1):
        if wait(seconds / epochs):
            return TrialResult(
                status=ResultStatus.stopped,
                metrics=last,
                step=step,
                epoch=float(epoch - 1),
                reason=Reason.signal,
                message=f"stopped by a signal at step {step}",
            )
        step = epoch * STEPS_PER_EPOCH
        last = curve(parameters, float(epoch), float(epochs))
        record(step, float(epoch), last)
    return TrialResult(status=ResultStatus.completed, metrics=last, step=step, epoch=float(epochs))
