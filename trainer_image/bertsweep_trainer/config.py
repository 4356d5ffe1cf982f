"""The trial's configuration: command-line arguments, each defaulting to its BERTSWEEP_* variable.

The operator and the local runner set the environment (names in `bertsweep.contract`); the
arguments exist so that a person can run one trial by hand: any `--NAME VALUE` the parser does
not know is a hyperparameter (as `bertsweep best --format args` prints a sweep's best
configuration), and wins over the same name in --parameters. Anything wrong here fails the trial
with reason InvalidConfig, never with argparse's exit code 2, so every failure looks the same to
whoever watches the trial.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from pydantic import ValidationError

import bertsweep.contract as contract
from bertsweep.api import Dataset, Inference, Scalar, describe_validation_error
from bertsweep.contract import Reason
from bertsweep_trainer.errors import TrialError

DEFAULT_SCRAPE_WAIT = 30.0  # a Prometheus scrape interval is typically 15 to 30 s
DEFAULT_METRICS_ADDR = "0.0.0.0"


@dataclass(frozen=True)
class TrialConfig:
    sweep: str
    trial: str
    model: str | None
    dataset: Dataset
    parameters: dict[str, Scalar] = field(default_factory=dict)
    metrics_addr: str = DEFAULT_METRICS_ADDR
    metrics_port: int = contract.DEFAULT_METRICS_PORT
    result_file: str = contract.DEFAULT_RESULT_FILE
    scrape_wait: float = DEFAULT_SCRAPE_WAIT
    inference: Inference = field(default_factory=Inference)
    """How the model's inference latency is measured."""
    index: int = 0
    """The trial's index in its sweep (ties between equal scores go to the earlier trial)."""
    models: contract.ModelStore | None = None
    """Where to save the fine-tuned model, and how many models the sweep keeps."""
    task: str = contract.TASK_TRAIN
    simulate: float | None = None
    """Simulate a trial lasting this many seconds: the contract without a model (benchmarks)."""
    kept: tuple[str, ...] = ()
    """The finalize task: the trials whose models the sweep keeps."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise TrialError(Reason.invalid_config, message)


def _parser(env: Mapping[str, str]) -> _Parser:
    p = _Parser(
        prog="bertsweep-trainer",
        description="Fine-tune one BERT trial and report its metrics (one BertSweep trial).",
        epilog="Every option defaults to its environment variable, shown in brackets. "
        "Any other --NAME VALUE is a hyperparameter (TrainingArguments or model config).",
        # --learning_rate must not pass for an abbreviation of an option of ours.
        allow_abbrev=False,
    )

    def option(flag: str, var: str, help: str, default: str | None = None) -> None:
        p.add_argument(flag, default=env.get(var, default), help=f"{help} [{var}]")

    option("--sweep", contract.ENV_SWEEP, "sweep name (the `sweep` label)", "local")
    option("--trial", contract.ENV_TRIAL, "trial name (the `trial` label)", "trial")
    option("--model", contract.ENV_MODEL, "hub id, folder, or pkg:DISTRIBUTION/PATH")
    option("--dataset", contract.ENV_DATASET, "JSON of the sweep's `dataset` (camelCase keys)")
    option("--parameters", contract.ENV_PARAMETERS, "JSON object: name -> value", "{}")
    option(
        "--metrics-addr", contract.ENV_METRICS_ADDR, "address for /metrics", DEFAULT_METRICS_ADDR
    )
    option(
        "--metrics-port",
        contract.ENV_METRICS_PORT,
        "port for /metrics; 0 picks a free one",
        str(contract.DEFAULT_METRICS_PORT),
    )
    option(
        "--result-file",
        contract.ENV_RESULT_FILE,
        "where the outcome is written (JSON)",
        contract.DEFAULT_RESULT_FILE,
    )
    option(
        "--scrape-wait",
        contract.ENV_SCRAPE_WAIT,
        "seconds to keep serving /metrics for a last scrape",
        str(DEFAULT_SCRAPE_WAIT),
    )
    option("--index", contract.ENV_TRIAL_INDEX, "the trial's index in its sweep", "0")
    option("--inference", contract.ENV_INFERENCE, "JSON: how latency is measured", "{}")
    option("--models", contract.ENV_MODELS, "JSON: where to save the model, how many to keep")
    option("--task", contract.ENV_TASK, "train, or finalize a sweep's models", contract.TASK_TRAIN)
    option("--kept", contract.ENV_KEPT, "finalize: JSON list of the kept trials", "[]")
    option(
        "--simulate",
        contract.ENV_SIMULATE,
        "simulate a trial of this many seconds: no model, no data (for benchmarks)",
    )
    return p


def parse_config(argv: Sequence[str] | None, env: Mapping[str, str]) -> TrialConfig:
    """Parse arguments over environment defaults; raises TrialError(InvalidConfig)."""
    ns, extra = _parser(env).parse_known_args(argv)
    if not ns.dataset:
        raise TrialError(
            Reason.invalid_config, f"no dataset: set {contract.ENV_DATASET} or --dataset"
        )
    if ns.task not in (contract.TASK_TRAIN, contract.TASK_FINALIZE):
        raise TrialError(Reason.invalid_config, f"unknown task {ns.task!r}: train or finalize")
    return TrialConfig(
        sweep=ns.sweep,
        trial=ns.trial,
        model=ns.model or None,
        dataset=parse_dataset(ns.dataset),
        parameters={**parse_parameters(ns.parameters), **parameter_flags(extra)},
        metrics_addr=ns.metrics_addr,
        metrics_port=_port(ns.metrics_port),
        result_file=ns.result_file,
        scrape_wait=_seconds(ns.scrape_wait),
        index=_index(ns.index),
        inference=_inference(ns.inference),
        models=_models(ns.models),
        task=ns.task,
        simulate=None if ns.simulate is None else _seconds(ns.simulate),
        kept=_names(ns.kept),
    )


def parameter_flags(args: Sequence[str]) -> dict[str, Scalar]:
    """`--learning_rate 3e-05 --fp16 true` as parameters: each value read as a JSON scalar
    when it is one (3e-05, true, 32), else kept as the string it is (cosine)."""
    parameters: dict[str, Scalar] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        name, given, value = flag.removeprefix("--").partition("=")
        if not flag.startswith("--") or not name:
            raise TrialError(Reason.invalid_config, f"unrecognized argument {flag!r}")
        if not given:
            if not rest or rest[0].startswith("--"):
                raise TrialError(Reason.invalid_config, f"{flag} needs a value")
            value = rest.pop(0)
        parameters[name.replace("-", "_")] = _scalar(value)
    return parameters


def _scalar(text: str) -> Scalar:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(value, bool | int | float | str):
        return value
    return text


def result_file_from(argv: Sequence[str] | None, env: Mapping[str, str]) -> str:
    """The result file, best effort, for reporting a configuration that did not parse."""
    args = list(argv or [])
    for i, arg in enumerate(args):
        if arg.startswith("--result-file="):
            return arg.partition("=")[2]
        if arg == "--result-file" and i + 1 < len(args):
            return args[i + 1]
    return env.get(contract.ENV_RESULT_FILE, contract.DEFAULT_RESULT_FILE)


def parse_dataset(text: str) -> Dataset:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TrialError(Reason.invalid_config, f"dataset is not valid JSON: {error}") from None
    try:
        return Dataset.model_validate(document)
    except ValidationError as error:
        problems = describe_validation_error(error, "dataset").replace("\n", "; ")
        raise TrialError(Reason.invalid_config, problems) from None


def parse_parameters(text: str) -> dict[str, Scalar]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TrialError(Reason.invalid_config, f"parameters are not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise TrialError(Reason.invalid_config, "parameters must be a JSON object (name -> value)")
    for name, value in document.items():
        if not isinstance(value, bool | int | float | str):
            raise TrialError(
                Reason.invalid_parameter,
                f"parameter {name!r} must be a number, a string or a boolean, got {value!r}",
            )
    return document


def _index(text: str) -> int:
    try:
        index = int(text)
    except ValueError:
        index = -1
    if index < 0:
        raise TrialError(Reason.invalid_config, f"trial index must be a whole number, got {text!r}")
    return index


def _inference(text: str) -> Inference:
    try:
        return Inference.model_validate_json(text)
    except ValidationError as error:
        problems = describe_validation_error(error, "inference").replace("\n", "; ")
        raise TrialError(Reason.invalid_config, problems) from None


def _models(text: str | None) -> contract.ModelStore | None:
    if not text:
        return None
    try:
        return contract.ModelStore.model_validate_json(text)
    except ValidationError as error:
        problems = describe_validation_error(error, "models").replace("\n", "; ")
        raise TrialError(Reason.invalid_config, problems) from None


def _names(text: str) -> tuple[str, ...]:
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise TrialError(
            Reason.invalid_config, f"kept: expected a JSON list of trials, got {text!r}"
        )
    return tuple(names)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise TrialError(Reason.invalid_config, f"metrics port must be 0..65535, got {text!r}")
    return port


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise TrialError(Reason.invalid_config, f"scrape wait must be seconds >= 0, got {text!r}")
    return seconds
