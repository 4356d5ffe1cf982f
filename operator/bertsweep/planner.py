"""The pure reconcile step: from what exists, decide what to do next.

`plan()` is called on every pass by the operator, the local runner and the benchmark alike, with
the trial records as they are now. It holds no state between calls (levels, not edges): a
restarted caller that hands it the same records gets the same plan, which is what makes an
operator restart lose nothing and start nothing twice. Trial names are derived from their index,
so a trial created twice by a confused caller collides on its name instead of running twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bertsweep import stopping
from bertsweep.api import (
    LEADERBOARD_SIZE,
    Condition,
    SweepPhase,
    SweepSpec,
    SweepStatus,
    Trial,
    TrialCounts,
    TrialPhase,
    TrialSummary,
)
from bertsweep.search.base import make_strategy

# Reasons, as they appear in conditions and trial records.
MAX_TRIALS_REACHED = "MaxTrialsReached"
TARGET_REACHED = "TargetReached"
SEARCH_SPACE_EXHAUSTED = "SearchSpaceExhausted"
MAX_FAILED_TRIALS_EXCEEDED = "MaxFailedTrialsExceeded"
TRIALS_RUNNING = "TrialsRunning"
SWEEP_ENDED = "SweepEnded"
PRUNED = "Pruned"


def trial_name(sweep: str, index: int) -> str:
    """The name of a sweep's index-th trial: deterministic, so creation is idempotent."""
    return f"{sweep}-{index:04d}"


@dataclass(frozen=True)
class Plan:
    """What to do now, and what the sweep's status is once it is done."""

    create: list[Trial] = field(default_factory=list)
    """New trials (phase Pending) to start, in index order."""
    prune: dict[str, str] = field(default_factory=dict)
    """Running trials that early stopping ends (recorded Pruned), with the rule's verdict."""
    stop: list[str] = field(default_factory=list)
    """Active trials to end because the sweep itself has ended (recorded Pruned, SweepEnded)."""
    status: SweepStatus = field(default_factory=SweepStatus)


@dataclass(frozen=True)
class _Ending:
    phase: SweepPhase
    reason: str
    message: str


def plan(
    sweep: str,
    spec: SweepSpec,
    trials: Sequence[Trial],
    now: datetime,
    previous: SweepStatus | None = None,
) -> Plan:
    """Decide which trials to start, prune or stop, and the sweep's resulting status.

    `trials` are all of the sweep's trial records, in any order. `previous` is the status as
    last written, used only to keep condition transition times and start/completion times.
    """
    trials = sorted(trials, key=lambda t: t.index)
    ending = _ending_before_planning(spec, trials)
    active = [t for t in trials if t.phase.active]

    if ending is not None:
        stop = [t.name for t in active]
        after = _with_phases(trials, {n: TrialPhase.pruned for n in stop})
        return Plan(stop=stop, status=summarize(spec, after, ending, now, previous))

    running = {t.name for t in trials if t.phase is TrialPhase.running}
    prune = {n: why for n, why in stopping.trials_to_stop(spec, trials).items() if n in running}
    still_active = len(active) - len(prune)
    wanted = min(spec.parallelism - still_active, spec.max_trials - len(trials))

    create: list[Trial] = []
    exhausted = False
    if wanted > 0:
        configurations = make_strategy(spec).ask(trials, wanted)
        exhausted = len(configurations) < wanted
        # After the highest index, not the count: a record deleted by hand must not make the
        # next trial collide with an existing name (a 409 no-op would stall the sweep).
        first = trials[-1].index + 1 if trials else 0
        create = [
            Trial(name=trial_name(sweep, first + k), index=first + k, parameters=c)
            for k, c in enumerate(configurations)
        ]

    after = _with_phases(trials, {n: TrialPhase.pruned for n in prune}) + create
    if exhausted and not create and still_active == 0:
        ending = _Ending(
            SweepPhase.succeeded,
            SEARCH_SPACE_EXHAUSTED,
            f"the search space holds {len(trials)} configurations and all were tried",
        )
    elif not create and still_active == 0 and len(trials) >= spec.max_trials:
        ending = _Ending(
            SweepPhase.succeeded, MAX_TRIALS_REACHED, f"all {spec.max_trials} trials finished"
        )
    return Plan(create=create, prune=prune, status=summarize(spec, after, ending, now, previous))


def _with_phases(trials: Sequence[Trial], phases: dict[str, TrialPhase]) -> list[Trial]:
    return [
        t.model_copy(update={"phase": phases[t.name]}) if t.name in phases else t for t in trials
    ]


def _ending_before_planning(spec: SweepSpec, trials: Sequence[Trial]) -> _Ending | None:
    """Endings that stop running trials: too many failures, or the target reached."""
    failed = [t for t in trials if t.phase is TrialPhase.failed]
    if len(failed) > spec.max_failed_trials:
        last = failed[-1]
        why = f"{last.reason}: {last.message}" if last.message else str(last.reason)
        return _Ending(
            SweepPhase.failed,
            MAX_FAILED_TRIALS_EXCEEDED,
            f"{len(failed)} trials failed, more than maxFailedTrials={spec.max_failed_trials}; "
            f"last: {last.name}: {why}",
        )
    target = spec.objective.target
    if target is not None:
        for t in trials:
            value = t.objective(spec.objective) if t.phase is TrialPhase.succeeded else None
            if value is not None and not spec.objective.better(target, value):
                return _Ending(
                    SweepPhase.succeeded,
                    TARGET_REACHED,
                    f"{t.name} reached {spec.objective.metric}={value:.4g} (target {target:g})",
                )
    return None


def rank(spec: SweepSpec, trials: Sequence[Trial]) -> list[tuple[float, Trial]]:
    """Succeeded trials with an objective value, best first (ties: the earlier trial)."""
    scored = [
        (value, t)
        for t in trials
        if t.phase is TrialPhase.succeeded and (value := t.objective(spec.objective)) is not None
    ]
    sign = -1.0 if spec.objective.goal.value == "maximize" else 1.0
    return sorted(scored, key=lambda vt: (sign * vt[0], vt[1].index))


def summarize(
    spec: SweepSpec,
    trials: Sequence[Trial],
    ending: _Ending | None,
    now: datetime,
    previous: SweepStatus | None = None,
) -> SweepStatus:
    """The sweep's status for these trials: bounded in size however many trials there are."""
    counts = TrialCounts(
        total=len(trials),
        pending=sum(t.phase is TrialPhase.pending for t in trials),
        running=sum(t.phase is TrialPhase.running for t in trials),
        succeeded=sum(t.phase is TrialPhase.succeeded for t in trials),
        failed=sum(t.phase is TrialPhase.failed for t in trials),
        pruned=sum(t.phase is TrialPhase.pruned for t in trials),
    )
    ranked = rank(spec, trials)
    leaderboard = [
        TrialSummary(name=t.name, parameters=t.parameters, metrics=t.metrics)
        for _, t in ranked[:LEADERBOARD_SIZE]
    ]
    if ending is not None:
        phase = ending.phase
        condition = Condition(
            type=phase.value, status="True", reason=ending.reason, message=ending.message
        )
    else:
        phase = SweepPhase.running if trials else SweepPhase.pending
        condition = Condition(
            type="Running",
            status="True",
            reason=TRIALS_RUNNING,
            message=f"{counts.running + counts.pending} active, "
            f"{counts.succeeded + counts.pruned + counts.failed}/{spec.max_trials} done",
        )
    previous = previous or SweepStatus()
    return SweepStatus(
        phase=phase,
        trials=counts,
        done=f"{counts.succeeded + counts.pruned + counts.failed}/{spec.max_trials}",
        best_trial=leaderboard[0] if leaderboard else None,
        best_objective=ranked[0][0] if ranked else None,
        leaderboard=leaderboard,
        conditions=[_keep_transition_time(condition, previous.conditions, now)],
        start_time=previous.start_time or now,
        completion_time=(previous.completion_time or now) if phase.finished else None,
    )


def _keep_transition_time(
    condition: Condition, previous: Sequence[Condition], now: datetime
) -> Condition:
    for old in previous:
        if (
            old.type == condition.type
            and old.status == condition.status
            and old.reason == condition.reason
        ):
            return condition.model_copy(
                update={"last_transition_time": old.last_transition_time or now}
            )
    return condition.model_copy(update={"last_transition_time": now})
