"""Warm start: how much training BertSweep's default saves when it starts from an earlier sweep.

On each LCBench instance and seed, three runs of BertSweep's default (bayesian search with
ASHA, `search_efficiency.sweep_spec`), all through `bertsweep.planner.plan()` on the simulated
clock of search_efficiency.py (its `Simulation`, budget, and targets):

- the earlier sweep: seed + 1000, run to its end with no target: the whole budget (64 x 52
  epochs), as a sweep that ran its course, or the share `--earlier-budget` says (0.1: a short
  sweep, which mostly ends before it reaches the target). Its trials still running when it
  ends are recorded Pruned, as `plan()` records the trials a sweep's end stops.
- cold: seed, until a report reaches the instance's target (search_efficiency's: the median
  over seeds of the best that random search reaches within the budget).
- warm: the same seed and target, with `spec.warmStart` naming the earlier sweep: its records
  go through `warm.warm_history()` (the code the operator and the local runner use) and the
  resulting history through `plan(history=...)`.

Each run's cost is the epochs its own trials consumed until the first report at or above the
target (a miss costs the whole budget); the earlier sweep's epochs are not counted (they were
spent already, by whoever ran it). The figure is the median over instances and seeds of warm's
epochs over cold's on the same instance and seed; the median of each and the miss rates are
printed beside it, and how many earlier sweeps reached the target themselves.

Usage (the search benchmark's environment, `make benchmarks/.venv/.setup-stamp`):

    benchmarks/.venv/bin/python benchmarks/warm_start.py --data ../shared/benchmarks/yahpo \
        --seeds 10 --jobs 1 --json out/warm_start.json [--earlier-budget 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_efficiency as se
from bertsweep.api import SweepSpec, Trial, TrialPhase, WarmStart
from bertsweep.contract import Reason
from bertsweep.planner import plan
from bertsweep.warm import EarlierSweep, warm_history

EARLIER = "earlier"
EARLIER_SEED_OFFSET = 1000
WORKERS = 4


def default_spec(seed: int, workers: int, tuning: se.Tuning) -> SweepSpec:
    """BertSweep's default method as search_efficiency.py runs it."""
    return se.sweep_spec("bayesian", "asha", seed, workers, tuning)


class WarmBertSweep(se.BertSweep):
    """search_efficiency's BertSweep, with an earlier sweep's trials as `plan()`'s history."""

    def __init__(self, spec: SweepSpec, history: Sequence[Trial]) -> None:
        super().__init__(spec)
        self.history = list(history)

    def _reconcile(self, sim: se.Simulation) -> None:
        now = se.CLOCK_ORIGIN + timedelta(seconds=sim.now)
        p = plan(se.SWEEP, self.spec, list(self.records.values()), now, history=self.history)
        for name in [*p.prune, *p.stop]:
            t = self.records[name]
            last = t.reports[-1].metrics if t.reports else {}
            self.records[name] = t.model_copy(update={"phase": TrialPhase.pruned, "metrics": last})
            sim.stop(name)
        for t in p.create:
            self.records[t.name] = t.model_copy(update={"phase": TrialPhase.running})
            sim.start(t.name, t.parameters)


def ended(records: Sequence[Trial]) -> list[Trial]:
    """An earlier sweep's records once it has ended: what still ran is stopped (Pruned,
    SweepEnded), with its last report's metrics, as the planner ends a sweep."""
    return [
        t.model_copy(
            update={
                "phase": TrialPhase.pruned,
                "reason": Reason.sweep_ended,
                "metrics": t.reports[-1].metrics if t.reports else {},
            }
        )
        if t.phase.active
        else t
        for t in records
    ]


def run_for(method: se.Method, data: str, instance: str, epochs: float) -> None:
    """Run a method until it has spent `epochs` (as `se.simulate` spends its budget)."""
    sim = se.Simulation(data, instance)
    method.begin(sim)
    while (event := sim.next_report()) is not None:
        if sim.consumed() > epochs + se.SLACK:
            return
        method.on_report(sim, *event)


def earlier_trials(
    data: str, instance: str, seed: int, workers: int, tuning: se.Tuning, budget: float = 1.0
) -> list[Trial]:
    """The records of the earlier sweep: the default with another seed, run until it has
    spent `budget` of the whole budget's epochs."""
    method = se.BertSweep(default_spec(seed + EARLIER_SEED_OFFSET, workers, tuning))
    run_for(method, data, instance, budget * se.BUDGET_EPOCHS)
    return ended(list(method.records.values()))


def warm_method(
    spec: SweepSpec, earlier_spec: SweepSpec, records: Sequence[Trial]
) -> WarmBertSweep:
    """The default, warm-started from the earlier sweep's records through `warm_history`."""
    warm_spec = spec.model_copy(update={"warm_start": WarmStart(sweeps=[EARLIER])})
    history = warm_history(se.SWEEP, warm_spec, [EarlierSweep(EARLIER, earlier_spec, records)])
    return WarmBertSweep(warm_spec, history.trials)


@dataclass(frozen=True)
class Job:
    instance: str
    seed: int
    workers: int
    data: str
    tuning: se.Tuning
    target: float
    earlier_budget: float = 1.0


def run_job(job: Job) -> dict[str, Any]:
    """The earlier, cold and warm runs of one instance and seed."""
    clock = time.perf_counter()
    records = earlier_trials(
        job.data, job.instance, job.seed, job.workers, job.tuning, job.earlier_budget
    )
    earlier_spec = default_spec(job.seed + EARLIER_SEED_OFFSET, job.workers, job.tuning)
    spec = default_spec(job.seed, job.workers, job.tuning)
    cold = se.simulate(se.BertSweep(spec), job.data, job.instance, job.target)
    warm = warm_method(spec, earlier_spec, records)
    used = len(warm.history)
    outcome = se.simulate(warm, job.data, job.instance, job.target)
    return {
        "instance": job.instance,
        "seed": job.seed,
        "target": job.target,
        "earlier_trials": len(records),
        "earlier_used": used,
        "earlier_best": max(
            (max((r.metrics[se.METRIC] for r in t.reports), default=0.0) for t in records),
            default=0.0,
        ),
        "cold_epochs": cold.reached_epochs,
        "warm_epochs": outcome.reached_epochs,
        "cold_trials": cold.trials,
        "warm_trials": outcome.trials,
        "seconds": round(time.perf_counter() - clock, 1),
    }


def cost(epochs: float | None) -> float:
    """Epochs to the target; a miss costs the whole budget."""
    return se.BUDGET_EPOCHS if epochs is None else epochs


def summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The figures: warm over cold, overall and per instance."""

    def figures(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        ratios = [cost(r["warm_epochs"]) / cost(r["cold_epochs"]) for r in rows]
        return {
            "runs": len(rows),
            "warm_over_cold": round(statistics.median(ratios), 3),
            "warm_over_cold_mean": round(statistics.fmean(ratios), 3),
            "warm_better": round(sum(x < 1 for x in ratios) / len(ratios), 3),
            "cold_epochs": round(statistics.median(cost(r["cold_epochs"]) for r in rows), 1),
            "warm_epochs": round(statistics.median(cost(r["warm_epochs"]) for r in rows), 1),
            "cold_misses": sum(r["cold_epochs"] is None for r in rows),
            "warm_misses": sum(r["warm_epochs"] is None for r in rows),
            "earlier_reached": sum(r["earlier_best"] >= r["target"] for r in rows),
        }

    instances = sorted({r["instance"] for r in runs}, key=int)
    return {
        "overall": figures(runs),
        "instances": {i: figures([r for r in runs if r["instance"] == i]) for i in instances},
    }


def print_summary(result: dict[str, Any]) -> None:
    columns = [
        "warm_over_cold",
        "cold_epochs",
        "warm_epochs",
        "cold_misses",
        "warm_misses",
        "earlier_reached",
    ]
    print("| instance | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    rows = [*result["instances"].items(), ("**all**", result["overall"])]
    for name, f in rows:
        print(f"| {name} | " + " | ".join(str(f[c]) for c in columns) + " |")


def run_all(
    jobs: Sequence[Job], processes: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    def line(r: dict[str, Any]) -> str:
        def shown(e: float | None) -> str:
            return "miss" if e is None else f"{e:7.1f}"

        return (
            f"{r['instance']:>7s} seed {r['seed']}: cold {shown(r['cold_epochs'])}  warm "
            f"{shown(r['warm_epochs'])} epochs  (earlier: {r['earlier_used']} of "
            f"{r['earlier_trials']} trials used; {r['seconds']}s)"
        )

    results: list[dict[str, Any]] = []
    if processes <= 1:
        for job in jobs:
            results.append(run_job(job))
            log(line(results[-1]))
        return results
    with ProcessPoolExecutor(max_workers=processes) as pool:
        for result in pool.map(run_job, jobs, chunksize=1):
            results.append(result)
            log(line(result))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder holding lcbench/")
    parser.add_argument("--instances", default=se.DEV_INSTANCES, help="comma-separated task ids")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=WORKERS, help="trials at once")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--json", dest="json_out", help="write the figures here")
    parser.add_argument(
        "--earlier-budget",
        type=float,
        default=1.0,
        help="the share of the budget the earlier sweep spends (default 1: the whole budget)",
    )
    parser.add_argument("--quiet", action="store_true", help="no line per run")
    args = parser.parse_args(argv)
    if not 0 < args.earlier_budget <= 1:
        parser.error("--earlier-budget is a share of the budget: more than 0, at most 1")

    instances = [i.strip() for i in args.instances.split(",") if i.strip()]
    data = str(Path(args.data).resolve())
    se.configure_yahpo(data)
    tuning = se.Tuning()
    seeds = range(args.seeds)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    started = time.perf_counter()
    # The targets as search_efficiency.py sets them: random search's median best per instance.
    random_jobs = [
        se.Job("random", i, s, args.workers, data, tuning, None) for i in instances for s in seeds
    ]
    random_runs = se.run_all(random_jobs, args.jobs, log)
    targets = {
        i: statistics.median(o.best for j, o in random_runs if j.instance == i) for i in instances
    }
    jobs = [
        Job(i, s, args.workers, data, tuning, targets[i], args.earlier_budget)
        for i in instances
        for s in seeds
    ]
    runs = run_all(jobs, args.jobs, log)
    result = {
        **summary(runs),
        "settings": {
            "instances": instances,
            "seeds": args.seeds,
            "workers": args.workers,
            "budget_epochs": se.BUDGET_EPOCHS,
            "earlier_seed_offset": EARLIER_SEED_OFFSET,
            "earlier_budget": args.earlier_budget,
            "tuning": tuning.__dict__,
            "targets": targets,
            "seconds": round(time.perf_counter() - started, 1),
        },
        "runs": runs,
    }
    print_summary(result)
    print(f"({result['settings']['seconds']} s)")
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
