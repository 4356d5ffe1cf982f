"""The search-efficiency benchmark's tables, from its per-run records.

Each record is one run of one method on one instance and seed, with its costs to the target
already divided by random search's on the same instance and seed (`epochs_ratio`,
`wall_ratio`; a miss costs the whole budget, see search_efficiency.py) and `epochs` None for a
miss. The tables are medians of those ratios. Because the records are in the benchmark's JSON,
runs made in several invocations (with the same seeds and workers, over the same instances,
hence the same random-search baseline and targets, or over others) can be merged and tabled
again:

    python benchmarks/search_summary.py out/a.json out/b.json --json out/merged.json

A run stopped before it wrote its JSON (a peer that turned out to take hours) leaves its log: one
line per finished run. `--log LOG` adds those runs, their costs divided by random search's in the
JSON given (same instances and seeds): the epochs always, the wall time when the log has it
(logs written since it was added to the line, with random search's own full runs in the same
log, whose wall time is the time it took to spend the budget).

No third-party import: this runs in any Python 3.11.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_METHOD = "bertsweep-bayesian-asha"
# Methods that are not BertSweep's: Optuna's own loop and the peer libraries (peers.py).
PEER_METHODS = [
    "optuna-tpe",
    "optuna-tpe-hyperband",
    "smac-mf",
    "dehb",
    "synetune-asha",
    "synetune-bohb",
    "synetune-asha-bore",
    "synetune-asha-cqr",
    "hpbandster-bohb",
]
# The bars for BertSweep's default on the held-out instances: at most this share of
# the best peer's epochs, of random search's (today's figure), runs missed, and times the best
# peer's epochs on any one instance.
BARS = {"vs_best_peer": 0.7, "epochs_ratio": 0.18, "miss_rate": 0.05, "instance_ratio": 1.5}

Record = Mapping[str, Any]


def charged(cost: float | None, at_budget: float) -> float:
    """What a run cost: a miss (None) costs what spending the whole budget does (`at_budget`:
    its epochs, or random search's wall time to spend them)."""
    return at_budget if cost is None else cost


def over_random(cost: float | None, base: float | None, at_budget: float) -> float:
    """A run's cost over random search's on the same instance and seed (`charged`, both)."""
    return charged(cost, at_budget) / charged(base, at_budget)


def methods_table(records: Sequence[Record], order: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per method (in `order`, those present): median ratios to random search's cost, and the
    share of runs that missed the target."""
    out: dict[str, dict[str, Any]] = {}
    for name in order:
        runs = [r for r in records if r["method"] == name]
        if not runs:
            continue
        walls = [r["wall_ratio"] for r in runs if r.get("wall_ratio") is not None]
        out[name] = {
            "epochs_ratio": round(statistics.median(r["epochs_ratio"] for r in runs), 4),
            # None when some runs' wall time is unknown (recovered from a log without it).
            "wall_ratio": round(statistics.median(walls), 4) if len(walls) == len(runs) else None,
            "miss_rate": round(sum(r["epochs"] is None for r in runs) / len(runs), 4),
            "runs": len(runs),
        }
    return out


def per_instance(
    records: Sequence[Record],
    budget_epochs: float,
    default: str = DEFAULT_METHOD,
    peers: Sequence[str] = PEER_METHODS,
) -> list[dict[str, Any]]:
    """Per instance, two ways of setting the default against the best peer there (above 1: the
    default spent more):

    - `ratio`: the medians over seeds of each method's epochs ratio to random search's (the
      issue's figure, as the tables over instances are); the best peer is the one with the
      lowest median there.
    - `epochs_ratio`: the default's median epochs to the target over the best peer's (lowest
      median epochs; a miss costs the budget). Within one instance nothing needs random
      search's scale, and a method's seed s has nothing to do with random search's seed s:
      dividing each run by that one adds random search's spread to both methods' medians.
    """
    instances = list(dict.fromkeys(r["instance"] for r in records))
    rows: list[dict[str, Any]] = []
    for instance in instances:
        here = [r for r in records if r["instance"] == instance]
        by_method = {
            name: runs
            for name in [default, *peers]
            if (runs := [r for r in here if r["method"] == name])
        }
        present = [name for name in by_method if name != default]
        if default not in by_method or not present:
            continue
        medians = {
            name: statistics.median(r["epochs_ratio"] for r in runs)
            for name, runs in by_method.items()
        }
        epochs = {
            name: statistics.median(charged(r["epochs"], budget_epochs) for r in runs)
            for name, runs in by_method.items()
        }
        best = min(present, key=lambda name: medians[name])
        fewest = min(present, key=lambda name: epochs[name])
        rows.append(
            {
                "instance": instance,
                "default": round(medians[default], 4),
                "best_peer": best,
                "best_peer_epochs_ratio": round(medians[best], 4),
                "ratio": round(medians[default] / medians[best], 3),
                "peers": {name: round(medians[name], 4) for name in present},
                "epochs": {name: round(v, 1) for name, v in epochs.items()},
                "fewest_epochs_peer": fewest,
                "epochs_ratio": round(epochs[default] / epochs[fewest], 3),
            }
        )
    return rows


def goals(
    methods: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
    default: str = DEFAULT_METHOD, peers: Sequence[str] = PEER_METHODS,
) -> dict[str, Any]:  # fmt: skip
    """The default's figures against the issue's bars (meaningful on the held-out instances)."""
    present = [p for p in peers if p in methods]
    if default not in methods or not present:
        return {}
    best = min(present, key=lambda name: methods[name]["epochs_ratio"])
    worst = max(rows, key=lambda row: row["ratio"]) if rows else None
    worst_in_epochs = max(rows, key=lambda row: row["epochs_ratio"]) if rows else None
    figures = {
        "vs_best_peer": round(methods[default]["epochs_ratio"] / methods[best]["epochs_ratio"], 3),
        "epochs_ratio": methods[default]["epochs_ratio"],
        "miss_rate": methods[default]["miss_rate"],
        "instance_ratio": worst["ratio"] if worst else None,
    }
    return {
        "best_peer": best,
        "worst_instance": worst["instance"] if worst else None,
        # The same bar on each instance's median epochs (per_instance says why both).
        "worst_instance_in_epochs": worst_in_epochs["instance"] if worst_in_epochs else None,
        "instance_epochs_ratio": worst_in_epochs["epochs_ratio"] if worst_in_epochs else None,
        **figures,
        "bars": BARS,
        "met": {k: v is not None and v <= BARS[k] for k, v in figures.items()},
    }


def tables(records: Sequence[Record], order: Sequence[str], budget_epochs: float) -> dict[str, Any]:
    """Every table the benchmark reports, from its records."""
    methods = methods_table(records, order)
    rows = per_instance(records, budget_epochs)
    return {"methods": methods, "per_instance": rows, "goals": goals(methods, rows)}


def print_tables(summary: Mapping[str, Any]) -> None:
    print(f"\n{'method':28s} {'epochs_ratio':>12s} {'wall_ratio':>11s} {'miss_rate':>10s}")
    for name, m in summary["methods"].items():
        wall = "-" if m["wall_ratio"] is None else f"{m['wall_ratio']:.3f}"
        print(f"{name:28s} {m['epochs_ratio']:12.3f} {wall:>11s} {m['miss_rate']:10.0%}")
    if summary.get("per_instance"):
        print(f"\n{'instance':>9s} {'default':>8s} {'best peer':>22s} {'its ratio':>9s} "
              f"{'default/best':>12s} {'in epochs: fewest':>22s} "
              f"{'default/fewest':>14s}")  # fmt: skip
        for row in summary["per_instance"]:
            print(
                f"{row['instance']:>9s} {row['default']:8.3f} {row['best_peer']:>22s} "
                f"{row['best_peer_epochs_ratio']:9.3f} {row['ratio']:12.2f} "
                f"{row['fewest_epochs_peer']:>22s} {row['epochs_ratio']:14.2f}"
            )
    g = summary.get("goals")
    if g:
        print(
            f"\ndefault vs best peer ({g['best_peer']}): {g['vs_best_peer']:.2f}x epochs; "
            f"{g['epochs_ratio']:.3f} of random's; misses {g['miss_rate']:.1%}; worst instance "
            f"{g['worst_instance']} at {g['instance_ratio']:.2f}x the best peer there; in "
            f"median epochs {g['worst_instance_in_epochs']} at {g['instance_epochs_ratio']:.2f}x"
        )


_RUN_LINE = re.compile(
    r"^(?P<method>\S+)\s+(?P<instance>\S+) seed (?P<seed>\d+):\s+(?:(?P<epochs>[\d.]+) epochs|miss)"
    r".*?(?:wall\s+(?P<wall>[\d.]+))?\s+\([\d.]+s\)$"
)


def records_from_log(
    lines: Sequence[str], baseline: Sequence[Record], budget_epochs: float
) -> list[dict[str, Any]]:
    """The runs a search_efficiency.py log lists (one line each), as records: costs divided by
    random search's run on the same instance and seed in `baseline` (a JSON's records). The
    log's own random-search lines are full runs (the baseline's are read off them) and give
    only their wall time at the budget, what a miss costs in wall time."""
    base = {(r["instance"], r["seed"]): r for r in baseline if r["method"] == "random"}
    parsed = [m.groupdict() for line in lines if (m := _RUN_LINE.match(line.rstrip("\n")))]
    budget_wall = {
        (p["instance"], int(p["seed"])): float(p["wall"])
        for p in parsed
        if p["method"] == "random" and p["wall"] is not None
    }
    records: list[dict[str, Any]] = []
    for p in parsed:
        key = (p["instance"], int(p["seed"]))
        if p["method"] == "random" or key not in base:
            continue
        b = base[key]
        epochs = None if p["epochs"] is None else float(p["epochs"])
        # Wall times may be unknown here (older logs), so not over_random's rule alone.
        at_budget = budget_wall.get(key)
        line_wall = None if p["wall"] is None else float(p["wall"])
        wall = at_budget if epochs is None else line_wall
        base_wall = b["wall"] if b["wall"] is not None else at_budget
        records.append(
            {
                "method": p["method"],
                "instance": key[0],
                "seed": key[1],
                "epochs": epochs,
                "wall": wall if epochs is not None else None,
                "epochs_ratio": round(over_random(epochs, b["epochs"], budget_epochs), 6),
                "wall_ratio": None
                if wall is None or base_wall is None
                else round(wall / base_wall, 6),
            }
        )
    return records


def merge(summaries: Sequence[Mapping[str, Any]], order: Sequence[str]) -> dict[str, Any]:
    """One summary from several invocations with the same seeds and workers, over the same
    instances or other ones (a run repeated in a later file replaces the earlier one). An
    instance in two invocations must have had the same target in both."""
    first = summaries[0]["settings"]
    targets = dict(first["targets"])
    for s in summaries[1:]:
        for key in ("seeds", "workers"):
            if s["settings"][key] != first[key]:
                raise ValueError(f"cannot merge runs with different {key}")
        for instance, target in s["settings"]["targets"].items():
            if targets.setdefault(instance, target) != target:
                raise ValueError(f"cannot merge runs with different targets on {instance}")
    instances = list(dict.fromkeys(i for s in summaries for i in s["settings"]["instances"]))
    runs: dict[tuple[str, str, int], Record] = {}
    for s in summaries:
        for r in s["runs"]:
            runs[(r["method"], r["instance"], r["seed"])] = r
    records = list(runs.values())
    seconds = sum(s["settings"].get("seconds", 0.0) for s in summaries)
    known = [*order, *sorted({r["method"] for r in records} - set(order))]
    return {
        **tables(records, known, first["budget_epochs"]),
        "default": DEFAULT_METHOD,
        "settings": {
            **first,
            "instances": instances,
            "targets": targets,
            "seconds": round(seconds, 1),
        },
        "runs": records,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Table (and merge) search-efficiency JSON.")
    parser.add_argument("files", nargs="+", help="JSON written by search_efficiency.py --json")
    parser.add_argument("--json", dest="json_out", help="write the merged figures here")
    parser.add_argument(
        "--log",
        action="append",
        default=[],
        help="a log of an invocation stopped before its JSON (same instances and seeds): its "
        "runs are added, against the first JSON's random search",
    )
    args = parser.parse_args(argv)
    summaries = [json.loads(Path(f).read_text()) for f in args.files]
    for log in args.log:
        first = summaries[0]
        runs = records_from_log(
            Path(log).read_text().splitlines(), first["runs"], first["settings"]["budget_epochs"]
        )
        methods = list(dict.fromkeys(r["method"] for r in runs))
        settings = {**first["settings"], "seconds": 0.0}
        summaries.append({"methods": dict.fromkeys(methods), "settings": settings, "runs": runs})
    order = list(dict.fromkeys(m for s in summaries for m in s["methods"]))
    merged = merge(summaries, order)
    print_tables(merged)
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(merged, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
