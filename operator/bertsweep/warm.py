"""Warm start (`spec.warmStart`): earlier sweeps' finished trials as this sweep's history.

`warm_history()` turns this sweep's spec and the earlier sweeps as a runner found them (their
specs and trial records) into the trials the search and the early-stopping rules learn from,
and the WarmStarted condition that says what was used and why the rest was not. The planner
hands these trials to the strategy's `ask` and to `stopping.trials_to_stop` beside the sweep's
own, and counts, ranks and summarizes only its own (`planner.plan(history=...)`). Pure: the
operator reads the earlier sweeps from the cluster, the local runner from result folders.

What is used, and why (docs/warm-start.md has the reasoning):

- An earlier sweep on other data is left out whole: its metrics measure another task. "Data"
  is the whole `dataset` but `test` (which never chooses), and `inference.batchSize` when an
  objective or a constraint is the inference latency it measures.
- Of a sweep on the same data, each trial is judged alone on what it trained: its searched
  values, the earlier sweep's fixed values and its model. It is used when that configuration
  lies in this sweep's space: every searched parameter set and within today's range or
  choices, every fixed value of today equal, the same model unless `model` is searched, and
  nothing set that today neither searches nor fixes. So a value an earlier sweep fixed can
  be a point of a range searched today, and an earlier sweep with other fixed values still
  lends the trials that happen to agree (with different fixed values, none do).
- Only Succeeded and Pruned trials are used, and only those that reported every objective of
  this sweep. A failure says nothing about how well a configuration trains, and a failure of
  this sweep's own counts against maxFailedTrials, which an earlier one must not; trials still
  running are picked up once they have finished (the operator rebuilds the history every pass).

The trials used keep their phase, reports and metrics, and their values of the searched
parameters alone (those are what the strategies read). Their names are the earlier sweep's as
the user wrote it, a slash, and the trial's own name: no trial of this sweep can take such a
name (a '/' is in no Kubernetes name), and two earlier runs sharing a sweep name stay apart.
Their indices are negative, -N..-1 in the order listed: they sort before every trial of this
sweep (the oldest history first, which is where TPE's weighting wants them) and never move the
index of a new trial, from which random and bayesian proposals are seeded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bertsweep.api import (
    Condition,
    ConditionType,
    Dataset,
    ParameterType,
    Scalar,
    SweepSpec,
    Trial,
    TrialPhase,
    value_key,
)
from bertsweep.contract import Reason
from bertsweep.outcomes import clip
from bertsweep.search.space import coerce, fits

LATENCY = "inference_latency_ms"
FINISHED = (TrialPhase.succeeded, TrialPhase.pruned)


@dataclass(frozen=True)
class EarlierSweep:
    """An earlier sweep as a runner found it: its spec and trial records, or why it has none."""

    name: str
    """As `warmStart.sweeps` names it."""
    spec: SweepSpec | None = None
    trials: Sequence[Trial] = ()
    problem: str | None = None
    """Why nothing of it can be used: not found, a spec that cannot be read."""


@dataclass(frozen=True)
class WarmHistory:
    """What an earlier sweep's records give this one."""

    trials: list[Trial] = field(default_factory=list)
    """The earlier trials to learn from, oldest first, with negative indices."""
    condition: Condition | None = None
    """WarmStarted, for a sweep that asks for a warm start."""
    used: dict[str, int] = field(default_factory=dict)
    """How many trials each earlier sweep lent."""


def warm_history(
    sweep: str, spec: SweepSpec, earlier: Sequence[EarlierSweep] | Mapping[str, EarlierSweep]
) -> WarmHistory:
    """The history `spec.warmStart` asks for, from the earlier sweeps found (by name; one
    named but not found counts as not found). `sweep` is this sweep's name: a sweep cannot
    warm-start from itself."""
    if spec.warm_start is None:
        return WarmHistory()
    found = earlier if isinstance(earlier, Mapping) else {e.name: e for e in earlier}
    usable: list[Trial] = []
    accounts: list[_Account] = []
    for name in spec.warm_start.sweeps:
        source = found.get(name) or EarlierSweep(name, problem="not found")
        account = _Account(name)
        accounts.append(account)
        problem = "this sweep itself" if name == sweep else source.problem
        if problem is None and source.spec is not None:
            problem = _other_data(spec, source.spec)
        if problem is None and source.spec is None:
            problem = "no spec recorded"
        if problem is not None:
            account.problem = problem
            account.total = len(source.trials)
            continue
        assert source.spec is not None
        for trial in sorted(source.trials, key=lambda t: t.index):
            account.total += 1
            why = left_out(spec, source.spec, trial)
            if why is not None:
                account.left_out[why] += 1
                continue
            account.used += 1
            usable.append(_as_history(spec, source.spec, name, trial))
    n = len(usable)
    trials = [t.model_copy(update={"index": i - n}) for i, t in enumerate(usable)]
    return WarmHistory(
        trials=trials,
        condition=_condition(accounts),
        used={a.name: a.used for a in accounts},
    )


def left_out(spec: SweepSpec, earlier: SweepSpec, trial: Trial) -> str | None:
    """Why an earlier sweep's trial cannot be used by this sweep (None: it can), in words
    that count well ("learning_rate outside this sweep's range", not the value)."""
    if trial.phase.active:
        return "not finished"
    if trial.phase is TrialPhase.failed:
        return "failed"
    trained = configuration(earlier, trial)
    searched = {p.name: p for p in spec.parameters}
    for name in sorted(trained):
        if name not in searched and name not in spec.fixed and name != "model":
            return f"{name} set, which this sweep neither searches nor fixes"
    for name, value in spec.fixed.items():
        if name not in trained:
            return f"{name} not set (fixed here)"
        if value_key(trained[name]) != value_key(value):
            return f"another {name} than the fixed one"
    if "model" not in searched and trained.get("model") != spec.model:
        return "another model"
    for p in spec.parameters:
        if p.name not in trained:
            return f"{p.name} not set"
        if not fits(p, trained[p.name]):
            where = "choices" if p.type is ParameterType.categorical else "range"
            return f"{p.name} outside this sweep's {where}"
    for objective in spec.all_objectives():
        if trial.objective(objective) is None:
            return f"no {objective.metric} reported"
    return None


def configuration(spec: SweepSpec, trial: Trial) -> dict[str, Scalar]:
    """Everything a trial of `spec` was trained with: the fixed values, its searched values,
    and its model (the spec's, unless the trial searched one)."""
    return {"model": spec.model, **spec.fixed, **trial.parameters}


def _other_data(spec: SweepSpec, earlier: SweepSpec) -> str | None:
    """Why an earlier sweep measured its trials on other data (None: the same)."""
    differ = [
        (info.alias or name)
        for name, info in Dataset.model_fields.items()
        if name != "test" and getattr(spec.dataset, name) != getattr(earlier.dataset, name)
    ]
    if differ:
        return f"another dataset ({', '.join(differ)} differ{'s' if len(differ) == 1 else ''})"
    measured = {o.metric for o in spec.all_objectives()} | {c.metric for c in spec.constraints}
    if LATENCY in measured and spec.inference != earlier.inference:
        return f"{LATENCY} measured on another inference.batchSize"
    return None


def _as_history(spec: SweepSpec, earlier: SweepSpec, source: str, trial: Trial) -> Trial:
    """A usable trial as this sweep's history holds it (its index is set by the caller)."""
    trained = configuration(earlier, trial)
    return Trial(
        name=f"{source}/{trial.name}",
        index=trial.index,
        parameters={p.name: coerce(p, trained[p.name]) for p in spec.parameters},
        phase=trial.phase,
        reports=trial.reports,
        metrics=trial.metrics,
        reason=trial.reason,
        message=trial.message,
        start_time=trial.start_time,
        completion_time=trial.completion_time,
    )


@dataclass
class _Account:
    name: str
    total: int = 0
    used: int = 0
    problem: str | None = None
    left_out: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        if self.problem is not None:
            return f"{self.name}: {self.problem}" + (
                f", none of its {self.total} trials used" if self.total else ""
            )
        text = f"{self.name}: {self.used} of {self.total}"
        if self.left_out:
            # The commonest reasons first; ties in the order met.
            reasons = sorted(self.left_out.items(), key=lambda kv: -kv[1])
            text += f" ({', '.join(f'{n} {why}' for why, n in reasons)})"
        return text


def _condition(accounts: Sequence[_Account]) -> Condition:
    used = sum(a.used for a in accounts)
    total = sum(a.total for a in accounts)
    message = f"{used} of {total} earlier trials used; " + "; ".join(a.describe() for a in accounts)
    return Condition(
        type=ConditionType.warm_started,
        status="True" if used else "False",
        reason=Reason.earlier_trials_used if used else Reason.no_earlier_trials,
        message=clip(message),
    )
