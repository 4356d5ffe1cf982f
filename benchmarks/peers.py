"""The peer HPO libraries of the search-efficiency benchmark, each driven through its own
ask/tell (or scheduler) interface on the benchmark's simulated clock.

Every adapter decides nothing itself: its library chooses which configuration runs next and for
how many epochs, and when a trial stops. The benchmark's `Simulation` (search_efficiency.py)
trains `workers` trials at once, reports after every epoch and counts every epoch trained, as
for BertSweep's own methods; a report at or above the target ends the run, whichever trial and
budget it came from.

Two kinds of peer, counted as each library is designed to run on real training:

- Hyperband-style peers (SMAC3's multi-fidelity facade, DEHB, HpBandSter's BOHB) ask for a
  configuration *at a budget*; the trial trains that many epochs from scratch and its last
  accuracy is told back. A configuration promoted to a higher budget is asked for again and
  trains again from epoch 0: none of the three continues a lower-budget run by design (their
  target functions get a budget, not a checkpoint), so its earlier epochs are spent twice,
  exactly as the peer asks. Budgets are real numbers (52 / 3^k); a trial trains
  ceil(budget) whole epochs, as SMAC's own multi-fidelity MLP example does.
- Syne Tune's schedulers are asynchronous stopping rules: a trial trains on towards 52 epochs
  and reports each one; the scheduler says continue or stop, so no epoch is spent twice.

The pure parts (budget arithmetic, the search-space translation, the restart bookkeeping) import
no peer library, so the project's own environment unit-tests them; each library is imported
when its adapter is built, in the benchmark's environment (benchmarks/requirements.txt).
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

Value = int | float

# Each library's documented default reduction factor, and the smallest budget: one epoch (Syne
# Tune's documented default grace period; the others have no default in epochs). With a maximum
# of 52 and eta 3, SMAC, DEHB and HpBandSter compute the same ladder from the top down,
# 52/27, 52/9, 52/3 and 52 (4 brackets), whatever minimum in (52/81, 52/27] is given.
ETA = 3
MIN_BUDGET = 1.0

# The versions benchmarks/requirements.txt pins (reported with the figures).
VERSIONS = {
    "smac": "2.1.0",
    "dehb": "0.1.2",
    "syne-tune": "0.16.0",
    "hpbandster": "0.7.4",
}

# Syne Tune 0.16's asynchronous multi-fidelity baselines (syne_tune.optimizer.baselines): ASHA
# with random search and with each model-based searcher it ships for ASHA.
SYNETUNE = {
    "synetune-asha": "ASHA",  # random search
    "synetune-bohb": "BOHB",  # kernel density estimators, as in BOHB
    "synetune-asha-bore": "ASHABORE",  # density-ratio classifier (XGBoost)
    "synetune-asha-cqr": "ASHACQR",  # conformalized quantile regression (boosted trees)
}
PEERS = ["smac-mf", "dehb", *SYNETUNE, "hpbandster-bohb"]
# Refit a boosted-tree model from scratch on every suggestion: minutes a run, against seconds for
# the others, so the benchmark runs them only when named (README.md says with how many seeds).
SLOW = ["synetune-asha-bore", "synetune-asha-cqr"]


class Sim(Protocol):
    """What an adapter asks of the simulated cluster."""

    def start(self, key: str, config: dict[str, Any]) -> None: ...

    def stop(self, key: str) -> None: ...


class Peer(Protocol):
    """A method as the benchmark's `simulate()` drives it."""

    def begin(self, sim: Sim) -> None: ...

    def on_report(self, sim: Sim, key: str, epoch: int, value: float) -> None: ...


# ---- Pure parts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One hyperparameter of the benchmark's space, in the terms every library uses."""

    name: str
    integer: bool
    low: float
    high: float
    log: bool


def params(space: Sequence[Mapping[str, Any]]) -> list[Param]:
    """The benchmark's space (BertSweep spec entries) as plain ranges, scales kept."""
    return [
        Param(p["name"], p["type"] == "int", float(p["min"]), float(p["max"]),
              p.get("scale") == "log")
        for p in space
    ]  # fmt: skip


def cast_config(raw: Mapping[str, Any], space: Sequence[Param]) -> dict[str, Value]:
    """A library's proposal as the trial's parameters: integers rounded (some libraries hand
    back numpy or float values for integer ranges) and every value clipped to its range."""
    out: dict[str, Value] = {}
    for p in space:
        value = min(max(float(raw[p.name]), p.low), p.high)
        out[p.name] = round(value) if p.integer else value
    return out


def hyperband_budgets(min_budget: float, max_budget: float, eta: float) -> list[float]:
    """The budgets of Hyperband's deepest bracket, as SMAC, DEHB and HpBandSter compute them:
    max_budget * eta^-k for k = s_max..0, s_max = floor(log_eta(max / min))."""
    s_max = math.floor(math.log(max_budget / min_budget) / math.log(eta) + 1e-9)
    return [max_budget * eta**-k for k in range(s_max, -1, -1)]


def epochs_for(budget: float, max_epochs: int) -> int:
    """Whole epochs trained for a budget a peer asks for: rounded up (SMAC's multi-fidelity
    example trains ceil(budget) epochs), at least one, at most the maximum. The tolerance keeps
    a budget of 52.0000001 from floating-point arithmetic at 52."""
    return min(max(math.ceil(budget - 1e-6), 1), max_epochs)


def loss(accuracy: float) -> float:
    """What the minimising libraries are told: the validation error."""
    return 1.0 - accuracy


class BudgetedPeer:
    """The restart bookkeeping of a Hyperband-style peer. A free worker asks the library for
    (ticket, configuration, budget); the trial trains `epochs_for(budget)` epochs from scratch
    and is then stopped (one that reaches 52 has ended by itself) and its last accuracy told
    back with the ticket. The library has no say between epochs, and a configuration asked for
    again at a higher budget is a new trial whose epochs count again. Subclasses give `_ask`
    and `_tell`."""

    def __init__(self, space: Sequence[Param], workers: int, max_epochs: int) -> None:
        self.space = list(space)
        self.workers = workers
        self.max_epochs = max_epochs
        self.live: dict[str, tuple[Any, int]] = {}  # trial -> (ticket, epochs to train)
        self.asked = 0
        self.epochs_asked = 0  # what the peer asked for in all, for the tests

    def _ask(self) -> tuple[Any, Mapping[str, Any], float] | None:
        raise NotImplementedError

    def _tell(self, ticket: Any, accuracy: float, epochs: int) -> None:
        raise NotImplementedError

    def begin(self, sim: Sim) -> None:
        self._fill(sim)

    def on_report(self, sim: Sim, key: str, epoch: int, value: float) -> None:
        ticket, epochs = self.live[key]
        if epoch < epochs:
            return
        del self.live[key]
        sim.stop(key)  # at exactly its last epoch: no part of the next one counts
        self._tell(ticket, value, epochs)
        self._fill(sim)

    def _fill(self, sim: Sim) -> None:
        while len(self.live) < self.workers:
            asked = self._ask()
            if asked is None:
                return
            ticket, config, budget = asked
            epochs = epochs_for(budget, self.max_epochs)
            key = f"p{self.asked}"
            self.asked += 1
            self.epochs_asked += epochs
            self.live[key] = (ticket, epochs)
            sim.start(key, cast_config(config, self.space))


# ---- The libraries ----------------------------------------------------------------------------


def configspace(space: Sequence[Param], seed: int) -> Any:
    """The space as a ConfigSpace 0.6 ConfigurationSpace (SMAC, DEHB, HpBandSter)."""
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=seed)
    for p in space:
        if p.integer:
            hp = CS.UniformIntegerHyperparameter(p.name, int(p.low), int(p.high), log=p.log)
        else:
            hp = CS.UniformFloatHyperparameter(p.name, p.low, p.high, log=p.log)
        cs.add_hyperparameter(hp)
    return cs


def synetune_space(space: Sequence[Param]) -> dict[str, Any]:
    """The space as Syne Tune domains."""
    from syne_tune import config_space as st

    out: dict[str, Any] = {}
    for p in space:
        if p.integer:
            make = st.lograndint if p.log else st.randint
            out[p.name] = make(int(p.low), int(p.high))
        else:
            out[p.name] = (st.loguniform if p.log else st.uniform)(p.low, p.high)
    return out


def _seed_numpy(seed: int) -> None:
    """Syne Tune (bracket draws) and HpBandSter (its KDE sampler) draw from numpy's global
    generator: seeded per run so that a run repeats. Their notices are silenced too: statsmodels
    warns of a future default on every KDE fit, and Syne Tune's searcher that it got
    `points_to_evaluate` twice (its own baselines pass it so) on every trial."""
    import numpy as np

    np.random.seed(seed)
    warnings.filterwarnings("ignore", message="After 0.17 or January 2028", category=FutureWarning)
    logging.getLogger("syne_tune").setLevel(logging.ERROR)


def _never(config: Any, seed: int = 0, budget: float = 0.0) -> float:
    """SMAC's facade wants a target function; with ask/tell the benchmark trains the trials."""
    raise RuntimeError("trials are trained by the simulation")


class SmacMF(BudgetedPeer):
    """SMAC3's MultiFidelityFacade: Hyperband (eta 3) with its random-forest model, through
    `ask()`/`tell()`, every setting the facade's default. `n_trials` only sizes the default
    initial design (10 random configurations per hyperparameter, at most a quarter of n_trials):
    the benchmark's epoch budget ends the run, and 3,328 trials would cost at least 3,328
    epochs, so 70 random configurations start it, SMAC's default for seven hyperparameters.
    Its intensifier never waits: when every configuration of the running brackets is out, it
    opens the next bracket, so all workers stay busy."""

    def __init__(self, space: Sequence[Param], seed: int, workers: int, max_epochs: int,
                 budget_epochs: int) -> None:  # fmt: skip
        super().__init__(space, workers, max_epochs)
        from smac import MultiFidelityFacade, Scenario
        from smac.runhistory.dataclasses import TrialValue

        self._value = TrialValue
        self._dir = tempfile.TemporaryDirectory(prefix="smac-")  # removed with the adapter
        scenario = Scenario(
            configspace(self.space, seed),
            name="lcbench",
            output_directory=Path(self._dir.name),
            n_trials=budget_epochs,
            min_budget=MIN_BUDGET,
            max_budget=max_epochs,
            seed=seed,
        )
        self.smac = MultiFidelityFacade(scenario, _never, logging_level=40, overwrite=True)

    def _ask(self) -> tuple[Any, Mapping[str, Any], float]:
        info = self.smac.ask()
        return info, dict(info.config), float(info.budget)

    def _tell(self, ticket: Any, accuracy: float, epochs: int) -> None:
        self.smac.tell(ticket, self._value(cost=loss(accuracy)), save=False)


class Dehb(BudgetedPeer):
    """DEHB: differential evolution inside Hyperband's brackets (eta 3), through `ask()`/
    `tell()`, its defaults (mutation 0.5, crossover 0.5, rand1_bin, immediate async updates).
    `n_workers=1` only keeps DEHB from starting a Dask cluster: with ask/tell several jobs can
    be out at once, and a bracket waiting on its lower rung lets DEHB open a new one. Its
    state is saved at the end only (no end here), which changes nothing in the search."""

    def __init__(self, space: Sequence[Param], seed: int, workers: int, max_epochs: int) -> None:
        super().__init__(space, workers, max_epochs)
        from dehb import DEHB

        self._dir = tempfile.TemporaryDirectory(prefix="dehb-")
        cs = configspace(self.space, seed)
        self.dehb = DEHB(
            cs=cs, dimensions=len(self.space), min_fidelity=MIN_BUDGET, max_fidelity=max_epochs,
            eta=ETA, n_workers=1, seed=seed, output_path=self._dir.name, log_level="ERROR",
            save_freq="end",
        )  # fmt: skip

    def _ask(self) -> tuple[Any, Mapping[str, Any], float]:
        job = self.dehb.ask()
        return job, dict(job["config"]), float(job["fidelity"])

    def _tell(self, ticket: Any, accuracy: float, epochs: int) -> None:
        self.dehb.tell(ticket, {"fitness": loss(accuracy), "cost": float(epochs)})


def _bare_master(self: Any, config_generator: Any, **kwargs: Any) -> None:
    """Master.__init__ without its Pyro dispatcher thread: what BOHB's own code needs of it."""
    self.config_generator = config_generator
    self.config = {}


class HpBandSterBOHB(BudgetedPeer):
    """HpBandSter's BOHB: Hyperband's synchronous successive halving (eta 3) with a kernel
    density model per budget, its defaults (top 15%, 64 samples, a third random). HpBandSter
    has no ask/tell: its Master runs a loop over Pyro workers. This adapter runs that loop
    (Master.run) itself, without Pyro: a free worker takes the next run of the first active
    iteration that has one, or else starts the next iteration (with no iteration limit, as
    `run(n_iterations=large)`), and each result goes to its iteration and to the model
    (Master.job_callback). The iterations and the model are HpBandSter's own objects."""

    def __init__(self, space: Sequence[Param], seed: int, workers: int, max_epochs: int) -> None:
        super().__init__(space, workers, max_epochs)
        from unittest import mock

        from hpbandster.core.dispatcher import Job
        from hpbandster.core.master import Master
        from hpbandster.optimizers.bohb import BOHB

        _seed_numpy(seed)
        self._job = Job
        with mock.patch.object(Master, "__init__", _bare_master):
            self.bohb = BOHB(
                configspace=configspace(self.space, seed), eta=ETA, min_budget=MIN_BUDGET,
                max_budget=max_epochs,
            )  # fmt: skip
        self.iterations: list[Any] = []

    def _ask(self) -> tuple[Any, Mapping[str, Any], float]:
        while True:
            for iteration in self.iterations:
                if iteration.is_finished:
                    continue
                run = iteration.get_next_run()
                if run is not None:
                    config_id, config, budget = run
                    return (config_id, config, budget), config, float(budget)
            self.iterations.append(
                self.bohb.get_next_iteration(len(self.iterations), {"result_logger": None})
            )

    def _tell(self, ticket: Any, accuracy: float, epochs: int) -> None:
        config_id, config, budget = ticket
        job = self._job(config_id, config=config, budget=budget, working_directory=None)
        job.result = {"loss": loss(accuracy), "info": {"epochs": epochs}}
        self.iterations[config_id[0]].register_result(job)
        self.bohb.config_generator.new_result(job)


class SyneTune:
    """One of Syne Tune's asynchronous schedulers, called as its Tuner calls it: `suggest()`
    and `on_trial_add` for each free worker, `on_trial_result` after every epoch, and on a stop
    decision `on_trial_remove` and the trial stopped. Defaults: grace period 1 epoch, reduction
    factor 3, one bracket (rungs 1, 3, 9, 27); its searchers fit on each trial's last value."""

    def __init__(self, name: str, space: Sequence[Param], seed: int, workers: int,
                 max_epochs: int) -> None:  # fmt: skip
        from syne_tune.optimizer import baselines
        from syne_tune.optimizer.scheduler import SchedulerDecision

        _seed_numpy(seed)
        self.space = list(space)
        self.workers = workers
        self.stop_decision = SchedulerDecision.STOP
        self.scheduler = getattr(baselines, SYNETUNE[name])(
            config_space=synetune_space(self.space), metric="accuracy", time_attr="epoch",
            max_t=max_epochs, do_minimize=False, random_seed=seed,
        )  # fmt: skip
        self.live: dict[str, Any] = {}
        self.added = 0

    def begin(self, sim: Sim) -> None:
        self._fill(sim)

    def _fill(self, sim: Sim) -> None:
        from syne_tune.backend.trial_status import Trial

        while len(self.live) < self.workers:
            suggestion = self.scheduler.suggest()
            if suggestion is None:
                return
            trial = Trial(trial_id=self.added, config=suggestion.config,
                          creation_time=datetime.now())  # fmt: skip
            self.scheduler.on_trial_add(trial=trial)
            key = f"s{self.added}"
            self.added += 1
            self.live[key] = trial
            sim.start(key, cast_config(suggestion.config, self.space))

    def on_report(self, sim: Sim, key: str, epoch: int, value: float) -> None:
        trial = self.live[key]
        decision = self.scheduler.on_trial_result(
            trial=trial, result={"accuracy": value, "epoch": epoch}
        )
        # At 52 epochs the scheduler says stop too: the Tuner then removes the trial.
        if decision == self.stop_decision:
            self.scheduler.on_trial_remove(trial=trial)
            del self.live[key]
            sim.stop(key)
            self._fill(sim)


def make_peer(name: str, space: Sequence[Mapping[str, Any]], seed: int, workers: int,
              max_epochs: int, budget_epochs: int) -> Peer:  # fmt: skip
    """The adapter for a peer method name (one of PEERS)."""
    ranges = params(space)
    if name == "smac-mf":
        return SmacMF(ranges, seed, workers, max_epochs, budget_epochs)
    if name == "dehb":
        return Dehb(ranges, seed, workers, max_epochs)
    if name == "hpbandster-bohb":
        return HpBandSterBOHB(ranges, seed, workers, max_epochs)
    if name in SYNETUNE:
        return SyneTune(name, ranges, seed, workers, max_epochs)
    raise ValueError(f"unknown peer {name}")
