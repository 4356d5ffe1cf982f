"""The glue between cluster objects and the planner, with plain dicts: pod states become trial
outcomes, termination messages become metrics, a pass becomes a Decision; and, with an
in-memory cluster, restart safety of whole passes killed at every possible moment."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bertsweep import contract
from bertsweep.api import (
    MAX_REPORTS,
    Report,
    SweepPhase,
    Trial,
    TrialPhase,
    parse_spec,
)
from bertsweep.reconcile import (
    METRICS_AVAILABLE,
    SPEC_VALID,
    MetricsReading,
    Timeouts,
    advance,
    decide,
    invalid_spec,
    is_settled,
    merge_reports,
    owned_pods,
    owned_records,
    parse_result,
    pod_outcome,
    pods_to_fetch,
    read_trial,
    scrape_targets,
    status_body,
    trial_manifest,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
T0 = "2026-11-25T11:59:00Z"
SWEEP_UID = "sweep-uid-1"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- builders --------------------------------------------------------------------------------


def spec_doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "m",
        "dataset": {"train": "t.csv"},
        "algorithm": {"name": "grid"},
        "parameters": [{"name": "learning_rate", "type": "categorical", "values": [1, 2, 3, 4]}],
        "maxTrials": 4,
        "parallelism": 2,
        "maxFailedTrials": 0,
    }
    base.update(changes)
    return base


def sweep_obj(status: dict[str, Any] | None = None, generation: int = 1, **spec: Any) -> Any:
    return {
        "apiVersion": "tuning.bertsweep.io/v1alpha1",
        "kind": "BertSweep",
        "metadata": {
            "name": "s",
            "namespace": "ns",
            "uid": SWEEP_UID,
            "generation": generation,
            "resourceVersion": "1",
        },
        "spec": spec_doc(**spec),
        **({"status": status} if status is not None else {}),
    }


def trial_obj(index: int, status: dict[str, Any] | None = None, owner: str = SWEEP_UID) -> Any:
    name = f"s-{index:04d}"
    return {
        "apiVersion": "tuning.bertsweep.io/v1alpha1",
        "kind": "BertTrial",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"trial-uid-{index}",
            "resourceVersion": "7",
            "creationTimestamp": T0,
            "labels": {"bertsweep": "s"},
            "ownerReferences": [{"kind": "BertSweep", "uid": owner, "controller": True}],
        },
        "spec": {"sweep": "s", "index": index, "parameters": {"learning_rate": index + 1}},
        **({"status": status} if status is not None else {}),
    }


def pod(
    phase: str = "Running",
    *,
    name: str = "s-0000",
    owner: str = "trial-uid-0",
    created: str = T0,
    terminated: dict[str, Any] | None = None,
    waiting: dict[str, Any] | None = None,
    **status: Any,
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if terminated is not None:
        state["terminated"] = terminated
    elif waiting is not None:
        state["waiting"] = waiting
    elif phase == "Running":
        state["running"] = {"startedAt": T0}
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "creationTimestamp": created,
            "ownerReferences": [{"kind": "BertTrial", "uid": owner, "controller": True}],
        },
        "spec": {
            "containers": [
                {"name": "trainer", "ports": [{"name": "metrics", "containerPort": 8000}]}
            ]
        },
        "status": {
            "phase": phase,
            "podIP": "127.1.0.5",
            "startTime": T0,
            "containerStatuses": [{"name": "trainer", "state": state}],
            **status,
        },
    }


def result(status: str = "completed", **fields: Any) -> str:
    return json.dumps({"status": status, **fields})


METRICS = {"eval_accuracy": 0.8, "eval_loss": 0.4}


# ---- termination messages -------------------------------------------------------------------


def test_result_json_is_parsed() -> None:
    r = parse_result(result(metrics={**METRICS, "bad": "x", "flag": True}, step=12, epoch=1.0))
    assert r.status == "completed" and r.metrics == METRICS
    failed = parse_result(result("failed", reason="InvalidData", message="no column  'text'\n"))
    assert failed.reason == "InvalidData" and failed.message == "no column 'text'"


@pytest.mark.parametrize("text", [None, "", "   ", "Traceback ...\nKeyError: 'x'", "[1, 2]"])
def test_anything_else_is_text_or_nothing(text: str | None) -> None:
    r = parse_result(text)
    assert r.status is None and r.metrics == {}
    assert r.text == (" ".join(text.split()) if text and text.strip() else None)


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
    assert o.result.metrics == METRICS and o.finished == NOW


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
    return Trial(name="s-0000", index=0, parameters={}, phase=TrialPhase.running, **kw)


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


def test_a_running_trial_whose_pod_vanished_fails() -> None:
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


# ---- reading objects --------------------------------------------------------------------------


def test_records_of_an_earlier_sweep_of_the_same_name_are_not_ours() -> None:
    objs = [trial_obj(1), trial_obj(0), trial_obj(2, owner="old-sweep")]
    deleting = trial_obj(3)
    deleting["metadata"]["deletionTimestamp"] = T0
    records = owned_records(sweep_obj(), [*objs, deleting])
    assert [r.name for r in records] == ["s-0000", "s-0001"]
    foreign = {
        "s-0000": pod(owner="someone-else"),
        "s-0001": pod(name="s-0001", owner="trial-uid-1"),
    }
    assert list(owned_pods(records, foreign)) == ["s-0001"]


def test_only_active_trials_missing_from_the_live_pods_are_fetched() -> None:
    records = owned_records(
        sweep_obj(),
        [trial_obj(0, {"phase": "Running"}), trial_obj(1, {"phase": "Succeeded"}), trial_obj(2)],
    )
    assert pods_to_fetch(records, {"s-0000": pod()}) == ["s-0002"]


def test_scrape_targets_are_running_pods_of_active_trials() -> None:
    records = owned_records(sweep_obj(), [trial_obj(0, {"phase": "Running"})])
    assert scrape_targets(records, {"s-0000": pod()}) == {"s-0000": "http://127.1.0.5:8000/metrics"}
    assert scrape_targets(records, {"s-0000": pod("Pending")}) == {}


def test_trial_manifest_is_owned_and_labelled() -> None:
    body = trial_manifest(sweep_obj(), Trial(name="s-0002", index=2, parameters={"lr": 1}))
    meta = body["metadata"]
    assert meta["name"] == "s-0002" and meta["labels"] == {"bertsweep": "s"}
    assert meta["ownerReferences"][0]["uid"] == SWEEP_UID
    assert meta["ownerReferences"][0]["kind"] == "BertSweep"
    assert body["spec"] == {"sweep": "s", "index": 2, "parameters": {"lr": 1}}


# ---- decisions ------------------------------------------------------------------------------


def spec_of(sweep: Any) -> Any:
    return parse_spec(sweep["spec"])


def test_first_pass_creates_parallelism_trials_and_writes_status() -> None:
    sweep = sweep_obj()
    d = decide(sweep, spec_of(sweep), [], {}, None, NOW)
    assert [t.name for t in d.create_trials] == ["s-0000", "s-0001"]
    assert d.write_status and d.status.phase is SweepPhase.running
    assert d.status.observed_generation == 1
    types = {c.type: c for c in d.status.conditions}
    assert types[SPEC_VALID].status == "True" and METRICS_AVAILABLE not in types
    assert [e.reason for e in d.events] == ["TrialCreated", "TrialCreated"]


def test_a_pending_trial_without_a_pod_gets_one() -> None:
    sweep = sweep_obj()
    records = owned_records(sweep, [trial_obj(0), trial_obj(1)])
    d = decide(sweep, spec_of(sweep), records, {}, None, NOW)
    assert [r.name for r in d.create_pods] == ["s-0000", "s-0001"]
    assert d.create_trials == []
    assert [e.key for e in d.events] == ["s-0000.created", "s-0001.created"]
    assert {w.record.name: w.status.pod_name for w in d.trial_writes} == {
        "s-0000": "s-0000",
        "s-0001": "s-0001",
    }


def test_an_unchanged_pass_writes_nothing() -> None:
    sweep = sweep_obj()
    first = decide(sweep, spec_of(sweep), [], {}, None, NOW)
    sweep["status"] = status_body(first.status)
    objs = [
        trial_obj(i, {"phase": "Running", "podName": f"s-{i:04d}", "startTime": T0})
        for i in range(2)
    ]
    records = owned_records(sweep, objs)
    pods = {r.name: pod(name=r.name, owner=r.uid) for r in records}
    reading = MetricsReading(source="prometheus", url="http://prom")
    second = decide(sweep, spec_of(sweep), records, pods, reading, NOW + timedelta(seconds=2))
    sweep["status"] = status_body(second.status)
    third = decide(sweep, spec_of(sweep), records, pods, reading, NOW + timedelta(seconds=4))
    assert not third.write_status and third.trial_writes == [] and third.events == []
    assert third.create_pods == [] and third.create_trials == [] and third.delete_pods == []


def test_metrics_become_reports_and_the_objective() -> None:
    sweep = sweep_obj()
    records = owned_records(sweep, [trial_obj(0, {"phase": "Running"})])
    samples = [
        contract.Sample(
            contract.EVAL_SERIES,
            {"trial": "s-0000", "metric": "eval_accuracy", "step": "5", "epoch": "0.5"},
            0.7,
        )
    ]
    reading = MetricsReading(samples=samples, source="prometheus", url="http://prom")
    d = decide(sweep, spec_of(sweep), records, {"s-0000": pod()}, reading, NOW)
    (write,) = [w for w in d.trial_writes if w.record.name == "s-0000"]
    assert write.status.reports == [Report(step=5, epoch=0.5, metrics={"eval_accuracy": 0.7})]
    assert write.status.objective == 0.7


def test_prometheus_unreachable_sets_the_condition_and_an_event() -> None:
    sweep = sweep_obj()
    records = owned_records(sweep, [trial_obj(0, {"phase": "Running"})])
    reading = MetricsReading(source="pods", problem="connection refused", url="http://prom")
    d = decide(sweep, spec_of(sweep), records, {"s-0000": pod()}, reading, NOW)
    condition = next(c for c in d.status.conditions if c.type == METRICS_AVAILABLE)
    assert (condition.status, condition.reason) == ("False", "PrometheusUnreachable")
    assert "connection refused" in condition.message and "/metrics directly" in condition.message
    assert any(e.reason == "PrometheusUnreachable" and e.warning for e in d.events)


def test_too_many_failures_end_the_sweep_and_stop_running_pods() -> None:
    sweep = sweep_obj()
    records = owned_records(
        sweep, [trial_obj(0, {"phase": "Running"}), trial_obj(1, {"phase": "Running"})]
    )
    crashed = pod("Failed", name="s-0001", owner="trial-uid-1", terminated={"exitCode": 3})
    d = decide(sweep, spec_of(sweep), records, {"s-0000": pod(), "s-0001": crashed}, None, NOW)
    assert d.status.phase is SweepPhase.failed
    failed = next(c for c in d.status.conditions if c.type == "Failed")
    assert failed.reason == "MaxFailedTrialsExceeded" and "exit code 3" in failed.message
    phases = {w.record.name: (w.status.phase, w.status.reason) for w in d.trial_writes}
    assert phases == {
        "s-0000": (TrialPhase.pruned, "SweepEnded"),
        "s-0001": (TrialPhase.failed, "Error"),
    }
    assert d.delete_pods == ["s-0000"], "the running pod is stopped; the failed one kept"
    assert d.create_trials == []
    reasons = [e.reason for e in d.events]
    assert "TrialFailed" in reasons and "TrialStopped" in reasons and "SweepFailed" in reasons


def test_a_stuck_pod_fails_its_trial_and_is_deleted() -> None:
    sweep = sweep_obj(maxFailedTrials=3)
    records = owned_records(sweep, [trial_obj(0, {"phase": "Pending"})])
    stuck = pod("Pending", waiting={"reason": "InvalidImageName"})
    d = decide(sweep, spec_of(sweep), records, {"s-0000": stuck}, None, NOW)
    assert d.trial_writes[0].status.phase is TrialPhase.failed
    assert d.trial_writes[0].status.reason == "InvalidImageName"
    assert d.delete_pods == ["s-0000"]


def test_a_pruned_trials_pod_is_deleted_only_once() -> None:
    sweep = sweep_obj()
    records = owned_records(
        sweep, [trial_obj(0, {"phase": "Pruned", "reason": "Pruned"}), trial_obj(1)]
    )
    live = pod()
    assert (
        "s-0000" in decide(sweep, spec_of(sweep), records, {"s-0000": live}, None, NOW).delete_pods
    )
    live["metadata"]["deletionTimestamp"] = T0
    assert decide(sweep, spec_of(sweep), records, {"s-0000": live}, None, NOW).delete_pods == []


def test_the_best_trial_is_announced_once() -> None:
    sweep = sweep_obj()
    records = owned_records(sweep, [trial_obj(0, {"phase": "Running"})])
    done = pod("Succeeded", terminated={"exitCode": 0, "message": result(metrics=METRICS)})
    d = decide(sweep, spec_of(sweep), records, {"s-0000": done}, None, NOW)
    assert d.status.best_trial is not None and d.status.best_trial.name == "s-0000"
    assert d.status.best_trial.metrics == METRICS and d.status.best_objective == 0.8
    assert [e.key for e in d.events if e.reason == "NewBestTrial"] == ["best.s-0000"]
    assert [e.key for e in d.events if e.reason == "TrialSucceeded"] == ["s-0000.succeeded"]


def test_an_invalid_spec_fails_once_per_generation() -> None:
    sweep = sweep_obj()
    d = invalid_spec(sweep, "spec.parameters[0]: `min` (2) must be less than `max` (1)", NOW)
    assert d.status.phase is SweepPhase.failed and d.write_status
    valid = next(c for c in d.status.conditions if c.type == SPEC_VALID)
    assert (valid.status, valid.reason) == ("False", "InvalidSpec")
    assert "must be less than" in valid.message
    assert [e.key for e in d.events] == ["invalidspec.g1"]
    sweep["status"] = status_body(d.status)
    assert is_settled(sweep), "the same generation is not looked at again"
    sweep["metadata"]["generation"] = 2
    assert not is_settled(sweep), "an edited spec is"


def test_a_finished_sweep_settles() -> None:
    sweep = sweep_obj()
    assert not is_settled(sweep)
    sweep["status"] = {"phase": "Succeeded", "observedGeneration": 1, "trials": {"running": 0}}
    assert is_settled(sweep)
    sweep["status"]["trials"]["running"] = 1
    assert not is_settled(sweep)


def test_read_trial_round_trips_a_record() -> None:
    record = read_trial(trial_obj(3, {"phase": "Failed", "reason": "OOMKilled"}))
    assert record.name == "s-0003" and record.uid == "trial-uid-3"
    assert record.trial.phase is TrialPhase.failed and record.trial.parameters == {
        "learning_rate": 4
    }


# ---- restart safety: whole passes over an in-memory cluster, killed anywhere ------------------


class Crash(Exception):
    """The operator was killed here."""


class FakeCluster:
    """The API as the operator uses it (kube.Kube's methods), over dicts; pods run for a few
    passes, then succeed. `budget` writes are allowed before the operator 'dies'."""

    def __init__(self, sweep: dict[str, Any]) -> None:
        self.sweep = sweep
        self.trials: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.pod_creations: Counter[str] = Counter()
        self.events: set[str] = set()
        self.budget: int | None = None
        self.clock = 0

    def _write(self) -> None:
        if self.budget is not None:
            if self.budget == 0:
                raise Crash
            self.budget -= 1

    def tick(self) -> None:
        """The kubelet's part: pods start, then finish with a result."""
        self.clock += 1
        for p in self.pods.values():
            state = p["status"]
            if state["phase"] == "Pending":
                state.update(phase="Running", startTime=T0, podIP="127.1.0.9")
                state["age"] = self.clock
            elif state["phase"] == "Running" and self.clock - state["age"] >= 2:
                index = int(p["metadata"]["name"].rsplit("-", 1)[1])
                message = result(metrics={"eval_accuracy": 0.5 + index / 100})
                state.update(phase="Succeeded")
                state["containerStatuses"] = [
                    {
                        "name": "trainer",
                        "state": {"terminated": {"exitCode": 0, "message": message}},
                    }
                ]

    # kube.Kube's interface
    def get_sweep(self, namespace: str, name: str) -> Any:
        return json.loads(json.dumps(self.sweep))

    def replace_sweep_status(self, sweep: Any, status: Any) -> Any:
        self._write()
        self.sweep["status"] = json.loads(json.dumps(status))
        return self.sweep

    def list_trials(self, namespace: str, sweep: str) -> list[Any]:
        return [json.loads(json.dumps(t)) for t in self.trials.values()]

    def create_trial(self, body: Any, owner_uid: str) -> tuple[Any, bool]:
        self._write()
        name = body["metadata"]["name"]
        if name not in self.trials:
            created = json.loads(json.dumps(body))
            created["metadata"].update(uid=f"uid-{name}", resourceVersion="1", creationTimestamp=T0)
            self.trials[name] = created
            return json.loads(json.dumps(created)), True
        return json.loads(json.dumps(self.trials[name])), False

    def replace_trial_status(self, trial: Any, status: Any) -> Any:
        self._write()
        self.trials[trial["metadata"]["name"]]["status"] = json.loads(json.dumps(status))
        return trial

    def live_pods(self, namespace: str, sweep: str) -> dict[str, Any]:
        return {
            n: json.loads(json.dumps(p))
            for n, p in self.pods.items()
            if p["status"]["phase"] not in ("Succeeded", "Failed")
        }

    def get_pod(self, namespace: str, name: str) -> Any:
        p = self.pods.get(name)
        return json.loads(json.dumps(p)) if p else None

    def create_pod(self, body: Any) -> bool:
        self._write()
        name = body["metadata"]["name"]
        if name in self.pods:
            return False
        self.pod_creations[name] += 1
        self.pods[name] = {**json.loads(json.dumps(body)), "status": {"phase": "Pending"}}
        self.pods[name]["metadata"]["creationTimestamp"] = T0
        return True

    def delete_pod(self, namespace: str, name: str) -> None:
        self._write()
        self.pods.pop(name, None)

    def post_event(self, sweep: Any, event: Any) -> None:
        self._write()
        self.events.add(event.key)


class NoMetrics:
    def read(self, *args: Any, **kwargs: Any) -> MetricsReading:
        return MetricsReading(source="none", problem="no Prometheus in this test")


@pytest.mark.parametrize("crash_after", range(7))
def test_killing_the_operator_at_any_write_loses_no_trial_and_starts_none_twice(
    crash_after: int,
) -> None:
    from bertsweep.handlers import Operator

    cluster = FakeCluster(sweep_obj(parallelism=2, maxTrials=4))
    crashes = 0
    for _ in range(200):
        # Every fourth pass, a fresh operator is killed after `crash_after` writes.
        cluster.budget = crash_after if crashes < 6 and cluster.clock % 4 == 0 else None
        operator = Operator(kube=cluster, metrics=NoMetrics())  # type: ignore[arg-type]
        try:
            operator.run_pass("ns", "s")
        except Crash:
            crashes += 1
        cluster.tick()
        if cluster.sweep.get("status", {}).get("phase") == "Succeeded":
            break
    status = cluster.sweep["status"]
    assert status["phase"] == "Succeeded", status
    assert crashes > 0
    assert sorted(cluster.trials) == ["s-0000", "s-0001", "s-0002", "s-0003"]
    assert all(count == 1 for count in cluster.pod_creations.values()), cluster.pod_creations
    assert sorted(cluster.pod_creations) == sorted(cluster.trials)
    assert status["trials"]["succeeded"] == 4 and status["bestTrial"]["name"] == "s-0003"
    assert status["bestTrial"]["metrics"] == {"eval_accuracy": 0.53}
