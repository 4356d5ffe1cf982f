"""The one exception type for failures that are the trial's inputs' fault, not the trainer's."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a trial ended, as written to the result file's `reason` (CamelCase, like Kubernetes
    reasons, so the operator can copy it into the BertTrial unchanged)."""

    invalid_config = "InvalidConfig"  # arguments or BERTSWEEP_* environment
    invalid_data = "InvalidData"  # files, columns, labels, splits
    invalid_parameter = "InvalidParameter"  # a hyperparameter name or value
    model_unavailable = "ModelUnavailable"  # a model reference that does not load
    signal = "Signal"  # stopped by SIGTERM/SIGINT (a pruned trial)
    crashed = "TrainerError"  # anything unexpected: a bug, out of memory, ...


class TrialError(Exception):
    """An expected failure: the trial's inputs are wrong. It ends the trial with exit code 1 and
    a single-line message (no traceback: the message is the whole story for the user)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = one_line(message)


def one_line(text: str) -> str:
    """Collapse whitespace runs and newlines, so a message fits a log line or a status field."""
    return " ".join(text.split())
