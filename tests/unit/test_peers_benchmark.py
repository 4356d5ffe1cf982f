"""The pure parts of the search-efficiency benchmark's peer adapters (benchmarks/peers.py) and
its tables (benchmarks/search_summary.py): the budget arithmetic, the search-space translation,
how a Hyperband-style peer's restarts are trained and counted on the simulated clock, and the
per-instance comparison. The peer libraries themselves live in the benchmark's environment;
their figures are in benchmarks/README.md."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Mapping
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
def bench() -> ModuleType:
    return load("search_efficiency")


@pytest.fixture(scope="module")
def peers(bench: ModuleType) -> ModuleType:
    return bench.peers  # type: ignore[no-any-return]  # the module the benchmark imported


@pytest.fixture(scope="module")
def summary() -> ModuleType:
    return load("search_summary")


def test_the_peer_methods_are_benchmark_methods(bench: ModuleType, peers: ModuleType) -> None:
    assert set(peers.PEERS) <= set(bench.METHODS)
    assert bench.METHODS[: len(bench.METHODS) - len(peers.PEERS)] == [
        "random", "grid", "optuna-tpe", "optuna-tpe-hyperband", "random-median",
        "bertsweep-bayesian-asha", "bertsweep-random-asha", "bertsweep-bayesian-median",
    ]  # fmt: skip
    assert set(peers.PEERS) <= set(load("search_summary").PEER_METHODS)
    assert set(peers.VERSIONS) == {"smac", "dehb", "syne-tune", "hpbandster"}
    assert set(peers.SLOW) < set(peers.PEERS)


def test_the_space_keeps_the_benchmarks_ranges_and_scales(
    bench: ModuleType, peers: ModuleType
) -> None:
    ranges = {p.name: p for p in peers.params(bench.SPACE)}
    assert list(ranges) == [p["name"] for p in bench.SPACE]
    assert ranges["batch_size"] == peers.Param("batch_size", True, 16, 512, True)
    assert ranges["learning_rate"] == peers.Param("learning_rate", False, 1e-4, 0.1, True)
    assert ranges["num_layers"] == peers.Param("num_layers", True, 1, 5, False)
    assert ranges["max_units"].log and ranges["max_units"].integer
    assert not ranges["weight_decay"].log and not ranges["momentum"].log


def test_proposals_become_trial_parameters(bench: ModuleType, peers: ModuleType) -> None:
    space = peers.params(bench.SPACE)
    raw = {
        "batch_size": 63.6, "learning_rate": 0.2, "max_dropout": -0.01, "max_units": 100.0,
        "momentum": 0.5, "num_layers": 5.0000001, "weight_decay": 1e-3, "ignored": "x",
    }  # fmt: skip
    config = peers.cast_config(raw, space)
    assert config == {
        "batch_size": 64, "learning_rate": 0.1, "max_dropout": 0.0, "max_units": 100,
        "momentum": 0.5, "num_layers": 5, "weight_decay": 1e-3,
    }  # fmt: skip
    assert isinstance(config["batch_size"], int) and isinstance(config["momentum"], float)


def test_hyperbands_ladder_and_the_epochs_trained(peers: ModuleType) -> None:
    budgets = peers.hyperband_budgets(peers.MIN_BUDGET, 52, peers.ETA)
    assert budgets == pytest.approx([52 / 27, 52 / 9, 52 / 3, 52])
    # The same ladder from any minimum up to 52/27 (the libraries count down from the top).
    assert peers.hyperband_budgets(52 / 27, 52, 3) == pytest.approx(budgets)
    assert len(peers.hyperband_budgets(0.5, 52, 3)) == 5
    assert [peers.epochs_for(b, 52) for b in budgets] == [2, 6, 18, 52]
    assert peers.epochs_for(52.000000001, 52) == 52
    assert peers.epochs_for(3.0000000001, 52) == 3
    assert peers.epochs_for(0.2, 52) == 1
    assert peers.epochs_for(80, 52) == 52
    assert peers.loss(0.9) == pytest.approx(0.1)


class LadderPeer:
    """A stand-in for a Hyperband-style library: the same configuration asked for at 52/27,
    52/9, 52/3 and 52 in turn, the results it is told kept."""

    budgets = (52 / 27, 52 / 9, 52 / 3, 52.0)

    def __init__(self, peers: ModuleType, space: list[Any], workers: int, limit: int) -> None:
        self.base = peers.BudgetedPeer(space, workers, 52)
        self.base._ask = self.ask
        self.base._tell = self.tell
        self.limit = limit
        self.told: list[tuple[int, float, int]] = []

    def ask(self) -> tuple[Any, Mapping[str, Any], float] | None:
        n = self.base.asked
        if n >= self.limit:
            return None
        config = {
            "batch_size": 64, "learning_rate": 10 ** (-1 - n // 4 % 3), "max_dropout": 0.1,
            "max_units": 128, "momentum": 0.9, "num_layers": 2, "weight_decay": 1e-4,
        }  # fmt: skip
        return n, config, self.budgets[n % 4]

    def tell(self, ticket: Any, accuracy: float, epochs: int) -> None:
        self.told.append((ticket, accuracy, epochs))


@pytest.fixture
def synthetic(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Curves that rise to a ceiling set by the learning rate; epochs of one second."""

    def curve(data: str, instance: str, config: dict[str, Any]) -> Any:
        ceiling = 0.95 - 0.15 * abs(math.log10(float(config["learning_rate"])) + 2)
        epochs = range(1, bench.EPOCHS + 1)
        return bench.Curve([ceiling * (1 - math.exp(-e / 6)) for e in epochs], list(epochs))

    monkeypatch.setattr(bench, "learning_curve", curve)


def test_a_restarted_configuration_costs_its_epochs_again(
    bench: ModuleType, peers: ModuleType, synthetic: None
) -> None:
    peer = LadderPeer(peers, peers.params(bench.SPACE), workers=4, limit=12)
    out = bench.simulate(peer.base, "", "x", None)
    # Three configurations, each trained at 2, 6, 18 and 52 epochs from scratch.
    assert out.trials == 12
    assert out.epochs_spent == pytest.approx(3 * (2 + 6 + 18 + 52))
    assert peer.base.epochs_asked == 3 * (2 + 6 + 18 + 52)
    assert sorted(e for _, _, e in peer.told) == sorted([2, 6, 18, 52] * 3)
    # Each result told is the accuracy at the budget's last epoch, as the trainer reports it.
    for ticket, accuracy, epochs in peer.told:
        lr = 10 ** (-1 - ticket // 4 % 3)
        ceiling = 0.95 - 0.15 * abs(math.log10(lr) + 2)
        assert accuracy == pytest.approx(ceiling * (1 - math.exp(-epochs / 6)))
    assert not peer.base.live


def test_a_peer_keeps_every_worker_busy_and_the_budget_holds(
    bench: ModuleType, peers: ModuleType, synthetic: None
) -> None:
    peer = LadderPeer(peers, peers.params(bench.SPACE), workers=4, limit=10**6)
    seen: list[int] = []

    class Watch:
        def begin(self, sim: Any) -> None:
            peer.base.begin(sim)
            seen.append(len(sim.running))

        def on_report(self, sim: Any, key: str, epoch: int, value: float) -> None:
            peer.base.on_report(sim, key, epoch, value)
            seen.append(len(sim.running))

    out = bench.simulate(Watch(), "", "x", None)
    assert set(seen) == {4}, "a finished budget frees its worker for the next ask at once"
    assert out.epochs_spent <= bench.BUDGET_EPOCHS + 1e-6
    assert out.reached_epochs is None


def records(rows: dict[str, dict[str, list[float | None]]]) -> list[dict[str, Any]]:
    """Runs from {instance: {method: [epochs_ratio, ...]}} against random search's 1000 epochs
    on every seed; None marks a miss (the budget, 2000 epochs: ratio 2)."""
    out = []
    for instance, methods in rows.items():
        for method, ratios in methods.items():
            for seed, ratio in enumerate(ratios):
                out.append({"method": method, "instance": instance, "seed": seed,
                            "epochs": None if ratio is None else 1000 * ratio,
                            "epochs_ratio": 2.0 if ratio is None else ratio,
                            "wall_ratio": 1.0})  # fmt: skip
    return out


def test_the_per_instance_table_compares_the_default_with_the_best_peer_there(
    summary: ModuleType,
) -> None:
    runs = records(
        {
            "1": {"bertsweep-bayesian-asha": [0.2, 0.3, 0.4], "dehb": [0.1, 0.2, 0.3],
                  "smac-mf": [0.5, 0.6, None], "random": [1.0, 1.0, 1.0]},
            "2": {"bertsweep-bayesian-asha": [0.1, 0.1, 0.1], "dehb": [0.4, 0.4, 0.4],
                  "smac-mf": [0.2, 0.3, 0.2]},
        }
    )  # fmt: skip
    rows = summary.per_instance(runs, budget_epochs=2000)
    assert [(r["instance"], r["best_peer"], r["ratio"]) for r in rows] == [
        ("1", "dehb", 1.5), ("2", "smac-mf", 0.5),
    ]  # fmt: skip
    assert rows[0]["peers"] == {"dehb": 0.2, "smac-mf": 0.6}
    # Random search costs the same on every seed here, so its epochs say the same.
    assert [(r["fewest_epochs_peer"], r["epochs_ratio"]) for r in rows] == [
        ("dehb", 1.5), ("smac-mf", 0.5),
    ]  # fmt: skip
    assert rows[0]["epochs"]["smac-mf"] == 600, "the miss counts the budget, 2000"
    methods = summary.methods_table(runs, ["random", "bertsweep-bayesian-asha", "dehb", "smac-mf"])
    assert methods["smac-mf"]["miss_rate"] == pytest.approx(1 / 6, abs=1e-4)
    assert methods["dehb"]["epochs_ratio"] == pytest.approx(0.35)
    goals = summary.goals(methods, rows)
    # Over all six runs: the default 0.15, DEHB 0.35, SMAC 0.4 (one miss costs 2).
    assert goals["best_peer"] == "dehb"
    assert goals["vs_best_peer"] == pytest.approx(0.15 / 0.35, abs=1e-3)
    assert (goals["worst_instance"], goals["instance_ratio"]) == ("1", 1.5)
    assert goals["met"] == {
        "vs_best_peer": True, "epochs_ratio": True, "miss_rate": True, "instance_ratio": True,
    }  # fmt: skip


def test_within_an_instance_the_epochs_leave_random_searchs_spread_out(
    summary: ModuleType,
) -> None:
    # Random search needed 100 epochs on seed 0 and 1000 on the others: the peer's 200 on
    # seed 0 is 2x random's there, which makes its median ratio look better than its epochs.
    random = [100.0, 1000.0, 1000.0]
    runs = [
        {"method": method, "instance": "1", "seed": seed, "epochs": epochs,
         "epochs_ratio": epochs / random[seed], "wall_ratio": 1.0}
        for method, spent in [("bertsweep-bayesian-asha", [50.0, 600.0, 300.0]),
                              ("dehb", [200.0, 200.0, 200.0])]
        for seed, epochs in enumerate(spent)
    ]  # fmt: skip
    (row,) = summary.per_instance(runs, budget_epochs=2000)
    assert row["ratio"] == pytest.approx(0.5 / 0.2)
    assert row["epochs_ratio"] == pytest.approx(300 / 200)
    goals = summary.goals(summary.methods_table(runs, ["bertsweep-bayesian-asha", "dehb"]), [row])
    assert (goals["instance_ratio"], goals["instance_epochs_ratio"]) == (2.5, 1.5)


def test_runs_of_several_invocations_merge(summary: ModuleType) -> None:
    settings = {
        "instances": ["1"],
        "seeds": 2,
        "workers": 4,
        "targets": {"1": 0.9},
        "seconds": 5,
        "budget_epochs": 2000,
    }
    a = {
        "methods": {"bertsweep-bayesian-asha": {}},
        "settings": settings,
        "runs": records({"1": {"bertsweep-bayesian-asha": [0.2, 0.4]}}),
    }
    b = {"methods": {"dehb": {}}, "settings": settings,
         "runs": records({"1": {"dehb": [0.1, 0.3]}})}  # fmt: skip
    merged = summary.merge([a, b], ["bertsweep-bayesian-asha", "dehb"])
    assert list(merged["methods"]) == ["bertsweep-bayesian-asha", "dehb"]
    assert merged["per_instance"][0]["ratio"] == pytest.approx(1.5)
    assert merged["settings"]["seconds"] == 10
    other = {**b, "settings": {**settings, "workers": 16}}
    with pytest.raises(ValueError, match="workers"):
        summary.merge([a, other], ["dehb"])
    moved = {**b, "settings": {**settings, "targets": {"1": 0.8}}}
    with pytest.raises(ValueError, match="targets on 1"):
        summary.merge([a, moved], ["dehb"])

    # Another instance, same seeds and workers: its rows join the table.
    elsewhere = {
        "methods": {"bertsweep-bayesian-asha": {}, "dehb": {}},
        "settings": {**settings, "instances": ["2"], "targets": {"2": 0.7}},
        "runs": records({"2": {"bertsweep-bayesian-asha": [0.1, 0.1], "dehb": [0.4, 0.4]}}),
    }
    both = summary.merge([a, b, elsewhere], ["bertsweep-bayesian-asha", "dehb"])
    assert [r["instance"] for r in both["per_instance"]] == ["1", "2"]
    assert both["settings"]["instances"] == ["1", "2"]
    assert both["settings"]["targets"] == {"1": 0.9, "2": 0.7}
    assert both["methods"]["bertsweep-bayesian-asha"]["runs"] == 4


def test_runs_of_a_stopped_invocation_are_read_back_from_its_log(summary: ModuleType) -> None:
    baseline = [
        {"method": "random", "instance": "7", "seed": 0, "epochs": 400.0, "wall": 1000.0},
        {"method": "random", "instance": "7", "seed": 1, "epochs": None, "wall": None},
    ]
    log = [
        "random                           7 seed 0:           miss  best 0.9000  trials   64"
        "  wall      5000  (1.2s)",
        "random                           7 seed 1:           miss  best 0.8000  trials   64"
        "  wall      6000  (1.2s)",
        "smac-mf                          7 seed 0:   100.0 epochs  best 0.9100  trials   30"
        "  wall       250  (0.4s)",
        "smac-mf                          7 seed 1:           miss  best 0.8500  trials  300"
        "  wall      7000  (3.0s)",
        # A log from before the wall time was on the line: epochs only.
        "dehb                             7 seed 0:   200.0 epochs  best 0.9100  trials   40"
        "  (0.2s)",
        "not a run line",
    ]
    runs = summary.records_from_log(log, baseline, 3328)
    assert [(r["method"], r["seed"]) for r in runs] == [("smac-mf", 0), ("smac-mf", 1), ("dehb", 0)]
    smac0, smac1, dehb0 = runs
    assert (smac0["epochs_ratio"], smac0["wall_ratio"]) == (0.25, 0.25)
    # A miss costs the budget: in wall time, random search's own time to spend it.
    assert (smac1["epochs_ratio"], smac1["wall_ratio"]) == (1.0, 1.0)
    assert smac1["epochs"] is None
    assert dehb0["epochs_ratio"] == 0.5
    assert dehb0["wall_ratio"] is None  # its line has no wall time
    table = summary.methods_table(runs, ["smac-mf", "dehb"])
    assert table["dehb"]["wall_ratio"] is None
    assert table["smac-mf"]["wall_ratio"] == pytest.approx(0.625)
