"""ASHA: asynchronous successive halving (Li et al., MLSys 2020), judged on arrival.

Rungs sit at minResource * reductionFactor^k below maxResource. Of the n trials that reach a
rung, at most n // reductionFactor go on, the best first. A trial is judged when it reaches a
rung, against what the rung has recorded so far, its own value included (no GPU waits at a rung
for a slot to open). It continues when it ranks within the top n // reductionFactor and either
a promotion slot is free (fewer than n // reductionFactor went past the rung already) or it is
the best there; a trial past its highest rung goes on only while it still ranks within that
top share. Trials are ranked by their projected value (`Curve.projected`); with several
objectives, by Pareto front first, and every trial on a rung's first front counts as the best
there. Why each of these rules, with the figures that chose them: docs/early-stopping.md.

Verdicts depend only on the records, so replaying the rule on the same records gives the same
verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bertsweep import pareto
from bertsweep.api import Goal, Objective, Resource, RungRanking, SweepSpec, Trial
from bertsweep.stopping.curves import SLACK, Curve, fmt, resource_unit


class AshaRule:
    """Asynchronous successive halving over the spec's rungs."""

    def __init__(self, spec: SweepSpec) -> None:
        self._spec = spec

    def verdicts(
        self, trials: Sequence[Trial], curves: Mapping[str, Curve], running: Sequence[Trial]
    ) -> dict[str, str]:
        return _asha(self._spec, running, curves)


def asha_max_resource(spec: SweepSpec) -> float | None:
    """The most any trial trains, in the stopping resource: the spec's maxResource, else the
    largest num_train_epochs the search allows when the resource is epochs."""
    rule = spec.early_stopping
    if rule.max_resource is not None:
        return rule.max_resource
    if rule.resource is Resource.epoch:
        return spec.max_epochs()
    return None


def asha_rungs(spec: SweepSpec, up_to: float) -> list[float]:
    """The rungs at or below `up_to` (and strictly below the maximum resource, where no
    decision is left to take)."""
    rule = spec.early_stopping
    ceiling = asha_max_resource(spec)
    rungs: list[float] = []
    k = 0
    while True:
        r = rule.min_resource * rule.reduction_factor**k
        if r > up_to + SLACK or (ceiling is not None and r >= ceiling - SLACK):
            return rungs
        rungs.append(r)
        k += 1


def _asha(spec: SweepSpec, running: Sequence[Trial], curves: Mapping[str, Curve]) -> dict[str, str]:
    objective = spec.objective
    eta = spec.early_stopping.reduction_factor
    verdicts: dict[str, str] = {}
    # Every trial at a rung is ranked against the same record of it: gathered once per pass.
    at_rung: dict[float, _Rung] = {}
    for trial in running:
        curve = curves[trial.name]
        rungs = asha_rungs(spec, curve.resources[-1])
        if not rungs:
            continue
        rung = rungs[-1]
        at = curve.first_at(rung)
        sitting = at == len(curve.resources) - 1  # else it went past: it holds a slot
        score, since = curve.projected(at)
        if rung not in at_rung:
            at_rung[rung] = _Rung.gather(spec, curves, rung)
        record = at_rung[rung]
        ahead = record.ahead_of(trial.name)
        slots = len(record.scores) // eta
        # With several objectives no one trial is the best there: each on the rung's first
        # front is, as far as the rung can tell, a model the sweep's front needs finished.
        on_front = record.on_first_front(trial.name)
        best = ahead == 0 or on_front
        if (
            (slots or on_front)
            and (ahead < slots or best)
            and (not sitting or best or record.promoted < slots)
        ):
            continue
        unit = resource_unit(spec)
        where = (
            f"{objective.metric} {fmt(curve.values[at])} at {unit} {fmt(curve.resources[at])} "
            f"(rung {fmt(rung)})"
        )
        if since != at:
            where += (
                f", on course for {fmt(score)} ({fmt(curve.values[since])} at {unit} "
                f"{fmt(curve.resources[since])})"
            )
        ranked_by = f" by Pareto front on {record.named}" if record.fronts else ""
        where += (
            f", ranks {ahead + 1} of the {len(record.scores)} trials that reached the rung"
            f"{ranked_by}" + ("" if sitting else " now")
        )
        if ahead >= slots:
            last = record.last_promoted(slots)
            verdicts[trial.name] = f"{where}; only the top {slots} (1/{eta}) continue" + (
                f", the last of them on course for {fmt(last)}" if last is not None else ""
            )
        else:
            verdicts[trial.name] = (
                f"{where}, but the rung's {slots} promotion slots (1/{eta} of its trials) are "
                f"taken by those that went on before it, and it is not "
                + ("on the rung's first front" if record.fronts else "the best there")
            )
    return verdicts


@dataclass
class _Rung:
    """The trials that reached a rung: their projected values, how many went past it, and
    with several objectives ranked by Pareto fronts, their fronts."""

    objective: Objective
    scores: dict[str, float]
    promoted: int
    fronts: dict[str, int] | None = None
    named: str = ""
    over_budget: frozenset[str] = frozenset()
    """Trials whose model breaks a constraint on its cost: ranked below every other."""

    @classmethod
    def gather(cls, spec: SweepSpec, curves: Mapping[str, Curve], rung: float) -> _Rung:
        scores: dict[str, float] = {}
        promoted = 0
        for name, curve in curves.items():
            i = curve.first_at(rung)
            if i < len(curve.resources):
                scores[name] = curve.projected(i)[0]
                promoted += i < len(curve.resources) - 1
        over_budget = frozenset(
            name for name in scores if spec.broken_cost(curves[name].metrics_at(rung)) is not None
        )
        rung_record = cls(spec.objective, scores, promoted, over_budget=over_budget)
        objectives = spec.all_objectives()
        if len(objectives) > 1 and spec.early_stopping.rank_by is RungRanking.pareto:
            rung_record.fronts = _fronts(objectives, curves, scores, rung, over_budget)
            rung_record.named = ", ".join(o.metric for o in objectives)
        return rung_record

    def key(self, name: str) -> tuple[bool, int, float]:
        value = self.scores[name]
        signed = -value if self.objective.goal is Goal.maximize else value
        front = self.fronts.get(name, 0) if self.fronts is not None else 0
        return (name in self.over_budget, front, signed)

    def on_first_front(self, name: str) -> bool:
        """Ranked by fronts, on the first among the trials within budget."""
        return self.fronts is not None and name not in self.over_budget and not self.fronts[name]

    def ahead_of(self, name: str) -> int:
        mine = self.key(name)
        return sum(self.key(other) < mine for other in self.scores)

    def last_promoted(self, slots: int) -> float | None:
        if not slots:
            return None
        ranked = sorted(self.scores, key=self.key)
        return self.scores[ranked[slots - 1]]


def _fronts(
    objectives: Sequence[Objective],
    curves: Mapping[str, Curve],
    scores: Mapping[str, float],
    rung: float,
    over_budget: frozenset[str],
) -> dict[str, int]:
    """The Pareto front of each trial at the rung: its projected primary objective and the
    others as its reports there say (a model's costs are the same in every report). Trials
    over budget take no part: a model that may never be selected pushes none back."""
    points: list[pareto.Point] = []
    names: list[str] = []
    for name, score in scores.items():
        if name in over_budget:
            continue
        metrics = {**curves[name].metrics_at(rung), objectives[0].metric: score}
        point = pareto.signed(objectives, metrics)
        if point is not None:
            points.append(point)
            names.append(name)
    levels = pareto.fronts(points)
    worst = max(levels, default=0) + 1  # a trial missing an objective ranks below every front
    found = dict(zip(names, levels, strict=True))
    return {name: found.get(name, worst) for name in scores}
