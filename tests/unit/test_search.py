"""The search strategies: one contract every strategy meets, then each one's own promises.

In the manner of Optuna's `tests/samplers_tests`: the same checks run over every strategy, with
plain trial records as the history (strategies keep no state, so the history is all they know).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from optuna.trial import TrialState

from bertsweep.api import Report, Scalar, SweepSpec, Trial, TrialPhase, parse_spec
from bertsweep.planner import plan
from bertsweep.search import Configuration, Strategy, make_strategy
from bertsweep.search.bayesian import BayesianStrategy
from bertsweep.search.grid import grid_points

pytestmark = pytest.mark.unit


def ask(strategy: Strategy, history: list[Trial], n: int) -> list[Configuration]:
    """What the planner does: ask for the n trials after the highest index in use."""
    first = max((t.index for t in history), default=-1) + 1
    return strategy.ask(history, list(range(first, first + n)))


STRATEGIES = ["grid", "random", "bayesian"]

# A space with every kind of parameter: log and linear floats, log and linear ints, a list.
PARAMETERS: list[dict[str, Any]] = [
    {"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-1, "scale": "log"},
    {"name": "per_device_train_batch_size", "type": "int", "min": 8, "max": 512, "scale": "log"},
    {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 12},
    {"name": "hidden_dropout_prob", "type": "float", "min": 0.0, "max": 0.5},
    {"name": "optim", "type": "categorical", "values": ["adamw_torch", "sgd", "adafactor"]},
]
NOW = datetime(2026, 12, 1, tzinfo=UTC)
# A grid needs points on its float ranges; the int ranges keep every integer.
GRID_POINTS = {"learning_rate": 5, "hidden_dropout_prob": 3}


def make_spec(algorithm: str, seed: int = 0, **changes: Any) -> SweepSpec:
    parameters = [
        {**p, "gridPoints": GRID_POINTS[p["name"]]}
        if algorithm == "grid" and p["name"] in GRID_POINTS
        else p
        for p in PARAMETERS
    ]
    base: dict[str, Any] = {
        "model": "m",
        "dataset": {"train": "t.csv"},
        "algorithm": {"name": algorithm, "seed": seed},
        "parameters": parameters,
        "maxTrials": 1000,
        "parallelism": 4,
    }
    base.update(changes)
    return parse_spec(base)


def record(
    index: int,
    parameters: Configuration,
    phase: TrialPhase = TrialPhase.succeeded,
    value: float | None = None,
    curve: list[float] | None = None,
) -> Trial:
    """A trial record: a final value for a success, a per-epoch curve for the others."""
    reports = [
        Report(step=100 * (e + 1), epoch=float(e + 1), metrics={"eval_accuracy": v})
        for e, v in enumerate(curve or [])
    ]
    metrics = {"eval_accuracy": value} if value is not None else {}
    return Trial(
        name=f"s-{index:04d}",
        index=index,
        parameters=parameters,
        phase=phase,
        reports=reports,
        metrics=metrics,
    )


def toy_objective(c: Configuration) -> float:
    """Best at learning_rate 1e-3, dropout 0.1 and 6 layers; every parameter matters a bit."""
    lr = float(c.get("learning_rate", 1e-3))
    dropout = float(c.get("hidden_dropout_prob", 0.1))
    layers = float(c.get("num_hidden_layers", 6))
    return 1.0 - 0.1 * (math.log10(lr) + 3) ** 2 - (dropout - 0.1) ** 2 - 0.01 * abs(layers - 6)


def run_sweep(
    spec: SweepSpec,
    trials: int,
    batch: int = 4,
    objective: Callable[[Configuration], float] = toy_objective,
) -> list[Trial]:
    """Ask in batches of `batch` (the parallel case), finishing each batch before the next."""
    strategy = make_strategy(spec)
    history: list[Trial] = []
    while len(history) < trials:
        proposals = ask(strategy, history, min(batch, trials - len(history)))
        if not proposals:
            break
        for c in proposals:
            history.append(record(len(history), c, value=objective(c)))
    return history


def check_domain(c: Configuration) -> None:
    lr = c["learning_rate"]
    assert type(lr) is float and 1e-5 <= lr <= 1e-1
    batch = c["per_device_train_batch_size"]
    assert type(batch) is int and 8 <= batch <= 512
    layers = c["num_hidden_layers"]
    assert type(layers) is int and 1 <= layers <= 12
    dropout = c["hidden_dropout_prob"]
    assert type(dropout) is float and 0.0 <= dropout <= 0.5
    assert c["optim"] in ("adamw_torch", "sgd", "adafactor")
    assert set(c) == {p["name"] for p in PARAMETERS}
    assert json.loads(json.dumps(c)) == c, "values must be plain JSON scalars"


# ---- The contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", STRATEGIES)
def test_proposals_stay_in_the_domain_with_the_right_types(algorithm: str) -> None:
    history = run_sweep(make_spec(algorithm), 40)
    assert len(history) == 40
    for t in history:
        check_domain(t.parameters)


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_log_scale_spreads_values_in_log_space(algorithm: str) -> None:
    # The first proposals are random in both strategies (TPE's startup). Uniform in log space
    # puts half of the learning rates below 1e-3; uniform in linear space would put 1% there.
    proposals = ask(make_strategy(make_spec(algorithm)), [], 10)
    proposals += ask(make_strategy(make_spec(algorithm, seed=1)), [], 10)
    low = sum(float(c["learning_rate"]) < 1e-3 for c in proposals)
    assert 5 <= low <= 15
    small_batches = sum(int(c["per_device_train_batch_size"]) < 64 for c in proposals)
    assert 5 <= small_batches <= 15  # 64 is the log-midpoint of [8, 512]


@pytest.mark.parametrize("algorithm", STRATEGIES)
def test_parallel_proposals_differ(algorithm: str) -> None:
    for size in (0, 12):  # before and after Bayesian search's startup trials
        history = run_sweep(make_spec(algorithm), size)
        proposals = ask(make_strategy(make_spec(algorithm)), history, 4)
        assert len(proposals) == 4
        keys = {json.dumps(c, sort_keys=True) for c in proposals}
        keys |= {json.dumps(t.parameters, sort_keys=True) for t in history}
        assert len(keys) == len(history) + 4


@pytest.mark.parametrize("algorithm", STRATEGIES)
def test_same_seed_and_history_give_the_same_proposals(algorithm: str) -> None:
    history = run_sweep(make_spec(algorithm), 16)
    first = ask(make_strategy(make_spec(algorithm)), history, 3)
    again = ask(make_strategy(make_spec(algorithm)), list(reversed(history)), 3)
    assert first == again


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_a_different_seed_gives_different_proposals(algorithm: str) -> None:
    history = run_sweep(make_spec(algorithm), 16)
    assert ask(make_strategy(make_spec(algorithm, seed=0)), history, 3) != ask(
        make_strategy(make_spec(algorithm, seed=1)), history, 3
    )


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_a_deleted_record_changes_no_later_proposal(algorithm: str) -> None:
    """Trial i's proposal is keyed on i, not on how many records exist: a record deleted by
    hand (a gap in the indices) leaves the proposals for the next indices as they were. (In
    its startup phase the bayesian search proposes from the seed and the index alone.)"""
    spec = make_spec(algorithm, parameters=[{"name": "x", "type": "float", "min": 0, "max": 1}])
    history = run_sweep(spec, 5, objective=lambda c: 0.0)
    whole = make_strategy(spec).ask(history, [5, 6])
    gap = [t for t in history if t.index != 2]
    assert make_strategy(spec).ask(gap, [5, 6]) == whole
    # The planner names the next trial after the highest index, and asks for that index.
    planned = plan("s", spec, gap, NOW).create
    assert [t.index for t in planned][:2] == [5, 6]
    assert [t.parameters for t in planned][:2] == whole


@pytest.mark.parametrize("algorithm", STRATEGIES)
def test_a_restart_proposes_what_the_original_would_have(algorithm: str) -> None:
    """Trial i's proposal does not depend on how trials were asked for: all at once, or one at
    a time with the earlier ones already recorded as Pending (an operator that restarted
    between two reconcile passes)."""
    spec = make_spec(algorithm)
    for size in (0, 14):
        history = run_sweep(spec, size)
        at_once = ask(make_strategy(spec), history, 3)
        one_by_one: list[Configuration] = []
        rebuilt = list(history)
        for _ in range(3):
            (c,) = ask(make_strategy(spec), rebuilt, 1)
            one_by_one.append(c)
            rebuilt.append(record(len(rebuilt), c, phase=TrialPhase.pending))
        assert at_once == one_by_one


def test_every_strategy_plans_through_the_planner() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    for algorithm in STRATEGIES:
        created = plan("s", make_spec(algorithm), [], now).create
        assert [t.index for t in created] == [0, 1, 2, 3]
        for t in created:
            check_domain(t.parameters)


# ---- Grid -------------------------------------------------------------------------------------


def small_grid(**changes: Any) -> SweepSpec:
    parameters: list[dict[str, Any]] = [
        {"name": "learning_rate", "type": "categorical", "values": [3e-5, 1e-5]},
        {"name": "num_hidden_layers", "type": "int", "min": 2, "max": 4},
    ]
    return make_spec("grid", parameters=parameters, **changes)


def test_grid_is_the_ordered_cartesian_product_last_parameter_fastest() -> None:
    proposals = ask(make_strategy(small_grid()), [], 100)
    assert [(c["learning_rate"], c["num_hidden_layers"]) for c in proposals] == [
        (3e-5, 2),
        (3e-5, 3),
        (3e-5, 4),
        (1e-5, 2),
        (1e-5, 3),
        (1e-5, 4),
    ]


def test_grid_never_repeats_a_point_whatever_its_phase_and_form() -> None:
    history = [
        record(0, {"learning_rate": 3e-5, "num_hidden_layers": 3}, TrialPhase.failed),
        # The same point as grid position 0, recorded as a float by a JSON round trip.
        record(1, {"learning_rate": 3e-5, "num_hidden_layers": 2.0}, TrialPhase.running),
        record(2, {"learning_rate": 1e-5, "num_hidden_layers": 2}, TrialPhase.pruned),
    ]
    proposals = ask(make_strategy(small_grid()), history, 100)
    assert [(c["learning_rate"], c["num_hidden_layers"]) for c in proposals] == [
        (3e-5, 4),
        (1e-5, 3),
        (1e-5, 4),
    ]


def test_grid_walks_its_points_across_calls_and_stops_when_exhausted() -> None:
    strategy = make_strategy(small_grid())
    history: list[Trial] = []
    for expected in (4, 2, 0, 0):
        proposals = ask(strategy, history, 4)
        assert len(proposals) == expected
        history += [record(len(history) + k, c) for k, c in enumerate(proposals)]
    assert len({json.dumps(t.parameters, sort_keys=True) for t in history}) == 6


def test_an_exhausted_grid_ends_the_sweep_through_the_planner() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    history = run_sweep(small_grid(), 6)
    p = plan("s", small_grid(), history, now)
    assert p.create == []
    assert p.status.conditions[0].reason == "SearchSpaceExhausted"


def test_max_trials_caps_a_grid() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    spec = small_grid(maxTrials=4)
    history = run_sweep(spec, 4)
    assert plan("s", spec, history, now).status.conditions[0].reason == "MaxTrialsReached"


def test_grid_points_are_even_on_the_parameter_scale() -> None:
    spec = make_spec(
        "grid",
        parameters=[
            {
                "name": "a",
                "type": "float",
                "min": 1e-5,
                "max": 1e-1,
                "scale": "log",
                "gridPoints": 5,
            },
            {"name": "b", "type": "float", "min": 0.0, "max": 0.3, "gridPoints": 4},
            {"name": "c", "type": "int", "min": 16, "max": 256, "scale": "log", "gridPoints": 5},
            {"name": "d", "type": "int", "min": 1, "max": 3, "gridPoints": 5},
        ],
    )
    a, b, c, d = (grid_points(p) for p in spec.parameters)
    assert a == [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert b == [0.0, 0.1, 0.2, 0.3]
    assert c == [16, 32, 64, 128, 256]
    assert d == [1, 2, 3], "points that round to the same integer are merged"
    first = ask(make_strategy(spec), [], 1)[0]
    assert first == {"a": 1e-5, "b": 0.0, "c": 16, "d": 1}
    assert type(first["c"]) is int


def test_a_wide_int_grid_is_never_materialised() -> None:
    spec = make_spec(
        "grid",
        parameters=[
            {"name": "seed", "type": "int", "min": 0, "max": 10**9},
            {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 10**9},
        ],
    )
    assert ask(make_strategy(spec), [], 2) == [
        {"seed": 0, "num_hidden_layers": 1},
        {"seed": 0, "num_hidden_layers": 2},
    ]


# ---- Random -----------------------------------------------------------------------------------


def test_random_proposal_depends_on_seed_and_index_only() -> None:
    spec = make_spec("random", seed=7)
    strategy = make_strategy(spec)
    sequence = ask(strategy, [], 8)
    # Any history of the same length, whatever its content, gets the same next proposals.
    others = ask(make_strategy(make_spec("random", seed=8)), [], 4)
    other_history = [record(i, c, TrialPhase.failed) for i, c in enumerate(others)]
    assert ask(strategy, other_history, 4) == sequence[4:]


def test_random_avoids_repeats_in_a_small_discrete_space() -> None:
    spec = make_spec("random", parameters=[{"name": "x", "type": "int", "min": 1, "max": 6}])
    history = run_sweep(spec, 6, objective=lambda c: 0.0)
    assert sorted(int(t.parameters["x"]) for t in history) == [1, 2, 3, 4, 5, 6]
    # Once the space is spent, random search keeps proposing (repeats are all that is left).
    assert len(ask(make_strategy(spec), history, 2)) == 2


# ---- Bayesian ---------------------------------------------------------------------------------


def distance_to_optimum(c: Configuration) -> float:
    return math.hypot(
        math.log10(float(c["learning_rate"])) + 3, (float(c["hidden_dropout_prob"]) - 0.1) * 8
    )


def test_bayesian_learns_where_the_good_region_is() -> None:
    """After 32 trials, TPE's next proposals lie much nearer the optimum than random ones.
    Checked over three seeds (so one lucky draw cannot pass it) with a wide margin."""
    ratios = []
    for seed in range(3):
        tpe = run_sweep(make_spec("bayesian", seed=seed), 48)[32:]
        rnd = run_sweep(make_spec("random", seed=seed), 48)[32:]
        tpe_distance = statistics.median(distance_to_optimum(t.parameters) for t in tpe)
        random_distance = statistics.median(distance_to_optimum(t.parameters) for t in rnd)
        ratios.append(tpe_distance / random_distance)
    assert statistics.median(ratios) < 0.5, ratios


def test_bayesian_learns_from_pruned_trials_partial_results() -> None:
    """With no finished trial at all, the trials that got furthest before being pruned mark the
    good region: TPE's proposals move there."""
    spec = make_spec("bayesian", seed=3, earlyStopping={"name": "asha"})
    startup = ask(make_strategy(spec), [], 30)
    history = []
    for i, c in enumerate(startup):
        # Trials with a low learning rate survive three rungs, the others one epoch.
        deep = float(c["learning_rate"]) < 1e-4
        curve = [0.5, 0.6, 0.7] if deep else [0.5]
        history.append(record(i, c, TrialPhase.pruned, curve=curve))
    proposals = ask(make_strategy(spec), history, 8)

    def log_lr(cs: list[Configuration]) -> float:
        return statistics.median(math.log10(float(c["learning_rate"])) for c in cs)

    # The proposals' median learning rate drops towards the deep trials' (below 1e-4).
    assert log_lr(proposals) < log_lr(startup) - 0.7
    assert log_lr(proposals) < -3.5


def test_bayesian_maps_records_onto_optuna_states() -> None:
    spec = make_spec("bayesian", earlyStopping={"name": "asha"})
    c = ask(make_strategy(make_spec("random")), [], 1)[0]
    history = [
        record(0, c, TrialPhase.succeeded, value=0.8),
        record(1, c, TrialPhase.pruned, curve=[0.5, 0.55]),
        record(2, c, TrialPhase.failed),
        record(3, c, TrialPhase.running, curve=[0.4]),
        record(4, c, TrialPhase.pending),
        record(5, {**c, "learning_rate": 5.0}, TrialPhase.succeeded, value=0.9),  # out of space
        record(6, c, TrialPhase.succeeded),  # succeeded without the objective
    ]
    study = BayesianStrategy(spec).study(history)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED", "FAIL", "RUNNING", "RUNNING", "FAIL"]
    assert study.trials[0].value == 0.8
    assert study.trials[1].intermediate_values == {1000: 0.5, 2000: 0.55}
    assert study.direction.name == "MAXIMIZE"
    loss = make_spec("bayesian", objective={"metric": "eval_loss", "goal": "minimize"})
    assert BayesianStrategy(loss).study([]).direction.name == "MINIMIZE"


def test_bayesian_keeps_categorical_values_as_listed() -> None:
    values: list[Scalar] = [16, "auto", 2.5, True]
    spec = make_spec(
        "bayesian", parameters=[{"name": "x", "type": "categorical", "values": values}]
    )
    history = run_sweep(spec, 16, objective=lambda c: 1.0 if c["x"] == "auto" else 0.0)
    for t in history:
        assert any(t.parameters["x"] == v and type(t.parameters["x"]) is type(v) for v in values)


def test_bayesian_compares_stopped_and_running_trials_where_enough_of_them_got() -> None:
    """BOHB's rule: the comparison point is the furthest that one more trial than there are
    parameters reached; each trial that got there counts by its value there, whatever its
    phase, so an early arrival that ran on is not ranked above better trials for its head start."""
    spec = make_spec("bayesian", earlyStopping={"name": "asha"})
    need = len(spec.parameters) + 1
    c = ask(make_strategy(make_spec("random")), [], 1)[0]
    history = [
        record(0, c, TrialPhase.succeeded, value=0.6, curve=[0.3, 0.4, 0.5, 0.6]),
        *[record(i, c, TrialPhase.pruned, curve=[0.5, 0.7 + i / 100]) for i in range(1, need)],
        record(need, c, TrialPhase.running, curve=[0.6, 0.9]),
        record(need + 1, c, TrialPhase.pruned, curve=[0.1]),
        record(need + 2, c, TrialPhase.running, curve=[0.2]),
        record(need + 3, c, TrialPhase.failed, curve=[0.5, 0.99]),
    ]
    study = BayesianStrategy(spec).study(history)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE"] * (need + 1) + ["PRUNED", "RUNNING", "FAIL"]
    values = [t.value for t in study.trials[: need + 1]]

    # Epoch 2 is as far as `need` trials got: the finished trial counts by its 0.4 there, carried
    # on along its rise since epoch 1 (by a third of the 2 epochs, as ASHA ranks a rung).
    def heading(before: float, at: float) -> float:
        return at + (at - before) * 2 / 3

    expected = [heading(0.3, 0.4), *[heading(0.5, 0.7 + i / 100) for i in range(1, need)]]
    assert values == pytest.approx([*expected, heading(0.6, 0.9)])
    # Without early stopping there is no comparison point: a success counts by its final value.
    plain = BayesianStrategy(make_spec("bayesian")).study(history[:1])
    assert plain.trials[0].value == 0.6


# ---- several objectives and constraints ----------------------------------------------------


def test_bayesian_search_learns_a_trade_off_within_the_constraints() -> None:
    """Accuracy grows with depth, so does latency; models past a parameter budget (deeper
    than 4 layers) may not be selected. After its random start, a multi-objective TPE that
    reads the constraints proposes feasible depths far more often than random would."""
    spec = make_spec(
        "bayesian",
        objectives=[
            {"metric": "eval_accuracy", "goal": "maximize"},
            {"metric": "inference_latency_ms", "goal": "minimize"},
        ],
        constraints=[{"metric": "model_parameters", "max": 4.5e7}],
        parameters=[
            {"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-3, "scale": "log"},
            {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 12},
        ],
    )
    strategy = make_strategy(spec)

    def measured(c: Configuration) -> dict[str, float]:
        layers = int(c["num_hidden_layers"])
        return {
            "eval_accuracy": 0.5 + 0.03 * layers + 0.05 * (float(c["learning_rate"]) > 1e-4),
            "inference_latency_ms": 1.0 + layers,
            "model_parameters": 1e7 * layers,
        }

    history: list[Trial] = []
    for index in range(40):
        (c,) = strategy.ask(history, [index])
        assert 1 <= int(c["num_hidden_layers"]) <= 12
        history.append(
            Trial(
                name=f"s-{index:04d}",
                index=index,
                parameters=c,
                phase=TrialPhase.succeeded,
                metrics=measured(c),
            )
        )
    late = [int(t.parameters["num_hidden_layers"]) for t in history[20:]]
    assert sum(layers <= 4 for layers in late) >= 14, late
    # Rebuilt from the same records, the same proposal (no state outside the history).
    again = make_strategy(spec).ask(history, [40])
    assert again == make_strategy(spec).ask(list(reversed(history)), [40])


def test_constraint_violations_reach_optunas_records() -> None:
    spec = make_spec(
        "bayesian",
        constraints=[{"metric": "model_parameters", "min": 1e6, "max": 3e7}],
    )
    strategy = BayesianStrategy(spec)
    big = record(0, {}, value=0.9).model_copy(
        update={"metrics": {"eval_accuracy": 0.9, "model_parameters": 5e7}}
    )
    configuration = ask(make_strategy(spec), [], 1)[0]
    big = big.model_copy(update={"parameters": configuration})
    frozen = strategy.frozen_trial(big)
    assert frozen is not None and frozen.constraints == {"model_parameters": 2e7}


def stopped_trial(spec: SweepSpec, *reports: tuple[float, float, float]) -> Trial:
    """A trial of a configuration the search proposes, stopped after reports of (epoch,
    eval_accuracy, model_parameters)."""
    return Trial(
        name="s-0000",
        index=0,
        parameters=ask(make_strategy(spec), [], 1)[0],
        phase=TrialPhase.pruned,
        reports=[
            Report(
                step=round(20 * epoch),
                epoch=epoch,
                metrics={"eval_accuracy": accuracy, "model_parameters": parameters},
            )
            for epoch, accuracy, parameters in reports
        ],
    )


def test_a_trial_stopped_over_its_cost_budget_teaches_tpe_as_an_infeasible_result() -> None:
    spec = make_spec("bayesian", constraints=[{"metric": "model_parameters", "max": 3e7}])
    stopped = stopped_trial(spec, (0.5, 0.6, 5e7), (1.0, 0.7, 5e7))
    frozen = BayesianStrategy(spec).frozen_trial(stopped)
    assert frozen is not None
    assert frozen.state is TrialState.COMPLETE and frozen.values == [0.7]
    assert frozen.constraints == {"model_parameters": 2e7}
    # A trial pruned within its budget stays a pruned trial.
    within = stopped.model_copy(
        update={
            "reports": [
                r.model_copy(update={"metrics": {"eval_accuracy": 0.7, "model_parameters": 1e7}})
                for r in stopped.reports
            ]
        }
    )
    kept = BayesianStrategy(spec).frozen_trial(within)
    assert kept is not None and kept.state is TrialState.PRUNED and kept.constraints == {}


def test_with_several_objectives_a_trial_stopped_early_counts_among_the_bad() -> None:
    """Pruned, without values (multi-objective TPE cannot rank pruned trials by a value), so
    that TPE learns where trials get stopped, and its random start ends after as many trials
    as with one objective."""
    spec = make_spec(
        "bayesian",
        objectives=[
            {"metric": "eval_accuracy", "goal": "maximize"},
            {"metric": "model_parameters", "goal": "minimize"},
        ],
        earlyStopping={"name": "asha"},
    )
    stopped = stopped_trial(spec, (1.0, 0.6, 5e6))
    frozen = BayesianStrategy(spec).frozen_trial(stopped)
    assert frozen is not None
    assert frozen.state is TrialState.PRUNED and frozen.intermediate_values == {}
    # Optuna's sampler takes such a history (it would raise on intermediate values).
    history = [stopped.model_copy(update={"name": f"s-{i:04d}", "index": i}) for i in range(12)]
    (proposal,) = make_strategy(spec).ask(history, [12])
    assert set(proposal) == set(stopped.parameters)
