"""Bayesian search: Optuna's TPE, asked through an in-memory study rebuilt from the history.

Nothing of Optuna's outlives a call. Each `ask` builds a fresh in-memory study from the trial
records and asks it, so a restarted operator continues exactly where it stood. The records map
onto Optuna's trial states:

- Succeeded -> COMPLETE with the objective's final value (the study's direction follows
  `objective.goal`).
- Pruned -> PRUNED with every intermediate value, keyed by the early-stopping resource. TPE ranks
  pruned trials by how far they got, then by their last value. With several objectives, PRUNED
  without values: Optuna's multi-objective TPE cannot rank pruned trials among themselves, but
  it counts them among the bad and starts its model after as many trials as with one.
- Failed -> FAIL (no value; TPE learns nothing from it).
- Pending and Running -> RUNNING. With `constant_liar` TPE counts them among the bad trials
  while they run, which pushes parallel proposals apart instead of asking the same point four
  times.

With early stopping, trials are compared at one point of training, the fidelity (as BOHB
does): the furthest point that more trials have reached than there are parameters. Every trial
that reached it (finished, stopped later or still running) is COMPLETE with its projected value
there (`stopping.Curve.projected`); the others keep the states above, so a trial stopped early
ranks below all of them. Why: docs/early-stopping.md.

Each proposal gets its own sampler seeded with (algorithm.seed, index of the trial it is for),
so trial i's proposal is the same whether the planner asked for four trials at once or one by
one across restarts: in both cases the trials asked before it are in the study as RUNNING.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import FrozenTrial, TrialState

from bertsweep.api import (
    Goal,
    Parameter,
    ParameterType,
    Resource,
    Scale,
    StoppingRuleName,
    SweepSpec,
    Trial,
    TrialPhase,
)
from bertsweep.search.base import Configuration
from bertsweep.search.space import coerce, derive_seed, fits
from bertsweep.stopping import Curve, objective_curve

# Optuna announces every study it creates at INFO; an operator that builds one per reconcile
# pass would log little else.
optuna.logging.set_verbosity(logging.WARNING)

# Optuna's intermediate values are keyed by integer steps. Fractional epochs (evaluation every
# N steps) keep their order when keyed in thousandths of an epoch; TPE only compares keys.
EPOCH_KEY_SCALE = 1000
# Optuna wants start/completion times on finished trials; TPE never reads them. A constant
# keeps the rebuilt study identical from one call to the next.
_RECORDED = datetime(2000, 1, 1, tzinfo=UTC)


class _RecordTrial(FrozenTrial):
    """A FrozenTrial whose copy is shallow.

    The in-memory storage deep-copies every trial it is given, which dominates the cost of
    rebuilding a study of thousands of trials (distribution objects copied over and over).
    These trials are built for one study and never mutated: sharing their distribution
    objects (immutable) and values is safe, while each copy still gets its own dicts.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _RecordTrial:
        clone = copy.copy(self)
        clone._params = dict(self._params)
        clone._distributions = dict(self._distributions)
        clone._user_attrs = dict(self._user_attrs)
        clone._system_attrs = dict(self._system_attrs)
        clone.intermediate_values = dict(self.intermediate_values)
        return clone


def default_startup_trials(spec: SweepSpec) -> int:
    """Random proposals before TPE takes over: Optuna's 10, or two per parameter when there
    are more than five, so that every dimension has a few observations first."""
    return max(10, 2 * len(spec.parameters))


def distribution(parameter: Parameter) -> BaseDistribution:
    """The Optuna distribution of a spec parameter."""
    if parameter.type is ParameterType.categorical:
        return CategoricalDistribution(choices=tuple(parameter.values or []))
    assert parameter.min is not None and parameter.max is not None
    log = parameter.scale is Scale.log
    if parameter.type is ParameterType.int:
        return IntDistribution(low=int(parameter.min), high=int(parameter.max), log=log)
    return FloatDistribution(low=parameter.min, high=parameter.max, log=log)


class BayesianStrategy:
    """Tree-structured Parzen Estimator search (multivariate, constant liar)."""

    def __init__(self, spec: SweepSpec) -> None:
        self._spec = spec
        self._parameters = list(spec.parameters)
        self._distributions = {p.name: distribution(p) for p in self._parameters}
        self._startup = spec.algorithm.startup_trials or default_startup_trials(spec)
        self._objectives = spec.all_objectives()
        self._directions = [
            optuna.study.StudyDirection.MAXIMIZE
            if o.goal is Goal.maximize
            else optuna.study.StudyDirection.MINIMIZE
            for o in self._objectives
        ]
        self._several = len(self._objectives) > 1

    def sampler(self, index: int) -> optuna.samplers.TPESampler:
        """The sampler that proposes trial `index`. Univariate (Optuna 5's default is
        multivariate): on the LCBench benchmark the multivariate model settled on a poor region
        after a bad random start in a fifth of the ASHA runs and never left it."""
        return optuna.samplers.TPESampler(
            n_startup_trials=self._startup,
            multivariate=False,
            constant_liar=True,
            seed=derive_seed("bayesian", self._spec.algorithm.seed, index) % 2**32,
        )

    def ask(self, history: Sequence[Trial], indices: Sequence[int]) -> list[Configuration]:
        if not indices:
            return []
        with warnings.catch_warnings():
            # Optuna flags some sampler options as experimental; the flag is for humans who
            # chose them, not for every reconcile pass of an operator.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = self.study(history)
            proposals: list[Configuration] = []
            for index in indices:
                study.sampler = self.sampler(index)
                # The asked trial stays RUNNING in the study, so the next one sees it.
                asked = study.ask(self._distributions)
                proposals.append(
                    {p.name: coerce(p, asked.params[p.name]) for p in self._parameters}
                )
        return proposals

    def study(self, history: Sequence[Trial]) -> optuna.Study:
        """An in-memory study holding the history, in trial-index order (TPE weighs recent
        trials by their position)."""
        study = optuna.create_study(directions=self._directions)
        curves = {t.name: objective_curve(t, self._spec) for t in history}
        fidelity = self.fidelity(list(curves.values()))
        study.add_trials(
            frozen
            for t in sorted(history, key=lambda t: t.index)
            if (frozen := self.frozen_trial(t, fidelity, curves[t.name])) is not None
        )
        return study

    def fidelity(self, curves: Sequence[Curve]) -> float | None:
        """The point of training at which trials are compared (BOHB's budget): the furthest
        that enough of them have reached, one more than there are parameters. None without
        early stopping, and until that many trials have reported."""
        if self._spec.early_stopping.name is StoppingRuleName.none:
            return None
        need = len(self._parameters) + 1
        reached = sorted((c.resources[-1] for c in curves if c.resources), reverse=True)
        return reached[need - 1] if len(reached) >= need else None

    def frozen_trial(
        self, trial: Trial, fidelity: float | None = None, curve: Curve | None = None
    ) -> FrozenTrial | None:
        """A trial record as Optuna sees it, or None for one it cannot use: values outside
        the current search space (the spec was edited)."""
        params = {}
        for p in self._parameters:
            recorded = trial.parameters.get(p.name)
            if recorded is None or not fits(p, recorded):
                return None
            params[p.name] = coerce(p, recorded)
        objective = self._spec.objective
        state = TrialState.FAIL
        values: list[float] | None = None
        measured: Mapping[str, float] = trial.metrics
        intermediate: dict[int, float] = {}
        if fidelity is not None and trial.phase is not TrialPhase.failed:
            curve = curve or objective_curve(trial, self._spec)
            compared = curve.projected_at(fidelity)
        else:
            compared = None
        if compared is not None:
            # Reached the comparison point, whether it ran on, was stopped later or runs still:
            # its value there is what it is judged by; its other objectives (costs, which every
            # report carries) by what it reported there.
            measured = _reported_at(trial, fidelity, self._spec.early_stopping.resource)
            values = self._values({**measured, objective.metric: compared})
            state = TrialState.FAIL if values is None else TrialState.COMPLETE
        elif trial.phase.active:
            state = TrialState.RUNNING
        elif trial.phase is TrialPhase.succeeded:
            values = self._values(trial.metrics)
            # A success that never reported the objective taught nothing: like a failure.
            state = TrialState.FAIL if values is None else TrialState.COMPLETE
        elif (
            trial.phase is TrialPhase.pruned
            and self._spec.broken_cost(latest := _latest(trial)) is not None
        ):
            # Stopped because its model breaks a constraint on its cost: a finished trial that
            # breaks it, so that TPE learns where the budget lies (a failure would teach nothing).
            measured = latest
            values = self._values(latest)
            state = TrialState.FAIL if values is None else TrialState.COMPLETE
        elif trial.phase is TrialPhase.pruned:
            # What it reached at each point of its training. With several objectives, nothing:
            # among the bad, unranked (intermediate values would make Optuna ask for the
            # study's one direction). As a failure it taught nothing, and TPE's random start
            # lasted until enough trials had reached the comparison point
            # (benchmarks/README.md: 0.34 -> 0.32 of random's epochs).
            state = TrialState.PRUNED
            by_epoch = self._spec.early_stopping.resource is Resource.epoch
            for report in [] if self._several else trial.reports:
                if objective.metric in report.metrics:
                    key = round(report.epoch * EPOCH_KEY_SCALE) if by_epoch else report.step
                    intermediate[key] = report.metrics[objective.metric]
        # Each constraint's violation (<= 0: met) where Trial.set_constraint puts it: TPE ranks
        # the trials that break one below every trial that breaks none.
        system_attrs: dict[str, Any] = {}
        if state is TrialState.COMPLETE:
            for c in self._spec.constraints:
                system_attrs[f"{_CONSTRAINTS_KEY}:{c.metric}"] = c.violation(measured)
        return _RecordTrial(
            number=-1,
            trial_id=-1,
            state=state,
            value=None,
            values=values,
            datetime_start=_RECORDED,
            datetime_complete=None if state is TrialState.RUNNING else _RECORDED,
            params=params,
            distributions=self._distributions,
            user_attrs={},
            system_attrs=system_attrs,
            intermediate_values=intermediate,
        )

    def _values(self, metrics: Mapping[str, float]) -> list[float] | None:
        """The objectives' values, or None when one is missing."""
        found = [metrics.get(o.metric) for o in self._objectives]
        return None if any(v is None for v in found) else [float(v) for v in found if v is not None]


def _latest(trial: Trial) -> Mapping[str, float]:
    return trial.reports[-1].metrics if trial.reports else trial.metrics


def _reported_at(trial: Trial, fidelity: float | None, resource: Resource) -> Mapping[str, float]:
    """The metrics of the trial's first report at or past `fidelity` (else its last)."""
    for report in trial.reports:
        where = report.epoch if resource is Resource.epoch else report.step
        if fidelity is None or where >= fidelity - 1e-9:
            return report.metrics
    return trial.reports[-1].metrics if trial.reports else trial.metrics
