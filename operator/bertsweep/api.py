"""The BertSweep API (tuning.bertsweep.io/v1alpha1): the user's manifest and what we report back.

These pydantic models are the single source of truth: the CRD schema in `crds/` is generated
from them (`bertsweep crd`), the local runner and the operator parse manifests with them, and
their docstrings and field descriptions become the CRD's descriptions (what `kubectl explain`
shows). Checks that an OpenAPI schema cannot express (min < max, a grid that needs points, an
objective the trainer does not report) live in validators here, so the local runner and the
operator reject the same manifests with the same readable messages.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
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
# Kubernetes object names are DNS labels; trial names are `<sweep>-<index>`, so the sweep name
# leaves room for the suffix.
SWEEP_NAME_MAX = 52
PARAMETER_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Metrics the trainer reports after every evaluation and at the end. An objective must be one
# of these, so a typo fails when the manifest is read, not after a GPU-hour.
REPORTED_METRICS: tuple[str, ...] = (
    "eval_accuracy",
    "eval_f1",
    "eval_precision",
    "eval_recall",
    "eval_loss",
    "train_loss",
)
MINIMIZED_METRICS = frozenset({"eval_loss", "train_loss"})


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, no unknown keys."""

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
            if len({repr(v) for v in self.values}) != len(self.values):
                raise ValueError(f"`values` repeats an entry: {self.values}")
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
    """Evaluation data. When absent, `validationSplit` of `train` is held out instead."""
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


class Goal(StrEnum):
    maximize = "maximize"
    minimize = "minimize"


class Objective(Model):
    """What the sweep optimizes: a metric the trainer reports after each evaluation."""

    metric: str = "eval_accuracy"
    """One of eval_accuracy, eval_f1, eval_precision, eval_recall (macro averages),
    eval_loss, train_loss."""
    goal: Goal = Goal.maximize
    target: float | None = None
    """Stop the sweep once a finished trial reaches this value."""

    @model_validator(mode="after")
    def _check_metric(self) -> Objective:
        if self.metric not in REPORTED_METRICS:
            raise ValueError(
                f"metric {self.metric!r} is not reported by the trainer; "
                f"choose one of {', '.join(REPORTED_METRICS)}"
            )
        if self.metric in MINIMIZED_METRICS and self.goal is Goal.maximize:
            raise ValueError(f"{self.metric} is a loss: set `goal: minimize`")
        if self.metric not in MINIMIZED_METRICS and self.goal is Goal.minimize:
            raise ValueError(f"{self.metric} is a score: set `goal: maximize`")
        return self

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` is strictly better than `b` for this objective."""
        return a > b if self.goal is Goal.maximize else a < b


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


class StoppingRule(StrEnum):
    none = "none"
    median = "median"
    asha = "asha"


class Resource(StrEnum):
    epoch = "epoch"
    step = "step"


class EarlyStopping(Model):
    """Stops hopeless trials while they run; a stopped trial is recorded Pruned with what it
    had reached, and counts as done, not failed."""

    name: StoppingRule = StoppingRule.none
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

    @model_validator(mode="after")
    def _check_rungs(self) -> EarlyStopping:
        if self.max_resource is not None and self.max_resource <= self.min_resource:
            raise ValueError(
                f"`maxResource` ({self.max_resource:g}) must exceed "
                f"`minResource` ({self.min_resource:g})"
            )
        return self


class TrialTemplate(Model):
    """The pod each trial runs in. Kubernetes objects here (resources, env, volumes,
    tolerations, ...) take the same shape as in a Pod spec."""

    image: str = "bertsweep-trainer:0.1.0"
    """The trainer image (trainer_image/Dockerfile). Ignored by `bertsweep run`."""
    command: list[str] = Field(default_factory=lambda: ["bertsweep-trainer"])
    """The trainer's entry point; the trial's settings come as BERTSWEEP_* environment."""
    args: list[str] = Field(default_factory=list)
    resources: dict[str, Any] = Field(default_factory=dict)
    """Requests and limits, e.g. {limits: {nvidia.com/gpu: 1}}."""
    env: list[dict[str, Any]] = Field(default_factory=list)
    """Extra environment variables (EnvVar objects)."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    service_account_name: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    image_pull_secrets: list[dict[str, Any]] = Field(default_factory=list)
    priority_class_name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels on every trial pod."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Extra annotations on every trial pod."""


class MetricsSource(Model):
    """Where the operator reads trial metrics."""

    prometheus_url: str | None = Field(default=None, alias="prometheusURL")
    """Prometheus HTTP API base URL; null: the operator's configured default."""


class SweepSpec(Model):
    """A hyperparameter sweep: which model on which data, what to optimize, over which space,
    with which search and stopping rules, and how each trial runs."""

    model: Annotated[str, Field(min_length=1)]
    """Hub id (bert-base-uncased), a folder (a PVC mount in a cluster), or
    `pkg:DISTRIBUTION/PATH`. A parameter named `model` overrides it per trial."""
    dataset: Dataset
    objective: Objective = Field(default_factory=Objective)
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
    """The sweep fails once more trials than this have failed."""
    trial_template: TrialTemplate = Field(default_factory=TrialTemplate)
    metrics: MetricsSource = Field(default_factory=MetricsSource)

    @field_validator("parameters")
    @classmethod
    def _unique_names(cls, parameters: list[Parameter]) -> list[Parameter]:
        names = [p.name for p in parameters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"parameter names must be unique; repeated: {', '.join(repeated)}")
        return parameters

    @model_validator(mode="after")
    def _check_space(self) -> SweepSpec:
        clash = sorted(set(self.fixed) & {p.name for p in self.parameters})
        if clash:
            raise ValueError(f"{', '.join(clash)} is both searched and in `fixed`")
        for i, p in enumerate(self.parameters):
            where = f"parameters[{i}] ({p.name})"
            if p.name == "model" and p.type is not ParameterType.categorical:
                raise ValueError(f"{where}: `model` must be categorical (a list of checkpoints)")
            if (
                self.algorithm.name is AlgorithmName.grid
                and p.type is ParameterType.float
                and p.grid_points is None
            ):
                raise ValueError(
                    f"{where}: a grid over a float range needs `gridPoints` "
                    "(or make it categorical with explicit values)"
                )
        return self

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


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata a manifest needs."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[
        str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=SWEEP_NAME_MAX)
    ]
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


class Report(Model):
    """One intermediate evaluation of a trial."""

    step: int
    """Optimizer steps taken when it was measured."""
    epoch: float
    """Epochs trained when it was measured (fractional when evaluating every N steps)."""
    metrics: dict[str, float]


class Trial(Model):
    """The durable record of one trial: what it tried and what became of it. In a cluster it is
    a BertTrial object owned by its sweep; locally, an entry of result.json."""

    name: str
    index: Annotated[int, Field(ge=0)]
    """Position in the sweep (0, 1, ...); the name is derived from it."""
    parameters: dict[str, Scalar]
    """The searched values (fixed ones are in the sweep's spec)."""
    phase: TrialPhase = TrialPhase.pending
    reports: list[Report] = Field(default_factory=list)
    """Intermediate evaluations, oldest first (bounded: see MAX_REPORTS)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Final metrics of a finished trial; the last evaluation of a pruned one."""
    reason: str | None = None
    """Why it ended: Completed, Pruned, SweepEnded, or the failure (exit code, OOMKilled, ...)."""
    message: str | None = None
    """A readable account of the reason (the trainer's error, the stopping rule's verdict)."""
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


class TrialSummary(Model):
    """A trial as the sweep's status shows it."""

    name: str
    parameters: dict[str, Scalar]
    metrics: dict[str, float]


class SweepPhase(StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"

    @property
    def finished(self) -> bool:
        return self in (SweepPhase.succeeded, SweepPhase.failed)


class Condition(Model):
    """A Kubernetes-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime | None = None


class TrialCounts(Model):
    """How many trials are in each phase."""

    total: int = 0
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    pruned: int = 0


class SweepStatus(Model):
    """What the sweep has done: bounded in size whatever the number of trials (the trials
    themselves are BertTrial objects labelled `bertsweep=<sweep>`)."""

    phase: SweepPhase = SweepPhase.pending
    trials: TrialCounts = Field(default_factory=TrialCounts)
    done: str = "0/0"
    """Finished trials / maxTrials, for `kubectl get`."""
    best_trial: TrialSummary | None = None
    best_objective: float | None = None
    leaderboard: list[TrialSummary] = Field(default_factory=list)
    """The best trials, best first (at most LEADERBOARD_SIZE)."""
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None


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
        lines.append(f"{path}: {message}" if path else message)
    return "\n".join(dict.fromkeys(lines))


class ManifestError(ValueError):
    """A manifest that does not describe a valid sweep; the message is for the user."""


def parse_manifest(document: Any) -> BertSweepManifest:
    """Parse a BertSweep document, raising ManifestError with a readable message."""
    if not isinstance(document, dict):
        raise ManifestError("a BertSweep manifest must be a YAML mapping")
    try:
        return BertSweepManifest.model_validate(document)
    except ValidationError as error:
        raise ManifestError(describe_validation_error(error)) from None


def parse_spec(spec: Any) -> SweepSpec:
    """Parse a sweep's spec (as the operator receives it), raising ManifestError."""
    try:
        return SweepSpec.model_validate(spec)
    except ValidationError as error:
        raise ManifestError(describe_validation_error(error, "spec")) from None


# ---- The BertTrial kind: one small object per trial --------------------------------------


class BertTrialSpec(Model):
    """What a trial tries. Written once, when the trial is created."""

    sweep: str
    """The owning BertSweep (also the `bertsweep` label)."""
    index: Annotated[int, Field(ge=0)]
    parameters: dict[str, Scalar]


class BertTrialStatus(Model):
    """What became of a trial; outlives its pod."""

    phase: TrialPhase = TrialPhase.pending
    objective: float | None = None
    """The sweep's objective: final, or latest while running."""
    metrics: dict[str, float] = Field(default_factory=dict)
    reports: list[Report] = Field(default_factory=list)
    reason: str | None = None
    message: str | None = None
    pod_name: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None


def trial_from_parts(name: str, spec: BertTrialSpec, status: BertTrialStatus) -> Trial:
    return Trial(
        name=name,
        index=spec.index,
        parameters=spec.parameters,
        phase=status.phase,
        reports=status.reports,
        metrics=status.metrics,
        reason=status.reason,
        message=status.message,
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
        pod_name=pod_name,
        start_time=trial.start_time,
        completion_time=trial.completion_time,
    )
