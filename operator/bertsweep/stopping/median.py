"""Median stopping (Katib's and Vizier's rule).

A running trial whose latest report is at r >= minResource is stopped when its best value so
far is strictly worse than the median, over the completed (Succeeded) trials whose reports
reach r, of their running average up to r, provided at least `minTrials` such trials exist.
Only completed trials count: they are what a stopped trial gives up on (docs/early-stopping.md).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from bertsweep.api import Objective, SweepSpec, Trial, TrialPhase
from bertsweep.stopping.curves import SLACK, Curve, fmt, resource_unit


class MedianRule:
    """Stops a trial below the median of the completed trials at the same point."""

    def __init__(self, spec: SweepSpec) -> None:
        self._spec = spec

    def verdicts(
        self, trials: Sequence[Trial], curves: Mapping[str, Curve], running: Sequence[Trial]
    ) -> dict[str, str]:
        completed = [curves[t.name] for t in trials if t.phase is TrialPhase.succeeded]
        return _median(self._spec, running, curves, completed)


def _median(
    spec: SweepSpec,
    running: Sequence[Trial],
    curves: Mapping[str, Curve],
    completed: Sequence[Curve],
) -> dict[str, str]:
    objective = spec.objective
    rule = spec.early_stopping
    verdicts: dict[str, str] = {}
    for trial in running:
        curve = curves[trial.name]
        r = curve.resources[-1]
        if r < rule.min_resource - SLACK:
            continue
        best = _best(objective, curve.values)
        averages = [
            statistics.fmean(other.values[: other.upto(r)])
            for other in completed
            if other.reaches(r) and other.upto(r) > 0
        ]
        if len(averages) < rule.min_trials:
            continue
        median = statistics.median(averages)
        if objective.better(median, best):
            side = "below" if objective.goal.value == "maximize" else "above"
            verdicts[trial.name] = (
                f"{objective.metric} {fmt(best)} (best so far) at {resource_unit(spec)} "
                f"{fmt(r)} is {side} the median {fmt(median)} of {len(averages)} completed "
                "trials' running averages there"
            )
    return verdicts


def _best(objective: Objective, values: Sequence[float]) -> float:
    return max(values) if objective.goal.value == "maximize" else min(values)
