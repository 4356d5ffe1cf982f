"""The pure reconcile step, with plain trial records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bertsweep.api import SweepPhase, SweepSpec, Trial, TrialPhase, parse_spec
from bertsweep.names import trial_name
from bertsweep.planner import plan

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def spec(**changes: Any) -> SweepSpec:
    base: dict[str, Any] = {
        "model": "m",
        "dataset": {"train": "t.csv"},
        "algorithm": {"name": "grid"},
        "parameters": [
            {"name": "learning_rate", "type": "categorical", "values": [1e-5, 2e-5, 3e-5]},
            {"name": "num_hidden_layers", "type": "int", "min": 2, "max": 4},
        ],
        "maxTrials": 6,
        "parallelism": 2,
        "maxFailedTrials": 1,
    }
    base.update(changes)
    return parse_spec(base)


def trial(index: int, phase: TrialPhase, accuracy: float | None = None, **kw: Any) -> Trial:
    metrics = {"eval_accuracy": accuracy} if accuracy is not None else {}
    return Trial(
        name=trial_name("s", index),
        index=index,
        parameters={"learning_rate": 1e-5, "num_hidden_layers": 2 + index % 3},
        phase=phase,
        metrics=metrics,
        **kw,
    )


def test_first_pass_starts_parallelism_trials_with_deterministic_names() -> None:
    p = plan("s", spec(), [], NOW)
    assert [t.name for t in p.create] == ["s-0000", "s-0001"]
    assert [t.index for t in p.create] == [0, 1]
    assert all(t.phase is TrialPhase.pending for t in p.create)
    assert p.status.phase is SweepPhase.running
    assert p.status.trials.pending == 2 and p.status.done == "0/6"
    assert p == plan("s", spec(), [], NOW), "the same records must give the same plan"


def test_no_new_trial_while_parallelism_is_used() -> None:
    running = [trial(0, TrialPhase.running), trial(1, TrialPhase.pending)]
    assert plan("s", spec(), running, NOW).create == []


def test_a_finished_trial_frees_a_slot_for_the_next_index() -> None:
    trials = [trial(0, TrialPhase.succeeded, 0.7), trial(1, TrialPhase.running)]
    created = plan("s", spec(), trials, NOW).create
    assert [t.index for t in created] == [2]


def test_max_trials_caps_creation_and_ends_the_sweep() -> None:
    trials = [trial(i, TrialPhase.succeeded, 0.5 + i / 100) for i in range(5)]
    trials.append(trial(5, TrialPhase.running))
    p = plan("s", spec(), trials, NOW)
    assert p.create == [] and p.status.phase is SweepPhase.running
    trials[5] = trial(5, TrialPhase.succeeded, 0.9)
    p = plan("s", spec(), trials, NOW)
    assert p.status.phase is SweepPhase.succeeded
    assert p.status.conditions[0].reason == "MaxTrialsReached"
    assert p.status.done == "6/6" and p.status.completion_time == NOW


def test_too_many_failures_fail_the_sweep_and_stop_running_trials() -> None:
    trials = [
        trial(0, TrialPhase.failed, reason="Error", message="exit code 1: column 'txt' missing"),
        trial(1, TrialPhase.failed, reason="OOMKilled", message="out of memory"),
        trial(2, TrialPhase.running),
    ]
    p = plan("s", spec(), trials, NOW)
    assert p.status.phase is SweepPhase.failed
    condition = p.status.conditions[0]
    assert condition.type == "Failed" and condition.reason == "MaxFailedTrialsExceeded"
    assert "2 trials failed, more than maxFailedTrials=1" in condition.message
    assert "OOMKilled" in condition.message
    assert p.stop == ["s-0002"] and p.create == []


def test_failures_within_the_allowance_do_not_stop_the_sweep() -> None:
    p = plan("s", spec(), [trial(0, TrialPhase.failed, reason="Error")], NOW)
    assert p.status.phase is SweepPhase.running and len(p.create) == 2


def test_target_reached_ends_the_sweep_and_stops_the_rest() -> None:
    s = spec(objective={"metric": "eval_accuracy", "target": 0.8})
    trials = [trial(0, TrialPhase.succeeded, 0.81), trial(1, TrialPhase.running, 0.5)]
    p = plan("s", s, trials, NOW)
    assert p.status.phase is SweepPhase.succeeded
    assert p.status.conditions[0].reason == "TargetReached"
    assert p.stop == ["s-0001"]
    assert p.status.best_trial is not None and p.status.best_trial.name == "s-0000"


def test_exhausted_grid_ends_the_sweep() -> None:
    s = spec(
        parameters=[{"name": "learning_rate", "type": "categorical", "values": [1e-5, 2e-5]}],
        maxTrials=10,
    )
    first = plan("s", s, [], NOW).create
    assert len(first) == 2
    done = [
        t.model_copy(update={"phase": TrialPhase.succeeded, "metrics": {"eval_accuracy": 0.6}})
        for t in first
    ]
    p = plan("s", s, done, NOW)
    assert p.create == []
    assert p.status.phase is SweepPhase.succeeded
    assert p.status.conditions[0].reason == "SearchSpaceExhausted"


def test_best_trial_follows_the_goal() -> None:
    s = spec(objective={"metric": "eval_loss", "goal": "minimize"})
    trials = [
        Trial(
            name=trial_name("s", i),
            index=i,
            parameters={},
            phase=TrialPhase.succeeded,
            metrics={"eval_loss": loss},
        )
        for i, loss in enumerate([0.9, 0.3, 0.5])
    ]
    status = plan("s", s, trials, NOW).status
    assert status.best_trial is not None and status.best_trial.name == "s-0001"
    assert [e.name for e in status.leaderboard] == ["s-0001", "s-0002", "s-0000"]
    assert status.best_objective == 0.3


def test_pruned_trials_count_as_done_not_failed() -> None:
    trials = [trial(0, TrialPhase.pruned, 0.4), trial(1, TrialPhase.succeeded, 0.7)]
    status = plan("s", spec(), trials, NOW).status
    assert status.trials.pruned == 1 and status.trials.failed == 0
    assert status.done == "2/6"


def test_status_stays_small_for_ten_thousand_trials() -> None:
    s = spec(algorithm={"name": "random"}, maxTrials=10_000, parallelism=50)
    trials = [trial(i, TrialPhase.succeeded, (i * 7919 % 1000) / 1000) for i in range(10_000)]
    status = plan("s", s, trials, NOW).status
    size = len(json.dumps(status.wire()))
    assert len(status.leaderboard) == 10
    assert size < 8 * 1024, size
    assert status.phase is SweepPhase.succeeded


def test_condition_transition_time_is_kept_while_unchanged() -> None:
    first = plan("s", spec(), [], NOW).status
    later = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    again = plan(
        "s", spec(), [trial(0, TrialPhase.running), trial(1, TrialPhase.running)], later, first
    ).status
    assert again.conditions[0].last_transition_time == NOW
    assert again.start_time == NOW


def test_a_gap_left_by_a_deleted_record_does_not_reuse_a_name() -> None:
    trials = [trial(0, TrialPhase.succeeded, 0.6), trial(2, TrialPhase.succeeded, 0.7)]
    assert [t.name for t in plan("s", spec(), trials, NOW).create] == ["s-0003", "s-0004"]


# ---- several objectives, constraints ---------------------------------------------------------


def costed(index: int, accuracy: float, latency: float, parameters: float) -> Trial:
    return Trial(
        name=trial_name("s", index),
        index=index,
        parameters={},
        phase=TrialPhase.succeeded,
        metrics={
            "eval_accuracy": accuracy,
            "inference_latency_ms": latency,
            "model_parameters": parameters,
        },
    )


def multi(**changes: Any) -> SweepSpec:
    return spec(
        **{
            "objectives": [
                {"metric": "eval_accuracy", "goal": "maximize"},
                {"metric": "inference_latency_ms", "goal": "minimize"},
            ],
            "constraints": [{"metric": "model_parameters", "max": 3e7}],
            "maxTrials": 20,
            **changes,
        }
    )


def test_the_pareto_front_is_the_non_dominated_set_of_those_meeting_the_constraints() -> None:
    trials = [
        costed(0, 0.80, 10.0, 2e7),  # front
        costed(1, 0.85, 20.0, 2e7),  # front
        costed(2, 0.75, 15.0, 2e7),  # dominated by 0
        costed(3, 0.95, 5.0, 9e7),  # dominates all, but breaks the constraint
        costed(4, 0.70, 4.0, 1e7),  # front: the fastest that may be selected
        costed(5, 0.85, 25.0, 2e7),  # dominated by 1
    ]
    status = plan("s", multi(), trials, NOW).status
    assert [t.name for t in status.pareto_front] == ["s-0001", "s-0000", "s-0004"]
    assert status.pareto_front_size == 3
    assert status.best_trial is not None and status.best_trial.name == "s-0001", (
        "the best on the primary objective among those meeting every constraint"
    )
    assert "s-0003" not in [t.name for t in status.leaderboard]
    single = plan("s", spec(), [trial(0, TrialPhase.succeeded, 0.8)], NOW).status
    assert single.pareto_front == [] and single.pareto_front_size == 0


def test_a_target_counts_only_for_a_trial_that_meets_the_constraints() -> None:
    s = multi()
    s = s.model_copy(update={"objective": s.objective.model_copy(update={"target": 0.9})})
    cheating = plan("s", s, [costed(0, 0.95, 5.0, 9e7)], NOW).status
    assert cheating.phase is SweepPhase.running
    fair = plan("s", s, [costed(0, 0.92, 5.0, 1e7)], NOW).status
    assert fair.phase is SweepPhase.succeeded and fair.conditions[0].reason == "TargetReached"


def test_the_front_in_the_status_stays_bounded() -> None:
    # 100 trials all on the front (accuracy up, latency up): the status lists 20 and the count.
    trials = [costed(i, 0.5 + i / 1000, 1.0 + i, 1e7) for i in range(100)]
    status = plan("s", multi(maxTrials=100), trials, NOW).status
    assert len(status.pareto_front) == 20 and status.pareto_front_size == 100
