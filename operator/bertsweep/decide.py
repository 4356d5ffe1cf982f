"""The cluster adapter's decision for one pass: what the pass observed -> the writes to make.

`decide()` takes the BertSweep object, its BertTrial records (`observe.Records`), their pods
and the metrics read, moves each trial on (`outcomes.advance`), asks the sweep policy
(`planner.plan`) what to do, and returns a `Decision`: which records to update, which pods to
delete or create, which trials to create, which Events to post, and the sweep's whole new
status. The handlers read, call this, and carry it out; when the API server refuses a trial's
record or pod, `refused()` amends the decision before its one status write. Pure: it imports
neither kopf, kubernetes nor httpx, so every decision is unit tested with plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bertsweep import names, pods
from bertsweep.api import (
    API_VERSION,
    SWEEP_KIND,
    TRIAL_KIND,
    BertTrialSpec,
    BertTrialStatus,
    Condition,
    ConditionType,
    SweepPhase,
    SweepSpec,
    SweepStatus,
    Trial,
    TrialPhase,
    trial_status,
)
from bertsweep.contract import Reason, model_store
from bertsweep.events import (
    SweepEvent,
    find,
    metrics_condition,
    quota_condition,
    spec_valid,
    sweep_events,
    trial_events,
    unreadable_events,
)
from bertsweep.observe import MetricsReading, Records, TrialRecord, read_status
from bertsweep.outcomes import Outcome, Timeouts, advance, clip, end, pod_outcome
from bertsweep.planner import Ending, plan, summarize
from bertsweep.warm import WarmHistory

DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True)
class TrialWrite:
    """A trial record's new status; `name` says which record."""

    name: str
    status: BertTrialStatus


@dataclass(frozen=True)
class PodToCreate:
    """The pod of a trial's current attempt, owned by the trial's record."""

    trial: Trial
    record_uid: str


@dataclass(frozen=True)
class Decision:
    """Everything one pass does, in the order it must be done: records before pods (a
    restarted operator then finds every started trial recorded), the sweep's status last."""

    status: SweepStatus
    write_status: bool
    trial_writes: list[TrialWrite] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    create_pods: list[PodToCreate] = field(default_factory=list)
    """Pending trials without a pod (a pass that did not finish, a retry)."""
    create_trials: list[Trial] = field(default_factory=list)
    """New trials: record first, then its pod."""
    events: list[SweepEvent] = field(default_factory=list)
    ended: list[Trial] = field(default_factory=list)
    """Trials that ended in this pass."""
    finalize: list[str] | None = None
    """Start the finalize pod, keeping the models of these trials."""
    trials: list[Trial] = field(default_factory=list)
    """Every trial as this pass leaves it (new ones included), for `refused()`."""


def decide(
    sweep: Mapping[str, Any],
    spec: SweepSpec,
    records: Records,
    trial_pods: Mapping[str, Mapping[str, Any]],
    reading: MetricsReading | None,
    now: datetime,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    finalize_pod: Mapping[str, Any] | None = None,
    warm: WarmHistory | None = None,
) -> Decision:
    """One pass: observe -> plan -> what to do. `trial_pods` maps trial names to the pods of
    their current attempts (see `observe.owned_pods`); `reading` is None when no trial was
    active; `finalize_pod` is the sweep's finalize pod of this generation, if it exists;
    `warm` the earlier sweeps' trials `spec.warmStart` asks for (`warm.warm_history`), with
    the WarmStarted condition."""
    warm = warm or WarmHistory()
    meta = sweep.get("metadata") or {}
    name = str(meta.get("name"))
    generation = meta.get("generation")
    previous = read_status(sweep)
    readable = records.readable
    current_pods = {r.name: r.pod_name for r in readable if r.trial.phase.active}
    observations = reading.observations(current_pods) if reading is not None else {}

    trials: dict[str, Trial] = {}
    outcomes: dict[str, Outcome] = {}
    for record in readable:
        pod = trial_pods.get(record.name)
        outcome = pod_outcome(pod, now, timeouts) if pod is not None else None
        if outcome is not None:
            outcomes[record.name] = outcome
        trials[record.name] = advance(
            record.trial, outcome, observations.get(record.name), now, spec.max_retries
        )

    decision = plan(
        name,
        spec,
        list(trials.values()),
        now,
        previous,
        generation=generation if isinstance(generation, int) else None,
        first_index=records.first_free_index,
        history=warm.trials,
    )
    for trial_name, why in decision.prune.items():
        trials[trial_name] = end(trials[trial_name], TrialPhase.pruned, Reason.pruned, why, now)
    for trial_name in decision.stop:
        trials[trial_name] = end(
            trials[trial_name],
            TrialPhase.pruned,
            Reason.sweep_ended,
            "the sweep ended before this trial finished",
            now,
        )

    finalizing = _finalization(
        spec, decision.status, trials, previous, finalize_pod, generation, now, timeouts
    )
    if finalizing.trials:
        trials.update(finalizing.trials)
        # Again, now that the kept trials carry their test metrics.
        decision = plan(
            name,
            spec,
            list(trials.values()),
            now,
            previous,
            generation=generation if isinstance(generation, int) else None,
            first_index=records.first_free_index,
            history=warm.trials,
        )

    delete_pods: list[str] = []
    create_pods: list[PodToCreate] = []
    writes: list[TrialWrite] = []
    ended: list[Trial] = []
    for record in readable:
        trial = trials[record.name]
        pod = trial_pods.get(record.name)
        if trial is record.trial and not trial.phase.active and pod is None:
            continue  # ended before this pass, nothing left of it to act on: most records
        outcome = outcomes.get(record.name)
        moved_on = trial.retries != record.trial.retries or not trial.phase.active
        if pod is not None and moved_on:
            # Pruned or stopped trials end by deleting their pod (SIGTERM, then the trainer
            # exits cleanly); a pod that never started is deleted so it never does; a lost
            # attempt's pod goes before the next attempt starts.
            still_live = outcome is not None and (outcome.stuck or outcome.phase.active)
            if still_live and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                delete_pods.append(record.pod_name)
        current_pod = names.pod_name(record.name, trial.retries)
        if trial.phase is TrialPhase.pending and (pod is None or moved_on):
            create_pods.append(PodToCreate(trial, record.uid))
        shown_pod = current_pod if trial.phase.active or pod else record.status.pod_name
        new_status = trial_status(trial, spec.objective, shown_pod)
        if new_status != record.status.model_copy(update={"updated": None}) and _due(
            record, trial, now
        ):
            writes.append(TrialWrite(record.name, new_status.model_copy(update={"updated": now})))
        if record.trial.phase.active and not trial.phase.active:
            ended.append(trial)

    metrics = (
        metrics_condition(reading)
        if reading is not None
        else find(previous.conditions, ConditionType.metrics_available)
    )
    quota = find(previous.conditions, ConditionType.quota_available)
    if quota is not None and quota.status == "False" and not create_pods:
        # Every pending trial has its pod: whatever waited for quota got it.
        quota = quota_condition([], None)
    kept = [c for c in (metrics, quota, finalizing.condition, warm.condition) if c is not None]
    status = decision.status.model_copy(
        update={
            "conditions": _carried(
                [*decision.status.conditions, spec_valid(), *kept], previous, now
            ),
            "observed_generation": generation,
        }
    )

    events = trial_events(readable, trials, spec)
    events += unreadable_events(records.unreadable)
    events += sweep_events(previous, status, spec, now)
    return Decision(
        status=status,
        write_status=_wire(status) != _wire(previous),
        trial_writes=writes,
        delete_pods=delete_pods,
        create_pods=create_pods,
        create_trials=list(decision.create),
        events=events,
        ended=ended,
        trials=[*trials.values(), *decision.create],
        finalize=finalizing.start,
    )


@dataclass(frozen=True)
class _Finalizing:
    condition: Condition | None = None
    start: list[str] | None = None
    trials: dict[str, Trial] = field(default_factory=dict)
    """Trials whose models the finalize pod kept (with their test metrics) or removed."""


def _finalization(
    spec: SweepSpec,
    status: SweepStatus,
    trials: Mapping[str, Trial],
    previous: SweepStatus,
    pod: Mapping[str, Any] | None,
    generation: Any,
    now: datetime,
    timeouts: Timeouts,
) -> _Finalizing:
    """Once a sweep that keeps models has ended with no trial left running: its finalize pod
    keeps exactly the best `keep` models and measures them on dataset.test. The ModelsKept
    condition says where that stands; a sweep is not settled while it is Finalizing."""
    store = model_store(spec, spec.output.path)
    if store is None or not status.phase.finished or any(t.phase.active for t in trials.values()):
        return _Finalizing()
    kept = [s.name for s in status.leaderboard[: store.keep] if s.model_path]
    before = find(previous.conditions, ConditionType.models_kept)
    what = f"the models of {', '.join(kept)}" if kept else "no model (no trial saved one)"
    tested = " and measuring them on the test data" if spec.dataset.test else ""
    if pod is None:
        done = before is not None and before.reason != Reason.finalizing
        if done and previous.observed_generation == generation:
            return _Finalizing(condition=before)  # this generation's pod is gone: it is done
        return _Finalizing(_models_kept(False, Reason.finalizing, f"keeping {what}{tested}"), kept)
    outcome = pod_outcome(pod, now, timeouts)
    if outcome.phase.active:
        return _Finalizing(_models_kept(False, Reason.finalizing, f"keeping {what}{tested}"))
    result = outcome.result
    if outcome.phase is not TrialPhase.succeeded or result is None:
        return _Finalizing(
            _models_kept(False, Reason.finalize_failed, f"{outcome.reason}: {outcome.message}")
        )
    updated = {
        name: trial.model_copy(
            update={
                "test_metrics": result.test_metrics.get(name, {}),
                "model_path": trial.model_path if name in kept else None,
            }
        )
        for name, trial in trials.items()
        if trial.model_path or result.test_metrics.get(name)
    }
    measured = " and measured them on the test data" if result.test_metrics else ""
    return _Finalizing(
        _models_kept(True, Reason.finalized, f"kept {what}{measured}"), trials=updated
    )


def _models_kept(ok: bool, reason: str, message: str) -> Condition:
    return Condition(
        type=ConditionType.models_kept,
        status="True" if ok else "False",
        reason=reason,
        message=clip(message),
    )


# How often an active trial's record is brought up to date (its phase Running, its latest
# reports). Each pass decides from what it observes, records and metrics merged, so writing
# every change would only cost API writes: a thousand one-second trials at parallelism 50
# would each be written several times. What ends or restarts a trial is written at once.
REFRESH = timedelta(seconds=10)


def _due(record: TrialRecord, trial: Trial, now: datetime) -> bool:
    if not trial.phase.active or trial.retries != record.trial.retries:
        return True
    last = record.status.updated or record.created
    return last is None or now - last >= REFRESH


@dataclass(frozen=True)
class Refusal:
    """The API server refused a trial's record or pod."""

    trial: Trial
    message: str
    quota: bool
    """403 exceeded quota: the pod waits and is asked for again. Anything else (422 invalid,
    403 forbidden by admission) would be refused again: the sweep fails."""
    recorded: bool = True
    """The trial's record exists (it was its pod that was refused)."""


def refused(
    sweep: Mapping[str, Any],
    spec: SweepSpec,
    decision: Decision,
    refusals: Sequence[Refusal],
    now: datetime,
) -> Decision:
    """The decision amended by what the API server refused while it was carried out.

    A refusal that will repeat fails its trial (PodRejected, a failure every trial shares:
    the sweep fails with the API server's message, and an edited spec tries again). A quota
    refusal leaves its trial Pending, to be asked for again on the next pass, and the
    QuotaAvailable condition says that trial pods wait for quota."""
    if not refusals:
        return decision
    previous = read_status(sweep)
    final = [r for r in refusals if not r.quota]
    waiting = [r for r in refusals if r.quota]
    trials = {t.name: t for t in decision.trials}
    writes = list(decision.trial_writes)
    announced = sweep_events(previous, decision.status, spec, now)
    events = [e for e in decision.events if e not in announced]
    for refusal in final:
        trial = refusal.trial
        failed = trial.model_copy(
            update={
                "phase": TrialPhase.failed,
                "reason": Reason.pod_rejected,
                "message": clip(f"the API server refused the trial: {refusal.message}"),
                "completion_time": now,
            }
        )
        events.append(
            SweepEvent(
                f"{trial.name}.failed",
                Reason.trial_failed,
                f"{trial.name} failed: {failed.reason}: {failed.message}",
                warning=True,
            )
        )
        if refusal.recorded:
            trials[trial.name] = failed
            writes = [w for w in writes if w.name != trial.name]
            pod = names.pod_name(trial.name, trial.retries)
            writes.append(TrialWrite(trial.name, trial_status(failed, spec.objective, pod)))
        else:
            trials.pop(trial.name, None)
    base = decision.status
    if final:
        ending = Ending(
            SweepPhase.failed,
            Reason.pod_rejected,
            clip(
                f"the API server refused {final[0].trial.name}: {final[0].message}; every "
                "trial would be refused the same way (fix trialTemplate to go on)"
            ),
        )
        base = summarize(spec, list(trials.values()), ending, now, previous)
    phases = {p.value for p in SweepPhase}
    own = (ConditionType.spec_valid, ConditionType.metrics_available, ConditionType.warm_started)
    conditions = [
        *[c for c in base.conditions if c.type in phases],
        *[c for c in decision.status.conditions if c.type in own],
    ]
    if waiting:
        conditions.append(quota_condition([r.trial.name for r in waiting], waiting[0].message))
    elif (quota := find(decision.status.conditions, ConditionType.quota_available)) is not None:
        conditions.append(quota)
    status = base.model_copy(
        update={
            "conditions": _carried(conditions, previous, now),
            "observed_generation": decision.status.observed_generation,
        }
    )
    events += sweep_events(previous, status, spec, now)
    return replace(
        decision,
        status=status,
        write_status=_wire(status) != _wire(previous),
        trial_writes=writes,
        events=events,
    )


def invalid_spec(sweep: Mapping[str, Any], message: str, now: datetime) -> Decision:
    """What the schema could not reject (min > max, an objective the trainer does not report):
    the sweep fails with the reason, once per generation; its trials are left as they are, so
    a corrected spec continues the sweep."""
    meta = sweep.get("metadata") or {}
    previous = read_status(sweep)
    message = clip(message.replace("\n", "; "))
    kept = [c for c in previous.conditions if c.type == ConditionType.metrics_available]
    conditions = [
        Condition(
            type=SweepPhase.failed.value, status="True", reason=Reason.invalid_spec, message=message
        ),
        Condition(
            type=ConditionType.spec_valid,
            status="False",
            reason=Reason.invalid_spec,
            message=message,
        ),
        *kept,
    ]
    status = previous.model_copy(
        update={
            "phase": SweepPhase.failed,
            "conditions": _carried(conditions, previous, now),
            "observed_generation": meta.get("generation"),
            "start_time": previous.start_time or now,
            "completion_time": previous.completion_time or now,
        }
    )
    event = SweepEvent(
        key=f"invalidspec.g{meta.get('generation')}",
        reason=Reason.invalid_spec,
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
            "labels": {pods.SWEEP_LABEL: names.sweep_label(sweep_name)},
            "ownerReferences": [owner.reference()],
        },
        "spec": BertTrialSpec(
            sweep=sweep_name,
            index=trial.index,
            parameters=trial.parameters,
            generation=trial.generation,
        ).wire(),
    }


def pod_manifest(
    sweep: Mapping[str, Any], spec: SweepSpec, trial: Trial, record_uid: str
) -> dict[str, Any]:
    """The pod of a recorded trial's current attempt, owned by the record."""
    meta = sweep.get("metadata") or {}
    return pods.trial_pod(
        str(meta.get("name")),
        str(meta.get("namespace")),
        spec,
        trial,
        pods.trial_owner(trial.name, record_uid),
    )


def status_body(status: SweepStatus | BertTrialStatus) -> dict[str, Any]:
    """A status as written: every field, nulls included, so a replaced status holds nothing
    stale."""
    return status.model_dump(mode="json", by_alias=True)


def _carried(
    conditions: Sequence[Condition], previous: SweepStatus, now: datetime
) -> list[Condition]:
    return [c.carried_from(previous.conditions, now) for c in conditions]


def _wire(status: SweepStatus) -> dict[str, Any]:
    return status_body(status)
