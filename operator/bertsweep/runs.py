"""A local run's result.json read back: to resume the run (`bertsweep run --resume DIR`), or
to warm-start another sweep from it (`spec.warmStart`). Pure: `local.py` reads the files.

Resuming. The runner writes result.json whenever a trial starts or ends or the sweep's phase
changes (atomically: a runner killed at any moment leaves the last whole one), so an
interrupted run can go on from it:

- Finished trials (Succeeded, Failed, Pruned) are kept as they are, kept models included.
- Trials that were Pending or Running start again: same name, index and parameters, their
  reports and metrics cleared, `retries` one more; their old folder and model are removed
  before they start. No index is taken twice, so no trial runs twice.
- The manifest may differ from the run's recorded spec only in how much and how fast: maxTrials,
  parallelism (and `--workers`), maxFailedTrials, maxRetries, trialTemplate and metrics. Any
  other change (the model, data, objectives, search space, search, stopping, fixed values,
  output, warm start) would mix trials of two sweeps in one result, and is refused; so is a
  run of another sweep name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bertsweep.api import (
    ManifestError,
    SweepSpec,
    SweepStatus,
    Trial,
    TrialPhase,
    describe_validation_error,
)
from bertsweep.warm import EarlierSweep

# What may change between a run and its resumption: how much it runs and how, not what.
RESUMABLE_CHANGES = frozenset(
    {"max_trials", "parallelism", "max_failed_trials", "max_retries", "trial_template", "metrics"}
)


@dataclass(frozen=True)
class RecordedRun:
    """What a result.json holds."""

    sweep: str
    spec: SweepSpec | None
    status: SweepStatus
    trials: list[Trial] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """Trial records that could not be read (each with its problem)."""
    problem: str | None = None
    """Why the spec could not be read (None: it was, or there was none)."""


def read_run(document: Any, where: str) -> RecordedRun:
    """A result.json's contents, read leniently: unknown keys ignored, a trial record that
    cannot be read set aside with its problem. ManifestError, naming `where`, for a document
    that is no bertsweep result at all."""
    if not isinstance(document, Mapping) or not isinstance(document.get("trials", []), list):
        raise ManifestError(f"{where}: not the result of a bertsweep run")
    spec: SweepSpec | None = None
    problem = None
    raw_spec = document.get("spec")
    if raw_spec is None:
        problem = "no spec recorded (written by an older bertsweep)"
    else:
        try:
            spec = SweepSpec.model_validate(raw_spec)
        except ValidationError as error:
            first = describe_validation_error(error, "spec").splitlines()[0]
            problem = f"its recorded spec cannot be read ({first})"
    try:
        status = SweepStatus.model_validate(document.get("status") or {})
    except ValidationError:
        status = SweepStatus()
    trials: list[Trial] = []
    unreadable: list[str] = []
    for i, raw in enumerate(document.get("trials") or []):
        try:
            # Older results did not record the index: it is the trial's position.
            trials.append(Trial.model_validate({"index": i, **raw}))
        except (ValidationError, TypeError) as error:
            detail = (
                describe_validation_error(error).splitlines()[0]
                if isinstance(error, ValidationError)
                else "not a mapping"
            )
            unreadable.append(f"trials[{i}]: {detail}")
    return RecordedRun(
        sweep=str(document.get("sweep") or ""),
        spec=spec,
        status=status,
        trials=trials,
        unreadable=unreadable,
        problem=problem,
    )


def earlier_sweep(name: str, run: RecordedRun) -> EarlierSweep:
    """An earlier local run as a warm start sees it (its unreadable trials skipped)."""
    return EarlierSweep(name, run.spec, run.trials, run.problem)


def spec_changes(recorded: SweepSpec, spec: SweepSpec) -> list[str]:
    """The fields of `spec` (camelCase, as a manifest writes them) that differ from the
    recorded run's in a way a resumed run cannot take (see RESUMABLE_CHANGES)."""
    return [
        f"spec.{info.alias or name}"
        for name, info in SweepSpec.model_fields.items()
        if name not in RESUMABLE_CHANGES and getattr(recorded, name) != getattr(spec, name)
    ]


def resumable(sweep: str, spec: SweepSpec, run: RecordedRun, where: str) -> None:
    """Raise ManifestError (one line) unless the run at `where` can go on as `sweep`/`spec`."""
    if run.sweep != sweep:
        raise ManifestError(
            f"{where} holds a run of sweep {run.sweep or '(unnamed)'!r}, not {sweep!r}"
        )
    if run.spec is None:
        raise ManifestError(f"{where}: cannot resume: {run.problem}")
    if run.unreadable:
        raise ManifestError(
            f"{where}: cannot resume: a trial record cannot be read ({run.unreadable[0]})"
        )
    changed = spec_changes(run.spec, spec)
    if changed:
        may = ", ".join(sorted(SweepSpec.model_fields[f].alias or f for f in RESUMABLE_CHANGES))
        raise ManifestError(
            f"{where} ran another sweep: {', '.join(changed)} "
            f"differ{'s' if len(changed) == 1 else ''} from the manifest "
            f"(a resumed run may change only {may})"
        )


def resumed_trials(trials: list[Trial]) -> list[Trial]:
    """The records a resumed run starts from: finished trials as they are, the ones that
    were pending or running back to Pending (same name, index and parameters), cleared of
    what their interrupted attempt reported, and counted as started again."""
    return [
        t.model_copy(
            update={
                "phase": TrialPhase.pending,
                "reports": [],
                "metrics": {},
                "reason": None,
                "message": None,
                "model_path": None,
                "test_metrics": {},
                "start_time": None,
                "completion_time": None,
                "retries": t.retries + 1,
            }
        )
        if t.phase.active
        else t
        for t in sorted(trials, key=lambda t: t.index)
    ]
