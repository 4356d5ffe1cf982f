"""From a pod's state or a process's exit to a trial's outcome, with plain dicts: exit codes,
termination messages, OOMKilled, evictions, stuck pods, trials lost to the cluster and
started again; and the one `finish()` both runners end a trial with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from objects import METRICS, NOW, T0, iso, pod, result

from bertsweep import contract
from bertsweep.api import MAX_REPORTS, Report, Trial, TrialPhase
from bertsweep.contract import ResultStatus, TrialResult
from bertsweep.outcomes import (
    Timeouts,
    advance,
    end,
    exit_outcome,
    finish,
    merge_reports,
    pod_outcome,
)

pytestmark = pytest.mark.unit


# ---- pod status -> trial outcome --------------------------------------------------------------


def outcome(p: dict[str, Any], now: datetime = NOW) -> Any:
    return pod_outcome(p, now, Timeouts(pod_error_seconds=120, unschedulable_seconds=600))


def test_running_and_pending_pods() -> None:
    assert outcome(pod("Running")).phase is TrialPhase.running
    assert outcome(pod("Running")).started == datetime(2026, 11, 25, 11, 59, tzinfo=UTC)
    waiting = pod("Pending", waiting={"reason": "ContainerCreating"})
    assert outcome(waiting).phase is TrialPhase.pending
    assert outcome(pod("Unknown")).phase is TrialPhase.running


def test_exit_zero_with_a_completed_result_succeeds() -> None:
    o = outcome(
        pod(
            "Succeeded",
            terminated={
                "exitCode": 0,
                "reason": "Completed",
                "message": result(metrics=METRICS),
                "finishedAt": "2026-11-25T12:00:00Z",
            },
        )
    )
    assert o.phase is TrialPhase.succeeded and o.reason == "Completed"
    assert o.result is not None and o.result.metrics == METRICS and o.finished == NOW


def test_exit_zero_without_a_result_succeeds_like_the_local_runner() -> None:
    o = outcome(pod("Succeeded", terminated={"exitCode": 0, "reason": "Completed"}))
    assert o.phase is TrialPhase.succeeded


def test_exit_zero_after_being_stopped_from_outside_fails() -> None:
    message = result("stopped", reason="Signal", message="stopped by SIGTERM")
    o = outcome(pod("Succeeded", terminated={"exitCode": 0, "message": message}))
    assert o.phase is TrialPhase.failed and o.reason == "Signal"
    assert o.message == "exit code 0: stopped by SIGTERM"


def test_a_crash_fails_with_its_exit_code_and_log_tail() -> None:
    # FallbackToLogsOnError: no result file, so the message is the end of the log.
    o = outcome(
        pod(
            "Failed",
            terminated={"exitCode": 3, "reason": "Error", "message": "boom\nValueError: x"},
        )
    )
    assert o.phase is TrialPhase.failed and o.reason == "Error"
    assert o.message == "exit code 3: boom ValueError: x"
    silent = outcome(pod("Failed", terminated={"exitCode": 3, "reason": "Error"}))
    assert silent.message == "exit code 3: no output"


def test_the_trainers_reason_is_kept() -> None:
    message = result("failed", reason="InvalidData", message="train file /x.csv not found")
    o = outcome(pod("Failed", terminated={"exitCode": 1, "reason": "Error", "message": message}))
    assert (o.reason, o.message) == ("InvalidData", "exit code 1: train file /x.csv not found")


def test_oom_killed() -> None:
    o = outcome(pod("Failed", terminated={"exitCode": 137, "reason": "OOMKilled"}))
    assert o.phase is TrialPhase.failed and o.reason == "OOMKilled"
    assert o.message is not None and o.message.startswith("exit code 137")


def test_evicted() -> None:
    o = outcome(
        pod(
            "Failed",
            reason="Evicted",
            message="The node was low on resource: memory.",
            terminated={"exitCode": 137, "reason": "Error"},
        )
    )
    assert o.reason == "Evicted" and "low on resource" in (o.message or "")
    no_container = outcome(pod("Failed", reason="Evicted", message="ephemeral storage"))
    assert no_container.reason == "Evicted" and no_container.message == "ephemeral storage"


def test_a_runtime_reason_other_than_error_is_kept() -> None:
    o = outcome(pod("Failed", terminated={"exitCode": 128, "reason": "ContainerCannotRun"}))
    assert o.reason == "ContainerCannotRun"


@pytest.mark.parametrize(
    "reason", ["ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"]
)
def test_image_and_config_errors_fail_once_stuck_for_too_long(reason: str) -> None:
    waiting = {"reason": reason, "message": 'Back-off pulling image "nope:1"'}
    young = pod("Pending", waiting=waiting, created=iso(NOW - timedelta(seconds=60)))
    assert outcome(young).phase is TrialPhase.pending
    old = pod("Pending", waiting=waiting, created=iso(NOW - timedelta(seconds=121)))
    o = outcome(old)
    assert o.phase is TrialPhase.failed and o.reason == reason and o.stuck
    assert "nope:1" in (o.message or "")


def test_invalid_image_name_fails_at_once() -> None:
    o = outcome(pod("Pending", waiting={"reason": "InvalidImageName"}, created=iso(NOW)))
    assert o.phase is TrialPhase.failed and o.reason == "InvalidImageName" and o.stuck


def test_unschedulable_for_too_long_fails() -> None:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
    }
    young = pod("Pending", created=iso(NOW - timedelta(seconds=30)), conditions=[condition])
    assert outcome(young).phase is TrialPhase.pending
    old = pod("Pending", created=iso(NOW - timedelta(seconds=700)), conditions=[condition])
    o = outcome(old)
    assert o.phase is TrialPhase.failed and o.reason == "Unschedulable" and o.stuck
    assert "nvidia.com/gpu" in (o.message or "")


# ---- advancing a trial ----------------------------------------------------------------------


def running_trial(**kw: Any) -> Trial:
    return Trial(
        **{"name": "s-0000", "index": 0, "parameters": {}, "phase": TrialPhase.running, **kw}
    )


def test_reports_merge_by_step_and_stay_bounded() -> None:
    a = [Report(step=s, epoch=s / 10, metrics={"eval_accuracy": 0.5}) for s in (1, 2)]
    b = [Report(step=s, epoch=s / 10, metrics={"eval_accuracy": 0.6}) for s in (2, 3)]
    merged = merge_reports(a, b)
    assert [r.step for r in merged] == [1, 2, 3] and merged[1].metrics["eval_accuracy"] == 0.6
    many = [Report(step=s, epoch=0, metrics={}) for s in range(MAX_REPORTS + 50)]
    assert len(merge_reports([], many)) == MAX_REPORTS


def test_metrics_come_from_prometheus_first_then_the_termination_message() -> None:
    observed = contract.Observation(final={"eval_accuracy": 0.81})
    ended = pod(
        "Succeeded",
        terminated={
            "exitCode": 0,
            "message": result(metrics={"eval_accuracy": 0.8, "eval_loss": 0.4}),
        },
    )
    t = advance(running_trial(), outcome(ended), observed, NOW)
    assert t.phase is TrialPhase.succeeded and t.reason == "Completed"
    assert t.metrics == {"eval_accuracy": 0.81, "eval_loss": 0.4}
    assert t.completion_time == NOW


def test_without_prometheus_the_termination_message_gives_the_final_metrics() -> None:
    ended = pod("Succeeded", terminated={"exitCode": 0, "message": result(metrics=METRICS)})
    assert advance(running_trial(), outcome(ended), None, NOW).metrics == METRICS


def test_the_final_evaluation_is_kept_as_a_report_when_no_scrape_caught_it() -> None:
    message = result(metrics=METRICS, step=13, epoch=1.0)
    ended = pod("Succeeded", terminated={"exitCode": 0, "message": message})
    early = [Report(step=5, epoch=0.4, metrics={"eval_accuracy": 0.6})]
    t = advance(running_trial(reports=early), outcome(ended), None, NOW)
    assert [(r.step, r.metrics) for r in t.reports] == [
        (5, {"eval_accuracy": 0.6}),
        (13, METRICS),
    ]
    seen = [Report(step=13, epoch=1.0, metrics={"eval_accuracy": 0.8})]
    t = advance(running_trial(reports=seen), outcome(ended), None, NOW)
    assert t.reports == seen, "what Prometheus saw is not replaced"


def test_without_either_the_last_report_stands() -> None:
    reports = [Report(step=4, epoch=1.0, metrics={"eval_accuracy": 0.7})]
    ended = pod("Failed", terminated={"exitCode": 137, "reason": "OOMKilled"})
    t = advance(running_trial(reports=reports), outcome(ended), None, NOW)
    assert t.phase is TrialPhase.failed and t.metrics == {"eval_accuracy": 0.7}


def test_a_running_trial_whose_pod_vanished_fails_without_retries() -> None:
    t = advance(running_trial(), None, None, NOW)
    assert t.phase is TrialPhase.failed and t.reason == "PodDeleted"


def test_a_pending_trial_without_pod_waits_for_one() -> None:
    pending = Trial(name="s-0000", index=0, parameters={})
    assert advance(pending, None, None, NOW) == pending


def test_ended_trials_are_final() -> None:
    done = running_trial().model_copy(update={"phase": TrialPhase.succeeded})
    observed = contract.Observation(final={"eval_accuracy": 0.1})
    assert advance(done, None, observed, NOW) == done


def test_pending_becomes_running_with_the_pods_start_time() -> None:
    pending = Trial(name="s-0000", index=0, parameters={})
    t = advance(pending, outcome(pod("Running")), None, NOW)
    assert t.phase is TrialPhase.running and t.start_time == datetime(
        2026, 11, 25, 11, 59, tzinfo=UTC
    )


# ---- trials the cluster lost ------------------------------------------------------------------


def test_a_vanished_pod_starts_its_trial_again_with_a_clean_record() -> None:
    reports = [Report(step=4, epoch=1.0, metrics={"eval_accuracy": 0.7})]
    trial = running_trial(reports=reports, parameters={"learning_rate": 0.1})
    again = advance(trial, None, None, NOW, max_retries=2)
    assert again.phase is TrialPhase.pending and again.retries == 1
    assert again.parameters == {"learning_rate": 0.1}
    assert again.reports == [] and again.metrics == {}
    assert again.reason == "PodDeleted" and "s-0000-r1" in (again.message or "")
    assert "retry 1 of 2" in (again.message or "")


def test_retries_are_bounded_and_then_the_loss_is_a_failure() -> None:
    spent = running_trial(retries=2)
    t = advance(spent, None, None, NOW, max_retries=2)
    assert t.phase is TrialPhase.failed and t.reason == "PodDeleted"
    assert "maxRetries 2" in (t.message or "")


def test_an_evicted_pod_is_lost_not_failed() -> None:
    evicted = pod("Failed", reason="Evicted", message="The node was low on resource: memory.")
    o = outcome(evicted)
    assert o.lost and o.reason == "Evicted"
    assert advance(running_trial(), o, None, NOW, max_retries=1).phase is TrialPhase.pending


def test_a_pod_deleted_by_someone_else_is_lost() -> None:
    # The trainer got SIGTERM, said so, and exited 0: the trial did not finish.
    stopped = result("stopped", reason="Signal", message="stopped by SIGTERM at step 3")
    p = pod("Succeeded", terminated={"exitCode": 0, "message": stopped})
    p["metadata"]["deletionTimestamp"] = T0
    assert outcome(p).lost
    killed = pod("Failed", terminated={"exitCode": 137, "reason": "Error"})
    killed["metadata"]["deletionTimestamp"] = T0
    assert outcome(killed).lost


def test_a_disruption_says_the_pod_was_taken() -> None:
    disruption = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
    p = pod("Failed", terminated={"exitCode": 143, "reason": "Error"}, conditions=[disruption])
    o = outcome(p)
    assert o.lost and o.reason == "PreemptionByScheduler"


def test_a_trials_own_failure_is_never_retried() -> None:
    # Deleted while it failed by itself: the failure stands, whatever happened to the pod.
    message = result("failed", reason="InvalidData", message="no column 'text'")
    p = pod("Failed", terminated={"exitCode": 1, "reason": "Error", "message": message})
    p["metadata"]["deletionTimestamp"] = T0
    o = outcome(p)
    assert not o.lost
    t = advance(running_trial(), o, None, NOW, max_retries=3)
    assert t.phase is TrialPhase.failed and t.reason == "InvalidData" and t.retries == 0
    oom = outcome(pod("Failed", terminated={"exitCode": 137, "reason": "OOMKilled"}))
    assert not oom.lost


def test_the_faulty_parameters_reach_the_record() -> None:
    message = result(
        "failed", reason="InvalidParameter", message="bad", faultyParameters=["learning_rate"]
    )
    ended = pod("Failed", terminated={"exitCode": 1, "message": message})
    t = advance(running_trial(), outcome(ended), None, NOW)
    assert t.faulty_parameters == ["learning_rate"]


# ---- the local runner's processes ----------------------------------------------------------


def test_a_local_process_ends_as_a_pod_does() -> None:
    completed = TrialResult(status=ResultStatus.completed, metrics=METRICS, step=9, epoch=1.0)
    ok = exit_outcome(0, completed, "log")
    assert ok.phase is TrialPhase.succeeded and ok.reason == "Completed"
    killed = exit_outcome(-9, None, "last line of the log")
    assert (killed.reason, killed.message) == ("Killed", "exit code -9: last line of the log")
    crashed = exit_outcome(1, None, "Traceback ...\nValueError: x")
    assert (crashed.reason, crashed.message) == (
        "Error",
        "exit code 1: Traceback ... ValueError: x",
    )


def test_a_pruned_trial_keeps_its_verdict_and_gains_its_last_values() -> None:
    reports = [Report(step=4, epoch=1.0, metrics={"eval_accuracy": 0.7})]
    pruned = end(running_trial(reports=reports), TrialPhase.pruned, "Pruned", "below median", NOW)
    assert pruned.metrics == {"eval_accuracy": 0.7}
    last = TrialResult(
        status=ResultStatus.stopped,
        metrics={"eval_accuracy": 0.7, "train_loss": 0.3},
        step=4,
        epoch=1.0,
        reason="Signal",
    )
    later = NOW + timedelta(seconds=5)
    after = finish(pruned, exit_outcome(0, last, None), later)
    assert (after.phase, after.reason, after.message) == (
        TrialPhase.pruned,
        "Pruned",
        "below median",
    )
    assert after.metrics == {"eval_accuracy": 0.7, "train_loss": 0.3}


def test_a_diverged_trial_ends_like_a_pruned_one_not_a_failure() -> None:
    message = result(
        "diverged", reason="Diverged", message="the training loss became nan at step 7",
        metrics={"eval_accuracy": 0.6}, step=6, epoch=0.5,
    )  # fmt: skip
    t = advance(
        running_trial(),
        outcome(pod("Succeeded", terminated={"exitCode": 0, "message": message})),
        None,
        NOW,
    )
    assert (t.phase, t.reason) == (TrialPhase.pruned, "Diverged")
    assert t.metrics == {"eval_accuracy": 0.6} and "nan" in (t.message or "")
