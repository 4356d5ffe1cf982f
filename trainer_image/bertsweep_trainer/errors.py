"""The one exception type for failures that are the trial's inputs' fault, not the trainer's."""

from __future__ import annotations

from collections.abc import Iterable

from bertsweep.contract import Reason


class TrialError(Exception):
    """An expected failure: the trial's inputs are wrong. It ends the trial with exit code 1 and
    a single-line message (no traceback: the message is the whole story for the user).

    `faulty_parameters` names the parameters whose values caused it; left empty, the failure
    does not depend on any value (an unknown name, the data, the model), and whoever watches
    the sweep knows that every trial would fail the same way."""

    def __init__(self, reason: Reason, message: str, faulty_parameters: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = one_line(message)
        self.faulty_parameters = list(dict.fromkeys(faulty_parameters))


def one_line(text: str) -> str:
    """Collapse whitespace runs and newlines, so a message fits a log line or a status field."""
    return " ".join(text.split())
