"""Search strategies (grid, random, bayesian) behind one ask-only protocol (`base.Strategy`)."""

from __future__ import annotations

from bertsweep.api import AlgorithmName, SweepSpec
from bertsweep.search.base import Configuration, Strategy
from bertsweep.search.grid import GridStrategy
from bertsweep.search.random import RandomStrategy

__all__ = ["Configuration", "Strategy", "make_strategy"]


def make_strategy(spec: SweepSpec) -> Strategy:
    """The strategy a spec asks for."""
    name = spec.algorithm.name
    if name is AlgorithmName.grid:
        return GridStrategy(spec)
    if name is AlgorithmName.random:
        return RandomStrategy(spec)
    if name is AlgorithmName.bayesian:
        # Imported only when asked for: Optuna takes about a second to import, which a grid or
        # random sweep (and `bertsweep validate`) need not wait for.
        from bertsweep.search.bayesian import BayesianStrategy

        return BayesianStrategy(spec)
    raise ValueError(f"unknown search algorithm {name!r}")  # pragma: no cover (enum is closed)
