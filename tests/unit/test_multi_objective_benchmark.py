"""The multi-objective benchmark's pure parts (the network's parameter count, the hypervolume
against the fixed reference point, the target and cost arithmetic) and its accounting on
synthetic learning curves (the YAHPO surrogate lives in the benchmark's own environment; its
figures are in benchmarks/README.md, "Several objectives")."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mo() -> ModuleType:
    return load("multi_objective")


def test_funnel_widths_and_parameter_count(mo: ModuleType) -> None:
    # num_layers counts the output layer: one layer is a linear model, 32 inputs to 2 classes.
    assert mo.hidden_widths(1, 512) == []
    assert mo.parameter_count(1, 64) == mo.parameter_count(1, 1024) == 33 * 2
    # Three layers of up to 64 units: step int((64 - 2) / 2) = 31, so 64 then 33 units.
    assert mo.hidden_widths(3, 64) == [64, 33]
    assert mo.parameter_count(3, 64) == 33 * 64 + 65 * 33 + 34 * 2
    assert mo.hidden_widths(5, 1024) == [1024, 769, 514, 259]
    # The input width wins when it is the wider (Auto-PyTorch's max(in_feat, max_units)).
    assert mo.hidden_widths(2, 64, inputs=100) == [100]
    assert mo.model_parameters({"num_layers": 2, "max_units": 64}) == 33 * 64 + 65 * 2


def test_the_reference_point_lies_past_the_largest_network(mo: ModuleType) -> None:
    largest = mo.largest_parameter_count()
    assert largest == mo.parameter_count(5, 1024) == 1_351_702
    reference = mo.reference_point()
    assert reference == pytest.approx((0.0, math.log10(largest) + mo.REFERENCE_MARGIN))
    # The largest network at full accuracy still adds area: the margin times its accuracy.
    assert mo.hypervolume([mo.plane_point(1.0, largest)], reference) == pytest.approx(
        mo.REFERENCE_MARGIN
    )


def test_hypervolume_of_the_non_dominated_finished_trials(mo: ModuleType) -> None:
    reference = (0.0, 6.0)
    small = mo.plane_point(0.8, 100.0)  # (-0.8, 2)
    large = mo.plane_point(0.9, 10_000.0)  # (-0.9, 4)
    assert small == pytest.approx((-0.8, 2.0))
    alone = mo.hypervolume([small], reference)
    assert alone == pytest.approx(0.8 * 4.0)
    both = mo.hypervolume([small, large], reference)
    assert both == pytest.approx(0.8 * 4.0 + (0.9 - 0.8) * 2.0)
    dominated = mo.plane_point(0.7, 1_000.0)
    assert mo.hypervolume([small, large, dominated], reference) == pytest.approx(both)
    assert mo.hypervolume([], reference) == 0.0


def test_target_and_costs(mo: ModuleType) -> None:
    assert mo.target([3.0, 1.0, 2.0, 10.0]) == 2.5
    trace = [(52.0, 10.0, 1.0), (104.0, 20.0, 2.0), (156.0, 25.0, 2.5)]
    assert mo.first_reached(trace, 2.0) == (104.0, 20.0)
    assert mo.first_reached(trace, 2.5) == (156.0, 25.0)  # its own value reaches it
    assert mo.first_reached(trace, 2.6) is None
    budget = mo.BUDGET_EPOCHS
    assert mo.cost_ratios((832.0, 50.0), (1664.0, 100.0), 400.0) == (0.5, 0.5)
    # A miss costs the whole budget (random's wall time to spend it), for either side.
    assert mo.cost_ratios(None, (1664.0, 100.0), 400.0) == (budget / 1664.0, 4.0)
    assert mo.cost_ratios((832.0, 100.0), None, 400.0) == (832.0 / budget, 0.25)
    row = mo.summary_row([(0.5, 0.4), (1.0, 1.0), (2.0, 3.0)], misses=1)
    assert row == {"epochs_ratio": 1.0, "wall_ratio": 1.0, "miss_rate": 0.3333}


@pytest.fixture
def synthetic(mo: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Curves that rise to a ceiling set by the learning rate (best at 1e-2) and, a little, by
    depth; an epoch takes one second plus a little per unit of batch size."""
    se = mo.se

    def curve(data: str, instance: str, config: dict[str, Any]) -> Any:
        ceiling = 0.9 - 0.15 * abs(math.log10(float(config["learning_rate"])) + 2)
        ceiling += 0.01 * int(config["num_layers"])
        seconds = 1.0 + float(config["batch_size"]) / 512
        epochs = range(1, se.EPOCHS + 1)
        return se.Curve(
            [ceiling * (1 - math.exp(-e / 6)) for e in epochs], [seconds * e for e in epochs]
        )

    monkeypatch.setattr(se, "learning_curve", curve)


def run(mo: ModuleType, method: str, goal: float | None, seed: int = 0) -> tuple[Any, Any]:
    m = mo.make_method(method, seed, 4, mo.se.Tuning())
    return m, mo.simulate(m, "", "x", goal, mo.reference_point())


def test_random_finishes_64_trials_each_reporting_its_size(mo: ModuleType, synthetic: None) -> None:
    method, out = run(mo, "random", None)
    assert out.trials == mo.BUDGET_TRIALS
    assert out.epochs_spent == pytest.approx(mo.BUDGET_EPOCHS)
    assert len(out.trace) == mo.BUDGET_TRIALS  # one entry per finished trial
    volumes = [v for _, _, v in out.trace]
    assert volumes == sorted(volumes) and volumes[-1] == out.best > 0
    for t in method.records.values():
        size = mo.model_parameters(t.parameters)
        assert all(r.metrics[mo.COST] == size for r in t.reports)
        assert len(t.reports) == mo.EPOCHS and t.metrics[mo.COST] == size


def test_a_reached_target_costs_what_was_spent_until_then(mo: ModuleType, synthetic: None) -> None:
    _, full = run(mo, "random", None)
    goal = full.trace[40][2]
    replay = mo.first_reached(full.trace, goal)
    _, direct = run(mo, "random", goal)
    assert replay is not None and 0 < replay[0] < mo.BUDGET_EPOCHS
    assert direct.reached_epochs == pytest.approx(replay[0])
    assert direct.reached_wall == pytest.approx(replay[1])
    _, missed = run(mo, "random", full.best + 1.0)
    assert missed.reached_epochs is None


def test_optuna_samplers_tell_both_objectives(mo: ModuleType, synthetic: None) -> None:
    for name in ("optuna-motpe", "optuna-nsga2"):
        method, out = run(mo, name, None)
        done = method.study.trials
        assert len(done) == mo.BUDGET_TRIALS and len(out.trace) == mo.BUDGET_TRIALS
        assert all(t.values[1] == mo.model_parameters(t.params) for t in done)


def test_the_fast_two_objective_fronts_are_the_operators(mo: ModuleType) -> None:
    rng = random.Random(7)
    for size in (0, 1, 2, 5, 40, 200):
        # Few distinct values, so that ties and equal points are common.
        points = [(float(rng.randint(0, 9)), float(rng.randint(0, 9))) for _ in range(size)]
        assert mo.fronts_2d(points) == mo.pareto.fronts(points), points
