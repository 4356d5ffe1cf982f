"""The simulated trainer (`bertsweep-trainer --simulate`): the trial contract without a model,
what the operator benchmarks run."""

from __future__ import annotations

import pytest

from bertsweep.api import REPORTED_METRICS
from bertsweep.contract import ResultStatus
from bertsweep_trainer.simulate import STEPS_PER_EPOCH, curve, quality, simulate

pytestmark = pytest.mark.unit


def test_a_simulated_trial_reports_every_epoch_and_ends_with_the_contracts_metrics() -> None:
    recorded: list[tuple[int, float, dict[str, float]]] = []
    waited: list[float] = []

    def wait(seconds: float) -> bool:
        waited.append(seconds)
        return False

    parameters = {"learning_rate": 1e-4, "num_train_epochs": 4}
    result = simulate(parameters, 2.0, lambda s, e, m: recorded.append((s, e, m)), wait)
    assert result.status is ResultStatus.completed
    assert set(result.metrics) == set(REPORTED_METRICS)
    assert [(s, e) for s, e, _ in recorded] == [(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]
    assert result.step == 4 * STEPS_PER_EPOCH and result.epoch == 4.0
    assert sum(waited) == pytest.approx(2.0), "the trial lasts what it was told"
    accuracies = [m["eval_accuracy"] for _, _, m in recorded]
    assert accuracies == sorted(accuracies), "it learns"
    assert result.metrics == recorded[-1][2]


def test_the_curve_is_a_fixed_function_of_the_parameters() -> None:
    a = {"learning_rate": 1e-4, "seed": 1}
    assert quality(a) == quality(dict(a)) and 0 <= quality(a) < 1
    assert quality(a) != quality({"learning_rate": 2e-4, "seed": 1})
    assert quality(a) == quality({**a, "num_train_epochs": 9}), "training longer is not better luck"
    assert curve(a, 1, 3) == curve(a, 1, 3)
    assert 0.5 <= curve(a, 3, 3)["eval_accuracy"] < 0.95


def test_a_stop_request_ends_the_simulated_trial_with_its_last_values() -> None:
    calls = iter([False, True])
    recorded: list[dict[str, float]] = []
    result = simulate(
        {"num_train_epochs": 3}, 3.0, lambda s, e, m: recorded.append(m), lambda _: next(calls)
    )
    assert result.status is ResultStatus.stopped and result.reason == "Signal"
    assert result.metrics == recorded[-1] and result.step == STEPS_PER_EPOCH
