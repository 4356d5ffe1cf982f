"""The one protocol every search strategy implements: ask, given the whole trial history.

There is no `tell` method and no state between calls: the history *is* what a strategy has
been told. A restarted operator therefore continues a sweep exactly where it stood, from the
trial records the cluster holds, and the same seed and history always give the same proposal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bertsweep.api import Scalar, SweepSpec, Trial

Configuration = dict[str, Scalar]


class Strategy(Protocol):
    def ask(self, history: Sequence[Trial], n: int) -> list[Configuration]:
        """Propose up to `n` new configurations, given every trial created so far (active
        ones included, so that parallel proposals differ). Fewer than `n` means the search
        space has nothing more to offer (only a finite grid ever does that)."""
        ...


def make_strategy(spec: SweepSpec) -> Strategy:
    """The strategy a spec asks for."""
    raise NotImplementedError  # filled in by search/grid.py, random.py, bayesian.py
