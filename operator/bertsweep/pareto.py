"""Pareto dominance over several objectives: which trials no other trial beats on every one.

Points are the objectives' values signed so that lower is better on every axis (`signed`):
a point dominates another when it is at least as good on every objective and strictly better
on one. `fronts` is the non-dominated sorting of NSGA-II (Deb et al. 2002): front 0 is the
Pareto front, front 1 what is left once it is removed, and so on. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bertsweep.api import Goal, Objective

Point = tuple[float, ...]


def signed(objectives: Sequence[Objective], metrics: Mapping[str, float]) -> Point | None:
    """The metrics as a point to minimize on every axis; None when one is missing."""
    values = []
    for objective in objectives:
        value = metrics.get(objective.metric)
        if value is None:
            return None
        values.append(-value if objective.goal is Goal.maximize else value)
    return tuple(values)


def dominates(a: Point, b: Point) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def fronts(points: Sequence[Point]) -> list[int]:
    """Each point's front: 0 for the non-dominated, 1 for those only front 0 dominates, ..."""
    count = len(points)
    dominated_by = [0] * count
    dominating: list[list[int]] = [[] for _ in range(count)]
    for i in range(count):
        for j in range(i + 1, count):
            if dominates(points[i], points[j]):
                dominating[i].append(j)
                dominated_by[j] += 1
            elif dominates(points[j], points[i]):
                dominating[j].append(i)
                dominated_by[i] += 1
    rank = [0] * count
    current = [i for i in range(count) if dominated_by[i] == 0]
    level = 0
    while current:
        following = []
        for i in current:
            rank[i] = level
            for j in dominating[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    following.append(j)
        current = following
        level += 1
    return rank


def non_dominated(points: Sequence[Point]) -> list[int]:
    """The positions of the points no other point dominates (equal points all stay)."""
    return [i for i, level in enumerate(fronts(points)) if level == 0]


def hypervolume_2d(points: Sequence[Point], reference: Point) -> float:
    """The area two-objective points dominate up to `reference` (both axes minimized)."""
    inside = sorted({p for p in points if p[0] < reference[0] and p[1] < reference[1]})
    area, ceiling = 0.0, reference[1]
    for x, y in inside:
        if y < ceiling:
            area += (reference[0] - x) * (ceiling - y)
            ceiling = y
    return area
