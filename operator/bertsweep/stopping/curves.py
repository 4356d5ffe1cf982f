"""A trial's objective over its training, as the early-stopping rules and the bayesian search
read it: reports placed by the early-stopping resource (epochs or optimizer steps).

A trial "reaches" a point r with its first report at or past r; its value there is that
report's objective. Why rungs are ranked by a projected value rather than the value alone is
in docs/early-stopping.md.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from bertsweep.api import Resource, SweepSpec, Trial

# Reports are compared at a resource with this slack, so that epoch 2.9999999 counts as 3.
SLACK = 1e-9


@dataclass(frozen=True)
class Curve:
    """A trial's objective over its reports, in report order (resources increasing)."""

    resources: list[float]
    values: list[float]
    reported: list[Mapping[str, float]] = field(default_factory=list)
    """Every metric of each of those reports (a model's costs, the other objectives)."""

    def metrics_at(self, r: float) -> Mapping[str, float]:
        """The metrics of the first report at or past r ({} when none is)."""
        i = self.first_at(r)
        return self.reported[i] if i < len(self.reported) else {}

    def reaches(self, r: float) -> bool:
        return bool(self.resources) and self.resources[-1] >= r - SLACK

    def first_at(self, r: float) -> int:
        """Position of the first report at or past r (len() when none is)."""
        return bisect.bisect_left(self.resources, r - SLACK)

    def upto(self, r: float) -> int:
        """How many reports lie at or before r."""
        return bisect.bisect_right(self.resources, r + SLACK)

    def projected(self, i: int) -> tuple[float, int]:
        """Its value at report i carried on a third further along the line from its value two
        thirds of the way there, v(r) + (v(r) - v(2r/3)) on evenly spaced reports, with the
        report the line starts from."""
        r = self.resources[i]
        j = min(self.first_at(2 * r / 3), i - 1) if i else 0
        if self.resources[j] >= r - SLACK:
            return self.values[i], i
        gain = (self.values[i] - self.values[j]) * (r / 3) / (r - self.resources[j])
        return self.values[i] + gain, j

    def projected_at(self, r: float) -> float | None:
        """Its projected value where it reached r, or None if it has not."""
        i = self.first_at(r)
        return self.projected(i)[0] if i < len(self.values) else None


def objective_curve(trial: Trial, spec: SweepSpec) -> Curve:
    metric = spec.objective.metric
    by_epoch = spec.early_stopping.resource is Resource.epoch
    resources: list[float] = []
    values: list[float] = []
    reported: list[Mapping[str, float]] = []
    for report in trial.reports:
        value = report.metrics.get(metric)
        if value is None or math.isnan(value):
            continue
        r = float(report.epoch) if by_epoch else float(report.step)
        # Reports come oldest first; a resource that goes backwards (a restarted trainer
        # re-reporting) is skipped so that the resources stay sorted for bisection.
        if resources and r < resources[-1]:
            continue
        resources.append(r)
        values.append(value)
        reported.append(report.metrics)
    return Curve(resources, values, reported)


def resource_unit(spec: SweepSpec) -> str:
    return spec.early_stopping.resource.value


def fmt(x: float) -> str:
    return f"{x:.4g}"
