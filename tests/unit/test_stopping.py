"""Early-stopping rules on hand-made trial records.

The rules are replayed on every reconcile pass by an operator that may restart at any time, so
beside each rule's decisions these tests check that the verdicts are a function of the records
alone: the same records, in any order, give the same verdicts.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from bertsweep.api import Report, SweepSpec, Trial, TrialPhase, parse_spec
from bertsweep.stopping import asha_rungs, trials_to_stop

pytestmark = pytest.mark.unit

RUNNING = TrialPhase.running
DONE = TrialPhase.succeeded
PRUNED = TrialPhase.pruned


def make_spec(rule: str, metric: str = "eval_accuracy", **stopping: Any) -> SweepSpec:
    goal = "minimize" if metric == "eval_loss" else "maximize"
    return parse_spec(
        {
            "model": "m",
            "dataset": {"train": "t.csv"},
            "objective": {"metric": metric, "goal": goal},
            "algorithm": {"name": "random"},
            "earlyStopping": {"name": rule, **stopping},
            "parameters": [{"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-3}],
            "fixed": {"num_train_epochs": 9},
            "maxTrials": 100,
            "parallelism": 4,
        }
    )


def trial(
    index: int, curve: list[float], phase: TrialPhase = RUNNING, metric: str = "eval_accuracy"
) -> Trial:
    """A trial that reported `curve[e]` after epoch e + 1 (100 steps an epoch)."""
    reports = [
        Report(step=100 * (e + 1), epoch=float(e + 1), metrics={metric: v, "train_loss": 1.0})
        for e, v in enumerate(curve)
    ]
    metrics = {metric: curve[-1]} if phase is DONE and curve else {}
    return Trial(
        name=f"s-{index:04d}",
        index=index,
        parameters={"learning_rate": 1e-4},
        phase=phase,
        reports=reports,
        metrics=metrics,
    )


def negate(curve: list[float]) -> list[float]:
    return [-v for v in curve]


# ---- none ---------------------------------------------------------------------------------


def test_no_rule_stops_nothing() -> None:
    trials = [trial(0, [0.9, 0.9, 0.9], DONE), trial(1, [0.1, 0.1])]
    assert trials_to_stop(make_spec("none"), trials) == {}


# ---- median -------------------------------------------------------------------------------

# Completed trials' running averages at epoch 2: 0.55, 0.65, 0.45 -> median 0.55.
OTHERS = [
    trial(0, [0.5, 0.6, 0.7, 0.8], DONE),
    trial(1, [0.6, 0.7, 0.8, 0.85], DONE),
    trial(2, [0.4, 0.5, 0.6, 0.7], DONE),
]


def test_median_stops_a_trial_whose_best_is_below_the_median_of_running_averages() -> None:
    verdicts = trials_to_stop(make_spec("median", minResource=2), [*OTHERS, trial(3, [0.3, 0.5])])
    assert set(verdicts) == {"s-0003"}
    message = verdicts["s-0003"]
    assert "eval_accuracy 0.5" in message and "epoch 2" in message
    assert "median 0.55" in message and "3 completed trials" in message


def test_median_keeps_a_trial_at_or_above_the_median() -> None:
    spec = make_spec("median", minResource=2)
    assert trials_to_stop(spec, [*OTHERS, trial(3, [0.3, 0.55])]) == {}, "equal is not worse"
    # Its best so far counts, not its latest value.
    assert trials_to_stop(spec, [*OTHERS, trial(3, [0.3, 0.9, 0.4])]) == {}


def test_median_waits_for_min_resource() -> None:
    spec = make_spec("median", minResource=2)
    assert trials_to_stop(spec, [*OTHERS, trial(3, [0.1])]) == {}
    assert "s-0003" in trials_to_stop(spec, [*OTHERS, trial(3, [0.1, 0.1])])


def test_median_waits_for_min_trials_that_reached_the_same_point() -> None:
    spec = make_spec("median", minResource=1, minTrials=3)
    short = trial(2, [0.4], DONE)  # completed at epoch 1 (num_train_epochs was 1): none at 2
    assert trials_to_stop(spec, [*OTHERS[:2], short, trial(3, [0.1, 0.1])]) == {}
    # At epoch 1 it has reached it: three others there, so the rule applies.
    assert "s-0003" in trials_to_stop(spec, [*OTHERS[:2], short, trial(3, [0.1])])


def test_median_compares_with_completed_trials_only() -> None:
    """Running and pruned trials are no yardstick: counting them turns the rule into a race
    among whoever is training at the moment, and late bloomers lose it."""
    spec = make_spec("median", minResource=1, minTrials=2)
    ahead = [trial(0, [0.8, 0.8]), trial(1, [0.7, 0.7], PRUNED)]
    assert trials_to_stop(spec, [*ahead, trial(2, [0.2])]) == {}
    done = [trial(3, [0.8, 0.8, 0.9], DONE), trial(4, [0.7, 0.7, 0.8], DONE)]
    assert set(trials_to_stop(spec, [*ahead, *done, trial(2, [0.2])])) == {"s-0002"}


def test_median_minimizes_a_loss() -> None:
    spec = make_spec("median", metric="eval_loss", minResource=2)
    others = [
        trial(
            t.index,
            negate([r.metrics["eval_accuracy"] for r in t.reports]),
            t.phase,
            metric="eval_loss",
        )
        for t in OTHERS
    ]
    # Losses: the others' running averages at epoch 2 are -0.55, -0.65, -0.45.
    worse = trial(3, negate([0.3, 0.5]), metric="eval_loss")  # best so far -0.5 > -0.55
    better = trial(4, negate([0.3, 0.7]), metric="eval_loss")
    verdicts = trials_to_stop(spec, [*others, worse, better])
    assert set(verdicts) == {"s-0003"}
    # Running trials are no yardstick: three completed trials' running averages at epoch 2.
    assert "above the median -0.55 of 3 completed trials" in verdicts["s-0003"]


def test_median_stops_only_running_trials() -> None:
    spec = make_spec("median", minResource=1)
    hopeless = [trial(3, [0.0, 0.0], phase) for phase in (TrialPhase.pending, DONE, PRUNED)]
    for t in hopeless:
        assert trials_to_stop(spec, [*OTHERS, t]) == {}


# ---- asha ---------------------------------------------------------------------------------


def asha(**changes: Any) -> SweepSpec:
    return make_spec("asha", minResource=1, reductionFactor=3, **changes)


def test_asha_rungs_follow_the_reduction_factor_below_the_maximum() -> None:
    assert asha_rungs(asha(), 100) == [1, 3]  # maxResource from num_train_epochs: 9
    assert asha_rungs(asha(maxResource=30), 100) == [1, 3, 9, 27]
    assert asha_rungs(asha(maxResource=30), 5) == [1, 3]
    step_spec = make_spec("asha", resource="step", minResource=100, reductionFactor=2)
    assert asha_rungs(step_spec, 1000) == [100, 200, 400, 800]


def test_asha_keeps_the_top_third_at_a_rung() -> None:
    # Six trials at rung 1 (epoch 1): the top 6 // 3 = 2 continue.
    finished = [trial(i, [v], PRUNED) for i, v in enumerate([0.9, 0.5, 0.4, 0.3])]
    spec = asha()
    assert trials_to_stop(spec, [*finished, trial(4, [0.92]), trial(5, [0.95])]) == {}
    verdicts = trials_to_stop(spec, [*finished, trial(4, [0.45]), trial(5, [0.95])])
    assert set(verdicts) == {"s-0004"}
    assert "ranks 4 of the 6 trials" in verdicts["s-0004"]
    assert "top 2 (1/3)" in verdicts["s-0004"] and "on course for 0.9" in verdicts["s-0004"]


def test_asha_stops_the_first_arrivals_at_a_rung_until_it_has_a_slot() -> None:
    # Fewer than reductionFactor trials at rung 1: no promotion slot (2 // 3 = 0), and the best
    # of two says little, so even the best stops; the third to arrive can go on as the best.
    spec = asha()
    verdicts = trials_to_stop(spec, [trial(0, [0.5], PRUNED), trial(1, [0.9])])
    assert set(verdicts) == {"s-0001"}
    assert "ranks 1 of the 2 trials" in verdicts["s-0001"]
    assert "only the top 0 (1/3) continue" in verdicts["s-0001"]
    two = [trial(0, [0.5], PRUNED), trial(1, [0.4], PRUNED)]
    assert trials_to_stop(spec, [*two, trial(2, [0.9])]) == {}
    assert set(trials_to_stop(spec, [*two, trial(2, [0.45])])) == {"s-0002"}


def test_asha_promotes_at_most_a_third_of_a_rung_whatever_the_order_of_arrival() -> None:
    """A model-based search proposes better trials as it learns. Six trials at rung 1, two of
    which went on (the rung's 6 // 3 = 2 slots): a seventh in the top two, not the best, is
    stopped because no slot is free; the best so far always continues."""
    spec = asha()
    went_on = [trial(0, [0.95, 0.9], PRUNED), trial(1, [0.6, 0.6], PRUNED)]
    stayed = [trial(i, [v], PRUNED) for i, v in enumerate([0.5, 0.4, 0.3, 0.2], start=2)]
    verdicts = trials_to_stop(spec, [*went_on, *stayed, trial(6, [0.9])])
    assert set(verdicts) == {"s-0006"}
    assert "ranks 2 of the 7 trials" in verdicts["s-0006"]
    assert "2 promotion slots (1/3 of its trials) are taken" in verdicts["s-0006"]
    assert trials_to_stop(spec, [*went_on, *stayed, trial(6, [0.97])]) == {}
    # With a slot free (one of the two went on), a trial in the top third goes on too.
    free = [went_on[0], trial(1, [0.6], PRUNED), *stayed]
    assert trials_to_stop(spec, [*free, trial(6, [0.9])]) == {}


def test_asha_stops_a_promoted_trial_once_later_arrivals_overtake_it_at_the_rung() -> None:
    """A trial promoted past rung 1 by the few that were there goes on only while it still
    ranks in the rung's top third as the rung fills: synchronous halving, seeing the whole
    rung, would not have promoted it."""
    spec = asha()
    early = [trial(0, [0.5], PRUNED), trial(1, [0.3], PRUNED), trial(2, [0.2], PRUNED)]
    assert trials_to_stop(spec, [*early, trial(3, [0.55])]) == {}  # the best of four: promoted
    promoted = trial(3, [0.55, 0.5])
    # Two better and three worse arrive: it ranks 3 of 9, within the top 9 // 3 = 3.
    more = [trial(10 + i, [v], PRUNED) for i, v in enumerate([0.9, 0.91, 0.4, 0.4, 0.4])]
    assert trials_to_stop(spec, [*early, *more, promoted]) == {}
    # Six better arrive: it ranks 7 of 10, outside the top 3, and stops.
    overtaking = [trial(10 + i, [0.9 + i / 100], PRUNED) for i in range(6)]
    verdicts = trials_to_stop(spec, [*early, *overtaking, promoted])
    assert set(verdicts) == {"s-0003"}
    message = verdicts["s-0003"]
    assert "(rung 1), ranks 7 of the 10 trials that reached the rung now" in message
    assert "only the top 3 (1/3) continue, the last of them on course for 0.93" in message


def test_asha_judges_at_the_highest_rung_reached_against_that_rung() -> None:
    spec = asha()
    rung3 = [trial(i, [0.5, v, v], PRUNED) for i, v in enumerate([0.9, 0.8, 0.7])]
    verdicts = trials_to_stop(spec, [*rung3, trial(5, [0.99, 0.99, 0.6])])
    assert set(verdicts) == {"s-0005"}
    assert "epoch 3 (rung 3)" in verdicts["s-0005"]
    # Promoted at rung 3 as its best, it is judged by its value there, not by how it does
    # between rungs; at 9 (the maximum) there is no rung left.
    assert trials_to_stop(spec, [*rung3, trial(5, [0.99, 0.99, 0.95, 0.1])]) == {}


def test_asha_ranks_a_rung_by_where_the_trials_are_heading() -> None:
    """A late bloomer still rising at a rung goes on past trials that stand higher but have
    levelled off: each is ranked by its value carried a third further along the line from
    two thirds of the way (epoch 2 for rung 3)."""
    spec = asha()
    level = [trial(i, [0.6, v, v], PRUNED) for i, v in enumerate([0.8, 0.79, 0.78])]
    assert trials_to_stop(spec, [*level, trial(5, [0.4, 0.6, 0.75])]) == {}  # heading for 0.9
    verdicts = trials_to_stop(spec, [*level, trial(5, [0.5, 0.6, 0.68])])
    assert set(verdicts) == {"s-0005"}
    assert (
        "eval_accuracy 0.68 at epoch 3 (rung 3), on course for 0.76 (0.6 at epoch 2), ranks 4 "
        "of the 4 trials that reached the rung; only the top 1 (1/3) continue, the last of "
        "them on course for 0.8" in verdicts["s-0005"]
    )
    # A value that is falling projects lower still.
    assert set(trials_to_stop(spec, [*level, trial(5, [0.5, 0.9, 0.85])])) == {"s-0005"}


def test_asha_minimizes_a_loss() -> None:
    spec = make_spec("asha", metric="eval_loss", minResource=1, reductionFactor=3)
    done = [trial(i, [v], PRUNED, metric="eval_loss") for i, v in enumerate([0.2, 0.3, 0.4])]
    assert trials_to_stop(spec, [*done, trial(4, [0.1], metric="eval_loss")]) == {}
    assert set(trials_to_stop(spec, [*done, trial(4, [0.5], metric="eval_loss")])) == {"s-0004"}


def test_asha_measures_steps_when_asked() -> None:
    spec = make_spec("asha", resource="step", minResource=200, reductionFactor=2)
    done = [trial(i, [0.5, v], PRUNED) for i, v in enumerate([0.9, 0.8])]
    # Step 100 is below the first rung; step 200 is rung 200: top 1 of 3 continues.
    assert trials_to_stop(spec, [*done, trial(3, [0.1])]) == {}
    verdicts = trials_to_stop(spec, [*done, trial(3, [0.1, 0.7])])
    assert set(verdicts) == {"s-0003"} and "step 200" in verdicts["s-0003"]


# ---- Replays ------------------------------------------------------------------------------


def simulate(spec: SweepSpec, seed: int) -> list[list[Trial]]:
    """A small asynchronous sweep: random curves, four trials at a time, each reporting one
    epoch per event, verdicts applied at once. Returns the records before every pass."""
    rng = random.Random(seed)
    quality: dict[str, float] = {}
    trials: dict[str, Trial] = {}
    passes: list[list[Trial]] = []
    next_index = 0
    for _ in range(120):
        while sum(t.phase is RUNNING for t in trials.values()) < 4 and next_index < 30:
            t = trial(next_index, [])
            trials[t.name] = t
            quality[t.name] = rng.random()
            next_index += 1
        running = [t for t in trials.values() if t.phase is RUNNING]
        if not running:
            break
        t = rng.choice(running)
        epoch = len(t.reports) + 1
        value = quality[t.name] * (1 - 0.5**epoch) + rng.gauss(0, 0.02)
        reports = [
            *t.reports,
            Report(step=100 * epoch, epoch=float(epoch), metrics={"eval_accuracy": value}),
        ]
        phase = DONE if epoch == 9 else RUNNING
        trials[t.name] = t.model_copy(update={"reports": reports, "phase": phase})
        records = list(trials.values())
        passes.append(records)
        for name in trials_to_stop(spec, records):
            trials[name] = trials[name].model_copy(update={"phase": PRUNED})
    return passes


@pytest.mark.parametrize("rule", ["median", "asha"])
def test_replaying_the_records_gives_the_same_verdicts(rule: str) -> None:
    spec = make_spec(rule, minResource=1)
    passes = simulate(spec, seed=4)
    stopped = 0
    for records in passes:
        verdicts = trials_to_stop(spec, records)
        stopped += len(verdicts)
        shuffled = list(records)
        random.Random(0).shuffle(shuffled)
        assert trials_to_stop(spec, shuffled) == verdicts
        assert trials_to_stop(spec, records) == verdicts
    assert stopped > 3, "the sweep should have given the rule something to stop"


# ---- ASHA with several objectives ----------------------------------------------------------


def costly(index: int, curve: list[float], latency: float, phase: TrialPhase = RUNNING) -> Trial:
    """A trial whose every report also carries its model's latency (as the trainer's do)."""
    base = trial(index, curve, phase)
    reports = [
        r.model_copy(update={"metrics": {**r.metrics, "inference_latency_ms": latency}})
        for r in base.reports
    ]
    return base.model_copy(update={"reports": reports})


def two_objectives(rank_by: str) -> SweepSpec:
    spec = make_spec("asha", minResource=1, reductionFactor=3, rankBy=rank_by)
    doc = spec.wire()
    doc["objectives"] = [
        {"metric": "eval_accuracy", "goal": "maximize"},
        {"metric": "inference_latency_ms", "goal": "minimize"},
    ]
    return parse_spec(doc)


def test_asha_with_several_objectives_keeps_a_fast_model_on_the_pareto_front() -> None:
    # Six trials at the first rung, two of which may go on. The fast one is the least
    # accurate: by the primary objective it stops; by Pareto fronts it is on the front
    # (no trial is both faster and as accurate) and goes on, in place of the second best.
    trials = [
        costly(0, [0.80], 50.0),
        costly(1, [0.79], 50.0),
        costly(2, [0.78], 50.0),
        costly(3, [0.70], 50.0),
        costly(4, [0.69], 50.0),
        costly(5, [0.65], 5.0),
    ]
    primary = trials_to_stop(two_objectives("primary"), trials)
    assert sorted(primary) == ["s-0002", "s-0003", "s-0004", "s-0005"]
    fronts = trials_to_stop(two_objectives("pareto"), trials)
    assert sorted(fronts) == ["s-0001", "s-0002", "s-0003", "s-0004"]
    assert "by Pareto front on eval_accuracy, inference_latency_ms" in " ".join(fronts.values())
    # The verdicts are a function of the records, whatever their order.
    assert trials_to_stop(two_objectives("pareto"), list(reversed(trials))) == fronts


def test_asha_with_several_objectives_lets_the_whole_first_front_go_on() -> None:
    # Three trials at the first rung: one slot. Each buys its accuracy with latency, so none
    # dominates another: ranked by fronts, all go on (the sweep's front needs each finished);
    # by the primary objective alone, only the most accurate does.
    trials = [costly(0, [0.80], 50.0), costly(1, [0.75], 20.0), costly(2, [0.70], 5.0)]
    assert trials_to_stop(two_objectives("pareto"), trials) == {}
    assert sorted(trials_to_stop(two_objectives("primary"), trials)) == ["s-0001", "s-0002"]
    # A fourth, dominated by the fast one, stops.
    dominated = [*trials, costly(3, [0.69], 30.0)]
    verdicts = trials_to_stop(two_objectives("pareto"), dominated)
    assert list(verdicts) == ["s-0003"]
    # Alone at a rung it is on the front too, and goes on: with one objective the first
    # arrivals wait for a quorum, but the first model at a cost is the front's only one there.
    assert trials_to_stop(two_objectives("pareto"), trials[:1]) == {}
    assert list(trials_to_stop(two_objectives("primary"), trials[:1])) == ["s-0000"]


# ---- constraints on a model's cost --------------------------------------------------------


def budgeted(rule: str, **stopping: Any) -> SweepSpec:
    doc = make_spec(rule, **stopping).wire()
    doc["constraints"] = [
        {"metric": "inference_latency_ms", "max": 20},
        {"metric": "eval_accuracy", "min": 0.75},
    ]
    return parse_spec(doc)


def test_a_model_over_its_cost_budget_stops_at_its_first_report_whatever_the_rule() -> None:
    trials = [
        costly(0, [0.9], 30.0),  # too slow: stops, however accurate
        costly(1, [0.5], 10.0),  # under the accuracy floor so far: it may still reach it
        trial(2, [0.9]),  # no latency reported: nothing known against it
        costly(3, [0.9, 0.9], 30.0, DONE),  # ended already
    ]
    for spec in (budgeted("none"), budgeted("median")):
        verdicts = trials_to_stop(spec, trials)
        assert list(verdicts) == ["s-0000"]
        assert verdicts["s-0000"] == (
            "its model's inference_latency_ms is 30, which breaks the constraint "
            "inference_latency_ms <= 20: it can never be selected"
        )


def test_asha_ranks_a_model_over_budget_below_every_model_within_it() -> None:
    # Three trials reached the first rung, one of which may go on. The most accurate was over
    # budget (it was stopped there); the slot goes to the best of the others.
    spec = budgeted("asha", minResource=1, reductionFactor=3)
    trials = [
        costly(0, [0.95], 30.0, PRUNED),
        costly(1, [0.80], 10.0),
        costly(2, [0.70], 10.0),
    ]
    verdicts = trials_to_stop(spec, trials)
    assert list(verdicts) == ["s-0002"]
    assert "ranks 2 of the 3" in verdicts["s-0002"]
    # Without the constraint, the accurate one holds the slot and both others stop.
    unbudgeted = trials_to_stop(asha(), trials)
    assert sorted(unbudgeted) == ["s-0001", "s-0002"]
