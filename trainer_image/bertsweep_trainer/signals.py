"""SIGTERM (what Kubernetes sends a pod the operator deletes, e.g. a pruned trial) and SIGINT
(Ctrl-C by hand) ask the trial to stop gracefully: training stops after the current step, the
last metrics become final, the result file is written, and the process exits 0.

The handler only sets flags: the training loop polls them (a TrainerCallback), because stopping
from inside a signal handler could interrupt torch half-way through an optimizer step.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


class StopRequest:
    """Set once a stop signal arrives; `finishing` marks the end phase, where a further signal
    means "stop waiting for the last scrape" rather than "stop training"."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.signal_name: str | None = None
        self.finishing = False
        self.abandon_wait = threading.Event()

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.finishing:
            self.abandon_wait.set()
            return
        if not self.requested.is_set():
            self.signal_name = name
            self.requested.set()
            log.info("%s received: stopping after the current step", name)

    def __bool__(self) -> bool:
        return self.requested.is_set()
