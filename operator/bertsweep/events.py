"""What a person reads in `kubectl describe bertsweep`: the Events a pass posts and the
conditions the operator adds beside the sweep's phase.

Every Event has a `key` that makes its name, so a pass repeated after a restart posts nothing
twice (the second create is a 409). Reasons are `contract.Reason`s. Pure: what to post is
decided here, `kube.py` posts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bertsweep.api import (
    Condition,
    ConditionType,
    SweepPhase,
    SweepSpec,
    SweepStatus,
    Trial,
    TrialPhase,
)
from bertsweep.contract import Reason
from bertsweep.observe import MetricsReading, TrialRecord, Unreadable


@dataclass(frozen=True)
class SweepEvent:
    """A Kubernetes Event on the sweep. `key` makes its name: posting it twice (a pass
    repeated after a restart) is a 409, not a second Event."""

    key: str
    reason: str
    message: str
    warning: bool = False


def find(conditions: Sequence[Condition], kind: str) -> Condition | None:
    return next((c for c in conditions if c.type == kind), None)


def spec_valid() -> Condition:
    return Condition(
        type=ConditionType.spec_valid,
        status="True",
        reason=Reason.valid_spec,
        message="the spec is valid",
    )


def metrics_condition(reading: MetricsReading) -> Condition:
    if reading.source == "prometheus":
        return Condition(
            type=ConditionType.metrics_available,
            status="True",
            reason=Reason.prometheus_reachable,
            message=f"trial metrics come from {reading.url}",
        )
    fallback = (
        "reading each trial's /metrics directly and its termination message"
        if reading.source == "pods"
        else "reading each trial's termination message"
    )
    reason = (
        Reason.prometheus_not_configured if reading.url is None else Reason.prometheus_unreachable
    )
    return Condition(
        type=ConditionType.metrics_available,
        status="False",
        reason=reason,
        message=f"{reading.problem}; {fallback}",
    )


def quota_condition(waiting: Sequence[str], message: str | None) -> Condition:
    """Whether trial pods are being created, or wait for a ResourceQuota to free up."""
    if waiting:
        return Condition(
            type=ConditionType.quota_available,
            status="False",
            reason=Reason.quota_exceeded,
            message=f"{len(waiting)} trial pods wait for quota ({', '.join(waiting[:5])}): "
            f"{message}; they start by themselves once it frees",
        )
    return Condition(
        type=ConditionType.quota_available,
        status="True",
        reason=Reason.quota_available,
        message="trial pods are created as they are needed",
    )


def trial_events(
    records: Sequence[TrialRecord], trials: Mapping[str, Trial], spec: SweepSpec
) -> list[SweepEvent]:
    """What happened to the sweep's trials in this pass that a person should hear of: a
    failure, a stop by early stopping or by the sweep's end, a divergence, a restart. A trial
    created, started or succeeded is not an Event (that would be several API writes a trial,
    tens of thousands for a large sweep): the BertTrial records say it
    (`kubectl get berttrials -w`), and the best trial so far is an Event of the sweep."""
    events = []
    for record in records:
        before, after = record.trial, trials[record.name]
        n = after.name
        if after.retries > before.retries:
            events.append(
                SweepEvent(
                    f"{n}.retry{after.retries}",
                    Reason.trial_retried,
                    f"{n}: {after.message}",
                    warning=True,
                )
            )
            continue
        if before.phase is after.phase:
            continue
        if after.phase is TrialPhase.failed:
            events.append(
                SweepEvent(
                    f"{n}.failed",
                    Reason.trial_failed,
                    f"{n} failed: {after.reason}: {after.message}",
                    warning=True,
                )
            )
        elif after.phase is TrialPhase.pruned and after.reason == Reason.diverged:
            events.append(
                SweepEvent(
                    f"{n}.diverged",
                    Reason.trial_diverged,
                    f"{n} diverged: {after.message}",
                    warning=True,
                )
            )
        elif after.phase is TrialPhase.pruned and after.reason == Reason.pruned:
            events.append(
                SweepEvent(
                    f"{n}.pruned",
                    Reason.trial_pruned,
                    f"{n} pruned at {shown(after, spec)}: {after.message}",
                )
            )
        elif after.phase is TrialPhase.pruned:
            events.append(
                SweepEvent(f"{n}.stopped", Reason.trial_stopped, f"{n} stopped: {after.message}")
            )
    return events


def unreadable_events(unreadable: Sequence[Unreadable]) -> list[SweepEvent]:
    return [
        SweepEvent(
            f"{u.name}.unreadable",
            Reason.trial_unreadable,
            f"BertTrial {u.name} cannot be read and is left out of the sweep: {u.problem}",
            warning=True,
        )
        for u in unreadable
    ]


def sweep_events(
    previous: SweepStatus, status: SweepStatus, spec: SweepSpec, now: datetime
) -> list[SweepEvent]:
    """What changed about the sweep as a whole: a new best, its end, its metrics source,
    its quota."""
    events = []
    best = status.best_trial
    if best is not None and (previous.best_trial is None or previous.best_trial.name != best.name):
        value = status.best_objective
        shown_value = (
            f"{spec.objective.metric}={value:.4f}" if value is not None else "no objective"
        )
        events.append(
            SweepEvent(
                f"best.{best.name}",
                Reason.new_best_trial,
                f"{best.name} is the best so far: {shown_value}",
            )
        )
    if status.phase.finished and previous.phase is not status.phase:
        condition = find(status.conditions, status.phase.value)
        events.append(
            SweepEvent(
                f"{status.phase.value.lower()}.g{status.observed_generation}",
                Reason.sweep_failed
                if status.phase is SweepPhase.failed
                else Reason.sweep_succeeded,
                f"{condition.reason}: {condition.message}" if condition else status.phase.value,
                warning=status.phase is SweepPhase.failed,
            )
        )
    for kind in (ConditionType.metrics_available, ConditionType.quota_available):
        before = find(previous.conditions, kind)
        after = find(status.conditions, kind)
        changed = after is not None and (before is None or before.status != after.status)
        # A first reading says nothing new when it is good; later changes either way do.
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


def shown(trial: Trial, spec: SweepSpec) -> str:
    value = trial.objective(spec.objective)
    return f"{spec.objective.metric}={value:.4f}" if value is not None else "no objective yet"
