"""Search strategies (grid, random, bayesian) behind one ask-only protocol."""

from bertsweep.search.base import Configuration, Strategy, make_strategy

__all__ = ["Configuration", "Strategy", "make_strategy"]
