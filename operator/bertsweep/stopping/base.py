"""The one protocol every early-stopping rule implements: which running trials to stop now.

A rule is a pure function of the spec and the trial records. The operator may restart at any
moment and replays it on every pass, so no rule keeps memory of its own: all it knows is what
the records hold (each trial's reports, oldest first, and its phase). It only ever stops a
trial on evidence present in the records, and gives the same verdicts whenever it is replayed
on the same records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from bertsweep.api import Trial
from bertsweep.stopping.curves import Curve


class StoppingRule(Protocol):
    def verdicts(
        self, trials: Sequence[Trial], curves: Mapping[str, Curve], running: Sequence[Trial]
    ) -> dict[str, str]:
        """The trials among `running` (each has at least one report) to stop now, each with a
        readable verdict. `trials` are all of the sweep's records and `curves` their
        objective curves, by trial name."""
        ...
