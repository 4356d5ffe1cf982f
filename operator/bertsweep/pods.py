"""One trial, one pod: the pure builder of a trial's Pod manifest from the sweep's trialTemplate.

Nothing here talks to the API server (`kube.py` does), so what a trial pod looks like is unit
tested with plain data. The pod says everything it runs: an explicit `command`, the trial's
settings as BERTSWEEP_* environment (the same builder the local runner uses,
`contract.trial_environment`), a restricted security context, and the labels that tie it to its
sweep and trial (which Prometheus copies onto every series it scrapes from the pod).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from bertsweep import contract, names
from bertsweep.api import (
    API_VERSION,
    TRIAL_KIND,
    ManifestError,
    ResourceRequirements,
    SweepSpec,
    Trial,
)

CONTAINER = "trainer"
METRICS_PORT_NAME = "metrics"
TERMINATION_LOG = contract.DEFAULT_RESULT_FILE  # /dev/termination-log
# The label names the operator selects on; also target labels in Prometheus (sweep and trial).
SWEEP_LABEL = "bertsweep"
TRIAL_LABEL = "trial"
TASK_LABEL = "bertsweep-task"  # on the pods that are not trials (the finalize pod)
# A non-root identity the trainer image has no reason to need more than.
RUN_AS_USER = 1000
# With a read-only root filesystem, everything that writes (Python, Hugging Face, tokenizers,
# torch's caches) needs a writable place: one emptyDir at /tmp, with the caches pointed there.
SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/tmp"
WRITABLE_DEFAULTS: dict[str, str] = {
    "HOME": SCRATCH_PATH,
    "HF_HOME": f"{SCRATCH_PATH}/huggingface",
    "XDG_CACHE_HOME": f"{SCRATCH_PATH}/.cache",
    "TOKENIZERS_PARALLELISM": "false",
}
# Variables the operator owns: a template that sets one of them is overridden, because the
# trial's identity and the metrics/result contract must be what the operator reads back.
OWNED_ENV = frozenset(
    {
        contract.ENV_SWEEP,
        contract.ENV_TRIAL,
        contract.ENV_MODEL,
        contract.ENV_DATASET,
        contract.ENV_PARAMETERS,
        contract.ENV_INFERENCE,
        contract.ENV_METRICS_ADDR,
        contract.ENV_METRICS_PORT,
        contract.ENV_RESULT_FILE,
        contract.ENV_TRIAL_INDEX,
        contract.ENV_MODELS,
        contract.ENV_TASK,
        contract.ENV_KEPT,
        contract.ENV_NODE_CPUS,
        contract.ENV_PARALLELISM,
    }
)


def check_policy(spec: SweepSpec, allow_host_path: bool) -> None:
    """What an operator refuses beyond the schema, naming the field (ManifestError): hostPath
    volumes unless it allows them, and models saved where no volume keeps them."""
    reaching = spec.trial_template.host_path_volumes()
    if reaching and not allow_host_path:
        raise ManifestError(
            f"spec.trialTemplate.{reaching[0]}: hostPath volumes are not allowed by this "
            "operator (they reach into the node's filesystem; a cluster admin can allow them "
            "with BERTSWEEP_ALLOW_HOST_PATH, the chart's allowHostPath)"
        )
    path = spec.output.path
    if path is not None and spec.output.keep and not spec.trial_template.mounts(path):
        raise ManifestError(
            f"spec.output.path: {path} is on no volume the trial template mounts "
            "(trialTemplate.volumeMounts): the models would vanish with each trial's pod"
        )


@dataclass(frozen=True)
class Owner:
    """The object a pod (or trial record) belongs to: deleting it garbage-collects the pod."""

    api_version: str
    kind: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def trial_owner(trial_name: str, uid: str) -> Owner:
    return Owner(API_VERSION, TRIAL_KIND, trial_name, uid)


def trial_labels(sweep: str, trial_name: str) -> dict[str, str]:
    return {
        SWEEP_LABEL: names.sweep_label(sweep),
        TRIAL_LABEL: trial_name,
        "app.kubernetes.io/name": "bertsweep-trial",
        "app.kubernetes.io/managed-by": "bertsweep-operator",
    }


def trial_pod(
    sweep: str,
    namespace: str,
    spec: SweepSpec,
    trial: Trial,
    owner: Owner,
    metrics_port: int = contract.DEFAULT_METRICS_PORT,
) -> dict[str, Any]:
    """The Pod that runs `trial`, owned by `owner` (its BertTrial record)."""
    models = contract.model_store(spec, spec.output.path)
    return _pod(
        names.pod_name(trial.name, trial.retries),
        namespace,
        spec,
        {**spec.trial_template.labels, **trial_labels(sweep, trial.name)},
        {
            # For Prometheus setups that discover pods by annotation; the devcluster and the
            # chart's PodMonitor select the port named `metrics` instead.
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(metrics_port),
            "prometheus.io/path": "/metrics",
        },
        contract.trial_environment(sweep, spec, trial, models),
        owner,
        metrics_port,
    )


def finalize_pod(
    sweep: str,
    namespace: str,
    spec: SweepSpec,
    kept: list[str],
    owner: Owner,
    generation: int | None,
) -> dict[str, Any]:
    """The Pod that finalizes a sweep's models once it has ended (the trainer's finalize task:
    keep exactly `kept`, measure them on dataset.test), from the same trial template, so that
    it mounts the volume the models are on. Owned by the sweep."""
    models = contract.model_store(spec, spec.output.path)
    assert models is not None, "a sweep that keeps no model has nothing to finalize"
    return _pod(
        names.finalize_pod_name(sweep, generation),
        namespace,
        spec,
        {**spec.trial_template.labels, **finalize_labels(sweep)},
        {"prometheus.io/scrape": "false"},
        contract.finalize_environment(sweep, spec, models, kept),
        owner,
        contract.DEFAULT_METRICS_PORT,
    )


def finalize_labels(sweep: str) -> dict[str, str]:
    return {
        SWEEP_LABEL: names.sweep_label(sweep),
        TASK_LABEL: contract.TASK_FINALIZE,
        "app.kubernetes.io/name": "bertsweep-finalize",
        "app.kubernetes.io/managed-by": "bertsweep-operator",
    }


def _pod(
    name: str,
    namespace: str,
    spec: SweepSpec,
    labels: dict[str, str],
    annotations: dict[str, str],
    owned_env: dict[str, str],
    owner: Owner,
    metrics_port: int,
) -> dict[str, Any]:
    template = spec.trial_template
    annotations = {**template.annotations, **annotations}
    mounts = [m.wire() for m in template.volume_mounts]
    volumes = [v.wire() for v in template.volumes]
    if not any(m.get("mountPath") == SCRATCH_PATH for m in mounts):
        mounts.append({"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH})
        volumes.append({"name": SCRATCH_VOLUME, "emptyDir": {}})

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": template.image,
        # Explicit, so that `kubectl get pod -o yaml` says what runs, whatever the image's
        # entrypoint is.
        "command": list(template.command),
        "args": list(template.args),
        "env": container_env(spec, owned_env, metrics_port),
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": metrics_port, "protocol": "TCP"}],
        "resources": {k: v for k, v in template.resources.wire().items() if v},
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        # The trainer writes its outcome there; a trainer that dies before writing it still
        # leaves the tail of its log, which is the best account of a crash there is.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if template.image_pull_policy is not None:
        container["imagePullPolicy"] = template.image_pull_policy

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if template.service_account_name:
        pod_spec["serviceAccountName"] = template.service_account_name
    else:
        # The trainer never calls the Kubernetes API: no token in the pod unless the user
        # names a service account (which then decides for itself).
        pod_spec["automountServiceAccountToken"] = False
    if template.node_selector:
        pod_spec["nodeSelector"] = dict(template.node_selector)
    if template.tolerations:
        pod_spec["tolerations"] = list(template.tolerations)
    if template.image_pull_secrets:
        pod_spec["imagePullSecrets"] = list(template.image_pull_secrets)
    if template.priority_class_name:
        pod_spec["priorityClassName"] = template.priority_class_name

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner.reference()],
        },
        "spec": pod_spec,
    }


def container_env(
    spec: SweepSpec, owned: dict[str, str], metrics_port: int
) -> list[dict[str, Any]]:
    """The container's environment: the template's, writable cache locations, thread counts
    that match the CPU the pod gets, then the operator's BERTSWEEP_* (`owned`, which always
    win)."""
    template = spec.trial_template
    user = [e.wire() for e in template.env if e.name not in OWNED_ENV]
    named = {str(e["name"]) for e in user}
    defaults = dict(WRITABLE_DEFAULTS)
    threads = cpu_threads(template.resources)
    if threads is not None:
        # BLAS and torch size their pools from the node's cores, not the pod's CPU limit;
        # oversubscribed threads make every trial on the node slower.
        defaults |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env = user + [{"name": k, "value": v} for k, v in defaults.items() if k not in named]
    if threads is None:
        # Given no CPU at all: the trainer takes a fair share of the node (its limits.cpu
        # reads as the node's allocatable CPUs then), rather than every core for each trial.
        env += [
            {
                "name": contract.ENV_NODE_CPUS,
                "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}},
            },
            {"name": contract.ENV_PARALLELISM, "value": str(spec.parallelism)},
        ]
    env += [{"name": k, "value": v} for k, v in owned.items()]
    env += [
        # Bind /metrics on the pod's own address (what Prometheus scrapes).
        {
            "name": contract.ENV_METRICS_ADDR,
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
        },
        {"name": contract.ENV_METRICS_PORT, "value": str(metrics_port)},
        {"name": contract.ENV_RESULT_FILE, "value": TERMINATION_LOG},
    ]
    return env


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")


def cpu_threads(resources: ResourceRequirements) -> int | None:
    """Whole CPUs a pod may use (its CPU limit, else request), at least 1; None if unset."""
    for section in (resources.limits, resources.requests):
        if "cpu" not in section:
            continue
        match = _QUANTITY.match(str(section["cpu"]).strip())
        if match is None:
            return None
        cores = float(match.group(1)) / (1000 if match.group(2) else 1)
        return max(1, math.floor(cores))
    return None
