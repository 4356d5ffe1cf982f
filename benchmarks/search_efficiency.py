"""Search efficiency: how much training each search method spends to reach a good model.

Every BertSweep method is driven through `bertsweep.planner.plan()`, the code the operator
runs on each reconcile pass, against simulated trials whose learning curves come from the YAHPO
Gym LCBench surrogate. The Optuna baselines run Optuna's own ask/tell loop, `trial.report` and
`trial.should_prune`, on the same simulated clock with the same number of workers, and so do
the peer libraries (peers.py: SMAC3, DEHB, Syne Tune, HpBandSter), each through its own ask/tell
or scheduler interface, deciding which configurations run and for how many epochs.

The simulation. Each trial's whole curve (52 epochs of val_accuracy and elapsed time) is asked
of the surrogate once, when the trial starts. A running trial reports epoch e at its start time
plus the surrogate's `time` at epoch e (LCBench's `time` is the elapsed training time, growing
with the epochs; it is made non-decreasing against surrogate noise). `workers` trials run at
once. After every report the method decides: for BertSweep, `plan()` is replayed on all trial
records and its prunes and new trials take effect at once; for Optuna, the reporting trial asks
`should_prune()` and free workers ask for new trials.

What is measured. The budget is 64 trials of 52 epochs (3,328 epochs). For each instance, the
target is the median over seeds of the best val_accuracy that random search without stopping
reaches (at any report) within that budget. A run reaches the target at the first report of any
trial at or above it; its cost is then the epochs consumed by all trials up to that moment
(pruned ones included, and the part of an epoch a stopped trial had done) and the simulated wall
time. A run that spends its budget first is a miss and costs the whole budget: 3,328 epochs, and
for wall time, the time random search took to spend the whole budget on that instance and seed.
Each cost is divided by random search's cost on the same instance and seed; a method's figure
is the median of these ratios over instances and seeds.

Methods that stop trials may create more than 64 trials: only their epochs are bounded. The
peers that restart a configuration at a higher budget (Hyperband as SMAC, DEHB and HpBandSter
run it) pay for its epochs again, as they would on real training.

Besides the per-method table, the output compares BertSweep's default with the best peer on
each instance (search_summary.py, which also merges the JSON of several invocations).

Usage (yahpo-gym pins numpy < 2, so it lives in its own virtual environment; see README.md):

    benchmarks/.venv/bin/python benchmarks/search_efficiency.py \
        --data /work/shared/benchmarks/yahpo --instances 3945,7593 --seeds 5 --workers 4 \
        --json out/search_efficiency.json
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import optuna  # noqa: E402

import peers  # noqa: E402
import search_summary  # noqa: E402
from bertsweep import stopping as stopping_module  # noqa: E402
from bertsweep.api import (  # noqa: E402
    Report,
    Scalar,
    SweepSpec,
    Trial,
    TrialPhase,
    parse_spec,
)
from bertsweep.planner import plan  # noqa: E402
from bertsweep.search import bayesian as bayesian_module  # noqa: E402
from bertsweep.stopping import Curve as ObjectiveCurve  # noqa: E402

EPOCHS = 52
BUDGET_TRIALS = 64
BUDGET_EPOCHS = BUDGET_TRIALS * EPOCHS
DEV_INSTANCES = "3945,7593,34539,126025,126026,126029,146212,167104,167149,167152"
METRIC = "eval_accuracy"
SWEEP = "lcbench"
CLOCK_ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)
# A report counts if it comes before the budget is spent; sums of fractions get this slack.
SLACK = 1e-6

# LCBench's search space (config_space.json), as a BertSweep spec writes it.
SPACE: list[dict[str, Any]] = [
    {"name": "batch_size", "type": "int", "min": 16, "max": 512, "scale": "log"},
    {"name": "learning_rate", "type": "float", "min": 1e-4, "max": 0.1, "scale": "log"},
    {"name": "max_dropout", "type": "float", "min": 0.0, "max": 1.0},
    {"name": "max_units", "type": "int", "min": 64, "max": 1024, "scale": "log"},
    {"name": "momentum", "type": "float", "min": 0.1, "max": 0.99},
    {"name": "num_layers", "type": "int", "min": 1, "max": 5},
    {"name": "weight_decay", "type": "float", "min": 1e-5, "max": 0.1},
]

# The coarse grid: two points per parameter, at the quartiles of each range on its scale
# (2^6 = 64 points, exactly the budget), with num_layers fixed at its middle value.
GRID: list[dict[str, Any]] = [
    {"name": "learning_rate", "type": "float", "min": 10**-3.25, "max": 10**-1.75,
     "scale": "log", "gridPoints": 2},
    {"name": "batch_size", "type": "int", "min": 38, "max": 215, "scale": "log", "gridPoints": 2},
    {"name": "momentum", "type": "float", "min": 0.3225, "max": 0.7675, "gridPoints": 2},
    {"name": "weight_decay", "type": "float", "min": 0.025, "max": 0.075, "gridPoints": 2},
    {"name": "max_units", "type": "int", "min": 128, "max": 512, "scale": "log", "gridPoints": 2},
    {"name": "max_dropout", "type": "float", "min": 0.25, "max": 0.75, "gridPoints": 2},
]  # fmt: skip
GRID_FIXED: dict[str, Scalar] = {"num_layers": 3}


@dataclass(frozen=True)
class Tuning:
    """The early-stopping settings of the methods that stop trials, as a user would write
    them in `spec.earlyStopping` (chosen on the development instances only).

    No rule judges a trial before epoch 3 of 52: LCBench's first epoch says nothing of the
    last (its rank correlation with the final accuracy is -0.55..+0.23 across the development
    instances, and the best configurations are mostly in the bottom third), epoch 2 little,
    epoch 3 enough on average (+0.56..+0.92). ASHA, which keeps only a third, waits for epoch 5:
    on the hardest development instances (126025, 126026, 146212) only 37-61% of the
    configurations that go on to reach the target rank in the top third at epoch 3, and 77-100%
    at epoch 6; with trials ranked by where they are heading, a first rung at 5 spent 10% fewer
    epochs than one at 6 and missed no more often than one at 4. Its rungs are then 5, 15 and
    45 epochs."""

    asha_min_resource: float = 5.0
    asha_reduction_factor: int = 3
    startup_trials: int | None = None  # None: BertSweep's default
    median_min_resource: float = 3.0
    median_min_trials: int = 3


# ---- The surrogate --------------------------------------------------------------------------

_SURROGATES: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class Curve:
    """A configuration's learning curve: accuracy after each epoch (0..1) and the elapsed
    time at the end of each epoch (seconds, non-decreasing)."""

    accuracy: list[float]
    elapsed: list[float]


def configure_yahpo(data: str) -> None:
    """Point YAHPO Gym at the data through a private settings file. Its default, a file in
    ~/.config that every process rewrites, both touches the user's home and races between
    the benchmark's processes; children inherit the variable set here."""
    if os.environ.get("YAHPO_LOCAL_CONFIG"):
        return
    settings = Path(tempfile.mkdtemp(prefix="yahpo-")) / "config.yaml"
    settings.write_text(json.dumps({"data_path": data}) + "\n")  # JSON is YAML
    os.environ["YAHPO_LOCAL_CONFIG"] = str(settings)


def surrogate(data: str, instance: str) -> Any:
    """The LCBench surrogate for one instance (one per process and instance)."""
    key = (data, instance)
    if key not in _SURROGATES:
        configure_yahpo(data)
        from yahpo_gym import benchmark_set

        with contextlib.redirect_stdout(io.StringIO()):  # its citation notice, once per set
            bench = benchmark_set.BenchmarkSet(
                "lcbench", instance=instance, multithread=False, check=False
            )
        _SURROGATES[key] = bench
    return _SURROGATES[key]


def learning_curve(data: str, instance: str, config: dict[str, Scalar]) -> Curve:
    """All 52 epochs of a configuration in one batched query."""
    point: dict[str, Any] = {"OpenML_task_id": instance}
    for p in SPACE:
        name = p["name"]
        value = config.get(name, GRID_FIXED.get(name))
        point[name] = int(value) if p["type"] == "int" else float(value)  # type: ignore[arg-type]
    rows = surrogate(data, instance).objective_function(
        [{**point, "epoch": e} for e in range(1, EPOCHS + 1)]
    )
    accuracy = [float(r["val_accuracy"]) / 100.0 for r in rows]
    elapsed: list[float] = []
    for r in rows:
        # The surrogate's time is noisy: never let an epoch end before the previous one.
        previous = elapsed[-1] if elapsed else 0.0
        elapsed.append(max(float(r["time"]), previous + 1e-3))
    return Curve(accuracy, elapsed)


# ---- The simulated cluster ------------------------------------------------------------------


@dataclass
class Running:
    curve: Curve
    start: float
    reported: int = 0


@dataclass
class Simulation:
    """Trials training concurrently on a simulated clock, reporting after every epoch."""

    data: str
    instance: str
    now: float = 0.0
    finished_epochs: float = 0.0  # epochs spent by trials no longer running
    running: dict[str, Running] = field(default_factory=dict)
    events: list[tuple[float, int, str]] = field(default_factory=list)
    sequence: int = 0
    trials_started: int = 0

    def start(self, key: str, config: dict[str, Scalar]) -> None:
        curve = learning_curve(self.data, self.instance, config)
        self.running[key] = Running(curve, self.now)
        self.trials_started += 1
        self._schedule(key)

    def _schedule(self, key: str) -> None:
        r = self.running[key]
        if r.reported < EPOCHS:
            self.sequence += 1
            at = r.start + r.curve.elapsed[r.reported]
            heapq.heappush(self.events, (at, self.sequence, key))

    def stop(self, key: str) -> None:
        """End a trial now; the part of an epoch it had trained counts as spent."""
        r = self.running.pop(key, None)
        if r is not None:
            self.finished_epochs += r.reported + self._fraction(r)

    def _fraction(self, r: Running) -> float:
        if r.reported >= EPOCHS:
            return 0.0
        begin = r.start + (r.curve.elapsed[r.reported - 1] if r.reported else 0.0)
        end = r.start + r.curve.elapsed[r.reported]
        return min(max((self.now - begin) / (end - begin), 0.0), 1.0)

    def consumed(self) -> float:
        """Epochs spent by all trials until now, partial epochs included."""
        return self.finished_epochs + sum(
            r.reported + self._fraction(r) for r in self.running.values()
        )

    def next_report(self) -> tuple[str, int, float] | None:
        """Advance the clock to the next report: (trial, epoch, accuracy)."""
        while self.events:
            at, _, key = heapq.heappop(self.events)
            r = self.running.get(key)
            if r is None:
                continue  # stopped since
            self.now = at
            r.reported += 1
            value = r.curve.accuracy[r.reported - 1]
            if r.reported == EPOCHS:
                self.running.pop(key)
                self.finished_epochs += EPOCHS
            else:
                self._schedule(key)
            return key, r.reported, value
        return None


class Method(Protocol):
    def begin(self, sim: Simulation) -> None: ...

    def on_report(self, sim: Simulation, key: str, epoch: int, value: float) -> None: ...


@dataclass
class Outcome:
    """One run: the first report at or above the target, or the best reached."""

    reached_epochs: float | None
    reached_wall: float | None
    best: float
    wall_at_budget: float
    epochs_spent: float
    trials: int
    seconds: float
    # (epochs spent, wall time, accuracy) at every report, when asked for.
    trace: list[tuple[float, float, float]] | None = None

    def at_target(self, target: float) -> Outcome:
        """This full run's outcome had it been looking for `target` (needs the trace)."""
        assert self.trace is not None
        for spent, wall, value in self.trace:
            if value >= target:
                return Outcome(spent, wall, self.best, self.wall_at_budget, spent, self.trials,
                               self.seconds)  # fmt: skip
        return Outcome(None, None, self.best, self.wall_at_budget, self.epochs_spent,
                       self.trials, self.seconds)  # fmt: skip


def simulate(method: Method, data: str, instance: str, target: float | None) -> Outcome:
    """Run a method until it reaches `target`, spends the budget, or has nothing left to run.
    Without a target the run goes to the end and keeps its trace."""
    clock = time.perf_counter()
    sim = Simulation(data, instance)
    method.begin(sim)
    best = -math.inf
    trace: list[tuple[float, float, float]] | None = [] if target is None else None
    while (event := sim.next_report()) is not None:
        key, epoch, value = event
        spent = sim.consumed()
        if spent > BUDGET_EPOCHS + SLACK:
            break
        best = max(best, value)
        if trace is not None:
            trace.append((spent, sim.now, value))
        if target is not None and value >= target:
            return Outcome(
                spent, sim.now, best, math.nan, spent, sim.trials_started,
                time.perf_counter() - clock,
            )  # fmt: skip
        method.on_report(sim, key, epoch, value)
    return Outcome(
        None, None, best, sim.now, min(sim.consumed(), BUDGET_EPOCHS), sim.trials_started,
        time.perf_counter() - clock, trace,
    )  # fmt: skip


# ---- BertSweep through its planner ----------------------------------------------------------


def sweep_spec(algorithm: str, stopping: str, seed: int, workers: int, tuning: Tuning) -> SweepSpec:
    early: dict[str, Any] = {"name": stopping}
    if stopping == "asha":
        early |= {
            "minResource": tuning.asha_min_resource,
            "reductionFactor": tuning.asha_reduction_factor,
        }
    elif stopping == "median":
        early |= {"minResource": tuning.median_min_resource, "minTrials": tuning.median_min_trials}
    algo: dict[str, Any] = {"name": algorithm, "seed": seed}
    if algorithm == "bayesian" and tuning.startup_trials is not None:
        algo["startupTrials"] = tuning.startup_trials
    grid = algorithm == "grid"
    return parse_spec(
        {
            "model": "lcbench-surrogate",
            "dataset": {"train": "lcbench"},
            "objective": {"metric": METRIC, "goal": "maximize"},
            "algorithm": algo,
            "earlyStopping": early,
            "parameters": GRID if grid else SPACE,
            "fixed": {"num_train_epochs": EPOCHS, **(GRID_FIXED if grid else {})},
            # Without stopping, 64 trials are the budget; with it, the epochs are, and a trial
            # costs at least one epoch.
            "maxTrials": BUDGET_TRIALS if stopping == "none" else BUDGET_EPOCHS,
            "parallelism": workers,
            "maxFailedTrials": 0,
        }
    )


class CurveMemo:
    """`objective_curve` computed once per trial record. The operator builds every trial's
    curve from its reports on every pass; replayed after each of a run's thousands of reports,
    that was a quarter of a long run's time. A record is replaced (a new object) whenever it
    changes, so a curve kept for the same record object and spec is the curve it would build
    again: the verdicts and proposals are the same, only sooner. Installed in the two modules
    that call it, for the benchmark's process only."""

    def __init__(self) -> None:
        self.kept: dict[int, tuple[Trial, SweepSpec, ObjectiveCurve]] = {}
        self.build = stopping_module.objective_curve

    def __call__(self, trial: Trial, spec: SweepSpec) -> ObjectiveCurve:
        kept = self.kept.get(id(trial))
        if kept is not None and kept[0] is trial and kept[1] is spec:
            return kept[2]
        curve = self.build(trial, spec)
        self.kept[id(trial)] = (trial, spec, curve)  # the record is held: its id stays its own
        return curve

    def install(self) -> None:
        self.kept.clear()
        stopping_module.objective_curve = self
        bayesian_module.objective_curve = self


CURVES = CurveMemo()


class BertSweep:
    """Replays `plan()` after every report, as the operator does on every reconcile pass."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.records: dict[str, Trial] = {}
        CURVES.install()  # one run at a time in a process: the last run's records are dropped

    def begin(self, sim: Simulation) -> None:
        self._reconcile(sim)

    def on_report(self, sim: Simulation, key: str, epoch: int, value: float) -> None:
        t = self.records[key]
        report = Report(step=epoch * 100, epoch=float(epoch), metrics={METRIC: value})
        update: dict[str, Any] = {"reports": [*t.reports, report]}
        if epoch == EPOCHS:
            update |= {"phase": TrialPhase.succeeded, "metrics": {METRIC: value}}
        self.records[key] = t.model_copy(update=update)
        self._reconcile(sim)

    def _reconcile(self, sim: Simulation) -> None:
        p = plan(SWEEP, self.spec, list(self.records.values()), CLOCK_ORIGIN + timedelta(
            seconds=sim.now))  # fmt: skip
        for name in [*p.prune, *p.stop]:
            t = self.records[name]
            last = t.reports[-1].metrics if t.reports else {}
            self.records[name] = t.model_copy(update={"phase": TrialPhase.pruned, "metrics": last})
            sim.stop(name)
        for t in p.create:
            self.records[t.name] = t.model_copy(update={"phase": TrialPhase.running})
            sim.start(t.name, t.parameters)


# ---- Optuna's own loop ----------------------------------------------------------------------


def optuna_distributions() -> dict[str, optuna.distributions.BaseDistribution]:
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for p in SPACE:
        log = p.get("scale") == "log"
        if p["type"] == "int":
            out[p["name"]] = optuna.distributions.IntDistribution(p["min"], p["max"], log=log)
        else:
            out[p["name"]] = optuna.distributions.FloatDistribution(p["min"], p["max"], log=log)
    return out


class OptunaLoop:
    """Optuna's ask/tell with `trial.report` and `should_prune` after every epoch."""

    def __init__(self, seed: int, workers: int, pruner: optuna.pruners.BasePruner | None) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            study_name="lcbench",  # HyperbandPruner's brackets hash it: keep it fixed
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=pruner or optuna.pruners.NopPruner(),
        )
        self.workers = workers
        self.max_trials = BUDGET_TRIALS if pruner is None else BUDGET_EPOCHS
        self.distributions = optuna_distributions()
        self.live: dict[str, optuna.Trial] = {}

    def begin(self, sim: Simulation) -> None:
        self._fill(sim)

    def _fill(self, sim: Simulation) -> None:
        while len(self.live) < self.workers and len(self.study.trials) < self.max_trials:
            trial = self.study.ask(self.distributions)
            key = f"t{trial.number}"
            self.live[key] = trial
            sim.start(key, dict(trial.params))

    def on_report(self, sim: Simulation, key: str, epoch: int, value: float) -> None:
        trial = self.live[key]
        trial.report(value, epoch)
        if epoch == EPOCHS:
            self.study.tell(trial, value)
            del self.live[key]
        elif trial.should_prune():
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            del self.live[key]
            sim.stop(key)
        self._fill(sim)


# ---- Methods and runs -----------------------------------------------------------------------

METHODS = [
    "random",
    "grid",
    "optuna-tpe",
    "optuna-tpe-hyperband",
    "random-median",
    "bertsweep-bayesian-asha",
    "bertsweep-random-asha",
    "bertsweep-bayesian-median",
    *peers.PEERS,
]
DEFAULT_METHOD = search_summary.DEFAULT_METHOD


def make_method(name: str, seed: int, workers: int, tuning: Tuning) -> Method:
    bertsweep: dict[str, tuple[str, str]] = {
        "random": ("random", "none"),
        "grid": ("grid", "none"),
        "random-median": ("random", "median"),
        "bertsweep-bayesian-asha": ("bayesian", "asha"),
        "bertsweep-random-asha": ("random", "asha"),
        "bertsweep-bayesian-median": ("bayesian", "median"),
    }
    if name in bertsweep:
        algorithm, stopping = bertsweep[name]
        return BertSweep(sweep_spec(algorithm, stopping, seed, workers, tuning))
    if name == "optuna-tpe":
        return OptunaLoop(seed, workers, None)
    if name == "optuna-tpe-hyperband":
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=EPOCHS, reduction_factor=3
        )
        return OptunaLoop(seed, workers, pruner)
    if name in peers.PEERS:
        return peers.make_peer(name, SPACE, seed, workers, EPOCHS, BUDGET_EPOCHS)
    raise ValueError(f"unknown method {name}")


@dataclass(frozen=True)
class Job:
    method: str
    instance: str
    seed: int
    workers: int
    data: str
    tuning: Tuning
    target: float | None


def run_job(job: Job) -> tuple[Job, Outcome]:
    method = make_method(job.method, job.seed, job.workers, job.tuning)
    return job, simulate(method, job.data, job.instance, job.target)


def run_all(jobs: Sequence[Job], processes: int, log: Callable[[str], None]) -> list[
    tuple[Job, Outcome]
]:  # fmt: skip
    results: list[tuple[Job, Outcome]] = []
    if processes <= 1:
        for job in jobs:
            results.append(run_job(job))
            log(describe(*results[-1]))
        return results
    with ProcessPoolExecutor(max_workers=processes) as pool:
        for result in pool.map(run_job, jobs, chunksize=1):
            results.append(result)
            log(describe(*result))
    return results


def describe(job: Job, o: Outcome) -> str:
    reached = "miss" if o.reached_epochs is None else f"{o.reached_epochs:7.1f} epochs"
    wall = o.wall_at_budget if o.reached_wall is None else o.reached_wall
    return (
        f"{job.method:26s} {job.instance:>7s} seed {job.seed}: {reached:>14s}  best "
        f"{o.best:.4f}  trials {o.trials:4d}  wall {wall:9.0f}  ({o.seconds:.1f}s)"
    )


def run_records(
    results: Sequence[tuple[Job, Outcome]], baseline: dict[tuple[str, int], Outcome],
) -> list[dict[str, Any]]:  # fmt: skip
    """One record per run, with its costs divided by random search's on the same instance and
    seed (a miss costs the whole budget: all epochs, and random's wall time to spend them)."""
    records: list[dict[str, Any]] = []
    for job, o in results:
        base = baseline[(job.instance, job.seed)]
        records.append(
            {
                "method": job.method,
                "instance": job.instance,
                "seed": job.seed,
                "epochs": o.reached_epochs,
                "wall": o.reached_wall,
                "best": o.best,
                "trials": o.trials,
                "epochs_ratio": search_summary.over_random(
                    o.reached_epochs, base.reached_epochs, BUDGET_EPOCHS
                ),
                "wall_ratio": search_summary.over_random(
                    o.reached_wall, base.reached_wall, base.wall_at_budget
                ),
            }
        )
    return records


def rounded(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the JSON keeps it."""
    places = {"epochs": 2, "wall": 1, "best": 5, "epochs_ratio": 6, "wall_ratio": 6}
    return {k: v if v is None or k not in places else round(v, places[k])
            for k, v in record.items()}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument("--mode", choices=["single", "multi-objective"], default="single")
    if mode.parse_known_args(argv)[0].mode == "multi-objective":
        # multi_objective.py builds on this module (its simulation, space and specs), so it is
        # imported only when asked for; it takes the same options and writes the same JSON shape.
        import multi_objective

        return multi_objective.main(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mode",
        choices=["single", "multi-objective"],
        default="single",
        help="single: val_accuracy alone; multi-objective: against the parameter count "
        "(multi_objective.py)",
    )
    parser.add_argument("--data", required=True, help="folder holding lcbench/")
    parser.add_argument("--instances", default=DEV_INSTANCES, help="comma-separated task ids")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4, help="trials at once (parallelism)")
    parser.add_argument("--json", dest="json_out", help="write the figures here")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument(
        "--methods",
        default=",".join(m for m in METHODS if m not in peers.SLOW),
        help=f"comma-separated (default: all but {', '.join(peers.SLOW)}, minutes a run)",
    )
    parser.add_argument("--asha-min-resource", type=float, default=Tuning.asha_min_resource)
    parser.add_argument("--asha-reduction-factor", type=int, default=Tuning.asha_reduction_factor)
    parser.add_argument("--startup-trials", type=int, default=Tuning.startup_trials)
    parser.add_argument("--median-min-resource", type=float, default=Tuning.median_min_resource)
    parser.add_argument("--median-min-trials", type=int, default=Tuning.median_min_trials)
    parser.add_argument("--quiet", action="store_true", help="no line per run")
    args = parser.parse_args(argv)

    instances = [i.strip() for i in args.instances.split(",") if i.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods: {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    tuning = Tuning(
        asha_min_resource=args.asha_min_resource,
        asha_reduction_factor=args.asha_reduction_factor,
        startup_trials=args.startup_trials,
        median_min_resource=args.median_min_resource,
        median_min_trials=args.median_min_trials,
    )
    data = str(Path(args.data).resolve())
    configure_yahpo(data)
    seeds = range(args.seeds)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    started = time.perf_counter()
    # Random search without stopping first: it sets each instance's target.
    random_jobs = [
        Job("random", i, s, args.workers, data, tuning, None) for i in instances for s in seeds
    ]
    random_runs = run_all(random_jobs, args.jobs, log)
    targets = {
        i: statistics.median(o.best for j, o in random_runs if j.instance == i) for i in instances
    }
    baseline: dict[tuple[str, int], Outcome] = {}
    results: list[tuple[Job, Outcome]] = []
    for job, full in random_runs:
        # Random's cost to the target, read off its full run: a run looking for the target
        # would have made the same moves up to its first report at or above it.
        outcome = full.at_target(targets[job.instance])
        baseline[(job.instance, job.seed)] = outcome
        if "random" in methods:
            results.append((Job("random", job.instance, job.seed, args.workers, data, tuning,
                                targets[job.instance]), outcome))  # fmt: skip

    def summarize(finished: Sequence[tuple[Job, Outcome]]) -> dict[str, Any]:
        records = run_records(finished, baseline)
        return {
            **search_summary.tables(records, METHODS, BUDGET_EPOCHS),
            "default": DEFAULT_METHOD,
            "settings": {
                "instances": instances,
                "seeds": args.seeds,
                "workers": args.workers,
                "budget_epochs": BUDGET_EPOCHS,
                "tuning": tuning.__dict__,
                "targets": targets,
                "seconds": round(time.perf_counter() - started, 1),
                "peer_versions": peers.VERSIONS,
            },
            "runs": [rounded(r) for r in records],
        }

    def write(summary: dict[str, Any]) -> None:
        if args.json_out:
            out = Path(args.json_out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(summary, indent=2) + "\n")

    # One method at a time, the JSON rewritten after each: an invocation stopped while a slow
    # peer runs keeps every method it finished.
    for m in methods:
        if m == "random":
            continue
        jobs = [
            Job(m, i, s, args.workers, data, tuning, targets[i]) for i in instances for s in seeds
        ]
        results += run_all(jobs, args.jobs, log)
        write(summarize(results))
    summary = summarize(results)
    search_summary.print_tables(summary)
    print(f"({summary['settings']['seconds']} s)")
    write(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
