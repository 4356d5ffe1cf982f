"""The one protocol every search strategy implements: ask, given the whole trial history.

There is no `tell` method and no state between calls: the history *is* what a strategy has
been told. A restarted operator therefore continues a sweep exactly where it stood, from the
trial records the cluster holds, and the same seed and history always give the same proposal.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol

from bertsweep.api import AlgorithmName, Parameter, ParameterType, Scalar, SweepSpec, Trial

Configuration = dict[str, Scalar]


class Strategy(Protocol):
    def ask(self, history: Sequence[Trial], n: int) -> list[Configuration]:
        """Propose up to `n` new configurations, given every trial created so far (active
        ones included, so that parallel proposals differ). Fewer than `n` means the search
        space has nothing more to offer (only a finite grid ever does that)."""
        ...


def make_strategy(spec: SweepSpec) -> Strategy:
    """The strategy a spec asks for."""
    # Imported here: the strategies import this module for the protocol and the helpers.
    from bertsweep.search.bayesian import BayesianStrategy
    from bertsweep.search.grid import GridStrategy
    from bertsweep.search.random import RandomStrategy

    name = spec.algorithm.name
    if name is AlgorithmName.grid:
        return GridStrategy(spec)
    if name is AlgorithmName.random:
        return RandomStrategy(spec)
    if name is AlgorithmName.bayesian:
        return BayesianStrategy(spec)
    raise ValueError(f"unknown search algorithm {name!r}")  # pragma: no cover (enum is closed)


# ---- Helpers shared by the strategies ---------------------------------------------------------


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (the sweep's seed, a trial index, a purpose).

    A cryptographic hash rather than `hash()` or arithmetic: it is stable across processes and
    Python versions (string hashing is salted per process), and neighbouring indices give
    unrelated streams, so the k-th proposal depends on (seed, index) and nothing else.
    """
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


def value_key(value: Scalar) -> Hashable:
    """A key under which equal hyperparameter values compare equal whatever their JSON form.

    1 and 1.0 are the same point (a record may come back from JSON either way), floats are
    compared to 12 significant digits (what a grid's log spacing can differ by after a round
    trip), and bools are kept apart from the numbers 0 and 1 they would hash equal to.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", float(f"{float(value):.12g}"))
    return ("str", value)


def configuration_key(parameters: Sequence[Parameter], values: Mapping[str, Scalar]) -> Hashable:
    """The identity of a configuration over the searched parameters (missing ones are None)."""
    return tuple(value_key(values[p.name]) if p.name in values else None for p in parameters)


def coerce(parameter: Parameter, value: float | Scalar) -> Scalar:
    """A value as the trainer should receive it: int for int parameters, a plain float for float
    ones (numpy scalars and rounding noise past the bounds are not JSON scalars of the right
    type), a categorical value exactly as listed in the spec."""
    if parameter.type is ParameterType.categorical:
        return value
    assert parameter.min is not None and parameter.max is not None
    number = float(value)
    if parameter.type is ParameterType.int:
        return int(min(max(round(number), int(parameter.min)), int(parameter.max)))
    return float(min(max(number, parameter.min), parameter.max))


def fits(parameter: Parameter, value: Scalar) -> bool:
    """Whether a recorded value lies in the parameter's current domain (a spec may have been
    edited since a trial was created; such trials are left out of what a model learns from)."""
    if parameter.type is ParameterType.categorical:
        return value_key(value) in {value_key(v) for v in parameter.values or []}
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    assert parameter.min is not None and parameter.max is not None
    if not math.isfinite(value) or not parameter.min <= value <= parameter.max:
        return False
    return parameter.type is ParameterType.float or float(value).is_integer()
