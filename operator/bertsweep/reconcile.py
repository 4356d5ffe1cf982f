"""The pure glue between what the cluster holds and the planner: one reconcile pass, decided.

`decide()` takes what a pass observed (the BertSweep object, its BertTrial records, their
pods, the metrics read) and returns a `Decision`: which records to update, which pods to create
or delete, which trials to create, which Events to post, and the sweep's whole new status. It
imports neither kopf, kubernetes nor httpx: the handlers read, call this, and carry it out, so
how a pod's state becomes a trial's outcome (exit codes, OOMKilled, evictions, image errors),
how metrics are merged and what the status says are unit tested with plain dicts.

It mirrors the local runner (`local.py`) for trial outcomes: a trainer that exits 0 with
status "completed" succeeded; anything else failed with the trainer's reason when it gave one;
a pruned trial keeps the last values it reported.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bertsweep import contract, pods
from bertsweep.api import (
    API_VERSION,
    MAX_REPORTS,
    SWEEP_KIND,
    TRIAL_KIND,
    BertTrialSpec,
    BertTrialStatus,
    Condition,
    Report,
    SweepPhase,
    SweepSpec,
    SweepStatus,
    Trial,
    TrialPhase,
    trial_from_parts,
    trial_status,
)
from bertsweep.planner import PRUNED, SWEEP_ENDED, plan

# Conditions the operator adds beside the planner's phase condition.
SPEC_VALID = "SpecValid"
METRICS_AVAILABLE = "MetricsAvailable"
# Reasons, as they appear in conditions, trial records and Events.
INVALID_SPEC = "InvalidSpec"
VALID_SPEC = "Valid"
PROMETHEUS_REACHABLE = "PrometheusReachable"
PROMETHEUS_UNREACHABLE = "PrometheusUnreachable"
PROMETHEUS_NOT_CONFIGURED = "PrometheusNotConfigured"
COMPLETED = "Completed"
POD_DELETED = "PodDeleted"
UNSCHEDULABLE = "Unschedulable"
OOM_KILLED = "OOMKilled"
STOPPED = "Stopped"

# Container waiting reasons that mean the trainer will not start by itself. The first set is
# final at once; the second may clear (a registry hiccup, a secret created late), so a pod
# stuck in it fails only after `Timeouts.pod_error_seconds`.
FAILS_AT_ONCE = frozenset({"InvalidImageName", "ErrImageNeverPull"})
FAILS_IF_STUCK = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
# Pods created up to this long before a trial record are still its own (clock skew between the
# operator and Prometheus); older series under the same names are a previous sweep's.
METRICS_WINDOW_MARGIN = timedelta(seconds=10)
MESSAGE_LIMIT = 1024  # characters of a trainer's message kept in a record or an Event


@dataclass(frozen=True)
class Timeouts:
    """How long a pod may be stuck before its trial counts as failed."""

    pod_error_seconds: float = 180.0
    """A container waiting in ImagePullBackOff, CreateContainerConfigError, ..."""
    unschedulable_seconds: float = 900.0
    """No node can take the pod (GPUs, node selector, taints)."""


# ---- Reading what exists -------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    """A BertTrial object as read: the trial it describes plus what optimistic writes need."""

    name: str
    uid: str
    resource_version: str
    created: datetime | None
    trial: Trial
    status: BertTrialStatus
    """The status as stored, to write only what changed."""
    owner_uid: str | None
    body: Mapping[str, Any]


def read_trial(obj: Mapping[str, Any]) -> TrialRecord:
    """A BertTrial object -> TrialRecord (raises pydantic's ValidationError on a bad record)."""
    meta = obj.get("metadata") or {}
    spec = BertTrialSpec.model_validate(obj.get("spec") or {})
    status = BertTrialStatus.model_validate(obj.get("status") or {})
    name = str(meta.get("name"))
    return TrialRecord(
        name=name,
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        created=parse_time(meta.get("creationTimestamp")),
        trial=trial_from_parts(name, spec, status),
        status=status,
        owner_uid=controller_uid(obj),
        body=obj,
    )


def read_status(sweep: Mapping[str, Any]) -> SweepStatus:
    """The sweep's status as last written; a status we cannot read counts as none."""
    try:
        return SweepStatus.model_validate(sweep.get("status") or {})
    except ValueError:
        return SweepStatus()


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owned_records(sweep: Mapping[str, Any], objs: Iterable[Mapping[str, Any]]) -> list[TrialRecord]:
    """The sweep's own trial records. A sweep deleted and created again under the same name
    leaves records that the garbage collector has not removed yet: they are not this sweep's."""
    uid = (sweep.get("metadata") or {}).get("uid")
    records = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp") or controller_uid(obj) != uid:
            continue
        records.append(read_trial(obj))
    return sorted(records, key=lambda r: r.trial.index)


def owned_pods(
    records: Sequence[TrialRecord], pod_objs: Mapping[str, Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """Each trial's pod, keyed by trial name; a same-named pod owned by something else (an
    earlier trial record of that name) is not the trial's."""
    result = {}
    for record in records:
        pod = pod_objs.get(pods.pod_name(record.name))
        if pod is not None and controller_uid(pod) == record.uid:
            result[record.name] = pod
    return result


def is_settled(sweep: Mapping[str, Any]) -> bool:
    """Nothing left to do until the spec changes: the current generation was seen and either
    rejected, or its sweep ended with no trial still active. Saves listing 10,000 records."""
    status = sweep.get("status") or {}
    if status.get("observedGeneration") != (sweep.get("metadata") or {}).get("generation"):
        return False
    for condition in status.get("conditions") or []:
        if condition.get("type") == SPEC_VALID and condition.get("status") == "False":
            return True
    counts = status.get("trials") or {}
    return status.get("phase") in (SweepPhase.succeeded.value, SweepPhase.failed.value) and not (
        counts.get("pending") or counts.get("running")
    )


def active_trials(records: Sequence[TrialRecord]) -> list[str]:
    return [r.name for r in records if r.trial.phase.active]


def pods_to_fetch(records: Sequence[TrialRecord], live: Mapping[str, Any]) -> list[str]:
    """Active trials whose pod is not among the live (unfinished) ones: their pod has ended,
    or was never created. Only these are read one by one, so a pass reads O(parallelism) pods."""
    return [pods.pod_name(n) for n in active_trials(records) if pods.pod_name(n) not in live]


def metrics_window_start(records: Sequence[TrialRecord]) -> datetime | None:
    """The earliest moment an active trial's series can date from: older series under the
    same names belong to an earlier sweep of the same name."""
    created = [r.created for r in records if r.trial.phase.active and r.created is not None]
    return min(created) - METRICS_WINDOW_MARGIN if created else None


def scrape_targets(
    records: Sequence[TrialRecord], trial_pods: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """The /metrics URL of every active trial whose pod runs: the fallback when Prometheus is
    unreachable (the operator reaches pod IPs, as Prometheus does)."""
    targets = {}
    for name in active_trials(records):
        pod = trial_pods.get(name)
        if pod is None or (pod.get("status") or {}).get("phase") != "Running":
            continue
        ip = (pod.get("status") or {}).get("podIP")
        port = _metrics_port(pod)
        if ip and port:
            host = f"[{ip}]" if ":" in ip else ip
            targets[name] = f"http://{host}:{port}/metrics"
    return targets


def _metrics_port(pod: Mapping[str, Any]) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == pods.METRICS_PORT_NAME:
                return int(port["containerPort"])
    return None


# ---- Metrics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsReading:
    """What one pass read of its active trials' metrics, and from where."""

    samples: list[contract.Sample] = field(default_factory=list)
    source: Literal["prometheus", "pods", "none"] = "prometheus"
    problem: str | None = None
    """Why Prometheus was not the source (unreachable, not configured)."""
    url: str | None = None

    def observations(self) -> dict[str, contract.Observation]:
        return contract.observe_trials(self.samples)


def metrics_condition(reading: MetricsReading) -> Condition:
    if reading.source == "prometheus":
        return Condition(
            type=METRICS_AVAILABLE,
            status="True",
            reason=PROMETHEUS_REACHABLE,
            message=f"trial metrics come from {reading.url}",
        )
    fallback = (
        "reading each trial's /metrics directly and its termination message"
        if reading.source == "pods"
        else "reading each trial's termination message"
    )
    reason = PROMETHEUS_NOT_CONFIGURED if reading.url is None else PROMETHEUS_UNREACHABLE
    return Condition(
        type=METRICS_AVAILABLE,
        status="False",
        reason=reason,
        message=f"{reading.problem}; {fallback}",
    )


def merge_reports(stored: Sequence[Report], observed: Sequence[Report]) -> list[Report]:
    """Stored and newly observed evaluations, by step (the newer reading of a step wins), oldest
    first, at most MAX_REPORTS: what Prometheus has forgotten stays in the record."""
    by_step = {r.step: r for r in stored}
    by_step.update({r.step: r for r in observed})
    return [by_step[s] for s in sorted(by_step)][-MAX_REPORTS:]


# ---- From a pod's state to a trial's outcome ---------------------------------------------


@dataclass(frozen=True)
class TrialResult:
    """The trainer's result file as the termination message carries it."""

    status: str | None = None
    """completed | stopped | failed, or None when there was no JSON result."""
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    message: str | None = None
    step: int | None = None
    epoch: float | None = None
    text: str | None = None
    """The message when it is not our JSON: the log tail (FallbackToLogsOnError)."""

    def last_report(self) -> Report | None:
        """The trial's final values as the evaluation they were measured at, if it says so."""
        if not self.metrics or not self.step or self.epoch is None:
            return None
        return Report(step=self.step, epoch=self.epoch, metrics=self.metrics)


def parse_result(text: str | None) -> TrialResult:
    """Parse a termination message: the trainer's JSON result, or else plain text."""
    if not text or not text.strip():
        return TrialResult()
    try:
        data = json.loads(text)
    except ValueError:
        return TrialResult(text=_one_line(text))
    if not isinstance(data, dict):
        return TrialResult(text=_one_line(text))
    raw = data.get("metrics")
    metrics = {
        str(k): float(v)
        for k, v in (raw.items() if isinstance(raw, dict) else ())
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    status = data.get("status")
    reason = data.get("reason")
    message = data.get("message")
    step = data.get("step")
    epoch = data.get("epoch")
    return TrialResult(
        status=str(status) if status is not None else None,
        metrics=metrics,
        reason=str(reason) if reason else None,
        message=_one_line(str(message)) if message else None,
        step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        epoch=float(epoch)
        if isinstance(epoch, int | float) and not isinstance(epoch, bool)
        else None,
    )


@dataclass(frozen=True)
class PodOutcome:
    """What a trial's pod says about the trial."""

    phase: TrialPhase
    reason: str | None = None
    message: str | None = None
    result: TrialResult = field(default_factory=TrialResult)
    started: datetime | None = None
    finished: datetime | None = None
    stuck: bool = False
    """The pod has not ended by itself (it never started): it must be deleted."""


def pod_outcome(pod: Mapping[str, Any], now: datetime, timeouts: Timeouts) -> PodOutcome:
    """Map a pod's status to its trial's phase and, once it ended, the reason why."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    container = _trainer_status(status)
    state = container.get("state") or {}
    terminated = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
    started = parse_time(status.get("startTime")) or parse_time(
        (state.get("running") or {}).get("startedAt")
    )

    if phase in ("Succeeded", "Failed"):
        terminated = terminated or {}
        result = parse_result(terminated.get("message"))
        finished = parse_time(terminated.get("finishedAt"))
        code = terminated.get("exitCode")
        if phase == "Succeeded":
            if result.status in (None, "completed"):
                return PodOutcome(TrialPhase.succeeded, COMPLETED, None, result, started, finished)
            # Exit 0 without finishing: the trainer was stopped from outside (a node drain, a
            # deleted pod) and said so; the local runner records the same as a failure.
            detail = result.message or "the trainer stopped before it finished"
            return PodOutcome(
                TrialPhase.failed,
                result.reason or STOPPED,
                f"exit code {code if code is not None else 0}: {detail}",
                result,
                started,
                finished,
            )
        reason, message = _failure(status, terminated, result)
        return PodOutcome(TrialPhase.failed, reason, message, result, started, finished)

    if phase in ("Running", "Unknown"):
        # Unknown: the node stopped reporting; Kubernetes decides, in time, whether it failed.
        return PodOutcome(TrialPhase.running, started=started)

    age = (
        now - (parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or now)
    ).total_seconds()
    waiting = state.get("waiting") or {}
    waiting_reason = waiting.get("reason")
    if waiting_reason in FAILS_AT_ONCE or (
        waiting_reason in FAILS_IF_STUCK and age >= timeouts.pod_error_seconds
    ):
        detail = _one_line(str(waiting.get("message") or waiting_reason))
        return PodOutcome(
            TrialPhase.failed,
            str(waiting_reason),
            f"the trainer never started ({detail}; pod pending for {age:.0f}s)",
            stuck=True,
        )
    scheduled: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {}
    )
    if (
        scheduled.get("status") == "False"
        and scheduled.get("reason") == UNSCHEDULABLE
        and age >= timeouts.unschedulable_seconds
    ):
        detail = _one_line(str(scheduled.get("message") or "no node fits the pod"))
        return PodOutcome(
            TrialPhase.failed,
            UNSCHEDULABLE,
            f"no node could run the trial for {age:.0f}s: {detail}",
            stuck=True,
        )
    return PodOutcome(TrialPhase.pending)


def _trainer_status(status: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = status.get("containerStatuses") or []
    for s in statuses:
        if s.get("name") == pods.CONTAINER:
            return dict(s)
    return dict(statuses[0]) if statuses else {}


def _failure(
    status: Mapping[str, Any], terminated: Mapping[str, Any], result: TrialResult
) -> tuple[str, str]:
    """The reason and message of a failed pod, most specific first: what ended the pod
    (eviction, deadline), what killed the container (OOM), what the trainer said, what the
    runtime said."""
    code = terminated.get("exitCode")
    prefix = f"exit code {code}: " if code is not None else ""
    raw = terminated.get("message")
    detail = (
        result.message
        or result.text
        or (_one_line(str(raw)) if raw and result.status is None else None)
        or _one_line(str(status.get("message") or ""))
        or "no output"
    )
    pod_reason = status.get("reason")
    if pod_reason:  # Evicted, DeadlineExceeded, NodeLost, Shutdown, ...
        pod_message = _one_line(str(status.get("message") or "")) or detail
        return str(pod_reason), _clip(f"{prefix}{pod_message}")
    container_reason = terminated.get("reason")
    if container_reason == OOM_KILLED:
        return OOM_KILLED, _clip(f"{prefix}the container ran out of memory (limit reached)")
    if result.reason:
        return result.reason, _clip(f"{prefix}{detail}")
    if container_reason and container_reason not in ("Error", "Completed"):
        return str(container_reason), _clip(f"{prefix}{detail}")
    return "Error", _clip(f"{prefix}{detail}")


def advance(
    trial: Trial,
    outcome: PodOutcome | None,
    observation: contract.Observation | None,
    now: datetime,
) -> Trial:
    """The trial after what its pod (None: no pod) and its metrics say now. Ended trials are
    final: nothing observed later changes them."""
    if not trial.phase.active:
        return trial
    update: dict[str, Any] = {}
    if observation is not None:
        reports = merge_reports(trial.reports, observation.reports)
        if reports != trial.reports:
            update["reports"] = reports
        if observation.final:
            update["metrics"] = {**trial.metrics, **observation.final}
    current = trial.model_copy(update=update) if update else trial

    if outcome is None:
        if trial.phase is TrialPhase.running:
            return _end(
                current,
                TrialPhase.failed,
                POD_DELETED,
                "the trial's pod disappeared before the trial finished",
                now,
            )
        return current  # Pending without a pod: it gets one in this pass
    if outcome.phase is TrialPhase.pending:
        return current
    if outcome.phase is TrialPhase.running:
        if current.phase is TrialPhase.pending:
            return current.model_copy(
                update={"phase": TrialPhase.running, "start_time": outcome.started or now}
            )
        return current
    # Ended. Prometheus's final values first, the termination message for what it never
    # scraped, and the last evaluation when neither has any.
    metrics = {**outcome.result.metrics, **current.metrics}
    if not metrics and current.reports:
        metrics = dict(current.reports[-1].metrics)
    # The last evaluation, when no scrape caught it (Prometheus down, or the trial ended
    # between two passes), is still in the termination message: the record keeps it too.
    reports = current.reports
    last = outcome.result.last_report()
    if last is not None and (not reports or reports[-1].step < last.step):
        reports = merge_reports(reports, [last])
    return current.model_copy(
        update={
            "reports": reports,
            "phase": outcome.phase,
            "reason": outcome.reason,
            "message": outcome.message,
            "metrics": metrics,
            "start_time": current.start_time or outcome.started or outcome.finished or now,
            "completion_time": outcome.finished or now,
        }
    )


def _end(trial: Trial, phase: TrialPhase, reason: str, message: str, now: datetime) -> Trial:
    metrics = dict(trial.metrics)
    if not metrics and trial.reports:
        metrics = dict(trial.reports[-1].metrics)
    return trial.model_copy(
        update={
            "phase": phase,
            "reason": reason,
            "message": _clip(message),
            "metrics": metrics,
            "completion_time": now,
        }
    )


# ---- The decision --------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepEvent:
    """A Kubernetes Event on the sweep. `key` makes its name: posting it twice (a pass
    repeated after a restart) is a 409, not a second Event."""

    key: str
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class TrialWrite:
    record: TrialRecord
    status: BertTrialStatus


@dataclass(frozen=True)
class Decision:
    """Everything one pass does, in the order it must be done: records before pods (a
    restarted operator then finds every started trial recorded), the sweep's status last."""

    status: SweepStatus
    write_status: bool
    trial_writes: list[TrialWrite] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    create_pods: list[TrialRecord] = field(default_factory=list)
    """Existing Pending trials without a pod (created by a pass that did not finish)."""
    create_trials: list[Trial] = field(default_factory=list)
    """New trials: record first, then its pod."""
    events: list[SweepEvent] = field(default_factory=list)
    ended: list[Trial] = field(default_factory=list)
    """Trials that ended in this pass."""


def decide(
    sweep: Mapping[str, Any],
    spec: SweepSpec,
    records: Sequence[TrialRecord],
    trial_pods: Mapping[str, Mapping[str, Any]],
    reading: MetricsReading | None,
    now: datetime,
    timeouts: Timeouts = Timeouts(),
) -> Decision:
    """One reconcile pass: observe -> plan -> what to do. `trial_pods` maps trial names to
    their own pods (see `owned_pods`); `reading` is None when no trial was active."""
    meta = sweep.get("metadata") or {}
    name = str(meta.get("name"))
    previous = read_status(sweep)
    observations = reading.observations() if reading is not None else {}

    trials: dict[str, Trial] = {}
    outcomes: dict[str, PodOutcome] = {}
    for record in records:
        pod = trial_pods.get(record.name)
        outcome = pod_outcome(pod, now, timeouts) if pod is not None else None
        if outcome is not None:
            outcomes[record.name] = outcome
        trials[record.name] = advance(record.trial, outcome, observations.get(record.name), now)

    decision = plan(name, spec, list(trials.values()), now, previous)
    for trial_name, why in decision.prune.items():
        trials[trial_name] = _end(trials[trial_name], TrialPhase.pruned, PRUNED, why, now)
    for trial_name in decision.stop:
        trials[trial_name] = _end(
            trials[trial_name],
            TrialPhase.pruned,
            SWEEP_ENDED,
            "the sweep ended before this trial finished",
            now,
        )

    delete_pods: list[str] = []
    create_pods: list[TrialRecord] = []
    writes: list[TrialWrite] = []
    ended: list[Trial] = []
    for record in records:
        trial = trials[record.name]
        pod = trial_pods.get(record.name)
        outcome = outcomes.get(record.name)
        if pod is not None and not trial.phase.active:
            # Pruned or stopped trials end by deleting their pod (SIGTERM, then the trainer
            # exits cleanly); a pod that never started is deleted so it never does.
            still_live = outcome is not None and (outcome.stuck or outcome.phase.active)
            if still_live and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                delete_pods.append(pods.pod_name(record.name))
        if pod is None and trial.phase is TrialPhase.pending:
            create_pods.append(record)
        pod_name = pods.pod_name(record.name) if trial.phase.active or pod else None
        new_status = trial_status(trial, spec.objective, pod_name or record.status.pod_name)
        if new_status != record.status:
            writes.append(TrialWrite(record, new_status))
        if record.trial.phase.active and not trial.phase.active:
            ended.append(trial)

    metrics = (
        metrics_condition(reading)
        if reading is not None
        else _find(previous.conditions, METRICS_AVAILABLE)
    )
    spec_valid = Condition(
        type=SPEC_VALID, status="True", reason=VALID_SPEC, message="the spec is valid"
    )
    conditions = [*decision.status.conditions, spec_valid, *([metrics] if metrics else [])]
    status = decision.status.model_copy(
        update={
            "conditions": [_keep_transition_time(c, previous.conditions, now) for c in conditions],
            "observed_generation": meta.get("generation"),
        }
    )

    # A record that gets its pod now was created by a pass that died before announcing it;
    # the Event's name is the same either way, so it is posted once.
    announced = [*[r.trial for r in create_pods], *decision.create]
    events = _trial_events(records, trials, announced, spec)
    events += _sweep_events(previous, status, spec, now)
    return Decision(
        status=status,
        write_status=_wire(status) != _wire(previous),
        trial_writes=writes,
        delete_pods=delete_pods,
        create_pods=create_pods,
        create_trials=list(decision.create),
        events=events,
        ended=ended,
    )


def invalid_spec(sweep: Mapping[str, Any], message: str, now: datetime) -> Decision:
    """What the schema could not reject (min > max, an objective the trainer does not report):
    the sweep fails with the reason, once per generation; its trials are left as they are, so
    a corrected spec continues the sweep."""
    meta = sweep.get("metadata") or {}
    previous = read_status(sweep)
    message = _clip(message.replace("\n", "; "))
    kept = [c for c in previous.conditions if c.type == METRICS_AVAILABLE]
    conditions = [
        Condition(
            type=SweepPhase.failed.value, status="True", reason=INVALID_SPEC, message=message
        ),
        Condition(type=SPEC_VALID, status="False", reason=INVALID_SPEC, message=message),
        *kept,
    ]
    status = previous.model_copy(
        update={
            "phase": SweepPhase.failed,
            "conditions": [_keep_transition_time(c, previous.conditions, now) for c in conditions],
            "observed_generation": meta.get("generation"),
            "start_time": previous.start_time or now,
            "completion_time": previous.completion_time or now,
        }
    )
    event = SweepEvent(
        key=f"invalidspec.g{meta.get('generation')}",
        reason=INVALID_SPEC,
        message=message,
        warning=True,
    )
    return Decision(status=status, write_status=_wire(status) != _wire(previous), events=[event])


def trial_manifest(sweep: Mapping[str, Any], trial: Trial) -> dict[str, Any]:
    """A new BertTrial record, owned by its sweep (deleting the sweep deletes it, then its pod)."""
    meta = sweep.get("metadata") or {}
    sweep_name = str(meta.get("name"))
    owner = pods.Owner(API_VERSION, SWEEP_KIND, sweep_name, str(meta.get("uid")))
    return {
        "apiVersion": API_VERSION,
        "kind": TRIAL_KIND,
        "metadata": {
            "name": trial.name,
            "namespace": meta.get("namespace"),
            "labels": {pods.SWEEP_LABEL: sweep_name},
            "ownerReferences": [owner.reference()],
        },
        "spec": BertTrialSpec(
            sweep=sweep_name, index=trial.index, parameters=trial.parameters
        ).wire(),
    }


def pod_manifest(sweep: Mapping[str, Any], spec: SweepSpec, record: TrialRecord) -> dict[str, Any]:
    """The pod of a recorded trial, owned by the record: its parameters are the record's."""
    meta = sweep.get("metadata") or {}
    return pods.trial_pod(
        str(meta.get("name")),
        str(meta.get("namespace")),
        spec,
        record.trial,
        pods.trial_owner(record.name, record.uid),
    )


def status_body(status: SweepStatus | BertTrialStatus) -> dict[str, Any]:
    """A status as written: every field, nulls included, so a replaced status holds nothing
    stale."""
    return status.model_dump(mode="json", by_alias=True)


# ---- Events and conditions -----------------------------------------------------------------


def _trial_events(
    records: Sequence[TrialRecord],
    trials: Mapping[str, Trial],
    created: Sequence[Trial],
    spec: SweepSpec,
) -> list[SweepEvent]:
    events = []
    for record in records:
        before, after = record.trial, trials[record.name]
        if before.phase is after.phase:
            continue
        n = after.name
        if after.phase is TrialPhase.running:
            events.append(
                SweepEvent(f"{n}.started", "TrialStarted", f"{n} started: its pod is running")
            )
        elif after.phase is TrialPhase.succeeded:
            events.append(
                SweepEvent(
                    f"{n}.succeeded", "TrialSucceeded", f"{n} succeeded: {_shown(after, spec)}"
                )
            )
        elif after.phase is TrialPhase.failed:
            events.append(
                SweepEvent(
                    f"{n}.failed",
                    "TrialFailed",
                    f"{n} failed: {after.reason}: {after.message}",
                    warning=True,
                )
            )
        elif after.phase is TrialPhase.pruned and after.reason == PRUNED:
            events.append(
                SweepEvent(
                    f"{n}.pruned",
                    "TrialPruned",
                    f"{n} pruned at {_shown(after, spec)}: {after.message}",
                )
            )
        elif after.phase is TrialPhase.pruned:
            events.append(
                SweepEvent(f"{n}.stopped", "TrialStopped", f"{n} stopped: {after.message}")
            )
    events += [
        SweepEvent(
            key=f"{t.name}.created",
            reason="TrialCreated",
            message=f"{t.name} created: {format_parameters(t.parameters)}",
        )
        for t in created
    ]
    return events


def _sweep_events(
    previous: SweepStatus, status: SweepStatus, spec: SweepSpec, now: datetime
) -> list[SweepEvent]:
    events = []
    best = status.best_trial
    if best is not None and (previous.best_trial is None or previous.best_trial.name != best.name):
        value = status.best_objective
        shown = f"{spec.objective.metric}={value:.4f}" if value is not None else "no objective"
        events.append(
            SweepEvent(
                f"best.{best.name}", "NewBestTrial", f"{best.name} is the best so far: {shown}"
            )
        )
    if status.phase.finished and previous.phase is not status.phase:
        condition = _find(status.conditions, status.phase.value)
        events.append(
            SweepEvent(
                f"{status.phase.value.lower()}.g{status.observed_generation}",
                f"Sweep{status.phase.value}",
                f"{condition.reason}: {condition.message}" if condition else status.phase.value,
                warning=status.phase is SweepPhase.failed,
            )
        )
    before = _find(previous.conditions, METRICS_AVAILABLE)
    after = _find(status.conditions, METRICS_AVAILABLE)
    changed = after is not None and (before is None or before.status != after.status)
    # The first reading says nothing new when it is good; later changes either way do.
    if after is not None and changed and (after.status == "False" or before is not None):
        events.append(
            SweepEvent(
                f"{after.reason.lower()}.{int(now.timestamp())}",
                after.reason,
                after.message,
                warning=after.status == "False",
            )
        )
    return events


def _find(conditions: Sequence[Condition], kind: str) -> Condition | None:
    return next((c for c in conditions if c.type == kind), None)


def _keep_transition_time(
    condition: Condition, previous: Sequence[Condition], now: datetime
) -> Condition:
    """A condition keeps its transition time while its status and reason stay the same."""
    old = _find(previous, condition.type)
    if old is not None and old.status == condition.status and old.reason == condition.reason:
        return condition.model_copy(
            update={"last_transition_time": old.last_transition_time or now}
        )
    return condition.model_copy(update={"last_transition_time": now})


def _wire(status: SweepStatus) -> dict[str, Any]:
    return status_body(status)


# ---- Small helpers --------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def format_parameters(parameters: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in parameters.items()
    )


def _shown(trial: Trial, spec: SweepSpec) -> str:
    value = trial.objective(spec.objective)
    return f"{spec.objective.metric}={value:.4f}" if value is not None else "no objective yet"


_SPACES = re.compile(r"\s+")


def _one_line(text: str) -> str:
    return _clip(_SPACES.sub(" ", text).strip())


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
