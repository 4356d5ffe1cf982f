"""Early-stopping rules: which running trials are hopeless, judged from everyone's reports."""

from __future__ import annotations

from collections.abc import Sequence

from bertsweep.api import SweepSpec, Trial


def trials_to_stop(spec: SweepSpec, trials: Sequence[Trial]) -> dict[str, str]:
    """Running trials to stop now, each with a readable message (the rule's verdict)."""
    raise NotImplementedError
