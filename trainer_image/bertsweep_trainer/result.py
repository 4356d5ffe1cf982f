"""The result file: how the trial ended, in JSON, within the contract's size limit.

In a cluster it is the container's termination message (/dev/termination-log), which the
kubelet truncates at 4096 bytes, so it holds the outcome and the final metrics only; the
history of evaluations travels through /metrics.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from bertsweep.contract import RESULT_FILE_LIMIT

log = logging.getLogger(__name__)


class Status(StrEnum):
    completed = "completed"
    stopped = "stopped"  # by a signal: a pruned trial; its metrics are the last reached
    failed = "failed"


@dataclass
class Outcome:
    status: Status
    metrics: dict[str, float] = field(default_factory=dict)
    step: int = 0
    epoch: float = 0.0
    reason: str | None = None
    message: str | None = None

    def document(self) -> dict[str, Any]:
        """The JSON object written to the result file (non-finite metrics dropped: JSON has
        no NaN, and a NaN loss says no more than its absence)."""
        return {
            "status": self.status.value,
            "metrics": {k: v for k, v in self.metrics.items() if math.isfinite(v)},
            "step": self.step,
            "epoch": round(self.epoch, 4),
            "reason": self.reason,
            "message": self.message,
        }


def render(outcome: Outcome, limit: int = RESULT_FILE_LIMIT) -> str:
    """The result file's text, shortening the message if needed to stay under `limit` bytes."""
    document = outcome.document()
    text = json.dumps(document, allow_nan=False)
    message = document["message"] or ""
    while len(text.encode()) >= limit and message:
        message = message[: max(0, len(message) - (len(text.encode()) - limit) - 16)]
        document["message"] = message + "..."
        text = json.dumps(document, allow_nan=False)
    return text


def write_result(path: str, outcome: Outcome) -> None:
    """Write the result file; a failure to write is logged, not raised (nothing better to do)."""
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(outcome) + "\n", encoding="utf-8")
    except OSError as error:
        log.error("cannot write the result file %s: %s", path, error)
