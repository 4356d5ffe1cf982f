"""Writing the result file (`bertsweep.contract.TrialResult`): how the trial ended.

In a cluster it is the container's termination message (/dev/termination-log), which the
kubelet truncates at 4096 bytes, so it holds the outcome and the final metrics only; the
history of evaluations travels through /metrics.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bertsweep.contract import TrialResult

log = logging.getLogger(__name__)


def write_result(path: str, result: TrialResult) -> None:
    """Write the result file; a failure to write is logged, not raised (nothing better to do)."""
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(result.render() + "\n", encoding="utf-8")
    except OSError as error:
        log.error("cannot write the result file %s: %s", path, error)
