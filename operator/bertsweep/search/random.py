"""Random search, reproducible trial by trial.

The proposal for the trial at index i is drawn from a generator seeded with (seed, i) alone,
not from one stream advanced call after call. Whatever way a sweep's trials were asked for
(four at once, or one by one across operator restarts) trial i gets the same configuration.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence

from bertsweep.api import Parameter, ParameterType, Scale, SweepSpec, Trial
from bertsweep.search.base import Configuration
from bertsweep.search.space import coerce, configuration_key, derive_seed

# Redraws allowed when a draw repeats a configuration already tried. Only small discrete
# spaces ever repeat; a continuous space keeps its first draw, so there a proposal is a
# function of (seed, index) alone.
MAX_REDRAWS = 32


def sample_parameter(parameter: Parameter, rng: random.Random) -> float | int | str | bool:
    """One value drawn uniformly from the parameter's domain, on its scale."""
    if parameter.type is ParameterType.categorical:
        values = parameter.values or []
        return values[rng.randrange(len(values))]
    assert parameter.min is not None and parameter.max is not None
    low, high = parameter.min, parameter.max
    if parameter.type is ParameterType.int:
        if parameter.scale is Scale.log:
            # As Optuna does: uniform in log space over [low - 0.5, high + 0.5], then rounded,
            # so that each integer gets the share of log space around it (low >= 1 here).
            x = math.exp(rng.uniform(math.log(low - 0.5), math.log(high + 0.5)))
            return int(min(max(round(x), int(low)), int(high)))
        return rng.randint(int(low), int(high))
    if parameter.scale is Scale.log:
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.uniform(low, high)


def sample_configuration(parameters: Sequence[Parameter], rng: random.Random) -> Configuration:
    """A configuration drawn uniformly, parameter by parameter in spec order."""
    return {p.name: coerce(p, sample_parameter(p, rng)) for p in parameters}


class RandomStrategy:
    """Uniform random search (log-uniform where the scale is log)."""

    def __init__(self, spec: SweepSpec) -> None:
        self._parameters = list(spec.parameters)
        self._seed = spec.algorithm.seed

    def propose(self, index: int, taken: set[Hashable]) -> Configuration:
        """The configuration for trial `index`, avoiding `taken` while redraws last."""
        configuration: Configuration = {}
        for attempt in range(MAX_REDRAWS):
            rng = random.Random(derive_seed("random", self._seed, index, attempt))
            configuration = sample_configuration(self._parameters, rng)
            if configuration_key(self._parameters, configuration) not in taken:
                break
        return configuration

    def ask(self, history: Sequence[Trial], indices: Sequence[int]) -> list[Configuration]:
        taken = {configuration_key(self._parameters, t.parameters) for t in history}
        proposals: list[Configuration] = []
        for index in indices:
            configuration = self.propose(index, taken)
            taken.add(configuration_key(self._parameters, configuration))
            proposals.append(configuration)
        return proposals
