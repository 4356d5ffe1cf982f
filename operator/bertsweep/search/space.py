"""What the strategies share about a search space: seeds, value identity, coercion."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Mapping, Sequence

from bertsweep.api import Parameter, ParameterType, Scalar, value_key


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (the sweep's seed, a trial index, a purpose).

    A cryptographic hash rather than `hash()` or arithmetic: it is stable across processes and
    Python versions (string hashing is salted per process), and neighbouring indices give
    unrelated streams, so the k-th proposal depends on (seed, index) and nothing else.
    """
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


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
