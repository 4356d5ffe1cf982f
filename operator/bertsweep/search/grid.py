"""Grid search: the Cartesian product of each parameter's points, in a fixed order.

The order is the one a user reads off the manifest: parameters in the order listed, the last
one varying fastest; categorical values in list order; an int range every integer from min to
max unless `gridPoints` is set; `gridPoints` values spread evenly over [min, max] on the
parameter's scale (geometric for `scale: log`). A point already in the history (compared by
value, whatever phase the trial is in: a failed point is not retried) is never proposed again,
and once every point has been tried `ask` returns fewer than asked: the sweep then ends with
its search space exhausted.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence

from bertsweep.api import Parameter, ParameterType, Scalar, Scale, SweepSpec, Trial
from bertsweep.search.base import Configuration
from bertsweep.search.space import configuration_key


def _rounded(x: float) -> float:
    """Grid coordinates to 12 significant digits: 0.001, not 0.0010000000000000002."""
    return float(f"{x:.12g}")


def grid_points(parameter: Parameter) -> Sequence[Scalar]:
    """One parameter's grid points, in grid order. An int range without `gridPoints` is a lazy
    `range`, so a wide range costs nothing until enumerated."""
    if parameter.type is ParameterType.categorical:
        return list(parameter.values or [])
    assert parameter.min is not None and parameter.max is not None
    low, high = parameter.min, parameter.max
    if parameter.grid_points is None:
        if parameter.type is ParameterType.int:
            return range(int(low), int(high) + 1)
        # The spec validator refuses this for grid sweeps; a lone point is the only safe answer.
        return [float(low)]
    count = parameter.grid_points
    if parameter.scale is Scale.log:
        a, b = math.log(low), math.log(high)
        raw = [math.exp(a + (b - a) * i / (count - 1)) for i in range(count)]
    else:
        raw = [low + (high - low) * i / (count - 1) for i in range(count)]
    # The ends are the bounds exactly, not what exp(log(x)) makes of them.
    raw[0], raw[-1] = low, high
    if parameter.type is ParameterType.int:
        # Rounding can merge neighbouring points on a narrow range: keep the first of each.
        return list(dict.fromkeys(round(x) for x in raw))
    return [_rounded(x) for x in raw]


class GridStrategy:
    """Exhaustive, ordered search. Stateless: the next points are the first grid points, in
    order, that no trial in the history holds."""

    def __init__(self, spec: SweepSpec) -> None:
        self._parameters = list(spec.parameters)
        self._axes = [grid_points(p) for p in self._parameters]

    @property
    def size(self) -> int:
        """How many points the grid holds."""
        return math.prod(len(axis) for axis in self._axes)

    def _points(self) -> Iterator[Configuration]:
        """Every grid point in order, built from its position (mixed radix, last axis fastest)
        so that no axis, however wide, is ever materialised."""
        for position in range(self.size):
            values: list[Scalar] = []
            for axis in reversed(self._axes):
                position, digit = divmod(position, len(axis))
                values.append(axis[digit])
            values.reverse()
            yield {p.name: v for p, v in zip(self._parameters, values, strict=True)}

    def ask(self, history: Sequence[Trial], indices: Sequence[int]) -> list[Configuration]:
        """The first untried points in grid order: a grid's order is the manifest's, so the
        indices only say how many."""
        taken: set[Hashable] = {configuration_key(self._parameters, t.parameters) for t in history}
        proposals: list[Configuration] = []
        n = len(indices)
        if n <= 0:
            return proposals
        # Each point skipped is a distinct point of the history, so this walks at most
        # len(history) + n points however large the grid is.
        for point in self._points():
            key = configuration_key(self._parameters, point)
            if key in taken:
                continue
            taken.add(key)
            proposals.append(point)
            if len(proposals) == n:
                break
        return proposals
