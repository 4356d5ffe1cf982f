"""Warm start, pure: which earlier trials a sweep may learn from and why the others may not
(`warm.warm_history`), and what the planner does with them (`plan(history=...)`): they teach
the search and the stopping rules and count for nothing else."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from objects import sweep_obj, trial_obj

from bertsweep.api import (
    ConditionType,
    ManifestError,
    Report,
    SweepSpec,
    Trial,
    TrialPhase,
    parse_spec,
)
from bertsweep.decide import Refusal, decide, refused
from bertsweep.names import trial_name
from bertsweep.observe import Records, earlier_sweep
from bertsweep.planner import plan
from bertsweep.warm import EarlierSweep, left_out, warm_history

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DONE = TrialPhase.succeeded


def spec(**changes: Any) -> SweepSpec:
    base: dict[str, Any] = {
        "model": "m",
        "dataset": {"train": "t.csv"},
        "algorithm": {"name": "random", "seed": 3},
        "parameters": [
            {"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-3, "scale": "log"},
            {"name": "per_device_train_batch_size", "type": "categorical", "values": [16, 32]},
        ],
        "fixed": {"num_train_epochs": 3},
        "maxTrials": 6,
        "parallelism": 2,
        "warmStart": {"sweeps": ["before"]},
    }
    base.update(changes)
    return parse_spec(base)


def trial(
    index: int,
    phase: TrialPhase = DONE,
    accuracy: float | None = 0.7,
    sweep: str = "before",
    **parameters: Any,
) -> Trial:
    values = {"learning_rate": 1e-4, "per_device_train_batch_size": 16, **parameters}
    return Trial(
        name=trial_name(sweep, index),
        index=index,
        parameters={k: v for k, v in values.items() if v is not None},
        phase=phase,
        metrics={"eval_accuracy": accuracy} if accuracy is not None else {},
    )


def earlier(trials: list[Trial], **changes: Any) -> EarlierSweep:
    return EarlierSweep("before", spec(**changes), trials)


# ---- what is used -----------------------------------------------------------------------


def test_a_sweep_without_warm_start_has_no_history_and_no_condition() -> None:
    history = warm_history("s", spec(warmStart=None), [earlier([trial(0)])])
    assert history.trials == [] and history.condition is None


def test_finished_trials_of_the_same_space_are_used_under_names_and_indices_of_their_own() -> None:
    trials = [trial(0), trial(1, TrialPhase.pruned), trial(2, learning_rate=5e-4)]
    history = warm_history("s", spec(), [earlier(trials)])
    assert [t.name for t in history.trials] == [
        "before/before-0000",
        "before/before-0001",
        "before/before-0002",
    ]
    # Before every trial of the sweep's own, oldest first, and off the indices it takes.
    assert [t.index for t in history.trials] == [-3, -2, -1]
    assert [t.phase for t in history.trials] == [DONE, TrialPhase.pruned, DONE]
    assert history.trials[2].parameters == {
        "learning_rate": 5e-4,
        "per_device_train_batch_size": 16,
    }
    assert history.used == {"before": 3}
    condition = history.condition
    assert condition is not None and condition.type == ConditionType.warm_started
    assert (condition.status, condition.reason) == ("True", "EarlierTrialsUsed")
    assert condition.message == "3 of 3 earlier trials used; before: 3 of 3"


@pytest.mark.parametrize(
    ("trial_", "changes", "why"),
    [
        (trial(0, TrialPhase.running), {}, "not finished"),
        (trial(0, TrialPhase.pending), {}, "not finished"),
        (trial(0, TrialPhase.failed, None), {}, "failed"),
        (trial(0, accuracy=None), {}, "no eval_accuracy reported"),
        (trial(0, learning_rate=0.5), {}, "learning_rate outside this sweep's range"),
        (
            trial(0, per_device_train_batch_size=64),
            {},
            "per_device_train_batch_size outside this sweep's choices",
        ),
        (trial(0, learning_rate=None), {}, "learning_rate not set"),
        (
            trial(0, warmup_ratio=0.1),
            {},
            "warmup_ratio set, which this sweep neither searches nor fixes",
        ),
        # The earlier sweep's fixed values and model are part of what its trials trained.
        (
            trial(0),
            {"fixed": {"num_train_epochs": 2}},
            "another num_train_epochs than the fixed one",
        ),
        (trial(0), {"fixed": {}}, "num_train_epochs not set (fixed here)"),
        (
            trial(0),
            {"fixed": {"num_train_epochs": 3, "weight_decay": 0.01}},
            "weight_decay set, which this sweep neither searches nor fixes",
        ),
        (trial(0), {"model": "another-bert"}, "another model"),
    ],
)
def test_each_reason_a_trial_is_left_out(trial_: Trial, changes: dict[str, Any], why: str) -> None:
    assert left_out(spec(), spec(**changes), trial_) == why
    history = warm_history("s", spec(), [earlier([trial_, trial(1)], **changes)])
    assert [t.name for t in history.trials] == ([] if changes else ["before/before-0001"]), (
        "one bad trial does not cost the others"
    )
    assert history.condition is not None
    # A change of the earlier sweep's spec leaves out both trials, one of a trial that one.
    assert f"({2 if changes else 1} {why})" in history.condition.message


def test_another_objective_is_used_where_the_trials_reported_this_ones_metric() -> None:
    earlier_spec = {"objective": {"metric": "eval_loss", "goal": "minimize"}}
    reported = trial(0).model_copy(update={"metrics": {"eval_loss": 0.3, "eval_f1": 0.8}})
    only_loss = trial(1).model_copy(update={"metrics": {"eval_loss": 0.2}})
    today = spec(objective={"metric": "eval_f1", "goal": "maximize"})
    history = warm_history("s", today, [earlier([reported, only_loss], **earlier_spec)])
    assert [t.name for t in history.trials] == ["before/before-0000"]
    assert history.condition is not None
    assert history.condition.message.endswith("before: 1 of 2 (1 no eval_f1 reported)")


def test_a_value_an_earlier_sweep_fixed_is_a_point_of_a_range_searched_today() -> None:
    epochs = {"name": "num_train_epochs", "type": "int", "min": 1, "max": 4}
    today = spec(parameters=[*spec().model_dump(by_alias=True)["parameters"], epochs], fixed={})
    history = warm_history("s", today, [earlier([trial(0)])])
    (used,) = history.trials
    assert used.parameters["num_train_epochs"] == 3
    # ... but one fixed outside today's range is not.
    outside = warm_history("s", today, [earlier([trial(0)], fixed={"num_train_epochs": 6})])
    assert outside.trials == []


def test_an_earlier_sweep_on_other_data_is_left_out_whole_and_named() -> None:
    other = earlier([trial(0), trial(1)], dataset={"train": "t.csv", "maxTrainSamples": 100})
    same = EarlierSweep("same", spec(), [trial(0, sweep="same")])
    today = spec(warmStart={"sweeps": ["before", "same"]})
    history = warm_history("s", today, [other, same])
    assert [t.name for t in history.trials] == ["same/same-0000"]
    assert history.condition is not None
    assert history.condition.message == (
        "1 of 3 earlier trials used; before: another dataset (maxTrainSamples differs), none "
        "of its 2 trials used; same: 1 of 1"
    )
    # The test data never chooses: another one changes nothing.
    tested = earlier([trial(0)], dataset={"train": "t.csv", "test": "other.csv"})
    assert len(warm_history("s", spec(), [tested]).trials) == 1


def test_latency_measured_on_another_batch_is_other_data_only_where_it_is_an_objective() -> None:
    batched = earlier([trial(0)], inference={"batchSize": 8})
    assert len(warm_history("s", spec(), [batched]).trials) == 1
    latency = spec(constraints=[{"metric": "inference_latency_ms", "max": 20}])
    history = warm_history("s", latency, [batched])
    assert history.trials == []
    assert history.condition is not None
    assert "inference_latency_ms measured on another inference.batchSize" in (
        history.condition.message
    )


def test_missing_sweeps_and_the_sweep_itself_are_named_and_lend_nothing() -> None:
    today = spec(warmStart={"sweeps": ["gone", "s"]})
    history = warm_history("s", today, [EarlierSweep("s", spec(), [trial(0, sweep="s")])])
    assert history.trials == []
    condition = history.condition
    assert condition is not None and (condition.status, condition.reason) == (
        "False",
        "NoEarlierTrials",
    )
    assert condition.message == (
        "0 of 1 earlier trials used; gone: not found; s: this sweep itself, none of its 1 "
        "trials used"
    )


def test_the_condition_counts_the_commonest_reasons_first() -> None:
    trials = [
        trial(0),
        trial(1, TrialPhase.failed, None),
        trial(2, learning_rate=0.5),
        trial(3, learning_rate=0.9),
        trial(4, TrialPhase.running),
    ]
    history = warm_history("s", spec(), [earlier(trials)])
    assert history.condition is not None
    assert history.condition.message == (
        "1 of 5 earlier trials used; before: 1 of 5 (2 learning_rate outside this sweep's "
        "range, 1 failed, 1 not finished)"
    )


def test_the_api_refuses_a_warm_start_naming_a_sweep_twice_or_none() -> None:
    with pytest.raises(ManifestError, match="repeated: a"):
        spec(warmStart={"sweeps": ["a", "a"]})
    with pytest.raises(ManifestError, match=r"spec.warmStart.sweeps"):
        spec(warmStart={"sweeps": []})
    with pytest.raises(ManifestError, match=r"spec.warmStart.names"):
        spec(warmStart={"names": ["a"]})


# ---- what the planner does with them ----------------------------------------------------


def history_of(*trials: Trial) -> list[Trial]:
    return warm_history("s", spec(), [earlier(list(trials))]).trials


def test_earlier_trials_count_for_nothing_of_the_sweeps_own() -> None:
    history = history_of(*[trial(i, accuracy=0.9 + i / 100) for i in range(8)])
    cold = plan("s", spec(), [], NOW)
    warm = plan("s", spec(), [], NOW, history=history)
    # Neither maxTrials (6, fewer than the 8 earlier trials) nor parallelism is used up.
    assert [t.name for t in warm.create] == ["s-0000", "s-0001"]
    assert [t.index for t in warm.create] == [0, 1]
    status = warm.status
    assert status.trials.total == 2 and status.done == "0/6"
    assert status.best_trial is None and status.leaderboard == [] and status.pareto_front == []
    # Random search draws from (seed, index): the earlier trials move no proposal of a
    # continuous space.
    assert [t.parameters for t in warm.create] == [t.parameters for t in cold.create]

    mine = [
        t.model_copy(update={"phase": DONE, "metrics": {"eval_accuracy": 0.5}}) for t in warm.create
    ]
    later = plan("s", spec(), mine, NOW, history=history)
    assert [s.name for s in later.status.leaderboard] == ["s-0000", "s-0001"]
    assert later.status.trials.succeeded == 2 and later.status.done == "2/6"


def test_an_earlier_trial_past_the_target_does_not_end_the_sweep() -> None:
    today = spec(objective={"metric": "eval_accuracy", "goal": "maximize", "target": 0.8})
    warm = plan("s", today, [], NOW, history=history_of(trial(0, accuracy=0.95)))
    assert warm.status.phase.value == "Running" and len(warm.create) == 2


def test_earlier_failures_count_against_no_limit() -> None:
    failed = trial(0, TrialPhase.failed, None).model_copy(update={"index": -1, "name": "x/y"})
    p = plan("s", spec(maxFailedTrials=0), [], NOW, history=[failed])
    assert p.status.phase.value == "Running" and len(p.create) == 2


def test_bayesian_proposals_learn_from_the_earlier_trials() -> None:
    bayes = spec(algorithm={"name": "bayesian", "seed": 1, "startupTrials": 4})
    # Twelve earlier trials over the range, the best at learning_rate 10^-3.5.
    rates = [10 ** (-5 + 2 * i / 11) for i in range(12)]
    earlier_trials = [
        trial(i, learning_rate=lr, accuracy=0.5 + 0.4 * math.exp(-4 * (math.log10(lr) + 3.5) ** 2))
        for i, lr in enumerate(rates)
    ]
    history = warm_history("s", bayes, [EarlierSweep("before", bayes, earlier_trials)]).trials
    cold = plan("s", bayes, [], NOW)
    warm = plan("s", bayes, [], NOW, history=history)
    assert [t.index for t in warm.create] == [0, 1]
    assert [t.parameters for t in warm.create] != [t.parameters for t in cold.create]
    # Past its startup trials (counted over the whole history), TPE goes where the earlier
    # trials did best, from its first proposal on.
    for t in warm.create:
        assert abs(math.log10(float(t.parameters["learning_rate"])) + 3.5) < 0.25, t.parameters


def test_a_grid_ignores_the_earlier_trials() -> None:
    grid = spec(
        algorithm={"name": "grid"},
        parameters=[{"name": "learning_rate", "type": "categorical", "values": [1e-4, 2e-4]}],
    )
    tried = trial(0, learning_rate=1e-4, per_device_train_batch_size=None)
    history = warm_history("s", grid, [EarlierSweep("before", grid, [tried])]).trials
    assert len(history) == 1
    warm = plan("s", grid, [], NOW, history=history)
    assert [t.parameters for t in warm.create] == [{"learning_rate": 1e-4}, {"learning_rate": 2e-4}]


def curve(values: list[float]) -> list[Report]:
    return [
        Report(step=10 * e, epoch=float(e), metrics={"eval_accuracy": v})
        for e, v in enumerate(values, start=1)
    ]


def test_asha_ranks_a_running_trial_against_the_earlier_trials_at_its_rung() -> None:
    asha = spec(
        earlyStopping={"name": "asha", "minResource": 1, "reductionFactor": 3},
        fixed={"num_train_epochs": 9},
    )
    earlier_trials = [
        trial(i).model_copy(update={"phase": TrialPhase.pruned, "reports": curve([0.8 + i / 100])})
        for i in range(5)
    ]
    history = warm_history("s", asha, [EarlierSweep("before", asha, earlier_trials)]).trials
    assert len(history) == 5
    mine = [
        Trial(
            name=trial_name("s", i),
            index=i,
            parameters={"learning_rate": 1e-4, "per_device_train_batch_size": 32},
            phase=TrialPhase.pruned if i < 2 else TrialPhase.running,
            reports=curve([value]),
        )
        for i, value in enumerate([0.5, 0.55, 0.6])
    ]
    assert plan("s", asha, mine, NOW).prune == {}, "the best of its own three at the rung"
    verdict = plan("s", asha, mine, NOW, history=history).prune["s-0002"]
    assert "ranks 6 of the 8 trials that reached the rung" in verdict


# ---- the cluster adapter ------------------------------------------------------------------


def earlier_obj(**spec_changes: Any) -> Any:
    obj = sweep_obj(**spec_changes)
    obj["metadata"] |= {"name": "before", "uid": "before-uid"}
    return obj


def finished(index: int, owner: str = "before-uid") -> Any:
    obj = trial_obj(
        index,
        {"phase": "Succeeded", "metrics": {"eval_accuracy": 0.7}},
        owner=owner,
    )
    obj["spec"]["parameters"] = {"learning_rate": 1 + index % 4}
    return obj


def test_the_cluster_reads_an_earlier_sweep_leniently() -> None:
    unreadable = finished(2)
    unreadable["spec"]["index"] = "two"
    stranger = finished(3, owner="someone-else")  # a deleted sweep's of the same name
    found = earlier_sweep("before", earlier_obj(), [finished(0), finished(1), unreadable, stranger])
    assert found.problem is None and found.spec is not None
    assert [t.index for t in found.trials] == [0, 1]
    assert earlier_sweep("before", None, []).problem == "not found (yet)"
    assert "not a BertSweep's name" in str(earlier_sweep("runs/a", None, []).problem)
    broken = earlier_obj()
    broken["spec"]["maxTrials"] = 0
    assert "its spec cannot be read (spec.maxTrials" in str(
        earlier_sweep("before", broken, []).problem
    )


def test_the_operators_status_carries_the_condition_and_only_its_own_trials() -> None:
    sweep = sweep_obj(warmStart={"sweeps": ["before", "later"]})
    today = parse_spec(sweep["spec"])
    found = earlier_sweep("before", earlier_obj(), [finished(0), finished(1)])
    warm = warm_history("s", today, [found, earlier_sweep("later", None, [])])
    assert len(warm.trials) == 2
    d = decide(sweep, today, Records(), {}, None, NOW, warm=warm)
    assert [t.name for t in d.create_trials] == ["s-0000", "s-0001"]
    assert d.status.trials.total == 2 and d.status.best_trial is None
    (condition,) = [c for c in d.status.conditions if c.type == "WarmStarted"]
    assert condition.message == (
        "2 of 2 earlier trials used; before: 2 of 2; later: not found (yet)"
    )
    assert condition.last_transition_time == NOW
    # It survives a pass whose pods the API server refused.
    after = refused(sweep, today, d, [Refusal(d.create_trials[0], "quota", True)], NOW)
    assert any(c.type == "WarmStarted" for c in after.status.conditions)
