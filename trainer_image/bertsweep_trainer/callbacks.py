"""TrainerCallbacks that publish a trial's progress and stop it on request.

Callbacks run after transformers' DefaultFlowCallback, so they see (and may amend) the flags it
sets for the current step: whether this step logs, evaluates, or ends training.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from bertsweep.api import REPORTED_METRICS
from bertsweep_trainer.metrics import TrialMetrics
from bertsweep_trainer.signals import StopRequest

log = logging.getLogger(__name__)


class EvaluationAborted(Exception):
    """Raised inside an evaluation when a stop is requested: an evaluation over a large set
    could otherwise outlast the pod's termination grace period."""


@dataclass
class Evaluation:
    step: int
    epoch: float
    metrics: dict[str, float]


@dataclass
class Progress:
    """What the trial has reached, read by main at the end."""

    step: int = 0
    epoch: float = 0.0
    train_loss: float | None = None
    samples_per_second: float | None = None
    evaluations: list[Evaluation] = field(default_factory=list)
    cut_short: bool = False  # a stop request ended training before its last step
    first_step_at: float | None = None
    """When the first optimizer step began (Unix time): what a trial's start-up costs."""
    last_step_at: float | None = None
    """When the last optimizer step ended (Unix time)."""
    step_seconds: float = 0.0
    """Time inside optimizer steps (evaluations, logging and callbacks between them not)."""

    def timings(self) -> dict[str, float]:
        if self.first_step_at is None or self.last_step_at is None:
            return {}
        return {
            "first_step_at": self.first_step_at,
            "loop_seconds": self.last_step_at - self.first_step_at,
            "step_seconds": self.step_seconds,
        }


class ReportingCallback(TrainerCallback):
    """Live gauges, one eval series per evaluation, one log line per evaluation, and stopping.

    `train_examples` converts epochs into samples for the throughput gauge.
    """

    def __init__(self, metrics: TrialMetrics, stop: StopRequest, train_examples: int) -> None:
        self.costs: dict[str, float] = {}
        """What the model costs (costs.model_costs), carried by every evaluation."""
        self.metrics = metrics
        self.stop = stop
        self.train_examples = train_examples
        self.progress = Progress()
        self._step_started: float | None = None
        self._epoch_at_step_start = 0.0
        self._train_seconds = 0.0  # time inside optimizer steps: evaluation is not training
        self._samples = 0.0

    # -- throughput -------------------------------------------------------------------------

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._step_started = time.perf_counter()
        self._epoch_at_step_start = state.epoch or 0.0
        if self.progress.first_step_at is None:
            self.progress.first_step_at = time.time()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self._step_started is not None:
            self._train_seconds += time.perf_counter() - self._step_started
            self.progress.step_seconds = self._train_seconds
            self.progress.last_step_at = time.time()
            # Epoch progress times the train set size counts the short last batch correctly.
            self._samples += ((state.epoch or 0.0) - self._epoch_at_step_start) * (
                self.train_examples
            )
            self._step_started = None
        self.progress.step = state.global_step
        self.progress.epoch = state.epoch or 0.0
        self.metrics.set_progress(state.global_step, self.progress.epoch)
        if self._train_seconds > 0:
            self.progress.samples_per_second = self._samples / self._train_seconds
            self.metrics.set_samples_per_second(self.progress.samples_per_second)

        if self.stop:
            # A request that comes with the last step changes nothing: the trial completed.
            self.progress.cut_short |= state.global_step < state.max_steps
            control.should_training_stop = True
            control.should_evaluate = False
            control.should_save = False
        # Log the training loss at every evaluation and at the end, so the train_loss reported
        # with an evaluation is the loss of the steps just before it, not of an older window.
        if control.should_evaluate or control.should_training_stop:
            control.should_log = True

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self.stop:  # no end-of-epoch evaluation for a trial that was told to stop
            control.should_evaluate = False
            control.should_save = False
        elif control.should_evaluate:
            control.should_log = True

    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self.stop:
            self.progress.cut_short = True
            raise EvaluationAborted

    # -- loss and evaluations ---------------------------------------------------------------

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **_: Any,
    ) -> None:
        # "loss" is the mean over the steps since the previous log; the "train_loss" logged at
        # the very end is a mean over the whole run, dominated by the first steps: not used.
        loss = (logs or {}).get("loss")
        if loss is not None and math.isfinite(loss):
            self.progress.train_loss = float(loss)
            self.metrics.set_train_loss(float(loss))

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **_: Any,
    ) -> None:
        values = {k: float(v) for k, v in (metrics or {}).items() if k in REPORTED_METRICS}
        if self.progress.train_loss is not None:
            values["train_loss"] = self.progress.train_loss
        values |= self.costs
        evaluation = Evaluation(state.global_step, state.epoch or 0.0, values)
        self.progress.evaluations.append(evaluation)
        self.metrics.record_eval(evaluation.step, evaluation.epoch, values)
        print(format_evaluation(evaluation, self.progress.samples_per_second), flush=True)


def format_evaluation(evaluation: Evaluation, samples_per_second: float | None) -> str:
    """One human-readable line per evaluation (stdout, which `kubectl logs` shows)."""
    parts = [f"eval step={evaluation.step} epoch={evaluation.epoch:.2f}"]
    parts += [
        f"{name}={evaluation.metrics[name]:.4f}"
        for name in REPORTED_METRICS
        if name in evaluation.metrics
    ]
    if samples_per_second is not None:
        parts.append(f"train_samples_per_second={samples_per_second:.1f}")
    return " ".join(parts)
