"""What a user or a cluster can do to a sweep, on the real control plane: pods the API server
refuses, quotas, long names, failures every trial would share, records of another version,
trials lost to the cluster, templates that would escalate.

Every wait is bounded polling; nothing asserts how long anything took.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_helpers import REPO, Kubectl, OperatorProcess, wait_for

from sweeps import SweepManifest

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]


def status_of(kubectl: Kubectl, name: str) -> dict[str, Any]:
    sweep = kubectl.sweep(name)
    return dict((sweep or {}).get("status") or {})


def ended(kubectl: Kubectl, op: OperatorProcess, name: str, timeout: float = 300) -> Any:
    def probe() -> Any:
        sweep = kubectl.sweep(name)
        phase = ((sweep or {}).get("status") or {}).get("phase")
        return sweep if phase in ("Succeeded", "Failed") else None

    return wait_for(f"sweep {name} to end", probe, timeout=timeout, explain=op.tail)


def condition(sweep: Any, kind: str) -> dict[str, Any]:
    found = [c for c in sweep["status"].get("conditions", []) if c["type"] == kind]
    assert found, f"no {kind} condition in {sweep['status']}"
    return dict(found[0])


def reasons(kubectl: Kubectl, name: str) -> Counter[str]:
    return Counter(
        e["reason"]
        for e in kubectl.events()
        if e["involvedObject"].get("kind") == "BertSweep" and e["involvedObject"]["name"] == name
    )


def healthy(op: OperatorProcess) -> None:
    assert op.alive and "Traceback" not in op.log(), op.tail()


# ---- 1. the API server refuses a trial ---------------------------------------------------------


def test_what_the_schema_says_about_the_template_is_refused_at_apply(
    kubectl: Kubectl, sweep_manifest: SweepManifest
) -> None:
    nameless = sweep_manifest("nameless-env")
    nameless["spec"]["trialTemplate"]["env"] = [{"value": "1"}]
    bad_quantity = sweep_manifest("bad-quantity")
    bad_quantity["spec"]["trialTemplate"]["resources"] = {"limits": {"memory": "lots"}}
    for manifest, field in ((nameless, "env"), (bad_quantity, "memory")):
        done = kubectl.apply(manifest, check=False)
        assert done.returncode != 0, f"{manifest['metadata']['name']} was accepted"
        assert field in done.stderr, done.stderr
        assert kubectl.sweep(manifest["metadata"]["name"]) is None


def test_a_pod_the_api_server_refuses_fails_the_sweep_with_its_message(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    op = operator(BERTSWEEP_IDLE_INTERVAL_SECONDS="1")
    # A toleration the schema cannot check (tolerations are free-form Pod fragments): the API
    # server refuses the pod (422), and would refuse every trial's the same way.
    manifest = sweep_manifest("refused", maxTrials=3, parallelism=1, maxFailedTrials=3)
    manifest["spec"]["trialTemplate"]["tolerations"] = [{"key": "gpu", "operator": "Sometimes"}]
    kubectl.apply(manifest)
    sweep = ended(kubectl, op, "refused")
    assert sweep["status"]["phase"] == "Failed"
    failed = condition(sweep, "Failed")
    assert failed["reason"] == "PodRejected", failed
    assert "Unsupported value" in failed["message"] and "Sometimes" in failed["message"], failed
    (trial,) = kubectl.trials("refused")
    assert (trial["status"]["phase"], trial["status"]["reason"]) == ("Failed", "PodRejected")
    assert kubectl.pods("refused") == []
    counted = reasons(kubectl, "refused")
    assert counted["SweepFailed"] == 1 and counted["TrialFailed"] == 1, counted
    # Settled: no retry loop against the API server.
    version = kubectl.sweep("refused")["metadata"]["resourceVersion"]
    settled = op.passes()
    wait_for("a few more passes", lambda: op.passes() >= settled + 3, timeout=60)
    assert kubectl.sweep("refused")["metadata"]["resourceVersion"] == version
    healthy(op)


def test_trials_wait_for_quota_and_go_on_by_themselves(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "one-pod"},
        "spec": {"hard": {"pods": "1"}},
    }
    kubectl.apply(quota)
    wait_for(
        "the quota to be counted",
        lambda: (kubectl.get("resourcequota", "one-pod") or {}).get("status", {}).get("hard"),
        timeout=60,
    )
    op = operator()
    kubectl.apply(sweep_manifest("quota", maxTrials=2, parallelism=2))

    def waiting() -> Any:
        sweep = kubectl.sweep("quota")
        conditions = ((sweep or {}).get("status") or {}).get("conditions") or []
        found = [c for c in conditions if c["type"] == "QuotaAvailable"]
        return found[0] if found and found[0]["status"] == "False" else None

    held = wait_for("a trial to wait for quota", waiting, timeout=120, explain=op.tail)
    assert held["reason"] == "QuotaExceeded" and "exceeded quota" in held["message"], held
    assert status_of(kubectl, "quota")["phase"] == "Running"
    sweep = ended(kubectl, op, "quota", timeout=420)
    assert sweep["status"]["phase"] == "Succeeded", sweep["status"]
    assert sweep["status"]["trials"]["succeeded"] == 2
    assert condition(sweep, "QuotaAvailable")["status"] == "True"
    assert reasons(kubectl, "quota")["QuotaExceeded"] >= 1
    healthy(op)


# ---- 2, 3. names the API server accepts; failures every trial would share --------------------


def test_a_long_sweep_name_works_and_a_shared_failure_ends_its_sweep_at_once(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    op = operator()
    long_name = "a-sweep-with-a-name-long-enough-to-overflow-the-label-limit-x"
    assert len(long_name) > 59
    kubectl.apply(sweep_manifest(long_name, maxTrials=1, parallelism=1))
    # An unknown parameter name: every trial would fail on it.
    typo = sweep_manifest("typo", maxTrials=3, parallelism=1, maxFailedTrials=3)
    typo["spec"]["fixed"]["learnin_rate_decay"] = 0.1
    kubectl.apply(typo)

    sweep = ended(kubectl, op, long_name)
    assert sweep["status"]["phase"] == "Succeeded", sweep["status"]
    (trial,) = kubectl.trials(long_name)
    assert len(trial["metadata"]["name"]) <= 63
    assert trial["status"]["phase"] == "Succeeded"
    assert sweep["status"]["bestTrial"]["name"] == trial["metadata"]["name"]

    sweep = ended(kubectl, op, "typo")
    assert sweep["status"]["phase"] == "Failed"
    failed = condition(sweep, "Failed")
    assert failed["reason"] == "InvalidParameter", failed
    assert "learnin_rate_decay" in failed["message"] and "every trial" in failed["message"]
    assert len(kubectl.trials("typo")) == 1, "one pod, not maxFailedTrials + 1"
    healthy(op)


# ---- 4. version skew ---------------------------------------------------------------------------


@pytest.fixture
def newer_crds(env: dict[str, str]) -> Iterator[None]:
    """The CRDs as a newer BertSweep might install them: statuses with fields this operator
    does not know. The generated CRDs are put back afterwards."""
    generated = REPO / "crds" / "bertsweep.yaml"
    documents = list(yaml.safe_load_all(generated.read_text()))
    newer = copy.deepcopy(documents)
    for crd in newer:
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        status["x-kubernetes-preserve-unknown-fields"] = True
        status["properties"]["futureField"] = {"type": "string"}
        if crd["spec"]["names"]["kind"] == "BertTrial":
            # A newer phase than this operator knows.
            status["properties"]["phase"].pop("enum", None)

    def apply(docs: list[Any]) -> None:
        subprocess.run(
            ["kubectl", "apply", "-f", "-"],
            input=yaml.safe_dump_all(docs),
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )

    apply(newer)
    yield
    apply(documents)


def test_records_of_a_newer_version_are_read_leniently_or_set_aside(
    kubectl: Kubectl,
    operator: StartOperator,
    sweep_manifest: SweepManifest,
    newer_crds: None,
    tmp_path: Path,
) -> None:
    kubectl.apply(sweep_manifest("skew", maxTrials=2, parallelism=1))
    sweep = kubectl.sweep("skew")
    # Before the operator starts: a status field it does not know on the sweep, and a record
    # of the sweep whose phase it does not know.
    patch = {"status": {"futureField": "from a newer operator", "phase": "Pending"}}
    kubectl.run(
        "patch",
        "bertsweep",
        "skew",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )
    record = {
        "apiVersion": "tuning.bertsweep.io/v1alpha1",
        "kind": "BertTrial",
        "metadata": {
            "name": "skew-0005",
            "labels": {"bertsweep": "skew"},
            "ownerReferences": [
                {
                    "apiVersion": "tuning.bertsweep.io/v1alpha1",
                    "kind": "BertSweep",
                    "name": "skew",
                    "uid": sweep["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"sweep": "skew", "index": 5, "parameters": {"learning_rate": 0.0002}},
    }
    kubectl.apply(record)
    future = {"status": {"phase": "Hibernating", "futureField": "x"}}
    kubectl.run(
        "patch",
        "berttrial",
        "skew-0005",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(future),
    )

    op = operator()
    done = ended(kubectl, op, "skew")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    names = [t["metadata"]["name"] for t in kubectl.trials("skew")]
    assert names == ["skew-0005", "skew-0006", "skew-0007"], "new trials go past it"
    assert reasons(kubectl, "skew")["TrialUnreadable"] == 1
    assert done["status"]["trials"]["succeeded"] == 2
    healthy(op)


# ---- 5. trials lost to the cluster -------------------------------------------------------------


def test_a_trial_whose_pod_someone_deletes_starts_again(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    op = operator()
    manifest = sweep_manifest("lost", maxTrials=1, parallelism=1, maxFailedTrials=0)
    manifest["spec"]["dataset"]["maxTrainSamples"] = 1200  # long enough to be caught running
    kubectl.apply(manifest)

    def running() -> Any:
        trials = kubectl.trials("lost")
        return trials and trials[0].get("status", {}).get("phase") == "Running"

    wait_for("the trial to run", running, timeout=180, explain=op.tail)
    kubectl.run("delete", "pod", "lost-0000", "--wait=false")

    sweep = ended(kubectl, op, "lost", timeout=420)
    assert sweep["status"]["phase"] == "Succeeded", sweep["status"]
    (trial,) = kubectl.trials("lost")
    assert trial["status"]["phase"] == "Succeeded" and trial["status"]["retries"] == 1
    assert trial["status"]["podName"] == "lost-0000-r1"
    assert sweep["status"]["trials"]["retried"] == 1
    assert sweep["status"]["trials"]["failed"] == 0
    counted = reasons(kubectl, "lost")
    assert counted["TrialRetried"] == 1, counted
    healthy(op)


# ---- 7. no escalation through the template -----------------------------------------------------


def test_host_path_volumes_are_refused_unless_the_operator_allows_them(
    kubectl: Kubectl, operator: StartOperator, sweep_manifest: SweepManifest
) -> None:
    op = operator(BERTSWEEP_ALLOW_HOST_PATH="false")
    manifest = sweep_manifest("host-path")
    manifest["spec"]["trialTemplate"]["volumes"] = [{"name": "node", "hostPath": {"path": "/"}}]
    manifest["spec"]["trialTemplate"]["volumeMounts"] = [{"name": "node", "mountPath": "/node"}]
    kubectl.apply(manifest)
    privileged = sweep_manifest("privileged", maxTrials=1)
    # What the schema cannot say about a volume (it needs exactly one source), the operator
    # says, rather than let the API server take it for an emptyDir.
    sourceless = sweep_manifest("sourceless")
    sourceless["spec"]["trialTemplate"]["volumes"] = [{"name": "data"}]
    kubectl.apply(sourceless)
    privileged["spec"]["trialTemplate"]["hostPID"] = True

    sweep = ended(kubectl, op, "host-path")
    spec_valid = condition(sweep, "SpecValid")
    assert spec_valid["status"] == "False", spec_valid
    assert "spec.trialTemplate.volumes[0] (node)" in spec_valid["message"]
    assert "hostPath volumes are not allowed" in spec_valid["message"]
    assert kubectl.trials("host-path") == []
    sweep = ended(kubectl, op, "sourceless")
    assert (
        "spec.trialTemplate.volumes[0]: volume 'data' has no source"
        in (condition(sweep, "SpecValid")["message"])
    )
    assert kubectl.trials("sourceless") == []
    # What no operator allows is not in the schema: kubectl refuses it, naming the field.
    done = kubectl.apply(privileged, check=False)
    assert done.returncode != 0 and 'unknown field "hostPID"' in done.stderr, done.stderr
    assert kubectl.sweep("privileged") is None
    healthy(op)
