"""The sweep policy, runner-agnostic: from the trial records as they are, what to do next.

`plan()` is called on every pass by the operator, the local runner and the benchmark alike, with
the trial records as they are now. It holds no state between calls (levels, not edges): a
restarted caller that hands it the same records gets the same plan, which is what makes an
operator restart lose nothing and start nothing twice. Trial names are derived from their index,
so a trial created twice by a confused caller collides on its name instead of running twice.

An earlier sweep's finished trials may be handed in as `history` (a warm start, `warm.py`):
the search and the early-stopping rules learn from them as from the sweep's own, but only the
sweep's own trials are counted against its limits, ranked and summarized.

It decides when the sweep ends: `maxTrials` trials finished, the target reached, the search
space exhausted, more than `maxFailedTrials` failures, or one failure that every trial would
share (a deterministic failure whose cause is no searched value: see `shared_failure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bertsweep import pareto, stopping
from bertsweep.api import (
    LEADERBOARD_SIZE,
    PARETO_FRONT_SIZE,
    AlgorithmName,
    Condition,
    SweepPhase,
    SweepSpec,
    SweepStatus,
    Trial,
    TrialCounts,
    TrialPhase,
    TrialSummary,
    rank_key,
)
from bertsweep.contract import DETERMINISTIC, Reason
from bertsweep.names import trial_name
from bertsweep.search import make_strategy


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
class Ending:
    """Why a sweep has ended."""

    phase: SweepPhase
    reason: str
    message: str


def plan(
    sweep: str,
    spec: SweepSpec,
    trials: Sequence[Trial],
    now: datetime,
    previous: SweepStatus | None = None,
    generation: int | None = None,
    first_index: int = 0,
    history: Sequence[Trial] = (),
) -> Plan:
    """Decide which trials to start, prune or stop, and the sweep's resulting status.

    `trials` are all of the sweep's trial records, in any order. `previous` is the status as
    last written, used only to keep condition transition times and start/completion times.
    `generation` is the spec's (a failure every trial would share ends the sweep only when a
    trial of this generation met it: an edited spec gets another try). New trials take
    indices from `first_index` on, past every index in use (records that could not be read
    hold theirs too).

    `history` holds earlier sweeps' finished trials (`warm.warm_history`: negative indices,
    names no trial of this sweep can have). They are the search's history and the stopping
    rules' records beside the sweep's own trials, and nothing else: they count against no
    limit and appear in no count, leaderboard, best trial or Pareto front. A grid ignores them:
    it is exhaustive and ordered, and a point it skipped would be missing from the sweep's
    leaderboard.
    """
    trials = sorted(trials, key=lambda t: t.index)
    known = [*history, *trials]
    ending = _ending_before_planning(spec, trials, generation)
    active = [t for t in trials if t.phase.active]

    if ending is not None:
        stop = [t.name for t in active]
        after = _with_phases(trials, {n: TrialPhase.pruned for n in stop})
        return Plan(stop=stop, status=summarize(spec, after, ending, now, previous))

    running = {t.name for t in trials if t.phase is TrialPhase.running}
    prune = {n: why for n, why in stopping.trials_to_stop(spec, known).items() if n in running}
    still_active = len(active) - len(prune)
    wanted = min(spec.parallelism - still_active, spec.max_trials - len(trials))

    create: list[Trial] = []
    exhausted = False
    if wanted > 0:
        # After the highest index, not the count: a record deleted by hand must not make the
        # next trial collide with an existing name (a 409 no-op would stall the sweep).
        first = max(first_index, trials[-1].index + 1 if trials else 0)
        indices = list(range(first, first + wanted))
        grid = spec.algorithm.name is AlgorithmName.grid
        configurations = make_strategy(spec).ask(trials if grid else known, indices)
        exhausted = len(configurations) < wanted
        create = [
            Trial(name=trial_name(sweep, i), index=i, parameters=c, generation=generation)
            for i, c in zip(indices, configurations, strict=False)
        ]

    after = _with_phases(trials, {n: TrialPhase.pruned for n in prune}) + create
    if exhausted and not create and still_active == 0:
        ending = Ending(
            SweepPhase.succeeded,
            Reason.search_space_exhausted,
            f"the search space holds {len(trials)} configurations and all were tried",
        )
    elif not create and still_active == 0 and len(trials) >= spec.max_trials:
        ending = Ending(
            SweepPhase.succeeded,
            Reason.max_trials_reached,
            f"all {spec.max_trials} trials finished",
        )
    return Plan(create=create, prune=prune, status=summarize(spec, after, ending, now, previous))


def _with_phases(trials: Sequence[Trial], phases: dict[str, TrialPhase]) -> list[Trial]:
    return [
        t.model_copy(update={"phase": phases[t.name]}) if t.name in phases else t for t in trials
    ]


def shared_failure(spec: SweepSpec, trial: Trial) -> bool:
    """Whether a trial failed in a way every trial of the sweep would: a deterministic
    failure (the trainer refused its inputs, the API server its pod) that no searched value
    caused. Spending more pods on it would only repeat it."""
    return (
        trial.phase is TrialPhase.failed
        and trial.reason in DETERMINISTIC
        and not set(trial.faulty_parameters) & spec.searched()
    )


def _ending_before_planning(
    spec: SweepSpec, trials: Sequence[Trial], generation: int | None
) -> Ending | None:
    """Endings that stop running trials: a failure all would share, too many failures, or
    the target reached."""
    for t in trials:
        # Records from before generations were recorded count as the current spec's.
        if t.generation in (None, generation) and shared_failure(spec, t):
            return Ending(
                SweepPhase.failed,
                str(t.reason),
                f"{t.name} failed: {t.message}; every trial of this sweep would fail the same "
                "way, so no more are started (fix the spec to go on)",
            )
    failed = [t for t in trials if t.phase is TrialPhase.failed]
    if len(failed) > spec.max_failed_trials:
        last = failed[-1]
        why = f"{last.reason}: {last.message}" if last.message else str(last.reason)
        return Ending(
            SweepPhase.failed,
            Reason.max_failed_trials_exceeded,
            f"{len(failed)} trials failed, more than maxFailedTrials={spec.max_failed_trials}; "
            f"last: {last.name}: {why}",
        )
    target = spec.objective.target
    if target is not None:
        for t in trials:
            value = t.objective(spec.objective) if t.phase is TrialPhase.succeeded else None
            reached = value is not None and not spec.objective.better(target, value)
            if reached and spec.eligible(t.metrics):
                return Ending(
                    SweepPhase.succeeded,
                    Reason.target_reached,
                    f"{t.name} reached {spec.objective.metric}={value:.4g} (target {target:g})",
                )
    return None


def rank(spec: SweepSpec, trials: Sequence[Trial]) -> list[tuple[float, Trial]]:
    """The trials that may be selected, best first on the (primary) objective, ties to the
    earlier trial: succeeded, with an objective value, meeting every constraint."""
    scored = [
        (value, t)
        for t in trials
        if t.phase is TrialPhase.succeeded
        and (value := t.objective(spec.objective)) is not None
        and spec.eligible(t.metrics)
    ]
    objectives = spec.all_objectives()
    return sorted(
        scored,
        key=lambda vt: rank_key(
            objectives, {**vt[1].metrics, objectives[0].metric: vt[0]}, vt[1].index
        ),
    )


def pareto_front(spec: SweepSpec, ranked: Sequence[tuple[float, Trial]]) -> list[Trial]:
    """The non-dominated trials on every objective among those that may be selected, in the
    order of `ranked` (the primary objective's)."""
    objectives = spec.all_objectives()
    candidates = [
        (t, point) for _, t in ranked if (point := pareto.signed(objectives, t.metrics)) is not None
    ]
    keep = set(pareto.non_dominated([point for _, point in candidates]))
    return [t for i, (t, _) in enumerate(candidates) if i in keep]


def summarize(
    spec: SweepSpec,
    trials: Sequence[Trial],
    ending: Ending | None,
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
        retried=sum(t.retries for t in trials),
        diverged=sum(t.reason == Reason.diverged for t in trials),
    )
    ranked = rank(spec, trials)
    # The trials keep the models of the best `keep`: the others have been removed.
    kept = {t.name for _, t in ranked[: spec.output.keep]}

    def summary(t: Trial) -> TrialSummary:
        return TrialSummary(
            name=t.name,
            parameters=t.parameters,
            metrics=t.metrics,
            model_path=t.model_path if t.name in kept else None,
            test_metrics=t.test_metrics,
        )

    leaderboard = [summary(t) for _, t in ranked[:LEADERBOARD_SIZE]]
    front = pareto_front(spec, ranked) if spec.objectives else []
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
            reason=Reason.trials_running,
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
        pareto_front=[summary(t) for t in front[:PARETO_FRONT_SIZE]],
        pareto_front_size=len(front),
        conditions=[condition.carried_from(previous.conditions, now)],
        start_time=previous.start_time or now,
        completion_time=(previous.completion_time or now) if phase.finished else None,
    )
