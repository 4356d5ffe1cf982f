"""Early-stopping rules (median, asha) behind one protocol (`base.StoppingRule`), and the one
function the planner calls: `trials_to_stop`. The rules' design, and the figures that chose
it, are in docs/early-stopping.md."""

from __future__ import annotations

from collections.abc import Sequence

from bertsweep.api import StoppingRuleName, SweepSpec, Trial, TrialPhase
from bertsweep.stopping.asha import AshaRule, asha_max_resource, asha_rungs
from bertsweep.stopping.base import StoppingRule
from bertsweep.stopping.curves import Curve, objective_curve
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
    """Running trials to stop now, each with a readable message (the rule's verdict)."""
    rule = make_rule(spec)
    if rule is None:
        return {}
    curves = {t.name: objective_curve(t, spec) for t in trials}
    running = [t for t in trials if t.phase is TrialPhase.running and curves[t.name].resources]
    return rule.verdicts(trials, curves, running) if running else {}
