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
from bertsweep.api import API_VERSION, TRIAL_KIND, ResourceRequirements, SweepSpec, Trial

CONTAINER = "trainer"
METRICS_PORT_NAME = "metrics"
TERMINATION_LOG = contract.DEFAULT_RESULT_FILE  # /dev/termination-log
# The label names the operator selects on; also target labels in Prometheus (sweep and trial).
SWEEP_LABEL = "bertsweep"
TRIAL_LABEL = "trial"
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
        contract.ENV_METRICS_ADDR,
        contract.ENV_METRICS_PORT,
        contract.ENV_RESULT_FILE,
    }
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
    template = spec.trial_template
    labels = {**template.labels, **trial_labels(sweep, trial.name)}
    annotations = {
        **template.annotations,
        # For Prometheus setups that discover pods by annotation; the devcluster and the chart's
        # PodMonitor select the port named `metrics` instead.
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics_port),
        "prometheus.io/path": "/metrics",
    }
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
        "env": trial_env(sweep, spec, trial, metrics_port),
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
            "name": names.pod_name(trial.name, trial.retries),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner.reference()],
        },
        "spec": pod_spec,
    }


def trial_env(sweep: str, spec: SweepSpec, trial: Trial, metrics_port: int) -> list[dict[str, Any]]:
    """The container's environment: the template's, writable cache locations, thread counts
    that match the CPU the pod gets, then the operator's BERTSWEEP_* (which always win)."""
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
    owned = contract.trial_environment(sweep, spec, trial)
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
