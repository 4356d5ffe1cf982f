"""The BertSweep API (tuning.bertsweep.io/v1alpha1): the user's manifest and what we report back.

These pydantic models are the single source of truth: the CRD schema in `crds/` is generated
from them (`bertsweep crd`), the local runner and the operator parse manifests with them, and
their docstrings and field descriptions become the CRD's descriptions (what `kubectl explain`
shows). Checks that an OpenAPI schema cannot express (min < max, a grid that needs points, an
objective the trainer does not report) live in validators here, so the local runner and the
operator reject the same manifests with the same readable messages.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

GROUP = "tuning.bertsweep.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
SWEEP_KIND = "BertSweep"
TRIAL_KIND = "BertTrial"

# A hyperparameter value as it appears in a manifest and in the trainer's arguments.
Scalar = bool | int | float | str
# A sweep's name is a DNS subdomain, as for any custom resource; the names derived from it
# are shortened where Kubernetes needs it (`names.py`).
SWEEP_NAME_MAX = 253
SWEEP_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PARAMETER_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def is_sweep_name(name: str) -> bool:
    """Whether a BertSweep may have this name (a DNS subdomain)."""
    return len(name) <= SWEEP_NAME_MAX and re.fullmatch(SWEEP_NAME, name) is not None


# Kubernetes' resource.Quantity: 1, "500m", "1.5", "2Gi", "1e3".
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

# Metrics the trainer reports after every evaluation and at the end. An objective must be one
# of these, so a typo fails when the manifest is read, not after a GPU-hour.
REPORTED_METRICS: tuple[str, ...] = (
    "eval_accuracy",
    "eval_f1",
    "eval_precision",
    "eval_recall",
    "eval_loss",
    "train_loss",
    # What the model costs, measured once per trial before it trains (so that every report
    # carries them): its parameters, its weights' size in MB, and the median time of a
    # forward pass over `inference.batchSize` validation examples on the trial's device.
    "model_parameters",
    "model_size_mb",
    "inference_latency_ms",
    # The share of the model's weights (its classification head aside) that came from the
    # checkpoint: near 0 for a changed width, which trains a mostly fresh model.
    "pretrained_share",
)
COST_METRICS = ("model_parameters", "model_size_mb", "inference_latency_ms")
MINIMIZED_METRICS = frozenset({"eval_loss", "train_loss", *COST_METRICS})
# Scores that lie in [0, 1]; losses are never negative.
BOUNDED_METRICS = frozenset(
    {"eval_accuracy", "eval_f1", "eval_precision", "eval_recall", "pretrained_share"}
)

# Names the trainer sets itself: a parameter setting one would break the trial's contract.
TRAINER_OWNED = {
    "output_dir": "the trainer writes to a folder of its own",
    "overwrite_output_dir": "the trainer writes to a folder of its own",
    "num_labels": "the classes come from the dataset",
    "id2label": "the classes come from the dataset",
    "label2id": "the classes come from the dataset",
    "problem_type": "the trainer fine-tunes single-label classifiers",
}
# Names that may be fixed but not searched: what they choose is not a hyperparameter.
NOT_SEARCHABLE = {
    "report_to": "where metrics are logged is a choice, not a hyperparameter: put it in `fixed`",
}


class Model(BaseModel):
    """Base of every API model a user writes: camelCase on the wire, snake_case in Python,
    no unknown keys (a typo is refused with the field named)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
    )

    def wire(self) -> dict[str, Any]:
        """The JSON form a user or the API server sees (camelCase, no unset optionals)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Record(Model):
    """Base of what BertSweep writes and reads back (statuses, trial records): read
    leniently, so that keys a newer operator wrote, or a newer CRD kept, are ignored."""

    model_config = ConfigDict(extra="ignore")


def value_key(value: Scalar) -> Hashable:
    """A key under which equal hyperparameter values compare equal whatever their JSON form.

    1 and 1.0 are the same point (a record may come back from JSON either way), floats are
    compared to 12 significant digits (what a grid's log spacing can differ by after a round
    trip), and bools are kept apart from the numbers 0 and 1 they would hash equal to.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", float(f"{float(value):.12g}"))
    return ("str", value)


class ParameterType(StrEnum):
    float = "float"
    int = "int"
    categorical = "categorical"


class Scale(StrEnum):
    linear = "linear"
    log = "log"


class Parameter(Model):
    """One hyperparameter to search. Its name is a Hugging Face `TrainingArguments` field
    (learning_rate, per_device_train_batch_size, num_train_epochs, warmup_ratio, ...), a model
    config field (num_hidden_layers, hidden_size, hidden_dropout_prob, ...), `model` (a
    checkpoint per trial: hub id or folder) or `seed`."""

    name: Annotated[str, Field(pattern=PARAMETER_NAME, max_length=63)]
    """Name passed to the trainer."""
    type: ParameterType
    """float and int search a range [min, max]; categorical picks one of `values`."""
    min: float | None = None
    """Lower bound, inclusive (float and int)."""
    max: float | None = None
    """Upper bound, inclusive (float and int)."""
    scale: Scale = Scale.linear
    """`log` samples uniformly in log space (learning rates); needs min > 0."""
    values: list[Scalar] | None = None
    """The choices of a categorical parameter, in grid order."""
    grid_points: Annotated[int, Field(ge=2, le=1000)] | None = None
    """Grid search only: how many points to place over [min, max] on the parameter's scale.
    An int range without it uses every integer."""

    @model_validator(mode="after")
    def _check_domain(self) -> Parameter:
        if self.type is ParameterType.categorical:
            if not self.values:
                raise ValueError("a categorical parameter needs a non-empty `values` list")
            if self.min is not None or self.max is not None:
                raise ValueError("a categorical parameter takes `values`, not min/max")
            seen: set[Hashable] = set()
            for value in self.values:
                if value_key(value) in seen:
                    raise ValueError(
                        f"`values` holds {value!r} twice (the search takes 16 and 16.0 for "
                        "one value)"
                    )
                seen.add(value_key(value))
            if self.scale is Scale.log:
                raise ValueError("`scale: log` applies to float and int ranges only")
            return self
        if self.values is not None:
            raise ValueError(
                f"a {self.type.value} parameter takes min/max, not `values` "
                "(use type: categorical for a list)"
            )
        if self.min is None or self.max is None:
            raise ValueError(f"a {self.type.value} parameter needs both `min` and `max`")
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError("`min` and `max` must be finite numbers")
        if self.type is ParameterType.int and (
            self.min != int(self.min) or self.max != int(self.max)
        ):
            raise ValueError(f"an int parameter needs whole bounds, got [{self.min}, {self.max}]")
        if self.min > self.max or (self.type is ParameterType.float and self.min == self.max):
            raise ValueError(f"`min` ({self.min:g}) must be less than `max` ({self.max:g})")
        if self.scale is Scale.log and self.min <= 0:
            raise ValueError(f"`scale: log` needs min > 0, got min={self.min:g}")
        return self


class Dataset(Model):
    """Where the trial's text classification data comes from. Files are CSV, TSV or JSON Lines,
    optionally compressed (.gz, .bz2). A path is a file on the trial's filesystem (a PVC mount
    in a cluster), or `pkg:DISTRIBUTION/PATH` for a file shipped inside an installed Python
    package (how weights and data travel to air-gapped trainers)."""

    train: Annotated[str, Field(min_length=1)]
    """Training data."""
    validation: str | None = None
    """Evaluation data, which the sweep chooses by. When absent, `validationSplit` of `train`
    is held out instead."""
    test: str | None = None
    """Test data, never used to choose: the kept models are evaluated on it once, when the
    sweep ends, and reported apart (`bestTrial.testMetrics`). Choosing the best of many trials
    by the validation data flatters its score there; this one does not."""
    validation_split: Annotated[float, Field(gt=0, lt=1)] = 0.1
    """Fraction of `train` held out for evaluation when `validation` is absent. The split is
    a hash of each text, so every trial, every seed and every run sees the same one."""
    text_column: Annotated[str, Field(min_length=1)] = "text"
    """Column holding the text."""
    text_pair_column: str | None = None
    """Column holding the second text of a sentence-pair task (NLI, paraphrase)."""
    label_column: Annotated[str, Field(min_length=1)] = "label"
    """Column holding the class label (any number of classes)."""
    labels: list[str] | None = None
    """The classes, in id order. Rows with any other label are dropped. When absent, the
    sorted labels of the training data; a validation label outside them fails the trial."""
    max_length: Annotated[int, Field(ge=8, le=8192)] = 128
    """Token limit per example; batches are padded to their longest example, not to this."""
    max_train_samples: Annotated[int, Field(ge=1)] | None = None
    """Use at most this many training examples (a fixed, seed-independent subset)."""
    max_eval_samples: Annotated[int, Field(ge=1)] | None = None
    """Evaluate on at most this many examples (a fixed subset)."""

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is None:
            return None
        if len(labels) < 2:
            raise ValueError(
                f"a classifier needs at least two classes, got {labels}; "
                "leave `labels` out to take every label in the train data"
            )
        stripped = [label.strip() for label in labels]
        if any(not label for label in stripped):
            raise ValueError("an empty label matches no row")
        repeated = sorted({label for label in stripped if stripped.count(label) > 1})
        if repeated:
            raise ValueError(f"`labels` repeats {', '.join(map(repr, repeated))}")
        return labels


class Goal(StrEnum):
    maximize = "maximize"
    minimize = "minimize"


def _check_reported(metric: str) -> None:
    if metric not in REPORTED_METRICS:
        raise ValueError(
            f"metric {metric!r} is not reported by the trainer; "
            f"choose one of {', '.join(REPORTED_METRICS)}"
        )


class Objective(Model):
    """What the sweep optimizes: a metric the trainer reports after each evaluation."""

    metric: str = "eval_accuracy"
    """One of eval_accuracy, eval_f1, eval_precision, eval_recall (macro averages),
    eval_loss, train_loss, or a cost of the model: model_parameters, model_size_mb,
    inference_latency_ms."""
    goal: Goal = Goal.maximize
    target: float | None = None
    """Stop the sweep once a finished trial reaches this value."""

    @model_validator(mode="after")
    def _check_metric(self) -> Objective:
        _check_reported(self.metric)
        if self.metric in COST_METRICS and self.goal is Goal.maximize:
            raise ValueError(f"{self.metric} is a cost: set `goal: minimize`")
        if self.metric in MINIMIZED_METRICS and self.goal is Goal.maximize:
            raise ValueError(f"{self.metric} is a loss: set `goal: minimize`")
        if self.metric not in MINIMIZED_METRICS and self.goal is Goal.minimize:
            raise ValueError(f"{self.metric} is a score: set `goal: maximize`")
        if self.target is not None:
            if not math.isfinite(self.target):
                raise ValueError("`target` must be a finite number")
            if self.metric in BOUNDED_METRICS and not 0 <= self.target <= 1:
                raise ValueError(
                    f"`target` {self.target:g} lies outside [0, 1], where {self.metric} lies "
                    "(a fraction: 0.9, not 90)"
                )
            if self.metric in MINIMIZED_METRICS and self.target < 0:
                raise ValueError(f"`target` {self.target:g}: a loss or a cost is never negative")
        return self

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` is strictly better than `b` for this objective."""
        return a > b if self.goal is Goal.maximize else a < b

    def signed(self, value: float) -> float:
        """The value to sort by, lower first."""
        return -value if self.goal is Goal.maximize else value


def rank_key(
    objectives: Sequence[Objective], metrics: Mapping[str, float], index: int
) -> tuple[float, ...]:
    """Sorts trials best first on the first objective; ties go to the better on the next
    ones (so that the best on the primary is on the Pareto front), then to the earlier trial:
    how the sweep ranks trials everywhere (its leaderboard, its best trial, and which models
    the trials keep). A metric not reported ranks last."""
    return (
        *(o.signed(metrics[o.metric]) if o.metric in metrics else math.inf for o in objectives),
        float(index),
    )


class Constraint(Model):
    """A bound a selected trial must meet: a trial that breaks one is never selected (not
    the best trial, not on the Pareto front, its model not kept)."""

    metric: str
    """Any metric the trainer reports (a cost such as model_parameters or
    inference_latency_ms, or a score)."""
    min: float | None = None
    """The least the metric may be, inclusive."""
    max: float | None = None
    """The most the metric may be, inclusive."""

    @model_validator(mode="after")
    def _check_bounds(self) -> Constraint:
        _check_reported(self.metric)
        if self.min is None and self.max is None:
            raise ValueError(f"a constraint on {self.metric} needs `min`, `max` or both")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("constraint bounds must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min:g}) exceeds `max` ({self.max:g})")
        return self

    def met(self, metrics: Mapping[str, float]) -> bool:
        """Whether these metrics meet it (a metric not reported meets nothing)."""
        value = metrics.get(self.metric)
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        """The bound as a manifest states it: `inference_latency_ms <= 20`."""
        if self.min is not None and self.max is not None:
            return f"{self.min:g} <= {self.metric} <= {self.max:g}"
        if self.max is not None:
            return f"{self.metric} <= {self.max:g}"
        return f"{self.metric} >= {self.min:g}"

    def violation(self, metrics: Mapping[str, float]) -> float:
        """How far the metrics are from meeting it: <= 0 when met (Optuna's convention)."""
        value = metrics.get(self.metric)
        if value is None:
            return 1.0
        over = value - self.max if self.max is not None else -math.inf
        under = self.min - value if self.min is not None else -math.inf
        return max(over, under)


class Inference(Model):
    """How the trainer measures a model's inference latency (inference_latency_ms)."""

    batch_size: Annotated[int, Field(ge=1, le=4096)] = 1
    """Examples per timed forward pass: 1 for online serving, more for batch scoring."""


class AlgorithmName(StrEnum):
    grid = "grid"
    random = "random"
    bayesian = "bayesian"


class Algorithm(Model):
    """How configurations are proposed."""

    name: AlgorithmName = AlgorithmName.bayesian
    """grid (exhaustive, in order), random, or bayesian (Optuna's TPE, learning from
    finished and pruned trials)."""
    seed: int = 0
    """Makes proposals reproducible: the same seed and history give the same proposals."""
    startup_trials: Annotated[int, Field(ge=1, le=1000)] | None = None
    """bayesian: random proposals before the model takes over (default: a few per parameter)."""


class StoppingRuleName(StrEnum):
    none = "none"
    median = "median"
    asha = "asha"


class Resource(StrEnum):
    epoch = "epoch"
    step = "step"


class RungRanking(StrEnum):
    pareto = "pareto"
    primary = "primary"


class EarlyStopping(Model):
    """Stops hopeless trials while they run; a stopped trial is recorded Pruned with what it
    had reached, and counts as done, not failed."""

    name: StoppingRuleName = StoppingRuleName.none
    """none; median (stop a trial whose best value so far is worse than the median of the
    completed trials' running averages at the same point); asha (asynchronous successive
    halving)."""
    resource: Resource = Resource.epoch
    """The unit of `minResource`/`maxResource`: training epochs, or optimizer steps."""
    min_resource: Annotated[float, Field(gt=0)] = 1.0
    """asha: the first rung; median: no trial is stopped before it has trained this much."""
    max_resource: Annotated[float, Field(gt=0)] | None = None
    """asha: the most any trial trains (default: the largest num_train_epochs the search
    allows, when the resource is epochs)."""
    reduction_factor: Annotated[int, Field(ge=2, le=16)] = 3
    """asha: one trial in this many is promoted from each rung to the next."""
    min_trials: Annotated[int, Field(ge=1)] = 3
    """median: how many completed trials must have reached the same point before comparing."""
    rank_by: RungRanking = RungRanking.pareto
    """asha with several objectives: rank the trials at a rung by their Pareto fronts
    (non-dominated sorting, as MO-ASHA does, the primary objective within a front), or by the
    primary objective alone. median always uses the primary objective."""

    @model_validator(mode="after")
    def _check_rungs(self) -> EarlyStopping:
        if self.max_resource is not None and self.max_resource <= self.min_resource:
            raise ValueError(
                f"`maxResource` ({self.max_resource:g}) must exceed "
                f"`minResource` ({self.min_resource:g})"
            )
        return self


_QUANTITY = re.compile(QUANTITY)


def _quantity(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _QUANTITY.match(value):
        return value
    raise ValueError(
        f"{value!r} is not a Kubernetes quantity: an integer, or a string such as "
        '"500m", "1.5" or "4Gi"'
    )


Quantity = Annotated[
    int | str,
    BeforeValidator(_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY}),
]
"""A Kubernetes resource quantity: an integer, or a string such as "500m", "1.5" or "4Gi"."""


class ResourceRequirements(Model):
    """Requests and limits of the trainer container, as in a Pod spec."""

    limits: dict[str, Quantity] = Field(default_factory=dict)
    requests: dict[str, Quantity] = Field(default_factory=dict)


class EnvVar(Model):
    """An environment variable of the trainer container, as in a Pod spec."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")]
    value: str | None = None
    value_from: dict[str, Any] | None = None
    """configMapKeyRef, secretKeyRef, fieldRef or resourceFieldRef."""


class Volume(Model):
    """A pod volume: its name and one source (persistentVolumeClaim, configMap, secret,
    emptyDir, ...), as in a Pod spec."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(min_length=1, max_length=63)]

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        # The API server would take a volume without a source for an emptyDir, silently.
        sources = sorted(self.model_extra or {})
        if not sources:
            raise ValueError(
                f"volume {self.name!r} has no source: give one of persistentVolumeClaim, "
                "configMap, secret, emptyDir, ..."
            )
        if len(sources) > 1:
            raise ValueError(f"volume {self.name!r} has several sources: {', '.join(sources)}")
        return self


class VolumeMount(Model):
    """Where the trainer container sees a volume, as in a Pod spec."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(min_length=1)]
    mount_path: Annotated[str, Field(min_length=1)]


# Pod settings a trial may not have: trial pods run with the restricted security context the
# operator sets, so that whoever may create a sweep gets no more than a restricted pod.
FORBIDDEN_POD_SETTINGS = {
    "securityContext": "trial pods run with the restricted security context the operator sets",
    "podSecurityContext": "trial pods run with the restricted security context the operator sets",
    "privileged": "trial pods are never privileged",
    "hostNetwork": "trial pods may not share the node's network namespace",
    "hostPID": "trial pods may not share the node's process namespace",
    "hostIPC": "trial pods may not share the node's IPC namespace",
    "hostUsers": "trial pods may not share the node's user namespace",
    "shareProcessNamespace": "trial pods run one container of their own",
}


class TrialTemplate(Model):
    """The pod each trial runs in. Kubernetes objects here (resources, env, volumes,
    tolerations, ...) take the same shape as in a Pod spec. Trial pods always run non-root
    with a restricted security context: privileged and host-namespace settings are refused,
    and hostPath volumes too unless the operator is configured to allow them."""

    image: Annotated[str, Field(min_length=1)] = "bertsweep-trainer:0.1.0"
    """The trainer image (trainer_image/Dockerfile). Ignored by `bertsweep run`."""
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = Field(
        default_factory=lambda: ["bertsweep-trainer"]
    )
    """The trainer's entry point; the trial's settings come as BERTSWEEP_* environment."""
    args: list[str] = Field(default_factory=list)
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    """Requests and limits, e.g. {limits: {nvidia.com/gpu: 1}}."""
    env: list[EnvVar] = Field(default_factory=list)
    """Extra environment variables (EnvVar objects)."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    volume_mounts: list[VolumeMount] = Field(default_factory=list)
    service_account_name: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    image_pull_secrets: list[dict[str, Any]] = Field(default_factory=list)
    priority_class_name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels on every trial pod."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Extra annotations on every trial pod."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_escalation(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, why in FORBIDDEN_POD_SETTINGS.items():
                if key in data:
                    raise ValueError(f"`{key}` is not allowed: {why}")
        return data

    @model_validator(mode="after")
    def _check_mounts(self) -> TrialTemplate:
        names = [v.name for v in self.volumes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"volume names must be unique; repeated: {', '.join(repeated)}")
        for i, mount in enumerate(self.volume_mounts):
            extra = mount.model_extra or {}
            if extra.get("mountPropagation") == "Bidirectional":
                raise ValueError(
                    f"volumeMounts[{i}]: `mountPropagation: Bidirectional` needs a privileged "
                    "container, which trial pods never are"
                )
            if mount.name not in names:
                raise ValueError(f"volumeMounts[{i}] mounts {mount.name!r}, which no volume is")
        return self

    def mounts(self, path: str) -> bool:
        """Whether `path` lies on a volume the trainer container mounts."""
        parts = [p for p in path.split("/") if p]
        return any(
            parts[: len(m)] == m
            for m in ([p for p in v.mount_path.split("/") if p] for v in self.volume_mounts)
        )

    def host_path_volumes(self) -> list[str]:
        """Where the template reaches into the node's filesystem (hostPath volumes)."""
        return [
            f"volumes[{i}] ({v.name})"
            for i, v in enumerate(self.volumes)
            if "hostPath" in (v.model_extra or {})
        ]


MAX_KEPT_MODELS = 10  # their test metrics travel in one termination message (4 KiB)


class Output(Model):
    """Where trials save the models they fine-tune, and how many of them the sweep keeps."""

    path: str | None = None
    """A folder on a volume the trial template mounts (a PVC) in a cluster; each finished trial
    saves its model to PATH/TRIAL/ in Hugging Face's save_pretrained layout. Locally it
    defaults to DIR/models/ of `bertsweep run`. Null in a cluster: no model is saved."""
    keep: Annotated[int, Field(ge=0, le=MAX_KEPT_MODELS)] = 1
    """How many of the best models to keep (by the objective); the others are removed as soon
    as they can no longer be among the best, so at most keep + parallelism model folders ever
    exist. 0: no model is saved."""


class MetricsSource(Model):
    """Where the operator reads trial metrics."""

    prometheus_url: str | None = Field(default=None, alias="prometheusURL")
    """Prometheus HTTP API base URL; null: the operator's configured default."""


MAX_WARM_START_SWEEPS = 20  # each is read on every pass of the operator


class WarmStart(Model):
    """Earlier sweeps whose finished trials this sweep learns from before it runs any: they
    feed the search (its history) and the early-stopping rule (its rung records), but are not
    this sweep's trials: they count against no limit and never appear in its counts,
    leaderboard, best trial, Pareto front or kept models. Only Succeeded and Pruned trials of
    an earlier sweep on the same data are used, and of those only the ones whose values fit
    this sweep's search space, fixed values and model and that reported its objectives; the
    WarmStarted condition says how many were used, of how many, and why the others were not
    (docs/warm-start.md)."""

    sweeps: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=4096)]],
        Field(min_length=1, max_length=MAX_WARM_START_SWEEPS),
    ]
    """In a cluster, the names of BertSweeps in this sweep's namespace (one that does not
    exist yet is waited for, and the condition says so). With `bertsweep run`, the output
    folders of earlier local runs (their result.json), relative to the manifest's folder as
    data paths are."""

    @field_validator("sweeps")
    @classmethod
    def _distinct_sweeps(cls, sweeps: list[str]) -> list[str]:
        repeated = sorted({s for s in sweeps if sweeps.count(s) > 1})
        if repeated:
            raise ValueError(f"each earlier sweep once; repeated: {', '.join(repeated)}")
        if any(not s.strip() for s in sweeps):
            raise ValueError("an earlier sweep's name cannot be blank")
        return sweeps


class SweepSpec(Model):
    """A hyperparameter sweep: which model on which data, what to optimize, over which space,
    with which search and stopping rules, and how each trial runs."""

    model: Annotated[str, Field(min_length=1)]
    """Hub id (bert-base-uncased), a folder (a PVC mount in a cluster), or
    `pkg:DISTRIBUTION/PATH`. A parameter named `model` overrides it per trial."""
    dataset: Dataset
    objective: Objective = Field(default_factory=Objective)
    """What the sweep optimizes (one metric). Give this or `objectives`."""
    objectives: Annotated[list[Objective], Field(min_length=2, max_length=3)] | None = None
    """Two or three metrics to trade off, the first primary (accuracy against latency, ...):
    the sweep finds their Pareto front; `bestTrial` is the best on the first among the trials
    that meet every constraint. Give this or `objective`."""
    constraints: list[Constraint] = Field(default_factory=list)
    """Bounds a selected trial must meet, e.g. {metric: model_parameters, max: 30000000}."""
    inference: Inference = Field(default_factory=Inference)
    algorithm: Algorithm = Field(default_factory=Algorithm)
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    parameters: Annotated[list[Parameter], Field(min_length=1)]
    """The search space."""
    fixed: dict[str, Scalar] = Field(default_factory=dict)
    """Passed to every trial unchanged (TrainingArguments or model config fields)."""
    max_trials: Annotated[int, Field(ge=1, le=100_000)] = 12
    """How many trials the sweep creates at most, failed ones included."""
    parallelism: Annotated[int, Field(ge=1, le=1000)] = 1
    """How many trials run at once."""
    max_failed_trials: Annotated[int, Field(ge=0)] = 3
    """The sweep fails once more trials than this have failed. A failure every trial would
    share (an unknown parameter, unreadable data, a model that does not load, a pod the API
    server refuses) fails the sweep at once, whatever this says."""
    max_retries: Annotated[int, Field(ge=0, le=100)] = 3
    """How many times a trial the cluster lost (its pod deleted or evicted, its node gone, a
    preemption) starts again with the same parameters. Failures of the trial's own are never
    retried."""
    trial_template: TrialTemplate = Field(default_factory=TrialTemplate)
    metrics: MetricsSource = Field(default_factory=MetricsSource)
    output: Output = Field(default_factory=Output)
    warm_start: WarmStart | None = None
    """Earlier sweeps to start from: their finished trials feed the search and the
    early-stopping rule, and count for nothing else (no limit, count, leaderboard or kept
    model of this sweep). Used: Succeeded and Pruned trials on the same data whose values fit
    this search space, fixed values and model, and that reported the objectives; the
    WarmStarted condition says how many, and why the others were not."""

    @field_validator("parameters")
    @classmethod
    def _unique_names(cls, parameters: list[Parameter]) -> list[Parameter]:
        names = [p.name for p in parameters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"parameter names must be unique; repeated: {', '.join(repeated)}")
        return parameters

    @model_validator(mode="before")
    @classmethod
    def _one_objective_or_several(cls, data: Any) -> Any:
        # The first of `objectives` is also `objective`: every rule that knows one objective
        # (ranking, early stopping, the target) reads the primary there.
        if not isinstance(data, dict):
            return data
        several = data.get("objectives")
        if isinstance(several, list) and several:
            if "objective" in data and data["objective"] != several[0]:
                raise ValueError("give `objective` (one metric) or `objectives`, not both")
            data = {**data, "objective": several[0]}
        return data

    @field_validator("objectives")
    @classmethod
    def _distinct_objectives(cls, objectives: list[Objective] | None) -> list[Objective] | None:
        if objectives is None:
            return None
        metrics = [o.metric for o in objectives]
        repeated = sorted({m for m in metrics if metrics.count(m) > 1})
        if repeated:
            raise ValueError(f"each objective is another metric; repeated: {', '.join(repeated)}")
        if any(o.target is not None for o in objectives[1:]):
            raise ValueError("only the first (primary) objective can have a `target`")
        return objectives

    @field_validator("constraints")
    @classmethod
    def _distinct_constraints(cls, constraints: list[Constraint]) -> list[Constraint]:
        metrics = [c.metric for c in constraints]
        repeated = sorted({m for m in metrics if metrics.count(m) > 1})
        if repeated:
            raise ValueError(
                f"one constraint a metric (give it both `min` and `max`); repeated: "
                f"{', '.join(repeated)}"
            )
        return constraints

    @field_validator("model")
    @classmethod
    def _not_blank(cls, model: str) -> str:
        if not model.strip():
            raise ValueError("a model reference cannot be blank")
        return model

    @field_validator("fixed")
    @classmethod
    def _check_fixed(cls, fixed: dict[str, Scalar]) -> dict[str, Scalar]:
        for name, value in fixed.items():
            if name in TRAINER_OWNED:
                raise ValueError(f"{name!r} cannot be set: {TRAINER_OWNED[name]}")
            if name == "seed" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"`seed` must be an integer, got {value!r}")
            if name == "model":
                raise ValueError("the model is `spec.model` (or a searched `model` parameter)")
        return fixed

    @model_validator(mode="after")
    def _check_space(self) -> SweepSpec:
        clash = sorted(set(self.fixed) & {p.name for p in self.parameters})
        if clash:
            raise ValueError(f"{', '.join(clash)} is both searched and in `fixed`")
        for i, p in enumerate(self.parameters):
            where = f"parameters[{i}] ({p.name})"
            if p.name in TRAINER_OWNED:
                raise ValueError(f"{where}: cannot be searched: {TRAINER_OWNED[p.name]}")
            if p.name in NOT_SEARCHABLE:
                raise ValueError(f"{where}: {NOT_SEARCHABLE[p.name]}")
            if p.name == "seed" and not _whole_numbers(p):
                raise ValueError(f"{where}: a seed is an integer: use type int or integer values")
            if p.name == "model":
                if p.type is not ParameterType.categorical:
                    raise ValueError(
                        f"{where}: `model` must be categorical (a list of checkpoints)"
                    )
                for value in p.values or []:
                    if not isinstance(value, str) or not value.strip():
                        raise ValueError(
                            f"{where}: {value!r} is not a model reference (a hub id, a folder "
                            "or pkg:DISTRIBUTION/PATH)"
                        )
            if (
                self.algorithm.name is AlgorithmName.grid
                and p.type is ParameterType.float
                and p.grid_points is None
            ):
                raise ValueError(
                    f"{where}: a grid over a float range needs `gridPoints` "
                    "(or make it categorical with explicit values)"
                )
        self._check_rungs()
        return self

    def _check_rungs(self) -> None:
        rule = self.early_stopping
        if rule.name is StoppingRuleName.none:
            return
        longest = rule.max_resource
        if longest is None and rule.resource is Resource.epoch:
            longest = self.max_epochs()
        if longest is not None and rule.min_resource >= longest:
            what = "first rung" if rule.name is StoppingRuleName.asha else "`minResource`"
            raise ValueError(
                f"earlyStopping.minResource: the {what} ({rule.min_resource:g} "
                f"{rule.resource.value}s) is not before the longest training "
                f"({longest:g} {rule.resource.value}s): no trial could ever be stopped"
            )

    def searched(self) -> frozenset[str]:
        """The names of the searched parameters."""
        return frozenset(p.name for p in self.parameters)

    def all_objectives(self) -> list[Objective]:
        """The objectives, the primary first (one unless `objectives` lists several)."""
        return list(self.objectives) if self.objectives else [self.objective]

    def eligible(self, metrics: Mapping[str, float]) -> bool:
        """Whether a trial with these metrics meets every constraint (may be selected)."""
        return all(c.met(metrics) for c in self.constraints)

    def broken_cost(self, metrics: Mapping[str, float]) -> Constraint | None:
        """The first constraint on a model's cost (the same in every report) that these
        metrics break: a trial that reports one can never be selected, however it trains."""
        return next(
            (
                c
                for c in self.constraints
                if c.metric in COST_METRICS and c.metric in metrics and not c.met(metrics)
            ),
            None,
        )

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def max_epochs(self) -> float | None:
        """The longest training any trial may get, in epochs, if the spec bounds it."""
        p = self.parameter("num_train_epochs")
        if p is None:
            fixed = self.fixed.get("num_train_epochs", 3.0)  # TrainingArguments' default
            return float(fixed) if isinstance(fixed, int | float) else None
        if p.type is ParameterType.categorical:
            numeric = [float(v) for v in p.values or [] if isinstance(v, int | float)]
            return max(numeric) if numeric else None
        return p.max


def _whole_numbers(p: Parameter) -> bool:
    if p.type is ParameterType.int:
        return True
    if p.type is ParameterType.float:
        return False
    return all(isinstance(v, int) and not isinstance(v, bool) for v in p.values or [])


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata a manifest needs."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(pattern=SWEEP_NAME, max_length=SWEEP_NAME_MAX)]
    namespace: str | None = None


class BertSweepManifest(BaseModel):
    """A whole BertSweep document as a user writes it."""

    model_config = ConfigDict(extra="allow")
    api_version: Literal["tuning.bertsweep.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["BertSweep"]
    metadata: ObjectMeta
    spec: SweepSpec


# ---- Trials and status ---------------------------------------------------------------------


class TrialPhase(StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"
    pruned = "Pruned"

    @property
    def active(self) -> bool:
        return self in (TrialPhase.pending, TrialPhase.running)


class Report(Record):
    """One intermediate evaluation of a trial."""

    step: int
    """Optimizer steps taken when it was measured."""
    epoch: float
    """Epochs trained when it was measured (fractional when evaluating every N steps)."""
    metrics: dict[str, float]


class Trial(Record):
    """The durable record of one trial: what it tried and what became of it. In a cluster it is
    a BertTrial object owned by its sweep; locally, an entry of result.json."""

    name: str
    index: int
    """Position in the sweep (0, 1, ...); the name is derived from it. Negative only for an
    earlier sweep's trial that warm-starts this one (`warm.py`), which is never a record of
    this sweep: it sorts before every trial of its own and takes no index from them."""
    parameters: dict[str, Scalar]
    """The searched values (fixed ones are in the sweep's spec)."""
    generation: int | None = None
    """The sweep's metadata.generation when the trial was created (None locally)."""
    phase: TrialPhase = TrialPhase.pending
    reports: list[Report] = Field(default_factory=list)
    """Intermediate evaluations, oldest first (bounded: see MAX_REPORTS)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Final metrics of a finished trial; the last evaluation of a pruned one."""
    reason: str | None = None
    """Why it ended: Completed, Pruned, SweepEnded, or the failure (exit code, OOMKilled, ...)."""
    message: str | None = None
    """A readable account of the reason (the trainer's error, the stopping rule's verdict)."""
    faulty_parameters: list[str] = Field(default_factory=list)
    """For a failure, the parameters whose values caused it (empty: none did)."""
    retries: Annotated[int, Field(ge=0)] = 0
    """How many times the trial started again after the cluster lost it."""
    model_path: str | None = None
    """Where the trial saved its fine-tuned model (while the sweep keeps it)."""
    test_metrics: dict[str, float] = Field(default_factory=dict)
    """Its kept model's metrics on `dataset.test`, measured once the sweep ended."""
    start_time: datetime | None = None
    completion_time: datetime | None = None

    def objective(self, objective: Objective) -> float | None:
        """The trial's value of the objective: final if it has one, else its latest report."""
        if objective.metric in self.metrics:
            return self.metrics[objective.metric]
        for report in reversed(self.reports):
            if objective.metric in report.metrics:
                return report.metrics[objective.metric]
        return None


# Caps that keep each object far below etcd's 1.5 MiB limit whatever the sweep's size.
MAX_REPORTS = 200  # intermediate evaluations kept per trial (~100 bytes each)
LEADERBOARD_SIZE = 10  # top trials kept in the sweep's status
PARETO_FRONT_SIZE = 20  # trials of the Pareto front kept in the sweep's status


class TrialSummary(Record):
    """A trial as the sweep's status shows it."""

    name: str
    parameters: dict[str, Scalar]
    metrics: dict[str, float]
    model_path: str | None = None
    """Where its fine-tuned model is, if the sweep keeps it."""
    test_metrics: dict[str, float] = Field(default_factory=dict)
    """Its model's metrics on `dataset.test` (never used to choose)."""


class SweepPhase(StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"

    @property
    def finished(self) -> bool:
        return self in (SweepPhase.succeeded, SweepPhase.failed)


class ConditionType(StrEnum):
    """The conditions a sweep's status carries, besides the one named after its phase
    (Running, Succeeded or Failed)."""

    spec_valid = "SpecValid"
    metrics_available = "MetricsAvailable"
    quota_available = "QuotaAvailable"
    models_kept = "ModelsKept"
    warm_started = "WarmStarted"


class Condition(Record):
    """A Kubernetes-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime | None = None

    def carried_from(self, previous: Sequence[Condition], now: datetime) -> Condition:
        """This condition with its transition time kept from the previous one of its type
        while status and reason stay the same, else `now`."""
        old = next((c for c in previous if c.type == self.type), None)
        if old is not None and old.status == self.status and old.reason == self.reason:
            return self.model_copy(update={"last_transition_time": old.last_transition_time or now})
        return self.model_copy(update={"last_transition_time": now})


class TrialCounts(Record):
    """How many trials are in each phase."""

    total: int = 0
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    pruned: int = 0
    retried: int = 0
    """Restarts of trials the cluster lost (not failures: see maxRetries)."""
    diverged: int = 0
    """Trials stopped because their loss diverged (NaN or infinite), with their last good
    values: counted among the pruned, not the failed."""


class SweepStatus(Record):
    """What the sweep has done: bounded in size whatever the number of trials (the trials
    themselves are BertTrial objects labelled `bertsweep=<sweep>`)."""

    phase: SweepPhase = SweepPhase.pending
    trials: TrialCounts = Field(default_factory=TrialCounts)
    done: str = "0/0"
    """Finished trials / maxTrials, for `kubectl get`."""
    best_trial: TrialSummary | None = None
    best_objective: float | None = None
    leaderboard: list[TrialSummary] = Field(default_factory=list)
    """The best trials on the (primary) objective among those that meet every constraint,
    best first (at most LEADERBOARD_SIZE)."""
    pareto_front: list[TrialSummary] = Field(default_factory=list)
    """With several objectives: the trials no other beats on every objective, among those
    that meet every constraint, in the order of the primary (at most PARETO_FRONT_SIZE)."""
    pareto_front_size: int = 0
    """How many trials the Pareto front holds (the status lists the first 20)."""
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None


MAX_PROBLEMS_SHOWN = 20  # a manifest with thousands of bad entries gets a readable error


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the field as the user wrote it (camelCase path)."""
    lines = []
    for item in error.errors():
        path = prefix
        for part in item["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part not in ("function-after", "function-before") and not str(part).startswith(
                ("function-", "tagged-union")
            ):
                # Union members show up in loc as type names; they mean nothing to a user.
                if str(part) in ("bool", "int", "float", "str"):
                    continue
                path += f".{part}" if path else str(part)
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "string_type" and isinstance(item.get("input"), bool):
            # YAML reads yes/no/on/off/true/false unquoted as booleans, as kubectl does.
            message += " (YAML read an unquoted yes/no/true/false as a boolean: quote it)"
        lines.append(f"{path}: {message}" if path else message)
    lines = list(dict.fromkeys(lines))
    if len(lines) > MAX_PROBLEMS_SHOWN:
        hidden = len(lines) - MAX_PROBLEMS_SHOWN
        lines = [*lines[:MAX_PROBLEMS_SHOWN], f"... and {hidden} more problems"]
    return "\n".join(lines)


class ManifestError(ValueError):
    """A manifest that does not describe a valid sweep; the message is for the user."""


def _as_json(document: Any) -> str:
    """The document as the API server receives it from kubectl: JSON, finite numbers only."""
    try:
        return json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ManifestError(f"the manifest holds a value JSON cannot carry: {error}") from None
    except RecursionError:
        raise ManifestError("the manifest is nested too deeply") from None


def parse_manifest(document: Any) -> BertSweepManifest:
    """Parse a BertSweep document, raising ManifestError with a readable message.

    Types are checked as strictly as the API server checks them against the CRD schema, on
    the JSON the document becomes: `maxTrials: true` or `parallelism: "2"` are refused, not
    coerced (an int is still a valid float)."""
    if not isinstance(document, dict):
        raise ManifestError("a BertSweep manifest must be a YAML mapping")
    try:
        return BertSweepManifest.model_validate_json(_as_json(document), strict=True)
    except ValidationError as error:
        raise ManifestError(describe_validation_error(error)) from None


def parse_spec(spec: Any) -> SweepSpec:
    """Parse a sweep's spec (as the operator receives it), raising ManifestError."""
    if not isinstance(spec, dict):
        raise ManifestError("spec: must be a mapping")
    try:
        return SweepSpec.model_validate_json(_as_json(spec), strict=True)
    except ValidationError as error:
        raise ManifestError(describe_validation_error(error, "spec")) from None


# ---- The BertTrial kind: one small object per trial --------------------------------------


class BertTrialSpec(Record):
    """What a trial tries. Written once, when the trial is created."""

    sweep: str
    """The owning BertSweep (its `bertsweep` label, shortened if need be)."""
    index: Annotated[int, Field(ge=0)]
    parameters: dict[str, Scalar]
    generation: int | None = None
    """The sweep's metadata.generation when the trial was created."""


class BertTrialStatus(Record):
    """What became of a trial; outlives its pod."""

    phase: TrialPhase = TrialPhase.pending
    objective: float | None = None
    """The sweep's objective: final, or latest while running."""
    metrics: dict[str, float] = Field(default_factory=dict)
    reports: list[Report] = Field(default_factory=list)
    reason: str | None = None
    message: str | None = None
    faulty_parameters: list[str] = Field(default_factory=list)
    """For a failure, the parameters whose values caused it (empty: none did)."""
    retries: int = 0
    """How many times the trial started again after the cluster lost it."""
    model_path: str | None = None
    """Where the trial saved its fine-tuned model."""
    test_metrics: dict[str, float] = Field(default_factory=dict)
    """Its kept model's metrics on `dataset.test`, measured once the sweep ended."""
    pod_name: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    updated: datetime | None = None
    """When the operator last wrote this status (it brings an active trial's record up to
    date every few seconds, and at once when the trial ends)."""


def trial_from_parts(name: str, spec: BertTrialSpec, status: BertTrialStatus) -> Trial:
    """The trial a BertTrial record describes. Its parts are validated already, so the trial
    shares their lists and dicts instead of copying them (models here are never mutated): an
    operator holds every record of a 10,000-trial sweep."""
    return Trial.model_construct(
        name=name,
        index=spec.index,
        parameters=spec.parameters,
        generation=spec.generation,
        phase=status.phase,
        reports=status.reports,
        metrics=status.metrics,
        reason=status.reason,
        message=status.message,
        faulty_parameters=status.faulty_parameters,
        retries=status.retries,
        model_path=status.model_path,
        test_metrics=status.test_metrics,
        start_time=status.start_time,
        completion_time=status.completion_time,
    )


def trial_status(trial: Trial, objective: Objective, pod_name: str | None) -> BertTrialStatus:
    return BertTrialStatus(
        phase=trial.phase,
        objective=trial.objective(objective),
        metrics=trial.metrics,
        reports=trial.reports[-MAX_REPORTS:],
        reason=trial.reason,
        message=trial.message,
        faulty_parameters=trial.faulty_parameters,
        retries=trial.retries,
        model_path=trial.model_path,
        test_metrics=trial.test_metrics,
        pod_name=pod_name,
        start_time=trial.start_time,
        completion_time=trial.completion_time,
    )
