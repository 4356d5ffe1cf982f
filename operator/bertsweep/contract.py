"""The contract between a trial (the trainer) and whoever watches it (local runner, operator).

Both sides import this module, so the metric names, labels, environment variables and the
result-file shape are written down exactly once. It is pure: reading the metrics from HTTP or
from Prometheus is the job of `local.py` and `prometheus.py`, which turn what they read into
`Sample`s and hand them to `observe_trial`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bertsweep.api import MINIMIZED_METRICS, REPORTED_METRICS, Report, SweepSpec, Trial

__all__ = ["MINIMIZED_METRICS", "REPORTED_METRICS", "Observation", "Report", "Sample"]

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
ENV_METRICS_ADDR = "BERTSWEEP_METRICS_ADDR"  # host to bind /metrics on; default 0.0.0.0
ENV_METRICS_PORT = "BERTSWEEP_METRICS_PORT"
ENV_RESULT_FILE = "BERTSWEEP_RESULT_FILE"  # default /dev/termination-log
ENV_SCRAPE_WAIT = "BERTSWEEP_SCRAPE_WAIT_SECONDS"  # how long to wait for a last scrape
DEFAULT_METRICS_PORT = 8000
DEFAULT_RESULT_FILE = "/dev/termination-log"

# The result file is a Kubernetes termination message in a cluster, and the kubelet keeps at
# most 4096 bytes of it, so it holds the final metrics and the outcome, never the history.
RESULT_FILE_LIMIT = 4096


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


def trial_environment(sweep: str, spec: SweepSpec, trial: Trial) -> dict[str, str]:
    """The BERTSWEEP_* variables that tell the trainer what to run: the same for a pod and
    for a local process."""
    return {
        ENV_SWEEP: sweep,
        ENV_TRIAL: trial.name,
        ENV_MODEL: spec.model,
        ENV_DATASET: json.dumps(spec.dataset.wire()),
        ENV_PARAMETERS: json.dumps({**spec.fixed, **trial.parameters}),
    }
