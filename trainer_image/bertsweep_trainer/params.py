"""Where each hyperparameter goes: TrainingArguments, the model's config, or the model itself.

A sweep names parameters as Hugging Face does (learning_rate, num_hidden_layers, ...), so the
trainer routes each name by looking it up: first the `TrainingArguments` dataclass fields, then
the loaded model config's attributes. Values arrive as JSON scalars and are coerced to the
field's type (32.0 -> 32 for an int field), because a search over an int range may hand over
floats and the TrainingArguments dataclass does not convert them itself.

This module is pure: the caller passes the TrainingArguments fields and the config object, so
tests need neither torch nor transformers.
"""

from __future__ import annotations

import difflib
import enum
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bertsweep.api import TRAINER_OWNED, Scalar
from bertsweep.contract import Reason
from bertsweep_trainer.errors import TrialError

MODEL_PARAMETER = "model"
# transformers 5 folded warmup_ratio into warmup_steps (a float below 1 is a ratio); the API's
# documentation and older sweeps still say warmup_ratio.
ALIASES = {"warmup_ratio": "warmup_steps"}

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass
class RoutedParameters:
    model: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    given_as: dict[str, str] = field(default_factory=dict)
    """Names the sweep used where they differ from the field's (warmup_ratio)."""

    def sweep_names(self, fields: Iterable[str]) -> list[str]:
        """Field names as the sweep wrote them, for messages and blame."""
        return [self.given_as.get(f, f) for f in fields]


def _fail(message: str, faulty: Iterable[str] = ()) -> TrialError:
    """An invalid parameter; `faulty` names it when its value, not its name, is at fault."""
    return TrialError(Reason.invalid_parameter, message, faulty)


def model_override(parameters: Mapping[str, Scalar]) -> str | None:
    """The per-trial `model` parameter, if any (needed before the config can be loaded)."""
    value = parameters.get(MODEL_PARAMETER)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(
            f"parameter 'model' must be a model reference (a string), got {value!r}",
            [MODEL_PARAMETER],
        )
    return value.strip()


def route_parameters(
    parameters: Mapping[str, Scalar],
    training_fields: Mapping[str, Any],
    config: Any,
) -> RoutedParameters:
    """Split `parameters` into TrainingArguments and model-config values, coerced to type.

    `training_fields` maps TrainingArguments field names to their annotations; `config` is the
    loaded model config (a `PretrainedConfig`). Raises TrialError(InvalidParameter) for an
    unknown name (with a "did you mean"), a managed name, or a value of the wrong type.
    """
    routed = RoutedParameters(model=model_override(parameters))
    for name, value in parameters.items():
        if name == MODEL_PARAMETER:
            continue
        if name in TRAINER_OWNED:
            raise _fail(f"parameter {name!r} cannot be set: {TRAINER_OWNED[name]}")
        target = name
        if name not in training_fields and ALIASES.get(name) in training_fields:
            target = ALIASES[name]
            if target in parameters:
                raise _fail(f"give {name!r} or {target!r}, not both")
            routed.given_as[target] = name
        if target in training_fields:
            routed.training[target] = coerce(name, value, annotation_kinds(training_fields[target]))
        elif is_config_field(config, name):
            routed.model_config[name] = coerce_like(name, value, getattr(config, name))
        else:
            raise _fail(unknown_message(name, [*training_fields, *ALIASES, *_config_names(config)]))
    return routed


def unknown_message(name: str, known: Iterable[str]) -> str:
    message = (
        f"unknown parameter {name!r}: not a TrainingArguments field, a model config field "
        "or 'model'"
    )
    close = difflib.get_close_matches(name, sorted(set(known) | {MODEL_PARAMETER}), n=1)
    return f"{message}; did you mean {close[0]!r}?" if close else message


def is_config_field(config: Any, name: str) -> bool:
    """A settable config value (num_hidden_layers), not a method (to_dict) or a private name."""
    if name.startswith("_") or not hasattr(config, name):
        return False
    return not callable(getattr(config, name))


def _config_names(config: Any) -> list[str]:
    to_dict = getattr(config, "to_dict", None)
    names = to_dict() if callable(to_dict) else vars(config)
    return [n for n in names if not n.startswith("_")]


def annotation_kinds(annotation: Any) -> set[str]:
    """The scalar kinds a dataclass field accepts: a subset of bool, int, float, str, other."""
    if isinstance(annotation, str):  # postponed annotations (`from __future__ import ...`)
        return _string_kinds(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(annotation_kinds(a) for a in typing.get_args(annotation)))
    if origin is typing.Literal:
        return {type(v).__name__ for v in typing.get_args(annotation)}
    if annotation is type(None):
        return set()
    if annotation in (bool, int, float, str):
        return {annotation.__name__}
    if isinstance(annotation, type) and issubclass(annotation, str | enum.Enum):
        return {"str"}  # TrainingArguments turns strings into its enums itself
    return {"other"}


def _string_kinds(annotation: str) -> set[str]:
    """annotation_kinds for an annotation written as text, without evaluating it."""
    text = annotation.strip()
    wrapped = re.fullmatch(r"(?:typing\.)?(?:Union|Optional)\[(.*)\]", text)
    members = _split_top_level(wrapped.group(1), ",") if wrapped else _split_top_level(text, "|")
    if wrapped and text.removeprefix("typing.").startswith("Optional"):
        members.append("None")
    if len(members) > 1:
        return set().union(*(_string_kinds(m) for m in members))
    base = text.split("[", 1)[0].removeprefix("typing.")
    if base == "Literal":
        return {"str"} if ("'" in text or '"' in text) else {"other"}
    if base in ("None", "NoneType"):
        return set()
    if base in ("bool", "int", "float", "str"):
        return {base}
    if base.endswith(("Strategy", "Type", "Names")):  # IntervalStrategy, SchedulerType, ...
        return {"str"}
    return {"other"}


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split at `separator` outside brackets: "dict[str, int] | None" -> two members."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == separator and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [p for p in parts if p]


def coerce(name: str, value: Scalar, kinds: set[str]) -> Scalar:
    """`value` converted to one of `kinds`, preferring the most specific; TrialError if none."""
    if isinstance(value, bool):
        if "bool" in kinds:
            return value
    elif isinstance(value, int | float):
        if "int" in kinds and float(value).is_integer():
            return int(value)
        if "float" in kinds:
            return float(value)
        if "str" in kinds:
            return str(value)
    else:  # a string
        if "str" in kinds:
            return value
        lowered = value.strip().lower()
        if "bool" in kinds and lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        if kinds & {"int", "float"}:
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                return coerce(name, number, kinds)
    # A field no scalar can set fails whatever the value: its name is at fault, not the value.
    settable = kinds & {"bool", "int", "float", "str"}
    raise _fail(
        f"parameter {name!r} must be {_describe(kinds)}, got {value!r}",
        [name] if settable else [],
    )


def coerce_like(name: str, value: Scalar, current: Any) -> Any:
    """`value` converted to the type of a config attribute's current value."""
    if current is None:
        return value
    if isinstance(current, bool | int | float | str):
        return coerce(name, value, {type(current).__name__})
    raise _fail(
        f"parameter {name!r} is a {type(current).__name__} in the model config, "
        "which a scalar cannot set"
    )


def _describe(kinds: set[str]) -> str:
    words = {
        "bool": "true or false",
        "int": "a whole number",
        "float": "a number",
        "str": "a string",
    }
    described = [words[k] for k in ("int", "float", "bool", "str") if k in kinds]
    if not described:
        return "something a scalar cannot express (not settable from a sweep)"
    return " or ".join(described)


def rejected_parameters(
    build: Callable[[dict[str, Any]], object], given: dict[str, Any]
) -> list[str]:
    """Which of `given` a failing `build(given)` is to blame on: each parameter without which
    it builds (leave one out: building TrainingArguments takes milliseconds). When none alone
    is to blame (a combination), all of them are; when it fails with none of them, none is."""
    try:
        build({})
    except (ValueError, TypeError):
        return []
    blamed = []
    for name in given:
        try:
            build({k: v for k, v in given.items() if k != name})
        except (ValueError, TypeError):
            continue
        blamed.append(name)
    return blamed or list(given)
