"""Early-stopping rules: which running trials are hopeless, judged from everyone's reports.

`trials_to_stop` is a pure function of the spec and the trial records. The operator may restart
at any moment and replays it on every reconcile pass, so no rule keeps memory of its own: all a
rule knows is what the records hold (each trial's reports, oldest first, and its phase).

Resources. A report's resource is its epoch or its optimizer step (`earlyStopping.resource`).
A trial "reaches" a point r with its first report at or past r; its value there is that
report's objective.

Median (Katib's and Vizier's rule). A running trial whose latest report is at r >= minResource
is stopped when its best value so far is strictly worse than the median, over the completed
(Succeeded) trials whose reports reach r, of their running average up to r, provided at least
`minTrials` such trials exist. Only completed trials count, as in Katib and Vizier: they are
what a stopped trial gives up on. Counting running and pruned trials too would make the rule a
race among whoever happens to be training at the moment.

ASHA (asynchronous successive halving, Li et al., MLSys 2020). Rungs sit at
minResource * reductionFactor^k below maxResource. Of the n trials that reach a rung, ASHA
promotes at most n // reductionFactor, the best first, each as soon as it has a slot. Here a
trial cannot wait at a rung for a slot to open (its pod would hold a GPU idle), so it is judged
when it gets there, against what the rung has recorded so far, its own value included. It
continues when it ranks within the top n // reductionFactor and either

- a slot is free: fewer than n // reductionFactor trials have gone past the rung already (a
  trial sits at a rung while the report that reached it is its latest; from its next report on
  it has gone past, and holds one of the rung's slots for good), or
- it is the best there: ASHA would promote it with the next slot, so a new best is not refused
  once the rung has a slot at all.

The rest stop. So the first reductionFactor - 1 trials at every rung stop there: with fewer
than that many to compare with, "the best so far" says nothing, and letting it through made
every rung a staircase of early trials trained far past their worth.

Trials are ranked at a rung by where they are heading, not only by where they stand: each
one's value at the rung carried a third further along the line from its value two thirds of
the way there (v(r) + (v(r) - v(2r/3)) on evenly spaced reports). Learning curves cross: a
small learning rate or a long warmup starts slow and ends best, and at a rung its rise is what
tells it from a trial that has levelled off at the same value. Taking the line over the last
third, not between the last two reports, keeps the projection the same however often the
trainer evaluates, and one noisy evaluation moves it by about twice its noise. On the
development instances of the search benchmark (LCBench curves), among the trials in the top
third at epoch 6 it raised the rank correlation with the final accuracy on nine instances of
ten (on the three that ranked worst, 0.41 -> 0.63, 0.49 -> 0.85 and 0.49 -> 0.53), and at epoch
18 on nine, the tenth unchanged (`benchmarks/rank_correlation.py`); it saved about 7% of the
epochs to target.

The slots are what keeps ASHA's budget when proposals are not exchangeable. A model-based
search proposes better configurations as it learns, and "within the top third of everyone so
far" would let nearly every newcomer through: the bayesian search then trained a whole region
of good-but-not-best configurations to the end. Counting slots, at most n // reductionFactor
trials (plus the successive bests) go on from each rung, whatever the order they come in.

A promotion is taken on what the rung held at the time, and the rung keeps filling. A trial
past its highest rung goes on only while it still ranks within the top n // reductionFactor
there: overtaken by later arrivals, it is stopped, as synchronous successive halving, seeing
the whole rung, would never have promoted it. This is what lets promotions be early without
being permanent: a search that keeps improving keeps the rung's best few training, not its
first few.

Both rules therefore only ever stop a trial on evidence present in the records, and give the
same verdicts whenever they are replayed on the same records.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bertsweep.api import (
    Objective,
    Resource,
    StoppingRule,
    SweepSpec,
    Trial,
    TrialPhase,
)

# Reports are compared at a resource with this slack, so that epoch 2.9999999 counts as 3.
_SLACK = 1e-9


def trials_to_stop(spec: SweepSpec, trials: Sequence[Trial]) -> dict[str, str]:
    """Running trials to stop now, each with a readable message (the rule's verdict)."""
    rule = spec.early_stopping.name
    if rule is StoppingRule.none:
        return {}
    curves = {t.name: objective_curve(t, spec) for t in trials}
    running = [t for t in trials if t.phase is TrialPhase.running and curves[t.name].resources]
    if not running:
        return {}
    if rule is StoppingRule.median:
        completed = [curves[t.name] for t in trials if t.phase is TrialPhase.succeeded]
        return _median(spec, running, curves, completed)
    if rule is StoppingRule.asha:
        return _asha(spec, running, curves)
    raise ValueError(f"unknown early-stopping rule {rule!r}")  # pragma: no cover


@dataclass(frozen=True)
class Curve:
    """A trial's objective over its reports, in report order (resources increasing)."""

    resources: list[float]
    values: list[float]

    def reaches(self, r: float) -> bool:
        return bool(self.resources) and self.resources[-1] >= r - _SLACK

    def first_at(self, r: float) -> int:
        """Position of the first report at or past r (len() when none is)."""
        return bisect.bisect_left(self.resources, r - _SLACK)

    def upto(self, r: float) -> int:
        """How many reports lie at or before r."""
        return bisect.bisect_right(self.resources, r + _SLACK)

    def projected(self, i: int) -> tuple[float, int]:
        """Its value at report i carried on a third further along the line from its value two
        thirds of the way there, v(r) + (v(r) - v(2r/3)) on evenly spaced reports, with the
        report the line starts from."""
        r = self.resources[i]
        j = min(self.first_at(2 * r / 3), i - 1) if i else 0
        if self.resources[j] >= r - _SLACK:
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
    return Curve(resources, values)


def _unit(spec: SweepSpec) -> str:
    return spec.early_stopping.resource.value


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _median(
    spec: SweepSpec,
    running: Sequence[Trial],
    curves: dict[str, Curve],
    completed: Sequence[Curve],
) -> dict[str, str]:
    objective = spec.objective
    rule = spec.early_stopping
    verdicts: dict[str, str] = {}
    for trial in running:
        curve = curves[trial.name]
        r = curve.resources[-1]
        if r < rule.min_resource - _SLACK:
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
                f"{objective.metric} {_fmt(best)} (best so far) at {_unit(spec)} {_fmt(r)} is "
                f"{side} the median {_fmt(median)} of {len(averages)} completed trials' running "
                f"averages there"
            )
    return verdicts


def _best(objective: Objective, values: Sequence[float]) -> float:
    return max(values) if objective.goal.value == "maximize" else min(values)


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
        if r > up_to + _SLACK or (ceiling is not None and r >= ceiling - _SLACK):
            return rungs
        rungs.append(r)
        k += 1


def _asha(spec: SweepSpec, running: Sequence[Trial], curves: dict[str, Curve]) -> dict[str, str]:
    objective = spec.objective
    eta = spec.early_stopping.reduction_factor
    verdicts: dict[str, str] = {}
    # Every trial at a rung is ranked against the same record of it: gathered once per pass.
    at_rung: dict[float, tuple[list[float], int]] = {}
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
            at_rung[rung] = _recorded_at(curves.values(), rung)
        recorded, promoted = at_rung[rung]
        ahead = sum(objective.better(v, score) for v in recorded)
        slots = len(recorded) // eta
        if ahead < slots and (not sitting or ahead == 0 or promoted < slots):
            continue
        unit = _unit(spec)
        where = (
            f"{objective.metric} {_fmt(curve.values[at])} at {unit} {_fmt(curve.resources[at])} "
            f"(rung {_fmt(rung)})"
        )
        if since != at:
            where += (
                f", on course for {_fmt(score)} ({_fmt(curve.values[since])} at {unit} "
                f"{_fmt(curve.resources[since])})"
            )
        where += f", ranks {ahead + 1} of the {len(recorded)} trials that reached the rung" + (
            "" if sitting else " now"
        )
        if ahead >= slots:
            ranked = sorted(recorded, reverse=objective.goal.value == "maximize")
            verdicts[trial.name] = f"{where}; only the top {slots} (1/{eta}) continue" + (
                f", the last of them on course for {_fmt(ranked[slots - 1])}" if slots else ""
            )
        else:
            verdicts[trial.name] = (
                f"{where}, but the rung's {slots} promotion slots (1/{eta} of its trials) are "
                f"taken by those that went on before it, and it is not the best there"
            )
    return verdicts


def _recorded_at(curves: Iterable[Curve], rung: float) -> tuple[list[float], int]:
    """The projected values of the trials that reached a rung, and how many went past it."""
    recorded: list[float] = []
    promoted = 0
    for curve in curves:
        i = curve.first_at(rung)
        if i < len(curve.resources):
            recorded.append(curve.projected(i)[0])
            promoted += i < len(curve.resources) - 1
    return recorded, promoted
