"""The Node object this runner stands for: registered, kept Ready, reachable on loopback.

``node_status`` (pure) gives the capacity (cpu, memory, pods, ``nvidia.com/gpu``, 100Gi of
ephemeral storage; allocatable the same), the four kubelet conditions (Ready True, no pressure),
the addresses (InternalIP 127.0.0.1, the API server is told to prefer it, so it never resolves
the node's name) and ``daemonEndpoints.kubeletEndpoint.Port``, where the runner's kubelet API
(``kubelet_api.py``) listens; that is where ``kubectl logs`` reaches the node.

The annotation ``bertsweep.io/simulate-in-process`` says whether this runner plays simulated
trainer pods in-process (``--simulate-in-process``, see inprocess.py), so that a benchmark or a
test can tell how its pods will run.

``NodeAgent.register`` creates the Node if needed, writes its status and removes the taints: the
TaintNodesByCondition admission adds ``node.kubernetes.io/not-ready`` at creation and no node
lifecycle controller runs here to take it off. ``heartbeat_loop`` rewrites the status every
``heartbeat_s`` and registers the node again if it was deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

from kubernetes.client.exceptions import ApiException

from .common import HOST_IP, Json, Settings, now_rfc3339

log = logging.getLogger("podrunner")

KUBE_VERSION = "v1.20.2"
SIMULATE_IN_PROCESS_ANNOTATION = "bertsweep.io/simulate-in-process"


def node_labels(node: str) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": node,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "bertsweep.io/devcluster": "true",
    }


def node_annotations(settings: Settings) -> dict[str, str]:
    return {SIMULATE_IN_PROCESS_ANNOTATION: "true" if settings.simulate_in_process else "false"}


def node_status(
    settings: Settings, heartbeat: str, ready_since: str, kubelet_port: int, kernel: str
) -> Json:
    capacity = {
        "cpu": str(settings.cpu),
        "memory": settings.memory,
        "pods": str(settings.max_pods),
        "nvidia.com/gpu": str(settings.gpus),
        "ephemeral-storage": "100Gi",
    }

    def cond(ctype: str, status: str, reason: str, message: str) -> Json:
        return {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": ready_since,
        }

    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
            cond("Ready", "True", "KubeletReady", "bertsweep podrunner is posting ready"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": HOST_IP},
            {"type": "Hostname", "address": settings.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "architecture": "amd64",
            "bootID": "bertsweep-dev",
            "containerRuntimeVersion": "bertsweep-podrunner://1",
            "kernelVersion": kernel,
            "kubeProxyVersion": KUBE_VERSION,
            "kubeletVersion": KUBE_VERSION,
            "machineID": "bertsweep-dev",
            "operatingSystem": "linux",
            "osImage": "bertsweep dev cluster",
            "systemUUID": "bertsweep-dev",
        },
    }


class NodeAgent:
    def __init__(self, api: Any, settings: Settings, kubelet_port: int) -> None:
        self.api = api
        self.settings = settings
        self.node = settings.node_name
        self.kubelet_port = kubelet_port
        self.ready_since = now_rfc3339()

    def status(self) -> Json:
        return node_status(
            self.settings, now_rfc3339(), self.ready_since, self.kubelet_port, os.uname().release
        )

    def register(self) -> None:
        self.ready_since = now_rfc3339()
        body: Json = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node, "labels": node_labels(self.node)},
        }
        try:
            self.api.create_node(body, _request_timeout=10)
            log.info("registered node %s", self.node)
        except ApiException as e:
            if e.status != 409:
                raise
        self.api.patch_node_status(self.node, {"status": self.status()}, _request_timeout=10)
        self.api.patch_node(
            self.node,
            {
                "metadata": {"annotations": node_annotations(self.settings)},
                "spec": {"taints": None, "unschedulable": False},
            },
            _content_type="application/merge-patch+json",
            _request_timeout=10,
        )

    def heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.heartbeat_s):
            try:
                self.api.patch_node_status(
                    self.node, {"status": self.status()}, _request_timeout=10
                )
            except ApiException as e:
                if e.status == 404:
                    log.warning("node %s vanished; registering it again", self.node)
                    with contextlib.suppress(Exception):
                        self.register()
                else:
                    log.warning("node heartbeat failed: %s", e.reason)
            except Exception as e:
                log.warning("node heartbeat failed: %s", e)
