"""The contract between a trial (the trainer) and whoever watches it (local runner, operator).

Both sides import this module, so the metric names, labels, environment variables, the
result file (`TrialResult`) and the reasons a trial or a sweep ends for (`Reason`) are written
down exactly once. It is pure: reading the metrics from HTTP or from Prometheus is the job of
`local.py` and `prometheus.py`, which turn what they read into `Sample`s and hand them to
`observe_trial`; writing the result file is the trainer's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from bertsweep.api import (
    MINIMIZED_METRICS,
    REPORTED_METRICS,
    Constraint,
    Objective,
    Report,
    SweepSpec,
    Trial,
    rank_key,
)

__all__ = [
    "MINIMIZED_METRICS",
    "REPORTED_METRICS",
    "Observation",
    "Reason",
    "Report",
    "ResultStatus",
    "Sample",
    "TrialResult",
]


class Reason(StrEnum):
    """Every reason BertSweep writes: in a trial's record, in the sweep's conditions and in
    Events. They are API (users filter Events and conditions on them), CamelCase like
    Kubernetes' own. Reasons that come from Kubernetes itself (Evicted, ImagePullBackOff,
    DeadlineExceeded, ...) are passed through as they are and are not listed here."""

    # How a trial ended.
    completed = "Completed"
    pruned = "Pruned"  # an early-stopping rule stopped it
    sweep_ended = "SweepEnded"  # the sweep ended while it ran
    # Failures the trainer reports in its result file.
    invalid_config = "InvalidConfig"  # arguments or BERTSWEEP_* environment
    invalid_data = "InvalidData"  # files, columns, labels, splits
    invalid_parameter = "InvalidParameter"  # a hyperparameter name or value
    model_unavailable = "ModelUnavailable"  # a model reference that does not load
    signal = "Signal"  # stopped by SIGTERM/SIGINT
    diverged = "Diverged"  # the loss became NaN or infinite: stopped, with its last good values
    trainer_error = "TrainerError"  # anything unexpected: a bug, out of memory, ...
    # Failures seen from outside the trainer.
    error = "Error"  # a non-zero exit without a reason of its own
    killed = "Killed"  # a local trial process killed by a signal
    stopped = "Stopped"  # exited 0 without finishing: stopped from outside
    oom_killed = "OOMKilled"
    pod_deleted = "PodDeleted"  # the pod disappeared while the trial ran
    pod_rejected = "PodRejected"  # the API server refused the trial's pod (422)
    unschedulable = "Unschedulable"
    # The sweep's conditions.
    trials_running = "TrialsRunning"
    max_trials_reached = "MaxTrialsReached"
    target_reached = "TargetReached"
    search_space_exhausted = "SearchSpaceExhausted"
    max_failed_trials_exceeded = "MaxFailedTrialsExceeded"
    invalid_spec = "InvalidSpec"
    valid_spec = "Valid"
    prometheus_reachable = "PrometheusReachable"
    prometheus_unreachable = "PrometheusUnreachable"
    prometheus_not_configured = "PrometheusNotConfigured"
    quota_available = "QuotaAvailable"
    quota_exceeded = "QuotaExceeded"
    finalizing = "Finalizing"  # the sweep's kept models are being finalized
    finalized = "Finalized"
    finalize_failed = "FinalizeFailed"
    earlier_trials_used = "EarlierTrialsUsed"  # WarmStarted: some earlier trials feed the search
    no_earlier_trials = "NoEarlierTrials"  # WarmStarted: none could be used (yet)
    # Events.
    trial_failed = "TrialFailed"
    trial_pruned = "TrialPruned"
    trial_stopped = "TrialStopped"
    trial_retried = "TrialRetried"
    trial_diverged = "TrialDiverged"
    trial_unreadable = "TrialUnreadable"
    new_best_trial = "NewBestTrial"
    sweep_succeeded = "SweepSucceeded"
    sweep_failed = "SweepFailed"


# Failures that depend only on what a trial was given: the same inputs fail the same way
# every time, so they are never retried, and when the values at fault are not searched (or
# nothing but shared inputs is at fault) every trial of the sweep would share them.
DETERMINISTIC = frozenset(
    {
        Reason.invalid_config,
        Reason.invalid_data,
        Reason.invalid_parameter,
        Reason.model_unavailable,
        Reason.pod_rejected,
    }
)

# Prometheus series exposed by every trial; every one carries the labels `sweep` and `trial`.
# One series per evaluation (labels `metric`, `step`, `epoch`) rather than one gauge that is
# overwritten: an evaluation that happens between two scrapes is then still seen by the next.
EVAL_SERIES = "bertsweep_trial_eval"
FINAL_SERIES = "bertsweep_trial_final"  # labels: metric; present once training has ended
STEP_SERIES = "bertsweep_trial_step"
EPOCH_SERIES = "bertsweep_trial_epoch"
TRAIN_LOSS_SERIES = "bertsweep_trial_train_loss"
SAMPLES_PER_SECOND_SERIES = "bertsweep_trial_train_samples_per_second"
TRIAL_LABELS = ("sweep", "trial")

# Environment of a trial process (pod or subprocess). Each one has a command-line twin in the
# trainer; the environment is what the operator and the local runner set.
ENV_SWEEP = "BERTSWEEP_SWEEP"
ENV_TRIAL = "BERTSWEEP_TRIAL"
ENV_MODEL = "BERTSWEEP_MODEL"
ENV_DATASET = "BERTSWEEP_DATASET"  # JSON of api.Dataset (by alias)
ENV_PARAMETERS = "BERTSWEEP_PARAMETERS"  # JSON object: fixed values merged with the trial's
ENV_INFERENCE = "BERTSWEEP_INFERENCE"  # JSON of api.Inference: how latency is measured
ENV_METRICS_ADDR = "BERTSWEEP_METRICS_ADDR"  # host to bind /metrics on; default 0.0.0.0
ENV_METRICS_PORT = "BERTSWEEP_METRICS_PORT"
ENV_RESULT_FILE = "BERTSWEEP_RESULT_FILE"  # default /dev/termination-log
ENV_SCRAPE_WAIT = "BERTSWEEP_SCRAPE_WAIT_SECONDS"  # how long to wait for a last scrape
ENV_TRIAL_INDEX = "BERTSWEEP_TRIAL_INDEX"
ENV_MODELS = "BERTSWEEP_MODELS"  # JSON of ModelStore: where to save the model, how many to keep
ENV_TASK = "BERTSWEEP_TASK"  # train (a trial) | finalize (the sweep's kept models, at its end)
ENV_KEPT = "BERTSWEEP_KEPT"  # finalize: JSON list of the trials whose models the sweep keeps
ENV_NODE_CPUS = "BERTSWEEP_NODE_CPUS"  # the CPUs of the node, for a pod that was given none
ENV_PARALLELISM = "BERTSWEEP_PARALLELISM"  # how many trials may share them
ENV_SIMULATE = "BERTSWEEP_SIMULATE_SECONDS"  # a simulated trial of this length (benchmarks)
TASK_TRAIN = "train"
TASK_FINALIZE = "finalize"
# The file beside each saved model that says whose it is and what it scored, so that every
# trial can tell which models can no longer be among the best `keep` (no lock, no coordinator).
MODEL_MARKER = "bertsweep-trial.json"
PARTIAL_PREFIX = ".partial-"  # a model being written; renamed into place once whole
DEFAULT_METRICS_PORT = 8000
DEFAULT_RESULT_FILE = "/dev/termination-log"

# The result file is a Kubernetes termination message in a cluster, and the kubelet keeps at
# most 4096 bytes of it, so it holds the final metrics and the outcome, never the history.
RESULT_FILE_LIMIT = 4096


class ResultStatus(StrEnum):
    completed = "completed"
    stopped = "stopped"  # by a signal: its metrics are the last it reached
    diverged = "diverged"  # its loss became NaN or infinite: its metrics are the last good ones
    failed = "failed"


class TrialResult(BaseModel):
    """The trainer's result file: how the trial ended, in JSON. Written by the trainer, read
    by the operator (from the termination message) and the local runner (from the file).

    Read leniently, as anything read back is: unknown keys are ignored (a newer trainer may
    say more) and metrics that are not finite numbers are dropped (JSON has no NaN)."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    status: ResultStatus
    metrics: dict[str, float] = {}
    step: int = 0
    epoch: float = 0.0
    reason: str | None = None
    message: str | None = None
    faulty_parameters: list[str] = []
    """For a failure: the parameters whose values caused it. Empty when it does not depend
    on any value (an unknown name, the data, the model): then every trial would share it."""
    model_path: str | None = None
    """Where the trial saved its model, if it was among the best `keep` when it finished."""
    test_metrics: dict[str, dict[str, float]] = {}
    """The finalize task's result: each kept trial's metrics on dataset.test."""
    timings: dict[str, float] = {}
    """Where a trial's time went: first_step_at (Unix time), loop_seconds (first step to
    last), step_seconds (inside optimizer steps). For benchmarks; nobody decides by it."""

    @field_validator("metrics", mode="before")
    @classmethod
    def _finite(cls, raw: Any) -> dict[str, float]:
        if not isinstance(raw, dict):
            return {}
        return {
            str(k): float(v)
            for k, v in raw.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }

    @field_validator("timings", mode="before")
    @classmethod
    def _finite_timings(cls, raw: Any) -> dict[str, float]:
        return cls._finite(raw)

    @field_validator("step", mode="before")
    @classmethod
    def _whole(cls, raw: Any) -> int:
        return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else 0

    @field_validator("epoch", mode="before")
    @classmethod
    def _epoch(cls, raw: Any) -> float:
        ok = isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)
        return float(raw) if ok else 0.0

    @classmethod
    def parse(cls, text: str | None) -> TrialResult | None:
        """The result in a file or termination message; None when it is not ours (empty, or
        the log tail a crashed container leaves with FallbackToLogsOnError)."""
        if not text or not text.strip():
            return None
        try:
            return cls.model_validate_json(text)
        except ValidationError:
            return None

    def render(self, limit: int = RESULT_FILE_LIMIT) -> str:
        """The JSON text, its message shortened if needed to stay under `limit` bytes."""
        document = self.model_dump(mode="json", by_alias=True)
        document["epoch"] = round(self.epoch, 4)
        text = json.dumps(document, allow_nan=False)
        message = document["message"] or ""
        while len(text.encode()) >= limit and message:
            message = message[: max(0, len(message) - (len(text.encode()) - limit) - 16)]
            document["message"] = message + "..."
            text = json.dumps(document, allow_nan=False)
        return text

    @field_validator("test_metrics", mode="before")
    @classmethod
    def _finite_tables(cls, raw: Any) -> dict[str, dict[str, float]]:
        if not isinstance(raw, dict):
            return {}
        return {str(k): cls._finite(v) for k, v in raw.items()}

    def last_report(self) -> Report | None:
        """The final values as the evaluation they were measured at, if the result says so."""
        if not self.metrics or not self.step:
            return None
        return Report(step=self.step, epoch=self.epoch, metrics=self.metrics)


@dataclass(frozen=True)
class Sample:
    """One scraped value: series name, its labels, and the value."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class Observation:
    """What has been seen of one trial: its evaluations, its final metrics, its progress."""

    reports: list[Report] = field(default_factory=list)
    final: dict[str, float] | None = None
    step: int | None = None
    epoch: float | None = None
    train_loss: float | None = None
    samples_per_second: float | None = None


def observe_trials(samples: Iterable[Sample]) -> dict[str, Observation]:
    """Group samples by their `trial` label and fold them into one `Observation` per trial."""
    by_trial: dict[str, list[Sample]] = {}
    for sample in samples:
        trial = sample.labels.get("trial")
        if trial:
            by_trial.setdefault(trial, []).append(sample)
    return {trial: observe_trial(group) for trial, group in by_trial.items()}


def observe_trial(samples: Iterable[Sample]) -> Observation:
    """Fold the samples of one trial into an `Observation` (reports ordered by step)."""
    evals: dict[int, tuple[float, dict[str, float]]] = {}
    obs = Observation()
    for s in samples:
        if s.name == EVAL_SERIES:
            step = int(float(s.labels["step"]))
            epoch = float(s.labels.get("epoch", "nan"))
            evals.setdefault(step, (epoch, {}))[1][s.labels["metric"]] = s.value
        elif s.name == FINAL_SERIES:
            obs.final = obs.final or {}
            obs.final[s.labels["metric"]] = s.value
        elif s.name == STEP_SERIES:
            obs.step = int(s.value)
        elif s.name == EPOCH_SERIES:
            obs.epoch = s.value
        elif s.name == TRAIN_LOSS_SERIES:
            obs.train_loss = s.value
        elif s.name == SAMPLES_PER_SECOND_SERIES:
            obs.samples_per_second = s.value
    obs.reports = [
        Report(step=step, epoch=epoch, metrics=metrics)
        for step, (epoch, metrics) in sorted(evals.items())
    ]
    return obs


def parse_exposition(text: str) -> list[Sample]:
    """Samples of our series in Prometheus text exposition (a trial's /metrics page)."""
    from prometheus_client.parser import text_string_to_metric_families

    ours = (
        EVAL_SERIES,
        FINAL_SERIES,
        STEP_SERIES,
        EPOCH_SERIES,
        TRAIN_LOSS_SERIES,
        SAMPLES_PER_SECOND_SERIES,
    )
    return [
        Sample(s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ours
    ]


class ModelStore(BaseModel):
    """Where a sweep's trials save their models, and how many the sweep keeps.

    A trial that finishes saves its model to ROOT/TRIAL/ (writing ROOT/.partial-TRIAL first,
    then renaming it into place, with MODEL_MARKER beside the weights), unless `keep` better
    models are there already; then it removes every model that ranks below the best `keep`
    (by `api.rank_key`). Removing on what one trial sees is safe without a lock: models
    another trial saves at the same moment can only push others further down."""

    model_config = ConfigDict(frozen=True)

    root: str
    keep: int
    objective: Objective
    tiebreak: list[Objective] = []
    """The sweep's other objectives: equal on `objective`, the better on these ranks first."""
    constraints: list[Constraint] = []
    """A model that breaks one is never kept (it can never be selected)."""

    def rank_key(self, metrics: Mapping[str, float], index: int) -> tuple[float, ...]:
        """The sweep's own ranking (`api.rank_key`): lower is better."""
        return rank_key([self.objective, *self.tiebreak], metrics, index)


def model_store(spec: SweepSpec, root: str | None) -> ModelStore | None:
    """The sweep's model store, or None when it keeps no model (keep 0, or nowhere to save)."""
    if root is None or spec.output.keep == 0:
        return None
    return ModelStore(
        root=root,
        keep=spec.output.keep,
        objective=spec.objective,
        tiebreak=spec.all_objectives()[1:],
        constraints=spec.constraints,
    )


def trial_environment(
    sweep: str, spec: SweepSpec, trial: Trial, models: ModelStore | None = None
) -> dict[str, str]:
    """The BERTSWEEP_* variables that tell the trainer what to run: the same for a pod and
    for a local process."""
    env = {
        ENV_SWEEP: sweep,
        ENV_TRIAL: trial.name,
        ENV_TRIAL_INDEX: str(trial.index),
        ENV_MODEL: spec.model,
        ENV_DATASET: json.dumps(spec.dataset.wire()),
        ENV_PARAMETERS: json.dumps({**spec.fixed, **trial.parameters}),
        ENV_INFERENCE: spec.inference.model_dump_json(by_alias=True),
    }
    if models is not None:
        env[ENV_MODELS] = models.model_dump_json()
    return env


def finalize_environment(
    sweep: str, spec: SweepSpec, models: ModelStore, kept: list[str]
) -> dict[str, str]:
    """The variables of the finalize task, run once a sweep has ended: remove every model but
    those of `kept` (and what trials that died while saving left), then evaluate the kept ones
    on dataset.test, if there is one."""
    return {
        ENV_TASK: TASK_FINALIZE,
        ENV_SWEEP: sweep,
        ENV_TRIAL: f"{sweep}-finalize",
        ENV_DATASET: json.dumps(spec.dataset.wire()),
        ENV_MODELS: models.model_dump_json(),
        ENV_KEPT: json.dumps(kept),
    }
