"""The life of one pod on this node: a state machine, and the record the runner keeps per pod.

Two things happen to a pod independently: its process runs and ends, and its API object is
marked for deletion and then disappears. ``PodState`` is their product, reduced to the states
that matter for what the runner still has to do. The events and where they lead (``.``: the
event does not apply and the state stays):

                 LAUNCHED   DELETION_REQUESTED  OBJECT_GONE  PROCESS_EXITED
    STARTING     RUNNING    TERMINATING         ORPHANED     EXITED (the start failed)
    RUNNING      .          TERMINATING         ORPHANED     EXITED
    TERMINATING  .          .                   ORPHANED     DELETING
    ORPHANED     .          .                   .            GONE
    EXITED       .          DELETING            GONE         .
    DELETING     .          .                   GONE         .
    GONE         .          .                   .            .

``ALLOWED`` spells out every edge and ``Run.advance`` refuses any other. The caller acts on
the edge it took (start a kill, write the final status, delete the object, remove the pod's
files), so each action happens exactly once, whichever thread saw its event first.
"""

from __future__ import annotations

import enum
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only with --simulate-in-process is the trainer imported at all
    from .inprocess import SimulatedPod


class PodState(enum.Enum):
    STARTING = "starting"  # recorded; its process is being prepared (or failed to start)
    RUNNING = "running"  # its process runs; the pod object is not being deleted
    TERMINATING = "terminating"  # deletion asked: killing it; the object is deleted afterwards
    ORPHANED = "orphaned"  # the object is gone but the process still runs: kill, then clean up
    EXITED = "exited"  # the process ended (its final status is reported); the object stays
    DELETING = "deleting"  # the process ended and the object's final delete is (being) sent
    GONE = "gone"  # the process ended and the object is gone: nothing is left to do

    @property
    def process_ended(self) -> bool:
        return self in _ENDED

    @property
    def object_gone(self) -> bool:
        return self in (PodState.ORPHANED, PodState.GONE)


_ENDED = frozenset({PodState.EXITED, PodState.DELETING, PodState.GONE})


class PodEvent(enum.Enum):
    LAUNCHED = "launched"  # the process was started
    DELETION_REQUESTED = "deletion-requested"  # the object has a deletionTimestamp
    OBJECT_GONE = "object-gone"  # the watch says DELETED, or a relist no longer has it
    PROCESS_EXITED = "process-exited"  # reaped, or the start failed


_S, _E = PodState, PodEvent
_NEXT: dict[tuple[PodState, PodEvent], PodState] = {
    (_S.STARTING, _E.LAUNCHED): _S.RUNNING,
    (_S.STARTING, _E.DELETION_REQUESTED): _S.TERMINATING,
    (_S.RUNNING, _E.DELETION_REQUESTED): _S.TERMINATING,
    (_S.EXITED, _E.DELETION_REQUESTED): _S.DELETING,
    (_S.STARTING, _E.OBJECT_GONE): _S.ORPHANED,
    (_S.RUNNING, _E.OBJECT_GONE): _S.ORPHANED,
    (_S.TERMINATING, _E.OBJECT_GONE): _S.ORPHANED,
    (_S.EXITED, _E.OBJECT_GONE): _S.GONE,
    (_S.DELETING, _E.OBJECT_GONE): _S.GONE,
    (_S.STARTING, _E.PROCESS_EXITED): _S.EXITED,
    (_S.RUNNING, _E.PROCESS_EXITED): _S.EXITED,
    (_S.TERMINATING, _E.PROCESS_EXITED): _S.DELETING,
    (_S.ORPHANED, _E.PROCESS_EXITED): _S.GONE,
}

ALLOWED: dict[PodState, frozenset[PodState]] = {
    _S.STARTING: frozenset({_S.RUNNING, _S.TERMINATING, _S.ORPHANED, _S.EXITED}),
    _S.RUNNING: frozenset({_S.TERMINATING, _S.ORPHANED, _S.EXITED}),
    _S.TERMINATING: frozenset({_S.ORPHANED, _S.DELETING}),
    _S.ORPHANED: frozenset({_S.GONE}),
    _S.EXITED: frozenset({_S.DELETING, _S.GONE}),
    _S.DELETING: frozenset({_S.GONE}),
    _S.GONE: frozenset(),
}


class InvalidTransition(RuntimeError):
    pass


def next_state(state: PodState, event: PodEvent) -> PodState:
    """Where ``event`` takes a pod in ``state``; unchanged when the event does not apply there
    (a second deletion request, a DELETED event for a pod already gone, ...)."""
    return _NEXT.get((state, event), state)


def check_transition(old: PodState, new: PodState) -> None:
    if new is not old and new not in ALLOWED[old]:
        raise InvalidTransition(f"pod state {old.value} -> {new.value} is not allowed")


@dataclass
class Run:
    """One pod this runner started (or tried to start) a process for, or plays in-process."""

    uid: str
    namespace: str
    name: str
    ip: str
    pod_dir: Path
    log_path: Path
    term_path: Path
    fallback_to_logs: bool
    container: str
    image: str
    grace_s: int
    labels: dict[str, str]
    metrics_port: int | None
    metrics_path: str | None
    proc: subprocess.Popen[bytes] | None = None
    # A simulated trainer the runner plays itself (inprocess.py) instead of a process.
    sim: SimulatedPod | None = None
    started_at: str = ""
    state: PodState = PodState.STARTING
    # Re-entrant: the reaper holds it across proc.wait() and the PROCESS_EXITED transition, so
    # that no signal can reach a process group id the kernel may already have reused.
    lock: threading.RLock = field(default_factory=threading.RLock)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def launched(self) -> bool:
        """Whether its container was started (as a process or in-process)."""
        return self.proc is not None or self.sim is not None

    def advance(self, event: PodEvent) -> tuple[PodState, PodState]:
        """Apply ``event``; returns (old, new) so the caller acts on the edge taken, once."""
        with self.lock:
            old = self.state
            new = next_state(old, event)
            check_transition(old, new)
            self.state = new
            return old, new
