"""The warm-start benchmark's plumbing, on synthetic learning curves (the YAHPO surrogate lives
in the benchmark's own environment; the figures are in benchmarks/README.md): an earlier
sweep's records end as the planner ends a sweep, go through `warm.warm_history`, and a warm run
learns from them without taking them for its own."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bertsweep.api import Report, Trial, TrialPhase

pytestmark = pytest.mark.unit

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("warm_start", BENCHMARKS / "warm_start.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def synthetic(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Curves that rise to a ceiling set by the learning rate (best at 1e-2), an epoch a
    second (as test_search_benchmark.py's)."""
    se = bench.se

    def curve(data: str, instance: str, config: dict[str, Any]) -> Any:
        ceiling = 0.95 - 0.15 * abs(math.log10(float(config["learning_rate"])) + 2)
        epochs = range(1, se.EPOCHS + 1)
        return se.Curve(
            [ceiling * (1 - math.exp(-e / 6)) for e in epochs], [float(e) for e in epochs]
        )

    monkeypatch.setattr(se, "learning_curve", curve)


def test_an_earlier_sweep_ends_as_the_planner_ends_one(bench: ModuleType) -> None:
    report = Report(step=100, epoch=1.0, metrics={"eval_accuracy": 0.6})
    running = Trial(name="a", index=0, parameters={}, phase=TrialPhase.running, reports=[report])
    done = Trial(name="b", index=1, parameters={}, phase=TrialPhase.succeeded)
    stopped, kept = bench.ended([running, done])
    assert stopped.phase is TrialPhase.pruned and stopped.reason == "SweepEnded"
    assert stopped.metrics == {"eval_accuracy": 0.6}
    assert kept is done


def test_a_warm_run_reaches_the_target_sooner_and_keeps_only_its_own_trials(
    bench: ModuleType, synthetic: None
) -> None:
    se = bench.se
    tuning = se.Tuning()
    target = 0.94
    earlier = se.BertSweep(bench.default_spec(1001, 4, tuning))
    se.simulate(earlier, "", "x", target)
    records = bench.ended(list(earlier.records.values()))
    spec = bench.default_spec(1, 4, tuning)
    cold = se.simulate(se.BertSweep(spec), "", "x", target)
    method = bench.warm_method(spec, bench.default_spec(1001, 4, tuning), records)
    # Every earlier trial that reported an evaluation is used.
    assert len(method.history) == sum(bool(t.reports) for t in records) > 0
    assert all(t.name.startswith("earlier/") and t.index < 0 for t in method.history)
    warm = se.simulate(method, "", "x", target)
    assert warm.reached_epochs is not None and cold.reached_epochs is not None
    assert warm.reached_epochs < cold.reached_epochs
    assert all("/" not in name for name in method.records)
    assert sorted(t.index for t in method.records.values()) == list(range(len(method.records)))
