"""The search benchmark with ASHA in two brackets (asynchronous Hyperband), a variant measured
and not kept (docs/early-stopping.md, "One bracket"): every other trial, by index, goes to a
second bracket that shares the records of the common rungs.

- `--bracket early`: the second bracket has one more rung, at minResource / reductionFactor,
  where its trials are ranked among themselves (the breadth the winning peers have).
- `--bracket late`: the second bracket skips the first rung and is judged first at
  minResource * reductionFactor, and it takes no part in the first rung's record.

Every other argument goes to search_efficiency.py, whose methods then run with the patched rule:

    benchmarks/.venv/bin/python benchmarks/asha_brackets.py --bracket early \\
        --data ../shared/benchmarks/yahpo --instances $DEV --seeds 20 \\
        --methods random,bertsweep-bayesian-asha --json out/brackets-early.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_efficiency
from bertsweep.api import SweepSpec, Trial
from bertsweep.stopping import Curve, asha, asha_rungs
from bertsweep.stopping.curves import SLACK

Rule = Callable[[SweepSpec, Sequence[Trial], Mapping[str, Curve]], dict[str, str]]


def in_second_bracket(name: str) -> bool:
    """Every other trial, by the index its name ends with."""
    return int(name.rsplit("-", 1)[1]) % 2 == 1


def early(one_bracket: Rule) -> Rule:
    def rule(
        spec: SweepSpec, running: Sequence[Trial], curves: Mapping[str, Curve]
    ) -> dict[str, str]:
        stopping = spec.early_stopping
        extra = stopping.min_resource / stopping.reduction_factor
        # Trials of the second bracket between its extra rung and the common first rung.
        before = [
            t
            for t in running
            if in_second_bracket(t.name)
            and curves[t.name].resources[-1] + SLACK >= extra
            and not asha_rungs(spec, curves[t.name].resources[-1])
        ]
        lower = spec.model_copy(
            update={"early_stopping": stopping.model_copy(update={"min_resource": extra})}
        )
        second = {name: c for name, c in curves.items() if in_second_bracket(name)}
        return {
            **one_bracket(lower, before, second),
            **one_bracket(spec, [t for t in running if t not in before], curves),
        }

    return rule


def late(one_bracket: Rule) -> Rule:
    def rule(
        spec: SweepSpec, running: Sequence[Trial], curves: Mapping[str, Curve]
    ) -> dict[str, str]:
        stopping = spec.early_stopping
        second_rung = stopping.min_resource * stopping.reduction_factor
        first = [t for t in running if curves[t.name].resources[-1] + SLACK < second_rung]
        first_bracket = {n: c for n, c in curves.items() if not in_second_bracket(n)}
        return {
            **one_bracket(spec, [t for t in first if not in_second_bracket(t.name)], first_bracket),
            **one_bracket(spec, [t for t in running if t not in first], curves),
        }

    return rule


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bracket", choices=["early", "late"], required=True)
    args, rest = parser.parse_known_args(argv)
    # The one-bracket rule is a private function of asha.py: patched in place for this run.
    asha._asha = (early if args.bracket == "early" else late)(asha._asha)
    return search_efficiency.main(rest)


if __name__ == "__main__":
    sys.exit(main())
