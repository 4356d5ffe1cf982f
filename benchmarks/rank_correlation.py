"""How well a rung ranks trials: raw value against ASHA's projection, on LCBench's curves.

For 2,000 random configurations per development instance (the search benchmark's space), the
Spearman rank correlation with the final (epoch 52) val_accuracy of, at epoch 6, the value and
the projection v(6) + (v(6) - v(4)), among the configurations in the top third at epoch 6 (those
ASHA keeps); and at epoch 18, v(18) against v(18) + (v(18) - v(12)), among those also in the top
third of that set at epoch 18. These are the figures docs/early-stopping.md cites.

    benchmarks/.venv/bin/python benchmarks/rank_correlation.py --data ../shared/benchmarks/yahpo
"""

from __future__ import annotations

import argparse
import math
import random

import numpy as np

import search_efficiency as se
from bertsweep.api import Scalar


def sample(rng: random.Random) -> dict[str, Scalar]:
    config: dict[str, Scalar] = {}
    for p in se.SPACE:
        lo, hi = p["min"], p["max"]
        if p.get("scale") == "log":
            v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        else:
            v = rng.uniform(lo, hi)
        config[p["name"]] = round(v) if p["type"] == "int" else v
    return config


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder holding lcbench/")
    parser.add_argument("--instances", default=se.DEV_INSTANCES)
    parser.add_argument("--configs", type=int, default=2000)
    args = parser.parse_args()
    se.configure_yahpo(args.data)
    epochs = [*range(1, 19), 52]
    print("instance   epoch 6: value -> projected   epoch 18: value -> projected")
    for instance in args.instances.split(","):
        bench = se.surrogate(args.data, instance)
        rng = random.Random(3)
        configs = [sample(rng) for _ in range(args.configs)]
        rows = bench.objective_function(
            [{**c, "OpenML_task_id": instance, "epoch": e} for c in configs for e in epochs]
        )
        acc = np.array([r["val_accuracy"] for r in rows]).reshape(len(configs), len(epochs))
        final, v4, v6, v12, v18 = acc[:, -1], acc[:, 3], acc[:, 5], acc[:, 11], acc[:, 17]
        kept6 = v6 >= np.quantile(v6, 2 / 3)
        kept18 = kept6 & (v18 >= np.quantile(v18[kept6], 2 / 3))
        p6, p18 = v6 + (v6 - v4), v18 + (v18 - v12)
        print(
            f"{instance:>8}   {spearman(v6[kept6], final[kept6]):+.2f} -> "
            f"{spearman(p6[kept6], final[kept6]):+.2f}"
            f"                {spearman(v18[kept18], final[kept18]):+.2f} -> "
            f"{spearman(p18[kept18], final[kept18]):+.2f}"
        )


if __name__ == "__main__":
    main()
