"""The trial's configuration: command-line arguments, each defaulting to its BERTSWEEP_* variable.

The operator and the local runner set the environment (names in `bertsweep.contract`); the
arguments exist so that a person can run one trial by hand. Anything wrong here fails the trial
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
from bertsweep.api import Dataset, Scalar, describe_validation_error
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise TrialError(Reason.invalid_config, message)


def _parser(env: Mapping[str, str]) -> _Parser:
    p = _Parser(
        prog="bertsweep-trainer",
        description="Fine-tune one BERT trial and report its metrics (one BertSweep trial).",
        epilog="Every option defaults to its environment variable, shown in brackets.",
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
    return p


def parse_config(argv: Sequence[str] | None, env: Mapping[str, str]) -> TrialConfig:
    """Parse arguments over environment defaults; raises TrialError(InvalidConfig)."""
    ns = _parser(env).parse_args(argv)
    if not ns.dataset:
        raise TrialError(
            Reason.invalid_config, f"no dataset: set {contract.ENV_DATASET} or --dataset"
        )
    return TrialConfig(
        sweep=ns.sweep,
        trial=ns.trial,
        model=ns.model or None,
        dataset=parse_dataset(ns.dataset),
        parameters=parse_parameters(ns.parameters),
        metrics_addr=ns.metrics_addr,
        metrics_port=_port(ns.metrics_port),
        result_file=ns.result_file,
        scrape_wait=_seconds(ns.scrape_wait),
    )


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
