"""Early-stopping rules (median, asha) behind one protocol (`base.StoppingRule`), and the one
function the planner calls: `trials_to_stop`. The rules' design, and the figures that chose
it, are in docs/early-stopping.md."""

from __future__ import annotations

from collections.abc import Sequence

from bertsweep.api import StoppingRuleName, SweepSpec, Trial, TrialPhase
from bertsweep.stopping.asha import AshaRule, asha_max_resource, asha_rungs
from bertsweep.stopping.base import StoppingRule
from bertsweep.stopping.curves import Curve, fmt, objective_curve
from bertsweep.stopping.median import MedianRule

__all__ = [
    "Curve",
    "StoppingRule",
    "asha_max_resource",
    "asha_rungs",
    "make_rule",
    "objective_curve",
    "trials_to_stop",
]


def make_rule(spec: SweepSpec) -> StoppingRule | None:
    """The rule a spec asks for; None for `none`."""
    name = spec.early_stopping.name
    if name is StoppingRuleName.none:
        return None
    if name is StoppingRuleName.median:
        return MedianRule(spec)
    if name is StoppingRuleName.asha:
        return AshaRule(spec)
    raise ValueError(f"unknown early-stopping rule {name!r}")  # pragma: no cover (enum is closed)


def trials_to_stop(spec: SweepSpec, trials: Sequence[Trial]) -> dict[str, str]:
    """Running trials to stop now, each with a readable message: those whose model breaks a
    constraint on its cost (whatever the rule, even none: it can never be selected, so its
    GPU is better spent on another), then the rule's verdicts."""
    verdicts = _over_budget(spec, trials)
    rule = make_rule(spec)
    if rule is None:
        return verdicts
    curves = {t.name: objective_curve(t, spec) for t in trials}
    running = [
        t
        for t in trials
        if t.phase is TrialPhase.running and curves[t.name].resources and t.name not in verdicts
    ]
    return {**verdicts, **rule.verdicts(trials, curves, running)} if running else verdicts


def _over_budget(spec: SweepSpec, trials: Sequence[Trial]) -> dict[str, str]:
    verdicts: dict[str, str] = {}
    if not spec.constraints:
        return verdicts
    for t in trials:
        if t.phase is not TrialPhase.running or not t.reports:
            continue
        broken = spec.broken_cost(t.reports[-1].metrics)
        if broken is not None:
            value = t.reports[-1].metrics[broken.metric]
            verdicts[t.name] = (
                f"its model's {broken.metric} is {fmt(value)}, which breaks the constraint "
                f"{broken.describe()}: it can never be selected"
            )
    return verdicts
