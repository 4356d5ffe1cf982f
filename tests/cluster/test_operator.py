"""The operator against the real control plane of `make devcluster`: sweeps applied with
kubectl, real trainer processes fine-tuning MiniLM (cut to one layer) on Rotten Tomatoes
snippets, the real scheduler, garbage collector and Prometheus.

Every wait is bounded polling; nothing asserts how long anything took.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from cluster_helpers import (
    Kubectl,
    OperatorProcess,
    Prometheus,
    termination_message,
    wait_for,
)

from sweeps import MODEL, SweepManifest

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]
FINAL_METRICS = {
    "eval_accuracy",
    "eval_f1",
    "eval_precision",
    "eval_recall",
    "eval_loss",
    "train_loss",
}


def phase_is(kubectl: Kubectl, name: str, *phases: str) -> Callable[[], Any]:
    def probe() -> Any:
        sweep = kubectl.sweep(name)
        status = (sweep or {}).get("status") or {}
        return sweep if status.get("phase") in phases else None

    return probe


def condition(sweep: Any, kind: str) -> dict[str, Any]:
    found = [c for c in sweep["status"].get("conditions", []) if c["type"] == kind]
    assert found, f"no {kind} condition in {sweep['status']}"
    return dict(found[0])


def explain(kubectl: Kubectl, op: OperatorProcess, sweep: str) -> Callable[[], str]:
    def text() -> str:
        state = kubectl.sweep(sweep)
        trials = [
            (
                t["metadata"]["name"],
                t.get("status", {}).get("phase"),
                t.get("status", {}).get("reason"),
            )
            for t in kubectl.trials(sweep)
        ]
        return f"sweep status: {(state or {}).get('status')}\ntrials: {trials}\n{op.tail()}"

    return text


def events_by_reason(kubectl: Kubectl, sweep: str) -> Counter[str]:
    return Counter(
        e["reason"]
        for e in kubectl.events()
        if e["involvedObject"].get("kind") == "BertSweep" and e["involvedObject"]["name"] == sweep
    )


def test_a_sweep_runs_to_success_and_reports_its_best_trial(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    op = operator()
    gpu = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"nvidia.com/gpu": 1}}
    # eval_loss differs from trial to trial (accuracy on 100 snippets often ties).
    manifest = sweep_manifest("tiny", objective={"metric": "eval_loss", "goal": "minimize"})
    manifest["spec"]["trialTemplate"]["resources"] = gpu
    kubectl.apply(manifest)

    # Trials appear as they start, before the sweep ends. (Not "seen Running": a record's phase
    # is refreshed every few seconds, and a short trial may end before it was ever seen so.)
    def a_trial_while_the_sweep_runs() -> bool:
        trials = kubectl.trials("tiny")  # read first: it existed before the sweep's phase below
        phase = (kubectl.sweep("tiny") or {}).get("status", {}).get("phase")
        return bool(trials) and phase not in ("Succeeded", "Failed")

    wait_for(
        "a trial record while the sweep runs",
        a_trial_while_the_sweep_runs,
        explain=explain(kubectl, op, "tiny"),
    )
    sweep = wait_for(
        "the sweep to succeed",
        phase_is(kubectl, "tiny", "Succeeded", "Failed"),
        timeout=420,
        explain=explain(kubectl, op, "tiny"),
    )
    status = sweep["status"]
    context = explain(kubectl, op, "tiny")()
    assert status["phase"] == "Succeeded", context
    assert status["done"] == "3/3" and status["trials"]["succeeded"] == 3, context
    assert status["observedGeneration"] == sweep["metadata"]["generation"]
    assert condition(sweep, "Succeeded")["reason"] == "MaxTrialsReached"
    assert condition(sweep, "SpecValid")["status"] == "True"
    metrics_available = condition(sweep, "MetricsAvailable")
    assert metrics_available["status"] == "True", (metrics_available, context)

    # The trial records: parameters, phase, objective, metrics, reports.
    trials = kubectl.trials("tiny")
    assert [t["metadata"]["name"] for t in trials] == ["tiny-0000", "tiny-0001", "tiny-0002"]
    pods = {p["metadata"]["name"]: p for p in kubectl.pods("tiny")}
    for t in trials:
        s = t["status"]
        assert s["phase"] == "Succeeded" and s["reason"] == "Completed", (s, context)
        assert s["metrics"].keys() >= FINAL_METRICS, s
        assert s["objective"] == s["metrics"]["eval_loss"]
        assert s["reports"], ("evaluations are kept in the record", s)
        assert s["podName"] == t["metadata"]["name"]
        owner = t["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"]) == ("BertSweep", sweep["metadata"]["uid"])
        # What the operator recorded is what the trainer reported.
        pod = pods[t["metadata"]["name"]]
        reported = termination_message(pod)["metrics"]
        assert s["metrics"] == pytest.approx(reported, rel=1e-9)
        assert pod["metadata"]["ownerReferences"][0]["uid"] == t["metadata"]["uid"]
        container = pod["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] in (1, "1")
        assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # The best trial in the status is the best record.
    best = min(trials, key=lambda t: (t["status"]["objective"], t["spec"]["index"]))
    assert status["bestTrial"]["name"] == best["metadata"]["name"]
    assert status["bestTrial"]["parameters"] == best["spec"]["parameters"]
    assert status["bestTrial"]["metrics"] == pytest.approx(best["status"]["metrics"])
    assert status["bestObjective"] == pytest.approx(best["status"]["objective"])

    # kubectl shows progress and the leaderboard.
    table = kubectl.run("get", "bertsweeps").stdout
    assert "tiny" in table and "Succeeded" in table and "3/3" in table
    trial_table = kubectl.run("get", "berttrials", "-l", "bertsweep=tiny").stdout
    assert "learning_rate" in trial_table and trial_table.count("Succeeded") == 3

    reasons = events_by_reason(kubectl, "tiny")
    assert reasons["NewBestTrial"] >= 1 and reasons["SweepSucceeded"] == 1, (reasons, context)
    assert not reasons["TrialCreated"] and not reasons["TrialSucceeded"], "not one per trial"
    assert reasons["NewBestTrial"] >= 1 and reasons["SweepSucceeded"] == 1, (reasons, context)

    # The operator's own metrics.
    page = subprocess.run(
        ["curl", "-sf", f"http://127.0.0.1:{op.metrics_port}/metrics"],
        capture_output=True,
        text=True,
    ).stdout
    assert "bertsweep_operator_trials_created_total 3.0" in page, page
    assert 'bertsweep_operator_sweeps{phase="Succeeded"} 1.0' in page
    assert "bertsweep_operator_reconcile_seconds_count" in page

    # Deleting the sweep deletes its trials, and theirs pods (sweep -> BertTrial -> pod).
    kubectl.run("delete", "bertsweep", "tiny", "--wait=false")
    wait_for(
        "the garbage collector to delete trials and pods",
        lambda: not kubectl.trials("tiny") and not kubectl.pods("tiny"),
        timeout=120,
    )
    assert op.alive, op.tail()


def test_killing_the_operator_twice_loses_no_trial_and_starts_none_twice(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    op = operator()
    manifest = sweep_manifest("restart", maxTrials=4, parallelism=2)
    manifest["spec"]["dataset"]["maxTrainSamples"] = 300
    kubectl.apply(manifest)

    # First kill: as soon as a trial record exists (its pod may not, yet).
    wait_for("a trial record", lambda: kubectl.trials("restart"), interval=0.2)
    op.kill()
    op.start()
    # Second kill: in the middle, once some trial has ended.
    wait_for(
        "a finished trial",
        lambda: any(
            t.get("status", {}).get("phase") == "Succeeded" for t in kubectl.trials("restart")
        ),
        timeout=300,
        explain=explain(kubectl, op, "restart"),
    )
    op.kill()
    time.sleep(1)
    op.start()

    sweep = wait_for(
        "the sweep to end",
        phase_is(kubectl, "restart", "Succeeded", "Failed"),
        timeout=420,
        explain=explain(kubectl, op, "restart"),
    )
    assert sweep["status"]["phase"] == "Succeeded", explain(kubectl, op, "restart")()
    assert sweep["status"]["trials"]["total"] == 4 and sweep["status"]["done"] == "4/4"
    trials = kubectl.trials("restart")
    names = [t["metadata"]["name"] for t in trials]
    assert names == [f"restart-{i:04d}" for i in range(4)]
    assert all(t["status"]["phase"] == "Succeeded" for t in trials)
    assert len({str(t["spec"]["parameters"]) for t in trials}) == 4, "distinct configurations"

    # One pod per trial, never created twice: the pods left are the trials' own, and the
    # scheduler bound each pod name exactly once.
    pods = kubectl.pods("restart")
    owners = {p["metadata"]["name"]: p["metadata"]["ownerReferences"][0]["uid"] for p in pods}
    assert owners == {t["metadata"]["name"]: t["metadata"]["uid"] for t in trials}
    scheduled = Counter(
        e["involvedObject"]["name"]
        for e in kubectl.events()
        if e["reason"] == "Scheduled" and e["involvedObject"]["kind"] == "Pod"
    )
    assert scheduled == Counter(names), scheduled
    assert op.starts == 3


def test_failed_trials_are_recorded_with_their_reasons(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    # Pods that no node can take fail after 5 s here (15 minutes by default).
    op = operator(BERTSWEEP_UNSCHEDULABLE_TIMEOUT_SECONDS="5")
    one_at_a_time = {"maxTrials": 2, "parallelism": 1, "maxFailedTrials": 0}
    crash = sweep_manifest("crash", **one_at_a_time)
    crash["spec"]["trialTemplate"]["command"] = ["python", "-c", "import sys; sys.exit(3)"]
    bad_data = sweep_manifest("bad-data", **one_at_a_time)
    bad_data["spec"]["dataset"]["train"] = "/nonexistent/train.csv"
    no_gpu = sweep_manifest("no-gpu", **one_at_a_time)
    no_gpu["spec"]["trialTemplate"]["resources"] = {"limits": {"nvidia.com/gpu": 64}}
    # A grid whose second trial cannot load its model while the first one trains: the sweep
    # fails at once and stops the running trial.
    stopper = sweep_manifest(
        "stopper",
        algorithm={"name": "grid"},
        parameters=[{"name": "model", "type": "categorical", "values": [MODEL, "/no/model"]}],
        maxTrials=2,
        parallelism=2,
        maxFailedTrials=0,
    )
    stopper["spec"]["dataset"]["maxTrainSamples"] = 2000
    for manifest in (crash, bad_data, no_gpu, stopper):
        kubectl.apply(manifest)

    def ended(name: str) -> Any:
        return wait_for(
            f"sweep {name} to end",
            phase_is(kubectl, name, "Succeeded", "Failed"),
            timeout=300,
            explain=explain(kubectl, op, name),
        )

    def only_trial(name: str) -> dict[str, Any]:
        trials = kubectl.trials(name)
        assert len(trials) == 1, "the sweep ended at its first failure"
        return dict(trials[0]["status"])

    sweep = ended("crash")
    assert sweep["status"]["phase"] == "Failed"
    failed = condition(sweep, "Failed")
    assert failed["reason"] == "MaxFailedTrialsExceeded" and "exit code 3" in failed["message"]
    trial = only_trial("crash")
    assert trial["phase"] == "Failed" and trial["reason"] == "Error"
    assert trial["message"].startswith("exit code 3"), trial

    sweep = ended("bad-data")
    assert sweep["status"]["phase"] == "Failed"
    trial = only_trial("bad-data")
    assert trial["phase"] == "Failed" and trial["reason"] == "InvalidData", trial
    assert "/nonexistent/train.csv" in trial["message"]

    sweep = ended("no-gpu")
    assert sweep["status"]["phase"] == "Failed"
    trial = only_trial("no-gpu")
    assert trial["phase"] == "Failed" and trial["reason"] == "Unschedulable", trial
    assert "nvidia.com/gpu" in trial["message"]
    wait_for("the unschedulable pod to be deleted", lambda: not kubectl.pods("no-gpu"), timeout=60)

    sweep = ended("stopper")
    assert sweep["status"]["phase"] == "Failed", explain(kubectl, op, "stopper")()
    first, second = (t["status"] for t in kubectl.trials("stopper"))
    assert second["phase"] == "Failed" and second["reason"] == "ModelUnavailable", second
    assert first["phase"] == "Pruned" and first["reason"] == "SweepEnded", first
    assert sweep["status"]["trials"]["running"] == 0
    # The running trial's pod was stopped (deleted: SIGTERM, then gone).
    wait_for(
        "the stopped trial's pod to go",
        lambda: "stopper-0000" not in {p["metadata"]["name"] for p in kubectl.pods("stopper")},
        timeout=90,
    )
    reasons = events_by_reason(kubectl, "stopper")
    assert reasons["TrialFailed"] == 1 and reasons["TrialStopped"] == 1, reasons
    assert reasons["SweepFailed"] == 1, reasons
    assert op.alive, op.tail()


def test_a_hopeless_trial_is_pruned_and_its_pod_stopped(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    op = operator()
    # The second configuration's learning rate wrecks the model (eval_loss ~5 against ~0.69):
    # the median rule stops it at its first evaluation, while the first trial's record holds
    # evaluations up to the same step.
    manifest = sweep_manifest(
        "prune",
        algorithm={"name": "grid"},
        objective={"metric": "eval_loss", "goal": "minimize"},
        earlyStopping={"name": "median", "resource": "step", "minResource": 5, "minTrials": 1},
        parameters=[{"name": "learning_rate", "type": "categorical", "values": [3e-4, 0.05]}],
        maxTrials=2,
        parallelism=1,
    )
    manifest["spec"]["fixed"]["eval_steps"] = 5
    manifest["spec"]["dataset"]["maxTrainSamples"] = 480
    kubectl.apply(manifest)

    sweep = wait_for(
        "the sweep to end",
        phase_is(kubectl, "prune", "Succeeded", "Failed"),
        timeout=300,
        explain=explain(kubectl, op, "prune"),
    )
    context = explain(kubectl, op, "prune")()
    assert sweep["status"]["phase"] == "Succeeded", context
    assert sweep["status"]["done"] == "2/2" and sweep["status"]["trials"]["pruned"] == 1, context
    good, bad = (t["status"] for t in kubectl.trials("prune"))
    assert good["phase"] == "Succeeded" and len(good["reports"]) >= 2, good
    assert bad["phase"] == "Pruned" and bad["reason"] == "Pruned", bad
    assert "median" in bad["message"], bad
    # A pruned trial keeps what it had reached.
    assert bad["reports"] and bad["metrics"]["eval_loss"] > good["metrics"]["eval_loss"], bad
    assert bad["objective"] == bad["metrics"]["eval_loss"]
    assert sweep["status"]["bestTrial"]["name"] == "prune-0000"
    wait_for(
        "the pruned trial's pod to be stopped",
        lambda: "prune-0001" not in {p["metadata"]["name"] for p in kubectl.pods("prune")},
        timeout=90,
    )
    assert events_by_reason(kubectl, "prune")["TrialPruned"] == 1


def test_invalid_manifests_are_rejected_by_the_api_server_or_the_operator(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    # What the schema says: the API server refuses the object at `kubectl apply`.
    wrong_type = sweep_manifest("wrong-type", maxTrials="many")
    missing = sweep_manifest("missing")
    del missing["spec"]["dataset"]
    negative = sweep_manifest("negative", parallelism=-1)
    for manifest in (wrong_type, missing, negative):
        done = kubectl.apply(manifest, check=False)
        assert done.returncode != 0, f"{manifest['metadata']['name']} was accepted"
        assert kubectl.sweep(manifest["metadata"]["name"]) is None
    assert "maxTrials" in kubectl.apply(wrong_type, check=False).stderr
    assert "dataset" in kubectl.apply(missing, check=False).stderr
    assert "parallelism" in kubectl.apply(negative, check=False).stderr

    # What it cannot say: the operator reports it in a condition, once, and creates nothing.
    # A settled sweep is looked at again every second here (60 s by default), so the wait
    # below spans several passes, each of which could retry.
    op = operator(BERTSWEEP_IDLE_INTERVAL_SECONDS="1")
    min_over_max = sweep_manifest(
        "min-over-max",
        parameters=[{"name": "learning_rate", "type": "float", "min": 1e-3, "max": 1e-4}],
    )
    unknown_metric = sweep_manifest(
        "unknown-metric", objective={"metric": "eval_bleu", "goal": "maximize"}
    )
    kubectl.apply(min_over_max)
    kubectl.apply(unknown_metric)
    expected = {"min-over-max": "must be less than", "unknown-metric": "eval_bleu"}
    for name, words in expected.items():
        sweep = wait_for(
            f"{name} to be rejected", phase_is(kubectl, name, "Failed"), explain=op.tail
        )
        spec_valid = condition(sweep, "SpecValid")
        assert (spec_valid["status"], spec_valid["reason"]) == ("False", "InvalidSpec")
        assert words in spec_valid["message"], spec_valid
        assert condition(sweep, "Failed")["reason"] == "InvalidSpec"
        assert sweep["status"]["observedGeneration"] == 1
    versions = {n: kubectl.sweep(n)["metadata"]["resourceVersion"] for n in expected}

    # No retry loop: several passes later nothing was written again, nothing created.
    passes = op.passes()
    time.sleep(6)
    assert op.passes() - passes >= 3, "the sweeps were not looked at again"
    for name in expected:
        assert kubectl.sweep(name)["metadata"]["resourceVersion"] == versions[name]
        assert kubectl.trials(name) == []
        assert events_by_reason(kubectl, name)["InvalidSpec"] == 1
    assert op.alive and "Traceback" not in op.log(), op.tail()

    # A new generation is looked at again.
    unknown_metric["spec"]["objective"] = {"metric": "eval_loss", "goal": "maximize"}
    kubectl.apply(unknown_metric)

    def reevaluated() -> Any:
        sweep = kubectl.sweep("unknown-metric")
        return sweep if sweep["status"].get("observedGeneration") == 2 else None

    sweep = wait_for("the edited sweep to be evaluated", reevaluated, explain=op.tail)
    assert "set `goal: minimize`" in condition(sweep, "SpecValid")["message"]
    assert events_by_reason(kubectl, "unknown-metric")["InvalidSpec"] == 2


def test_a_sweep_completes_with_correct_final_metrics_when_prometheus_stops(
    kubectl: Kubectl, operator: StartOperator, prometheus: Prometheus, sweep_manifest: SweepManifest
) -> None:
    op = operator()
    kubectl.apply(sweep_manifest("blind", maxTrials=3, parallelism=1))

    def trial_phases() -> list[str]:
        return [t.get("status", {}).get("phase") for t in kubectl.trials("blind")]

    wait_for(
        "the first trial to finish",
        lambda: "Succeeded" in trial_phases(),
        timeout=300,
        explain=explain(kubectl, op, "blind"),
    )
    prometheus.stop()

    sweep = wait_for(
        "the sweep to end without Prometheus",
        phase_is(kubectl, "blind", "Succeeded", "Failed"),
        timeout=420,
        explain=explain(kubectl, op, "blind"),
    )
    assert sweep["status"]["phase"] == "Succeeded", explain(kubectl, op, "blind")()
    metrics_available = condition(sweep, "MetricsAvailable")
    assert metrics_available["status"] == "False"
    assert metrics_available["reason"] == "PrometheusUnreachable", metrics_available
    assert events_by_reason(kubectl, "blind")["PrometheusUnreachable"] >= 1

    pods = {p["metadata"]["name"]: p for p in kubectl.pods("blind")}
    trials = kubectl.trials("blind")
    assert len(trials) == 3
    for t in trials:
        s = t["status"]
        assert s["phase"] == "Succeeded", s
        reported = termination_message(pods[t["metadata"]["name"]])["metrics"]
        assert s["metrics"].keys() >= FINAL_METRICS
        assert s["metrics"] == pytest.approx(reported, rel=1e-9)
        assert s["objective"] == pytest.approx(reported["eval_accuracy"])
    best = max(trials, key=lambda t: (t["status"]["objective"], -t["spec"]["index"]))
    assert sweep["status"]["bestTrial"]["name"] == best["metadata"]["name"]
    # The trials that ran while Prometheus was down were still read: their /metrics pages
    # directly (their evaluations are in their records).
    assert all(t["status"]["reports"] for t in trials[1:]), [t["status"] for t in trials]
