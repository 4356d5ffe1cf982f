"""The cluster adapter's decision for a pass, with plain dicts: what is created, written,
deleted and announced; what the API server's refusals, lost pods, shared failures and long
names do to it; and, over an in-memory cluster, restart safety of whole passes killed at every
possible moment."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from objects import (
    METRICS,
    NOW,
    SWEEP_UID,
    T0,
    pod,
    result,
    spec_of,
    sweep_obj,
    trial_obj,
)

from bertsweep import contract, names
from bertsweep.api import ConditionType, Report, SweepPhase, Trial, TrialPhase
from bertsweep.decide import (
    REFRESH,
    Refusal,
    decide,
    invalid_spec,
    refused,
    status_body,
    trial_manifest,
)
from bertsweep.kube import Refused
from bertsweep.observe import MetricsReading, Records, is_settled, owned_records

pytestmark = pytest.mark.unit


def test_trial_manifest_is_owned_and_labelled() -> None:
    body = trial_manifest(sweep_obj(), Trial(name="s-0002", index=2, parameters={"lr": 1}))
    meta = body["metadata"]
    assert meta["name"] == "s-0002" and meta["labels"] == {"bertsweep": "s"}
    assert meta["ownerReferences"][0]["uid"] == SWEEP_UID
    assert meta["ownerReferences"][0]["kind"] == "BertSweep"
    assert body["spec"] == {"sweep": "s", "index": 2, "parameters": {"lr": 1}}


# ---- decisions ------------------------------------------------------------------------------


def test_first_pass_creates_parallelism_trials_and_writes_status() -> None:
    sweep = sweep_obj()
    d = decide(sweep, spec_of(sweep), Records(), {}, None, NOW)
    assert [t.name for t in d.create_trials] == ["s-0000", "s-0001"]
    assert d.write_status and d.status.phase is SweepPhase.running
    assert d.status.observed_generation == 1
    types = {c.type: c for c in d.status.conditions}
    assert (
        types[ConditionType.spec_valid].status == "True"
        and ConditionType.metrics_available not in types
    )
    assert d.events == [], "a trial created is in its record, not an Event"


def test_a_pending_trial_without_a_pod_gets_one() -> None:
    sweep = sweep_obj()
    records = owned_records(sweep, [trial_obj(0), trial_obj(1)])
    d = decide(sweep, spec_of(sweep), records, {}, None, NOW)
    assert [p.trial.name for p in d.create_pods] == ["s-0000", "s-0001"]
    assert d.create_trials == []

    assert {w.name: w.status.pod_name for w in d.trial_writes} == {
        "s-0000": "s-0000",
        "s-0001": "s-0001",
    }


def test_an_unchanged_pass_writes_nothing() -> None:
    sweep = sweep_obj()
    first = decide(sweep, spec_of(sweep), Records(), {}, None, NOW)
    sweep["status"] = status_body(first.status)
    objs = [
        trial_obj(i, {"phase": "Running", "podName": f"s-{i:04d}", "startTime": T0})
        for i in range(2)
    ]
    records = owned_records(sweep, objs)
    pods = {r.name: pod(name=r.name, owner=r.uid) for r in records.readable}
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
    (write,) = [w for w in d.trial_writes if w.name == "s-0000"]
    assert write.status.reports == [Report(step=5, epoch=0.5, metrics={"eval_accuracy": 0.7})]
    assert write.status.objective == 0.7


def test_prometheus_unreachable_sets_the_condition_and_an_event() -> None:
    sweep = sweep_obj()
    records = owned_records(sweep, [trial_obj(0, {"phase": "Running"})])
    reading = MetricsReading(source="pods", problem="connection refused", url="http://prom")
    d = decide(sweep, spec_of(sweep), records, {"s-0000": pod()}, reading, NOW)
    condition = next(c for c in d.status.conditions if c.type == ConditionType.metrics_available)
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
    phases = {w.name: (w.status.phase, w.status.reason) for w in d.trial_writes}
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
    assert [e.reason for e in d.events] == ["NewBestTrial"], "a success is in its record"


def test_an_invalid_spec_fails_once_per_generation() -> None:
    sweep = sweep_obj()
    d = invalid_spec(sweep, "spec.parameters[0]: `min` (2) must be less than `max` (1)", NOW)
    assert d.status.phase is SweepPhase.failed and d.write_status
    valid = next(c for c in d.status.conditions if c.type == ConditionType.spec_valid)
    assert (valid.status, valid.reason) == ("False", "InvalidSpec")
    assert "must be less than" in valid.message
    assert [e.key for e in d.events] == ["invalidspec.g1"]
    sweep["status"] = status_body(d.status)
    assert is_settled(sweep), "the same generation is not looked at again"
    sweep["metadata"]["generation"] = 2
    assert not is_settled(sweep), "an edited spec is"


# ---- failures every trial would share ---------------------------------------------------------


def failed_pod(name: str, owner: str, reason: str, faulty: list[str] | None = None) -> Any:
    message = result("failed", reason=reason, message="x", faultyParameters=faulty or [])
    return pod("Failed", name=name, owner=owner, terminated={"exitCode": 1, "message": message})


def test_a_failure_every_trial_would_share_ends_the_sweep_after_the_first() -> None:
    sweep = sweep_obj(maxFailedTrials=3)
    records = owned_records(
        sweep, [trial_obj(0, {"phase": "Running"}), trial_obj(1, {"phase": "Running"})]
    )
    pods = {
        "s-0000": failed_pod("s-0000", "trial-uid-0", "InvalidData"),
        "s-0001": pod(name="s-0001", owner="trial-uid-1"),
    }
    d = decide(sweep, spec_of(sweep), records, pods, None, NOW)
    assert d.status.phase is SweepPhase.failed
    failed = next(c for c in d.status.conditions if c.type == "Failed")
    assert failed.reason == "InvalidData" and "every trial" in failed.message
    assert d.delete_pods == ["s-0001"] and d.create_trials == []


def test_a_failure_caused_by_a_searched_value_counts_as_one_failure() -> None:
    sweep = sweep_obj(maxFailedTrials=3)
    records = owned_records(sweep, [trial_obj(0, {"phase": "Running"})])
    bad_value = failed_pod("s-0000", "trial-uid-0", "InvalidParameter", ["learning_rate"])
    d = decide(sweep, spec_of(sweep), records, {"s-0000": bad_value}, None, NOW)
    assert d.status.phase is SweepPhase.running and d.create_trials
    # The same failure caused by a fixed value is every trial's.
    fixed = sweep_obj(maxFailedTrials=3, fixed={"lr_scheduler_type": "bogus"})
    records = owned_records(fixed, [trial_obj(0, {"phase": "Running"})])
    by_fixed = failed_pod("s-0000", "trial-uid-0", "InvalidParameter", ["lr_scheduler_type"])
    d = decide(fixed, spec_of(fixed), records, {"s-0000": by_fixed}, None, NOW)
    assert d.status.phase is SweepPhase.failed


def test_an_edited_spec_gets_another_try_after_a_shared_failure() -> None:
    sweep = sweep_obj(maxFailedTrials=3)
    failed = trial_obj(0, {"phase": "Failed", "reason": "InvalidData", "message": "x"})
    failed["spec"]["generation"] = 1
    records = owned_records(sweep, [failed])
    assert decide(sweep, spec_of(sweep), records, {}, None, NOW).status.phase is SweepPhase.failed
    sweep["metadata"]["generation"] = 2
    d = decide(sweep, spec_of(sweep), records, {}, None, NOW)
    assert d.status.phase is SweepPhase.running
    assert [t.generation for t in d.create_trials] == [2, 2]


# ---- trials the cluster lost ------------------------------------------------------------------


def test_a_trial_whose_pod_was_deleted_gets_a_new_pod_with_the_same_parameters() -> None:
    sweep = sweep_obj(maxRetries=2)
    records = owned_records(sweep, [trial_obj(0, {"phase": "Running", "podName": "s-0000"})])
    d = decide(sweep, spec_of(sweep), records, {}, None, NOW)
    (create,) = d.create_pods
    assert create.trial.retries == 1 and create.trial.parameters == {"learning_rate": 1}
    assert names.pod_name(create.trial.name, create.trial.retries) == "s-0000-r1"
    (write,) = d.trial_writes
    assert (write.status.phase, write.status.retries, write.status.pod_name) == (
        TrialPhase.pending,
        1,
        "s-0000-r1",
    )
    assert d.status.trials.retried == 1 and d.status.trials.failed == 0
    assert [e.reason for e in d.events if e.warning] == ["TrialRetried"]
    # Next pass: the record says attempt 1, whose pod is the one looked for.
    retried = trial_obj(0, write.status.model_dump(mode="json", by_alias=True))
    records = owned_records(sweep, [retried])
    running = pod(name="s-0000-r1", owner="trial-uid-0")
    d = decide(sweep, spec_of(sweep), records, {"s-0000": running}, None, NOW + REFRESH)
    assert d.create_pods == [] and d.trial_writes[0].status.phase is TrialPhase.running


# ---- the API server refuses a trial -----------------------------------------------------------


def test_a_refused_pod_fails_the_sweep_with_the_api_servers_message() -> None:
    sweep = sweep_obj(maxFailedTrials=3)
    spec = spec_of(sweep)
    d = decide(sweep, spec, Records(), {}, None, NOW)
    why = 'Pod "s-0000" is invalid: spec.volumes[0]: Required value: must specify a volume type'
    after = refused(sweep, spec, d, [Refusal(d.create_trials[0], why, quota=False)], NOW)
    assert after.status.phase is SweepPhase.failed
    condition = next(c for c in after.status.conditions if c.type == "Failed")
    assert condition.reason == "PodRejected" and "must specify a volume type" in condition.message
    assert {c.type for c in after.status.conditions} >= {"Failed", "SpecValid"}
    (write,) = [w for w in after.trial_writes if w.name == "s-0000"]
    assert (write.status.phase, write.status.reason) == (TrialPhase.failed, "PodRejected")
    reasons = [e.reason for e in after.events]
    assert "TrialFailed" in reasons and "SweepFailed" in reasons
    # Next pass, from the records: the sweep stays failed and starts nothing.
    sweep["status"] = status_body(after.status)
    failed = trial_obj(0, write.status.model_dump(mode="json", by_alias=True))
    failed["spec"]["generation"] = 1
    records = owned_records(sweep, [failed, trial_obj(1)])
    again = decide(
        sweep, spec, records, {"s-0001": pod(name="s-0001", owner="trial-uid-1")}, None, NOW
    )
    assert again.status.phase is SweepPhase.failed and again.create_trials == []


def test_a_quota_refusal_waits_and_clears_by_itself() -> None:
    sweep = sweep_obj()
    spec = spec_of(sweep)
    d = decide(sweep, spec, Records(), {}, None, NOW)
    quota = 'pods "s-0001" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1'
    after = refused(sweep, spec, d, [Refusal(d.create_trials[1], quota, quota=True)], NOW)
    assert after.status.phase is SweepPhase.running
    condition = next(c for c in after.status.conditions if c.type == ConditionType.quota_available)
    assert (condition.status, condition.reason) == ("False", "QuotaExceeded")
    assert "s-0001" in condition.message and "exceeded quota" in condition.message
    assert any(e.reason == "QuotaExceeded" and e.warning for e in after.events)
    assert not [w for w in after.trial_writes if w.status.phase is TrialPhase.failed]
    # The record stays Pending; a pass that finds every pending trial with its pod clears it.
    sweep["status"] = status_body(after.status)
    objs = [trial_obj(0, {"phase": "Running"}), trial_obj(1)]
    pods = {"s-0000": pod(), "s-0001": pod("Pending", name="s-0001", owner="trial-uid-1")}
    later = decide(sweep, spec, owned_records(sweep, objs), pods, None, NOW)
    condition = next(c for c in later.status.conditions if c.type == ConditionType.quota_available)
    assert condition.status == "True"


def test_the_kube_refusal_says_whether_it_is_quota() -> None:
    body = json.dumps({"message": 'pods "x" is forbidden: exceeded quota: q'})
    assert Refused(403, "Forbidden", body).quota
    assert not Refused(403, "Forbidden", json.dumps({"message": "violates PodSecurity"})).quota
    invalid = Refused(422, "Unprocessable Entity", json.dumps({"message": "spec.x: Invalid"}))
    assert not invalid.quota and invalid.message == "spec.x: Invalid"


# ---- names the API server accepts --------------------------------------------------------------


def test_a_long_sweep_name_gives_trials_names_and_labels_kubernetes_accepts() -> None:
    long_name = "a" * 59
    sweep = sweep_obj()
    sweep["metadata"]["name"] = long_name
    d = decide(sweep, spec_of(sweep), Records(), {}, None, NOW)
    for trial in d.create_trials:
        body = trial_manifest(sweep, trial)
        assert len(body["metadata"]["name"]) <= 63
        assert all(len(v) <= 63 for v in body["metadata"]["labels"].values())
    assert len({t.name for t in d.create_trials}) == 2


def test_an_unreadable_record_is_announced_and_kept_out_of_the_way() -> None:
    sweep = sweep_obj()
    records = owned_records(sweep, [trial_obj(0, {"phase": "Exploded"})])
    d = decide(sweep, spec_of(sweep), records, {}, None, NOW)
    assert [t.index for t in d.create_trials] == [1, 2]
    (warning,) = [e for e in d.events if e.warning]
    assert warning.reason == "TrialUnreadable" and "s-0000" in warning.message


# ---- the models a sweep keeps --------------------------------------------------------------


def keeping_sweep() -> Any:
    sweep = sweep_obj(
        maxTrials=2,
        output={"path": "/models/s", "keep": 1},
        dataset={"train": "t.csv", "test": "test.csv"},
        trialTemplate={
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "m"}}],
            "volumeMounts": [{"name": "models", "mountPath": "/models"}],
        },
    )
    return sweep


def finished(index: int, accuracy: float) -> Any:
    return trial_obj(
        index,
        {
            "phase": "Succeeded",
            "reason": "Completed",
            "metrics": {"eval_accuracy": accuracy},
            "objective": accuracy,
            "modelPath": f"/models/s/s-{index:04d}",
        },
    )


def test_an_ended_sweep_that_keeps_models_finalizes_them_once() -> None:
    sweep = keeping_sweep()
    spec = spec_of(sweep)
    records = owned_records(sweep, [finished(0, 0.7), finished(1, 0.8)])
    d = decide(sweep, spec, records, {}, None, NOW)
    assert d.status.phase is SweepPhase.succeeded
    assert d.finalize == ["s-0001"], "the best `keep`, to keep and to test"
    kept = next(c for c in d.status.conditions if c.type == ConditionType.models_kept)
    assert (kept.status, kept.reason) == ("False", "Finalizing")
    sweep["status"] = status_body(d.status)
    assert not is_settled(sweep), "a finalizing sweep is looked at again"

    running = pod(name="s-finalize-g1", owner=SWEEP_UID)
    again = decide(sweep, spec, records, {}, None, NOW, finalize_pod=running)
    assert again.finalize is None and not again.trial_writes

    message = result(testMetrics={"s-0001": {"test_accuracy": 0.75, "test_loss": 0.5}})
    done = pod(
        "Succeeded",
        name="s-finalize-g1",
        owner=SWEEP_UID,
        terminated={"exitCode": 0, "message": message},
    )
    last = decide(sweep, spec, records, {}, None, NOW, finalize_pod=done)
    assert last.status.best_trial is not None
    assert last.status.best_trial.test_metrics == {"test_accuracy": 0.75, "test_loss": 0.5}
    assert last.status.best_trial.model_path == "/models/s/s-0001"
    writes = {w.name: w.status for w in last.trial_writes}
    assert writes["s-0001"].test_metrics["test_accuracy"] == 0.75
    assert writes["s-0000"].model_path is None, "its model was removed"
    kept = next(c for c in last.status.conditions if c.type == ConditionType.models_kept)
    assert (kept.status, kept.reason) == ("True", "Finalized")
    sweep["status"] = status_body(last.status)
    assert is_settled(sweep)


def test_a_failed_finalize_says_so_and_settles() -> None:
    sweep = keeping_sweep()
    records = owned_records(sweep, [finished(0, 0.7), finished(1, 0.8)])
    failed = pod(
        "Failed",
        name="s-finalize-g1",
        owner=SWEEP_UID,
        terminated={
            "exitCode": 1,
            "message": result("failed", reason="ModelUnavailable", message="no saved model"),
        },
    )
    d = decide(sweep, spec_of(sweep), records, {}, None, NOW, finalize_pod=failed)
    kept = next(c for c in d.status.conditions if c.type == ConditionType.models_kept)
    assert (kept.status, kept.reason) == ("False", "FinalizeFailed")
    assert "no saved model" in kept.message and d.finalize is None
    sweep["status"] = status_body(d.status)
    assert is_settled(sweep), "no retry loop"


def test_a_sweep_that_keeps_no_model_has_nothing_to_finalize() -> None:
    sweep = sweep_obj(maxTrials=2)
    records = owned_records(sweep, [finished(0, 0.7), finished(1, 0.8)])
    d = decide(sweep, spec_of(sweep), records, {}, None, NOW)
    assert d.finalize is None
    assert ConditionType.models_kept not in {c.type for c in d.status.conditions}


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
        stored = self.trials[trial["metadata"]["name"]]
        stored["status"] = json.loads(json.dumps(status))
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
        return json.loads(json.dumps(stored))

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


@pytest.mark.parametrize("cached", [False, True], ids=["listing", "cached"])
@pytest.mark.parametrize("crash_after", range(5))  # a pass writes at most 5 times here
def test_killing_the_operator_at_any_write_loses_no_trial_and_starts_none_twice(
    crash_after: int, cached: bool
) -> None:
    from bertsweep.cache import RecordCache
    from bertsweep.handlers import Operator

    cluster = FakeCluster(sweep_obj(parallelism=2, maxTrials=4))
    crashes = 0
    # With `cached`, one process's cache lives from pass to pass, fed only by its own writes
    # (no watch here), and a crash loses it with the process.
    cache = RecordCache() if cached else None
    for _ in range(200):
        # Every fourth pass, the operator is killed after `crash_after` writes.
        cluster.budget = crash_after if crashes < 6 and cluster.clock % 4 == 0 else None
        operator = Operator(kube=cluster, metrics=NoMetrics(), cache=cache)  # type: ignore[arg-type]
        try:
            operator.run_pass("ns", "s")
        except Crash:
            crashes += 1
            cache = RecordCache() if cached else None
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
