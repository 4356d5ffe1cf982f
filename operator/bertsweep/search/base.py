"""The one protocol every search strategy implements: ask, given the whole trial history.

There is no `tell` method and no state between calls: the history *is* what a strategy has
been told. A restarted operator therefore continues a sweep exactly where it stood, from the
trial records the cluster holds, and the same seed and history always give the same proposal.
A proposal is asked for a trial index, and depends on the seed and that index (and, for a
model-based search, on the history), never on how many records exist: a record deleted by
hand changes nothing that is proposed after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bertsweep.api import Scalar, Trial

Configuration = dict[str, Scalar]


class Strategy(Protocol):
    def ask(self, history: Sequence[Trial], indices: Sequence[int]) -> list[Configuration]:
        """Propose the configurations of the new trials with these indices, in order, given
        every trial created so far (active ones included, so that parallel proposals differ).
        Fewer than asked means the search space has nothing more to offer (only a finite grid
        ever does that)."""
        ...
