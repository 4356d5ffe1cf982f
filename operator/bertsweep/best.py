"""The best trial of a sweep as a whole configuration: what to train again.

A trial's record holds only its searched values; the sweep's `fixed` values and its model
reference complete them. `bertsweep best` prints the result as YAML, JSON, or command-line
flags for `bertsweep-trainer` (or any script that takes TrainingArguments flags), from a
local run's result.json or from a BertSweep's status in a cluster (`remote.py`).

Pure: plain data in, text out (`target` alone looks at the filesystem, to tell a path from a
sweep's name).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bertsweep.api import MINIMIZED_METRICS, SWEEP_NAME, SWEEP_NAME_MAX, Scalar, TrialSummary

MODEL = "model"
_SWEEP_NAME = re.compile(SWEEP_NAME)


class Format(StrEnum):
    yaml = "yaml"
    json = "json"
    args = "args"


class ResultError(ValueError):
    """A result that holds no readable best trial; the message is for the user."""


@dataclass(frozen=True)
class BestConfiguration:
    """Everything that made the best trial what it was, and what it reached."""

    sweep: str | None
    trial: TrialSummary
    model: str | None
    """The checkpoint it fine-tuned: its searched `model` parameter, else `spec.model`
    (None only when the spec is unknown)."""
    parameters: dict[str, Scalar]
    """Its searched values, then the sweep's fixed ones (a searched `model` is `model`)."""
    spec_known: bool
    """False for a result without the sweep's spec (an older result.json): the fixed values
    and the model may be missing."""

    def wire(self) -> dict[str, Any]:
        """The JSON/YAML form: the sweep's status.bestTrial (name, parameters, metrics,
        modelPath, testMetrics), parameters completed with the fixed values, plus the sweep's
        name and the model. modelPath and testMetrics appear only when the trial has them."""
        out: dict[str, Any] = {"sweep": self.sweep, "name": self.trial.name}
        if self.model is not None:
            out["model"] = self.model
        out["parameters"] = dict(self.parameters)
        out["metrics"] = dict(self.trial.metrics)
        if self.trial.model_path:
            out["modelPath"] = self.trial.model_path
        if self.trial.test_metrics:
            out["testMetrics"] = dict(self.trial.test_metrics)
        return out


def configuration(
    sweep: str | None, spec: Mapping[str, Any] | None, best: TrialSummary
) -> BestConfiguration:
    """The best trial `best` of sweep `sweep` completed by its spec (wire form, read
    leniently: only `model` and `fixed` are needed, and a spec this version could not parse
    in full still has them). A searched value wins over a fixed one of the same name (the
    API refuses such a spec; an edited one may still hold it)."""
    searched = dict(best.parameters)
    model = searched.pop(MODEL, None)
    fixed: dict[str, Scalar] = {}
    if spec is not None:
        raw_fixed = spec.get("fixed")
        if isinstance(raw_fixed, Mapping):
            fixed = {
                str(k): v
                for k, v in raw_fixed.items()
                if isinstance(v, bool | int | float | str) and k != MODEL
            }
        if model is None and isinstance(spec.get("model"), str):
            model = spec["model"]
    parameters = {**searched, **{k: v for k, v in fixed.items() if k not in searched}}
    return BestConfiguration(
        sweep=sweep,
        trial=best,
        model=None if model is None else str(model),
        parameters=parameters,
        spec_known=spec is not None,
    )


def summary(data: Any, where: str) -> TrialSummary:
    """A bestTrial as stored (a local result, a sweep's status), or ResultError."""
    try:
        return TrialSummary.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ResultError(f"{where}: bestTrial is not readable: {problems}") from None


@dataclass(frozen=True)
class Preference:
    """`--prefer METRIC [--tolerance T]`: of the trials within T of the best value of the
    primary objective, the one best on METRIC (the cheapest, for a cost)."""

    metric: str
    tolerance: float


def prefer(
    candidates: list[TrialSummary],
    primary: str,
    maximize: bool,
    preference: Preference,
) -> TrialSummary | None:
    """The candidate `preference` picks (candidates: the Pareto front, else the leaderboard);
    None when no candidate reports both metrics."""
    usable = [c for c in candidates if primary in c.metrics and preference.metric in c.metrics]
    if not usable:
        return None
    best = (max if maximize else min)(c.metrics[primary] for c in usable)
    near = [c for c in usable if abs(c.metrics[primary] - best) <= preference.tolerance]
    lower = preference.metric in MINIMIZED_METRICS
    return (min if lower else max)(near, key=lambda c: c.metrics[preference.metric])


def preferred(
    status: Mapping[str, Any], spec: Mapping[str, Any] | None, preference: Preference, where: str
) -> TrialSummary | None:
    """What `preference` picks from a status (wire form): its Pareto front, else its
    leaderboard, by the spec's primary objective."""
    raw = status.get("paretoFront") or status.get("leaderboard") or []
    candidates = [summary(item, where) for item in raw if isinstance(item, Mapping)]
    objectives = (spec or {}).get("objectives") or [(spec or {}).get("objective") or {}]
    first = objectives[0] if isinstance(objectives, list) and objectives else {}
    primary = str(first.get("metric") or "eval_accuracy") if isinstance(first, Mapping) else ""
    maximize = not (isinstance(first, Mapping) and first.get("goal") == "minimize")
    return prefer(candidates, primary, maximize, preference)


def from_result(
    result: Mapping[str, Any], where: str, preference: Preference | None = None
) -> BestConfiguration | None:
    """The best configuration of a local run's result.json (None: no trial succeeded), or
    the one `preference` picks from its front. The spec is the result's "spec" (the sweep as
    run); results written before it was kept have none, and then the fixed values are
    unknown."""
    best = result.get("bestTrial")
    if not best:
        return None
    if preference is not None:
        status = result.get("status")
        spec = result.get("spec")
        picked = preferred(
            status if isinstance(status, Mapping) else {},
            spec if isinstance(spec, Mapping) else None,
            preference,
            where,
        )
        if picked is None:
            raise ResultError(f"{where}: no trial of the front reports {preference.metric}")
        best = picked.model_dump(mode="json", by_alias=True)
    spec = result.get("spec")
    sweep = result.get("sweep")
    return configuration(
        sweep if isinstance(sweep, str) else None,
        spec if isinstance(spec, Mapping) else None,
        summary(best, where),
    )


def flag_value(value: Scalar) -> str:
    """A value as a flag's argument: numbers and booleans as JSON writes them (3e-05, 16,
    true), strings as they are (cosine, not "cosine"), so that the usual parsers of such
    flags (argparse with types, HfArgumentParser) read back the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return value


def as_args(config: BestConfiguration) -> list[str]:
    """The configuration as bertsweep-trainer's flags: `--model REF`, then `--NAME VALUE` for
    every parameter, in `parameters` order. A value starting with '-' is written
    `--NAME=VALUE`, which no parser takes for a flag of its own."""
    args: list[str] = []
    items: list[tuple[str, Scalar]] = []
    if config.model is not None:
        items.append((MODEL, config.model))
    items += list(config.parameters.items())
    for name, value in items:
        text = flag_value(value)
        if text.startswith("-"):
            args.append(f"--{name}={text}")
        else:
            args += [f"--{name}", text]
    return args


def render(config: BestConfiguration, format: Format) -> str:
    """The text `bertsweep best` prints (ending with a newline)."""
    if format is Format.args:
        return shlex.join(as_args(config)) + "\n"
    if format is Format.json:
        return json.dumps(config.wire(), indent=2) + "\n"
    return yaml.safe_dump(config.wire(), sort_keys=False)


def target(text: str) -> Path | None:
    """What `bertsweep best TARGET` means: an existing file or folder is a local result; else
    a name a BertSweep can have (a DNS subdomain: lowercase, digits, '-', '.') is a sweep in
    the cluster (None); anything else (it has a '/', capitals, ...) is a path, which then
    does not exist."""
    path = Path(text)
    if path.exists():
        return path
    if len(text) <= SWEEP_NAME_MAX and _SWEEP_NAME.match(text):
        return None
    return path
