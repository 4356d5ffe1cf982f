"""Search efficiency with two objectives: accuracy against the network's size, on LCBench.

The same simulated cluster as `search_efficiency.py` (its `Simulation`, its LCBench space, its
spec builder; that module's docstring says how a trial's curve is asked of the YAHPO Gym
surrogate and played on the simulated clock, `workers` trials at once, reporting every epoch),
with two objectives: maximize `val_accuracy` (YAHPO gives percent; divided by 100 as in the
single-objective mode, and reported to BertSweep as `eval_accuracy`) and minimize the network's
parameter count (`model_parameters`, BertSweep's cost metric).

The parameter count (`model_parameters`). LCBench trained Auto-PyTorch's funnel-shaped MLPs
(`ShapedMlpNet`, `mlp_shape: funnel`): `num_layers` counts the Linear layers, the output layer
included, so there are `num_layers - 1` hidden layers; with M = max(input width, max_units)
and s = int((M - classes) / (num_layers - 1)), hidden layer k (k = 0..num_layers-2) has
M - k*s units, and the output layer `classes` units. Every Linear layer has
(fan_in + 1) * fan_out parameters (weights and biases). YAHPO exposes neither an instance's
feature count nor its class count, so every instance uses the same widths: INPUT_WIDTH = 32
inputs (below max_units' least value of 64, so M is always max_units) and CLASSES = 2 outputs.
The count is then a function of num_layers and max_units alone, from 66 (num_layers 1: a
linear model) to 1,351,702 (5 layers of up to 1024 units). It is known before a trial trains
and is the same in every report, as the trainer's cost metrics are: every simulated report
carries it.

What is measured. A trial is *finished* when it has trained all 52 epochs: its point is its
accuracy at epoch 52 and its parameter count. A trial stopped early (by ASHA) never counts,
whatever it had reached: the hypervolume of a method at a moment is that of the finished
trials until then (the non-dominated ones among them make it; dominated points add nothing).
The hypervolume is taken in the plane (accuracy, log10 of the parameter count), both signed to
be minimized (`bertsweep.pareto.signed`: -accuracy, log10 count) by
`bertsweep.pareto.hypervolume_2d`, with one fixed reference point: accuracy 0 and log10 of the
largest count the space allows plus REFERENCE_MARGIN (0.1), so that the largest network still
adds area when it is the most accurate. (With fixed widths the reference is the same on every
instance.)

For each instance the target is the median over seeds of the hypervolume that random search
without stopping reaches with 64 full trials (3,328 epochs). A run reaches the target when a
trial finishes and the hypervolume of the finished trials first is at or above it; its cost is
the epochs consumed by all trials until that moment (stopped ones included, partial epochs
too) and the simulated wall time. A run that spends its budget first is a miss and costs the
whole budget (3,328 epochs; for wall time, random search's time to spend it on that instance
and seed). Each cost is divided by random search's on the same instance and seed; a method's
figure is the median of these ratios over instances and seeds, as in search_efficiency.py.

Methods. `random`, `bertsweep-bayesian` (no stopping, 64 trials), `bertsweep-bayesian-asha`,
`bertsweep-bayesian-asha-primary` and `bertsweep-random-asha` are BertSweep specs with
`objectives: [eval_accuracy maximize, model_parameters minimize]`, driven through
`bertsweep.planner.plan()` after every report exactly as search_efficiency.py drives its own;
ASHA has the single-objective default's rungs (`Tuning`: 5, 15, 45 epochs, factor 3) and
ranks a rung by Pareto fronts (`rankBy: pareto`, MO-ASHA) or, `-primary`, by accuracy alone.
`optuna-motpe` (TPESampler) and `optuna-nsga2` (NSGAIISampler, population 50) are Optuna's
ask/tell loop with two directions, their defaults, no pruning, 64 trials, told the raw
parameter count as BertSweep's bayesian search is.

The pure parts (parameter count, reference point, hypervolume, target and cost arithmetic)
import neither YAHPO nor any sampler beyond what the project's own environment has, so
tests/unit/test_multi_objective_benchmark.py tests them there.

Usage (in the benchmark's environment, benchmarks/.venv; see README.md):

    benchmarks/.venv/bin/python benchmarks/multi_objective.py \
        --data ../shared/benchmarks/yahpo --instances 3945,7593 --seeds 5 --workers 4 \
        --json out/mo.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import optuna

import search_efficiency as se
import search_summary
from bertsweep import pareto
from bertsweep.api import (
    Objective,
    Report,
    Scalar,
    SweepSpec,
    TrialPhase,
    parse_spec,
)

EPOCHS = se.EPOCHS
BUDGET_TRIALS = se.BUDGET_TRIALS
BUDGET_EPOCHS = se.BUDGET_EPOCHS
ACCURACY = se.METRIC  # eval_accuracy
COST = "model_parameters"
OBJECTIVES: list[dict[str, str]] = [
    {"metric": ACCURACY, "goal": "maximize"},
    {"metric": COST, "goal": "minimize"},
]
# The widths YAHPO does not give (see the module docstring).
INPUT_WIDTH = 32
CLASSES = 2
REFERENCE_MARGIN = 0.1  # decades of parameters past the largest network
# A hypervolume is a sum of areas; a target equal to a run's own value must count as reached.
HV_SLACK = 1e-12

Point = tuple[float, ...]


# ---- Pure: the network's size, the plane, the hypervolume ----------------------------------


def hidden_widths(num_layers: int, max_units: int, inputs: int = INPUT_WIDTH,
                  classes: int = CLASSES) -> list[int]:  # fmt: skip
    """The hidden layers' widths of Auto-PyTorch's funnel MLP (get_shaped_neuron_counts with
    `funnel`): num_layers - 1 of them, from max(inputs, max_units) down by equal integer steps
    towards the output width."""
    if num_layers <= 1:
        return []
    top = max(inputs, max_units)
    step = max(0, int((top - classes) / (num_layers - 1)))
    return [top - k * step for k in range(num_layers - 1)]


def parameter_count(num_layers: int, max_units: int, inputs: int = INPUT_WIDTH,
                    classes: int = CLASSES) -> int:  # fmt: skip
    """Weights and biases of the funnel MLP: (fan_in + 1) * fan_out over its Linear layers."""
    widths = [inputs, *hidden_widths(num_layers, max_units, inputs, classes), classes]
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


def model_parameters(config: Mapping[str, Scalar]) -> float:
    """A configuration's `model_parameters` (num_layers and max_units are searched)."""
    return float(parameter_count(int(config["num_layers"]), int(config["max_units"])))


def space_bounds(name: str) -> tuple[int, int]:
    spec = next(p for p in se.SPACE if p["name"] == name)
    return int(spec["min"]), int(spec["max"])


def largest_parameter_count() -> int:
    """The largest count LCBench's space allows (every depth and width tried: the funnel's
    integer steps make it not quite monotone in the width)."""
    lo_layers, hi_layers = space_bounds("num_layers")
    lo_units, hi_units = space_bounds("max_units")
    return max(
        parameter_count(layers, units)
        for layers in range(lo_layers, hi_layers + 1)
        for units in range(lo_units, hi_units + 1)
    )


def objectives() -> list[Objective]:
    return [Objective.model_validate(o) for o in OBJECTIVES]


def plane_point(accuracy: float, parameters: float) -> Point:
    """A finished trial in the hypervolume's plane, signed to minimize on both axes:
    (-accuracy, log10 parameters)."""
    metrics = {ACCURACY: accuracy, COST: math.log10(parameters)}
    point: Point | None = pareto.signed(objectives(), metrics)
    assert point is not None
    return point


def reference_point(largest: int | None = None) -> Point:
    """Accuracy 0, and log10 of the largest count plus the margin (signed like the points)."""
    biggest = largest if largest is not None else largest_parameter_count()
    return (-0.0, math.log10(biggest) + REFERENCE_MARGIN)


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """The area the finished trials' non-dominated set dominates up to the reference."""
    front = [points[i] for i in pareto.non_dominated(points)]
    return float(pareto.hypervolume_2d(front, reference))


def fronts_2d(points: Sequence[Point]) -> list[int]:
    """`bertsweep.pareto.fronts` for two objectives in O(n log n + n * fronts), the same
    levels: a point's front is one past the highest front of the points dominating it. Points
    are taken in (first, second) order, so every point's dominators come before it, and front k
    dominates a point iff its least second coordinate so far is below the point's, or equal
    with a smaller first coordinate (an equal point dominates nothing). A front that dominates
    a point implies every lower front does, so the first that does not is its front."""
    order = sorted(range(len(points)), key=lambda i: points[i])
    lowest: list[tuple[float, float]] = []  # per front: least second coord, its first coord
    rank = [0] * len(points)
    for i in order:
        x, y = points[i]
        level = 0
        while level < len(lowest) and (
            lowest[level][0] < y or (lowest[level][0] == y and lowest[level][1] < x)
        ):
            level += 1
        rank[i] = level
        if level == len(lowest):
            lowest.append((y, x))
        elif y < lowest[level][0]:
            lowest[level] = (y, x)
    return rank


_OPERATOR_FRONTS = pareto.fronts


def _fronts(points: Sequence[Point]) -> list[int]:
    if points and all(len(p) == 2 for p in points):
        return fronts_2d(points)
    return list(_OPERATOR_FRONTS(points))


def use_fast_fronts() -> None:
    """Put `fronts_2d` in place of the operator's all-pairs non-dominated sorting for this
    process and the pool it forks. Only for speed: the levels are the same (the unit test
    checks them against the operator's on random points with ties), and with hundreds of
    trials at a rung the all-pairs sort took 80% of a run (250 of 320 s profiled), as ASHA
    sorts a rung on every pass."""
    pareto.fronts = _fronts


# ---- Pure: targets and costs ----------------------------------------------------------------


def target(full_hypervolumes: Sequence[float]) -> float:
    """An instance's target: the median over seeds of random search's hypervolume after its
    64 full trials."""
    return statistics.median(full_hypervolumes)


def first_reached(trace: Sequence[tuple[float, float, float]], goal: float
                  ) -> tuple[float, float] | None:  # fmt: skip
    """(epochs, wall) at the first trace entry (epochs spent, wall, hypervolume) at or above
    the goal; None for a miss."""
    for spent, wall, value in trace:
        if value >= goal - HV_SLACK:
            return spent, wall
    return None


def cost_ratios(reached: tuple[float, float] | None, base: tuple[float, float] | None,
                base_wall_at_budget: float) -> tuple[float, float]:  # fmt: skip
    """A run's (epochs, wall) cost over random search's on the same instance and seed; a miss
    (None) costs the whole budget: BUDGET_EPOCHS epochs, and random's wall time to spend it."""
    epochs, wall = reached if reached is not None else (None, None)
    base_epochs, base_wall = base if base is not None else (None, None)
    return (
        search_summary.over_random(epochs, base_epochs, BUDGET_EPOCHS),
        search_summary.over_random(wall, base_wall, base_wall_at_budget),
    )


def summary_row(ratios: Sequence[tuple[float, float]], misses: int) -> dict[str, float]:
    """One method's figures: median ratios and the share of runs that missed."""
    return {
        "epochs_ratio": round(statistics.median(r[0] for r in ratios), 4),
        "wall_ratio": round(statistics.median(r[1] for r in ratios), 4),
        "miss_rate": round(misses / len(ratios), 4),
    }


# ---- The simulated runs ---------------------------------------------------------------------


def mo_spec(algorithm: str, stopping: str, rank_by: str, seed: int, workers: int,
            tuning: se.Tuning) -> SweepSpec:  # fmt: skip
    """search_efficiency's spec for the same algorithm and rule, with the two objectives (and
    the rung ranking for ASHA) in place of its one."""
    wire = se.sweep_spec(algorithm, stopping, seed, workers, tuning).wire()
    wire.pop("objective", None)
    wire["objectives"] = OBJECTIVES
    if stopping == "asha":
        wire["earlyStopping"]["rankBy"] = rank_by
    return parse_spec(wire)


class BertSweepMulti(se.BertSweep):
    """search_efficiency's planner replay, every report carrying the trial's parameter count
    beside its accuracy (the trainer measures its costs before training, so every report has
    them, and a pruned trial's last metrics too)."""

    def on_report(self, sim: se.Simulation, key: str, epoch: int, value: float) -> None:
        t = self.records[key]
        metrics = {ACCURACY: value, COST: model_parameters(t.parameters)}
        report = Report(step=epoch * 100, epoch=float(epoch), metrics=metrics)
        update: dict[str, Any] = {"reports": [*t.reports, report]}
        if epoch == EPOCHS:
            update |= {"phase": TrialPhase.succeeded, "metrics": metrics}
        self.records[key] = t.model_copy(update=update)
        self._reconcile(sim)


class OptunaMulti:
    """Optuna's ask/tell with two directions, no pruning: a trial is told (accuracy, count)
    after its 52nd epoch."""

    def __init__(self, sampler: optuna.samplers.BaseSampler, workers: int) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        self.workers = workers
        self.distributions = se.optuna_distributions()
        self.live: dict[str, optuna.Trial] = {}

    def begin(self, sim: se.Simulation) -> None:
        self._fill(sim)

    def _fill(self, sim: se.Simulation) -> None:
        while len(self.live) < self.workers and len(self.study.trials) < BUDGET_TRIALS:
            trial = self.study.ask(self.distributions)
            key = f"t{trial.number}"
            self.live[key] = trial
            sim.start(key, dict(trial.params))

    def on_report(self, sim: se.Simulation, key: str, epoch: int, value: float) -> None:
        if epoch == EPOCHS:
            trial = self.live.pop(key)
            self.study.tell(trial, [value, model_parameters(trial.params)])
        self._fill(sim)


# name: (algorithm, stopping, rank_by) for BertSweep's specs.
BERTSWEEP: dict[str, tuple[str, str, str]] = {
    "random": ("random", "none", "pareto"),
    "bertsweep-bayesian": ("bayesian", "none", "pareto"),
    "bertsweep-bayesian-asha": ("bayesian", "asha", "pareto"),
    "bertsweep-bayesian-asha-primary": ("bayesian", "asha", "primary"),
    "bertsweep-random-asha": ("random", "asha", "pareto"),
}
METHODS = [
    "random",
    "optuna-motpe",
    "optuna-nsga2",
    "bertsweep-bayesian",
    "bertsweep-bayesian-asha",
    "bertsweep-bayesian-asha-primary",
    "bertsweep-random-asha",
]
DEFAULT_METHOD = "bertsweep-bayesian-asha"
# Random + ASHA is measured on request only: its runs cost as much as bayesian + ASHA's
# (about 45 s each on this machine) for a baseline the issue does not ask for.
DEFAULT_METHODS = [m for m in METHODS if m != "bertsweep-random-asha"]


def make_method(name: str, seed: int, workers: int, tuning: se.Tuning) -> se.Method:
    if name in BERTSWEEP:
        algorithm, stopping, rank_by = BERTSWEEP[name]
        return BertSweepMulti(mo_spec(algorithm, stopping, rank_by, seed, workers, tuning))
    if name == "optuna-motpe":
        return OptunaMulti(optuna.samplers.TPESampler(seed=seed), workers)
    if name == "optuna-nsga2":
        return OptunaMulti(optuna.samplers.NSGAIISampler(seed=seed), workers)
    raise ValueError(f"unknown method {name}")


@dataclass
class Outcome(se.Outcome):
    """search_efficiency's outcome, `best` being the hypervolume reached, and how many trials
    had finished (trained all 52 epochs) by then."""

    finished: int = 0


@dataclass
class CostedSimulation(se.Simulation):
    """search_efficiency's simulated cluster, noting each trial's parameter count as it
    starts (whichever method started it)."""

    costs: dict[str, float] = field(default_factory=dict)

    def start(self, key: str, config: dict[str, Scalar]) -> None:
        self.costs[key] = model_parameters(config)
        super().start(key, config)


def simulate(method: se.Method, data: str, instance: str, goal: float | None,
             reference: Point) -> Outcome:  # fmt: skip
    """Run a method until the hypervolume of its finished trials reaches `goal`, it spends the
    budget, or it has nothing left to run. Without a goal the run goes to the end and keeps its
    trace: (epochs spent, wall, hypervolume) at every trial's finish. The outcome's `best` is
    the hypervolume reached."""
    clock = time.perf_counter()
    sim = CostedSimulation(data, instance)
    method.begin(sim)
    finished: list[Point] = []
    volume = 0.0
    trace: list[tuple[float, float, float]] | None = [] if goal is None else None
    while (event := sim.next_report()) is not None:
        key, epoch, value = event
        spent = sim.consumed()
        if spent > BUDGET_EPOCHS + se.SLACK:
            break
        if epoch == EPOCHS:
            # Only a trial trained to the end counts: its last accuracy and its size.
            finished.append(plane_point(value, sim.costs[key]))
            volume = hypervolume(finished, reference)
            if trace is not None:
                trace.append((spent, sim.now, volume))
            if goal is not None and volume >= goal - HV_SLACK:
                return Outcome(
                    spent, sim.now, volume, math.nan, spent, sim.trials_started,
                    time.perf_counter() - clock, finished=len(finished),
                )  # fmt: skip
        method.on_report(sim, key, epoch, value)
    return Outcome(
        None, None, volume, sim.now, min(sim.consumed(), BUDGET_EPOCHS), sim.trials_started,
        time.perf_counter() - clock, trace, len(finished),
    )  # fmt: skip


@dataclass(frozen=True)
class Job:
    method: str
    instance: str
    seed: int
    workers: int
    data: str
    tuning: se.Tuning
    goal: float | None
    reference: Point


def run_job(job: Job) -> tuple[Job, Outcome]:
    method = make_method(job.method, job.seed, job.workers, job.tuning)
    return job, simulate(method, job.data, job.instance, job.goal, job.reference)


def run_all(jobs: Sequence[Job], processes: int, log: Callable[[str], None]
            ) -> list[tuple[Job, Outcome]]:  # fmt: skip
    """search_efficiency's pool: `processes` at once, one run a task."""
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
    return (
        f"{job.method:32s} {job.instance:>7s} seed {job.seed}: {reached:>14s}  hypervolume "
        f"{o.best:.4f}  trials {o.trials:4d} finished {o.finished:3d}  ({o.seconds:.1f}s)"
    )


def reached(o: Outcome) -> tuple[float, float] | None:
    if o.reached_epochs is None or o.reached_wall is None:
        return None
    return o.reached_epochs, o.reached_wall


def summarize(results: Sequence[tuple[Job, Outcome]],
              baseline: Mapping[tuple[str, int], Outcome]) -> dict[str, Any]:  # fmt: skip
    """Per method: median ratios to random search's cost, and the miss rate."""
    methods: dict[str, Any] = {}
    for name in METHODS:
        runs = [(j, o) for j, o in results if j.method == name]
        if not runs:
            continue
        ratios = []
        for job, o in runs:
            base = baseline[(job.instance, job.seed)]
            ratios.append(cost_ratios(reached(o), reached(base), base.wall_at_budget))
        methods[name] = summary_row(ratios, sum(o.reached_epochs is None for _, o in runs))
        # What limits a method that stops trials: how few it trains to the end.
        methods[name]["finished_trials"] = statistics.median(o.finished for _, o in runs)
    return methods


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # search_efficiency.py --mode multi-objective hands its whole command line over.
    parser.add_argument("--mode", choices=["multi-objective"], default="multi-objective")
    parser.add_argument("--data", required=True, help="folder holding lcbench/")
    parser.add_argument("--instances", default=se.DEV_INSTANCES, help="comma-separated task ids")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4, help="trials at once (parallelism)")
    parser.add_argument("--json", dest="json_out", help="write the figures here")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated")
    parser.add_argument("--asha-min-resource", type=float, default=se.Tuning.asha_min_resource)
    parser.add_argument(
        "--asha-reduction-factor", type=int, default=se.Tuning.asha_reduction_factor
    )
    parser.add_argument("--startup-trials", type=int, default=se.Tuning.startup_trials)
    parser.add_argument("--median-min-resource", type=float, default=se.Tuning.median_min_resource)
    parser.add_argument("--median-min-trials", type=int, default=se.Tuning.median_min_trials)
    parser.add_argument("--quiet", action="store_true", help="no line per run")
    args = parser.parse_args(argv)

    instances = [i.strip() for i in args.instances.split(",") if i.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods: {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    tuning = se.Tuning(
        asha_min_resource=args.asha_min_resource,
        asha_reduction_factor=args.asha_reduction_factor,
        startup_trials=args.startup_trials,
        median_min_resource=args.median_min_resource,
        median_min_trials=args.median_min_trials,
    )
    data = str(Path(args.data).resolve())
    se.configure_yahpo(data)
    use_fast_fronts()
    seeds = range(args.seeds)
    largest = largest_parameter_count()
    reference = reference_point(largest)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    started = time.perf_counter()
    # Random search without stopping first: it sets each instance's target.
    random_jobs = [
        Job("random", i, s, args.workers, data, tuning, None, reference)
        for i in instances
        for s in seeds
    ]
    random_runs = run_all(random_jobs, args.jobs, log)
    targets = {i: target([o.best for j, o in random_runs if j.instance == i]) for i in instances}
    baseline: dict[tuple[str, int], Outcome] = {}
    results: list[tuple[Job, Outcome]] = []
    for job, full in random_runs:
        # Random's cost to the target, read off its full run: a run looking for the target
        # would have made the same moves up to the finish that reached it.
        assert full.trace is not None
        hit = first_reached(full.trace, targets[job.instance])
        # At the target, its hypervolume and finished trials are those of the finish that
        # reached it.
        at = next((n for n, e in enumerate(full.trace) if hit and e[0] >= hit[0]), None)
        outcome = Outcome(
            hit[0] if hit else None, hit[1] if hit else None,
            full.trace[at][2] if at is not None else full.best, full.wall_at_budget,
            hit[0] if hit else full.epochs_spent, full.trials, full.seconds,
            finished=at + 1 if at is not None else full.finished,
        )  # fmt: skip
        baseline[(job.instance, job.seed)] = outcome
        if "random" in methods:
            results.append((Job("random", job.instance, job.seed, args.workers, data, tuning,
                                targets[job.instance], reference), outcome))  # fmt: skip
    others = [
        Job(m, i, s, args.workers, data, tuning, targets[i], reference)
        for m in methods
        if m != "random"
        for i in instances
        for s in seeds
    ]
    results += run_all(others, args.jobs, log)

    summary: dict[str, Any] = {
        "methods": summarize(results, baseline),
        "default": DEFAULT_METHOD,
        "settings": {
            "mode": "multi-objective",
            "instances": instances,
            "seeds": args.seeds,
            "workers": args.workers,
            "budget_epochs": BUDGET_EPOCHS,
            "tuning": tuning.__dict__,
            "objectives": OBJECTIVES,
            "input_width": INPUT_WIDTH,
            "classes": CLASSES,
            "largest_parameters": largest,
            "reference": list(reference),
            "targets": targets,
            "seconds": round(time.perf_counter() - started, 1),
        },
        # "best" is the hypervolume a run reached (at the target, or at the end for a miss).
        "runs": [
            {
                "method": j.method,
                "instance": j.instance,
                "seed": j.seed,
                "epochs": None if o.reached_epochs is None else round(o.reached_epochs, 2),
                "wall": None if o.reached_wall is None else round(o.reached_wall, 1),
                "best": round(o.best, 5),
                "trials": o.trials,
                "finished": o.finished,
            }
            for j, o in results
        ],
    }
    print(f"\n{'method':34s} {'epochs_ratio':>12s} {'wall_ratio':>11s} {'miss_rate':>10s}")
    for name, m in summary["methods"].items():
        print(
            f"{name:34s} {m['epochs_ratio']:12.3f} {m['wall_ratio']:11.3f} {m['miss_rate']:10.0%}"
        )
    print(f"({summary['settings']['seconds']} s)")
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
