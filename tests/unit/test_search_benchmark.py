"""The search-efficiency benchmark's simulated cluster and its accounting, on synthetic learning
curves (the YAHPO surrogate lives in the benchmark's own environment; its figures are in
benchmarks/README.md). The methods under test are the real planner, strategies and rules."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "search_efficiency.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("search_efficiency", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def synthetic(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Curves that rise to a ceiling set by the learning rate (best at 1e-2); an epoch takes
    one second plus a little per unit of batch size."""

    def curve(data: str, instance: str, config: dict[str, Any]) -> Any:
        ceiling = 0.95 - 0.15 * abs(math.log10(float(config["learning_rate"])) + 2)
        seconds = 1.0 + float(config["batch_size"]) / 512
        epochs = range(1, bench.EPOCHS + 1)
        return bench.Curve(
            [ceiling * (1 - math.exp(-e / 6)) for e in epochs], [seconds * e for e in epochs]
        )

    monkeypatch.setattr(bench, "learning_curve", curve)


def run(bench: ModuleType, method: str, target: float | None, seed: int = 0) -> Any:
    return bench.simulate(bench.make_method(method, seed, 4, bench.Tuning()), "", "x", target)


def test_without_stopping_the_budget_is_64_full_trials(bench: ModuleType, synthetic: None) -> None:
    out = run(bench, "random", None)
    assert out.trials == bench.BUDGET_TRIALS
    assert out.epochs_spent == pytest.approx(bench.BUDGET_EPOCHS)
    assert out.reached_epochs is None
    assert len(out.trace) == bench.BUDGET_EPOCHS  # one report per epoch, none lost


@pytest.mark.parametrize("method", ["bertsweep-random-asha", "bertsweep-bayesian-asha"])
def test_asha_spends_the_same_epochs_on_more_trials(
    bench: ModuleType, synthetic: None, method: str
) -> None:
    out = run(bench, method, None)
    assert out.trials > 3 * bench.BUDGET_TRIALS, "stopped trials free their epochs"
    assert out.epochs_spent <= bench.BUDGET_EPOCHS + 1e-6


def test_a_reached_target_costs_what_was_spent_until_then(
    bench: ModuleType, synthetic: None
) -> None:
    full = run(bench, "random", None)
    target = sorted(v for _, _, v in full.trace)[-50]  # reached late in the run
    replay = full.at_target(target)
    direct = run(bench, "random", target)
    assert direct.reached_epochs == pytest.approx(replay.reached_epochs)
    assert direct.reached_wall == pytest.approx(replay.reached_wall)
    assert 0 < direct.reached_epochs < bench.BUDGET_EPOCHS
    assert run(bench, "random", 2.0).reached_epochs is None  # unreachable: a miss


def test_bayesian_with_asha_reaches_a_target_for_less_than_random(
    bench: ModuleType, synthetic: None
) -> None:
    target = 0.94
    costs = {}
    for method in ("random", "bertsweep-bayesian-asha"):
        outs = [run(bench, method, target, seed) for seed in range(3)]
        costs[method] = sorted(
            bench.BUDGET_EPOCHS if o.reached_epochs is None else o.reached_epochs for o in outs
        )[1]
    assert costs["bertsweep-bayesian-asha"] < costs["random"], costs
