"""From what a trial's pod or process says to what became of the trial: one vocabulary for
the operator and the local runner.

An `Outcome` is what a runner saw of a trial's pod or process now: still pending, running, or
ended (how, with the trainer's `TrialResult` when it left one). `finish()` turns an ended
outcome into the trial's final record, the same way for both runners: a trainer that exits 0
with status "completed" succeeded; anything else failed with the most specific reason there is
(what ended the pod, what killed the container, what the trainer said, what the runtime
said); final metrics are the ones a scrape read, then the result file's, then the last
evaluation's. `advance()` is the operator's step for one trial per pass: merge what the
metrics show, then apply the pod's outcome, starting a lost trial again when the spec allows.
Pure: pods are plain dicts, nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bertsweep import names, pods
from bertsweep.api import MAX_REPORTS, Report, Trial, TrialPhase
from bertsweep.contract import Observation, Reason, ResultStatus, TrialResult

# Container waiting reasons that mean the trainer will not start by itself. The first set is
# final at once; the second may clear (a registry hiccup, a secret created late), so a pod
# stuck in it fails only after `Timeouts.pod_error_seconds`.
FAILS_AT_ONCE = frozenset({"InvalidImageName", "ErrImageNeverPull"})
FAILS_IF_STUCK = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
# Why a pod ends that is the cluster's doing, not the trial's: its trial starts again. Pod
# status reasons (the kubelet's and the node controllers'), and the DisruptionTarget
# condition's reasons (Kubernetes 1.26 and later say why a pod is being taken away).
LOST_POD_REASONS = frozenset(
    {
        "Evicted",
        "NodeLost",
        "NodeShutdown",
        "Shutdown",
        "Terminated",
        "Preempting",
        "UnexpectedAdmissionError",
        "PreemptionByScheduler",
        "PreemptionByKubeScheduler",
        "DeletionByTaintManager",
        "EvictionByEvictionAPI",
        "DeletionByPodGC",
        "TerminationByKubelet",
    }
)
MESSAGE_LIMIT = 1024  # characters of a trainer's message kept in a record or an Event


@dataclass(frozen=True)
class Timeouts:
    """How long a pod may be stuck before its trial counts as failed."""

    pod_error_seconds: float = 180.0
    """A container waiting in ImagePullBackOff, CreateContainerConfigError, ..."""
    unschedulable_seconds: float = 900.0
    """No node can take the pod (GPUs, node selector, taints)."""


@dataclass(frozen=True)
class Outcome:
    """What a trial's pod or process says about the trial now."""

    phase: TrialPhase
    """pending or running while it goes on; succeeded or failed once it has ended."""
    reason: str | None = None
    message: str | None = None
    result: TrialResult | None = None
    started: datetime | None = None
    finished: datetime | None = None
    stuck: bool = False
    """The pod has not ended by itself (it never started): it must be deleted."""
    lost: bool = False
    """It ended by the cluster's doing (deleted, evicted, preempted, its node gone), not by
    anything the trial did: the trial may start again."""

    @property
    def ended(self) -> bool:
        return not self.phase.active


# ---- Ended processes, as both runners see them ----------------------------------------------


def exit_outcome(
    code: int | None,
    result: TrialResult | None,
    output: str | None,
    *,
    started: datetime | None = None,
    finished: datetime | None = None,
    container_reason: str | None = None,
) -> Outcome:
    """A trainer process that has exited with `code` (negative: killed by that signal),
    leaving `result` (None: no result file) and `output` (the tail of its log)."""
    if code == 0:
        if result is None or result.status is ResultStatus.completed:
            return Outcome(TrialPhase.succeeded, Reason.completed, None, result, started, finished)
        if result.status is ResultStatus.diverged:
            # Stopped at once, with its last good values: done, like a pruned trial, and not
            # a failure (mixed precision must not cost trials).
            message = one_line(result.message or "the training loss diverged")
            return Outcome(TrialPhase.pruned, Reason.diverged, message, result, started, finished)
        # Exit 0 without finishing: stopped from outside (a node drain, a deleted pod, a
        # signal by hand), and the trainer said so.
        detail = result.message or "the trainer stopped before it finished"
        return Outcome(
            TrialPhase.failed,
            result.reason or Reason.stopped,
            f"exit code 0: {one_line(detail)}",
            result,
            started,
            finished,
        )
    prefix = f"exit code {code}: " if code is not None else ""
    detail = (result.message if result else None) or one_line(output or "") or "no output"
    if container_reason == Reason.oom_killed:
        reason: str = Reason.oom_killed
        detail = "the container ran out of memory (limit reached)"
    elif result is not None and result.reason:
        reason = result.reason
    elif container_reason and container_reason not in ("Error", "Completed"):
        reason = container_reason
    elif code is not None and code < 0:
        reason = Reason.killed
    else:
        reason = Reason.error
    return Outcome(TrialPhase.failed, reason, clip(prefix + detail), result, started, finished)


def pod_outcome(pod: Mapping[str, Any], now: datetime, timeouts: Timeouts) -> Outcome:
    """Map a pod's status to its trial's phase and, once it ended, the reason why."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    container = _trainer_status(status)
    state = container.get("state") or {}
    terminated = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
    started = parse_time(status.get("startTime")) or parse_time(
        (state.get("running") or {}).get("startedAt")
    )
    disruption = _condition(status, "DisruptionTarget")
    taken = disruption.get("status") == "True"

    if phase in ("Succeeded", "Failed"):
        terminated = terminated or {}
        text = terminated.get("message")
        result = TrialResult.parse(text)
        finished = parse_time(terminated.get("finishedAt"))
        pod_reason = status.get("reason")
        if pod_reason:  # Evicted, DeadlineExceeded, NodeLost, Shutdown, ...
            code = terminated.get("exitCode")
            prefix = f"exit code {code}: " if code is not None else ""
            message = one_line(str(status.get("message") or "")) or one_line(text or "")
            return Outcome(
                TrialPhase.failed,
                str(pod_reason),
                clip(prefix + (message or "no output")),
                result,
                started,
                finished,
                lost=str(pod_reason) in LOST_POD_REASONS,
            )
        outcome = exit_outcome(
            terminated.get("exitCode"),
            result,
            (text if result is None else None) or status.get("message"),
            started=started,
            finished=finished,
            container_reason=terminated.get("reason"),
        )
        # A trial's pod is deleted only by its sweep once the trial is no longer active; a
        # deletion seen while the trial is active is someone else's, as is a disruption.
        deleted = bool(meta.get("deletionTimestamp"))
        signalled = result is not None and result.status is ResultStatus.stopped
        if outcome.phase is TrialPhase.failed and (
            taken or (deleted and (signalled or not result))
        ):
            why = disruption.get("reason") or Reason.pod_deleted
            return Outcome(
                TrialPhase.failed,
                str(why),
                f"the pod was taken away before the trial finished ({outcome.message})",
                result,
                started,
                finished,
                lost=True,
            )
        return outcome

    if phase in ("Running", "Unknown"):
        # Unknown: the node stopped reporting; Kubernetes decides, in time, whether it failed.
        return Outcome(TrialPhase.running, started=started)

    age = (now - (parse_time(meta.get("creationTimestamp")) or now)).total_seconds()
    waiting = state.get("waiting") or {}
    waiting_reason = waiting.get("reason")
    if waiting_reason in FAILS_AT_ONCE or (
        waiting_reason in FAILS_IF_STUCK and age >= timeouts.pod_error_seconds
    ):
        detail = one_line(str(waiting.get("message") or waiting_reason))
        return Outcome(
            TrialPhase.failed,
            str(waiting_reason),
            f"the trainer never started ({detail}; pod pending for {age:.0f}s)",
            stuck=True,
        )
    scheduled = _condition(status, "PodScheduled")
    if (
        scheduled.get("status") == "False"
        and scheduled.get("reason") == Reason.unschedulable
        and age >= timeouts.unschedulable_seconds
    ):
        detail = one_line(str(scheduled.get("message") or "no node fits the pod"))
        return Outcome(
            TrialPhase.failed,
            Reason.unschedulable,
            f"no node could run the trial for {age:.0f}s: {detail}",
            stuck=True,
        )
    return Outcome(TrialPhase.pending)


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    found: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == kind), {}
    )
    return found


def _trainer_status(status: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = status.get("containerStatuses") or []
    for s in statuses:
        if s.get("name") == pods.CONTAINER:
            return dict(s)
    return dict(statuses[0]) if statuses else {}


# ---- A trial's record, moved on by what was seen -------------------------------------------


def merge_reports(stored: Sequence[Report], observed: Sequence[Report]) -> list[Report]:
    """Stored and newly observed evaluations, by step (the newer reading of a step wins), oldest
    first, at most MAX_REPORTS: what Prometheus has forgotten stays in the record."""
    by_step = {r.step: r for r in stored}
    by_step.update({r.step: r for r in observed})
    return [by_step[s] for s in sorted(by_step)][-MAX_REPORTS:]


def observed(trial: Trial, observation: Observation | None) -> Trial:
    """The trial with what its metrics show: its evaluations, and its final values once it
    published them."""
    if observation is None:
        return trial
    update: dict[str, Any] = {}
    reports = merge_reports(trial.reports, observation.reports)
    if reports != trial.reports:
        update["reports"] = reports
    if observation.final:
        update["metrics"] = {**trial.metrics, **observation.final}
    return trial.model_copy(update=update) if update else trial


def finish(trial: Trial, outcome: Outcome, now: datetime) -> Trial:
    """The trial once its pod or process has ended. Final metrics: what a scrape read first,
    the result file for what no scrape caught, the last evaluation when neither has any; the
    result file's last evaluation joins the reports if no scrape caught it. A trial already
    ended (pruned by its sweep, its process then exiting) keeps its verdict and gains only
    the values its trainer reported last."""
    result = outcome.result
    metrics = {**(result.metrics if result else {}), **trial.metrics}
    if not metrics and trial.reports:
        metrics = dict(trial.reports[-1].metrics)
    reports = trial.reports
    last = result.last_report() if result else None
    if last is not None and (not reports or reports[-1].step < last.step):
        reports = merge_reports(reports, [last])
    update: dict[str, Any] = {"metrics": metrics, "reports": reports}
    if trial.phase.active:
        update |= {
            "phase": outcome.phase,
            "reason": outcome.reason,
            "message": outcome.message,
            "faulty_parameters": list(result.faulty_parameters) if result else [],
            "model_path": result.model_path if result else None,
            "start_time": trial.start_time or outcome.started or outcome.finished or now,
            "completion_time": outcome.finished or now,
        }
    return trial.model_copy(update=update)


def end(trial: Trial, phase: TrialPhase, reason: str, message: str, now: datetime) -> Trial:
    """End a trial by the sweep's decision (pruned, stopped) with what it has reached."""
    metrics = dict(trial.metrics)
    if not metrics and trial.reports:
        metrics = dict(trial.reports[-1].metrics)
    return trial.model_copy(
        update={
            "phase": phase,
            "reason": reason,
            "message": clip(message),
            "metrics": metrics,
            "completion_time": now,
        }
    )


def retry(trial: Trial, outcome: Outcome, max_retries: int, now: datetime) -> Trial:
    """A trial the cluster lost: Pending again with the same parameters and a clean record
    (its next pod starts from scratch), or Failed with the loss once the retries are spent."""
    if trial.retries >= max_retries:
        spent = f"; it was started {max_retries + 1} times (maxRetries {max_retries})"
        lost = Outcome(
            TrialPhase.failed,
            outcome.reason,
            clip(f"{outcome.message}{spent}"),
            outcome.result,
            outcome.started,
            outcome.finished,
        )
        return finish(trial, lost, now)
    attempt = trial.retries + 1
    return trial.model_copy(
        update={
            "phase": TrialPhase.pending,
            "retries": attempt,
            "reports": [],
            "metrics": {},
            "reason": outcome.reason,
            "message": clip(
                f"lost to the cluster ({outcome.message}); started again as pod "
                f"{names.pod_name(trial.name, attempt)} (retry {attempt} of {max_retries})"
            ),
            "start_time": None,
            "completion_time": None,
        }
    )


def advance(
    trial: Trial,
    outcome: Outcome | None,
    observation: Observation | None,
    now: datetime,
    max_retries: int = 0,
) -> Trial:
    """The operator's step for one trial: after what its pod (None: it has no pod) and its
    metrics say now. Ended trials are final: nothing observed later changes them."""
    if not trial.phase.active:
        return trial
    current = observed(trial, observation)
    if outcome is None:
        if trial.phase is TrialPhase.running:
            gone = Outcome(
                TrialPhase.failed,
                Reason.pod_deleted,
                "the trial's pod disappeared before the trial finished",
                lost=True,
            )
            return retry(current, gone, max_retries, now)
        return current  # Pending without a pod: it gets one in this pass
    if outcome.phase is TrialPhase.pending:
        return current
    if outcome.phase is TrialPhase.running:
        if current.phase is TrialPhase.pending:
            return current.model_copy(
                update={"phase": TrialPhase.running, "start_time": outcome.started or now}
            )
        return current
    if outcome.lost:
        return retry(current, outcome, max_retries, now)
    return finish(current, outcome, now)


# ---- Small helpers --------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


_SPACES = re.compile(r"\s+")


def one_line(text: str) -> str:
    return clip(_SPACES.sub(" ", text).strip())


def clip(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
