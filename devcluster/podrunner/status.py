"""What the runner writes about pods: status patches (built by pure functions) and the final
delete of a pod object.

A pod goes Pending -> Running (``running_status``) -> Succeeded/Failed (``exited_status``:
exit code, reason Completed or Error, the termination message, the signal of a killed process).
A pod that cannot start is Failed with the start error's reason (``start_failed_status``); a pod
Running without a process here (the runner restarted) is Failed with reason ``NodeRestart``
(``node_restart_status``). The container ID is ``bertsweep://PID`` for a process
(``container_id``), ``bertsweep-inprocess://RUNNER_PID-N`` for a pod the runner plays itself.

``PodWriter`` sends them. A 404 or 409 is expected (the pod went, or changed, meanwhile) and
only logged at debug level; other failures are logged, never raised: the watch will show the pod
again and nothing here may stop the runner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from .common import HOST_IP, Json, first_container

log = logging.getLogger("podrunner")


@dataclass(frozen=True)
class Container:
    """The container a status speaks of."""

    name: str
    image: str

    @classmethod
    def of(cls, pod: Json) -> Container:
        c = first_container(pod)
        return cls(name=str(c.get("name", "main")), image=str(c.get("image", "")))


def exit_code(returncode: int) -> int:
    """Popen's return code as a container's exit code (128 + signal for a killed process)."""
    return returncode if returncode >= 0 else 128 - returncode


def container_id(pid: int) -> str:
    return f"bertsweep://{pid}"


def pod_conditions(ready: bool, t: str, reason: str | None) -> list[Json]:
    def cond(ctype: str, status: bool, why: str | None = None) -> Json:
        c: Json = {
            "type": ctype,
            "status": "True" if status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": t,
        }
        if why:
            c["reason"] = why
        return c

    return [
        cond("Initialized", True),
        cond("Ready", ready, reason),
        cond("ContainersReady", ready, reason),
        cond("PodScheduled", True),
    ]


def running_status(c: Container, ip: str, cid: str, started_at: str) -> Json:
    return {
        "phase": "Running",
        "hostIP": HOST_IP,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started_at,
        "conditions": pod_conditions(True, started_at, None),
        "containerStatuses": [
            {
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "containerID": cid,
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": started_at}},
            }
        ],
    }


def exited_status(
    c: Container, cid: str, returncode: int, message: str, started_at: str, finished_at: str
) -> Json:
    """The final status of a pod whose container ``cid`` ended with Popen's ``returncode``."""
    code = exit_code(returncode)
    term: Json = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": started_at,
        "finishedAt": finished_at,
        "containerID": cid,
    }
    if message:
        term["message"] = message
    if returncode < 0:
        term["signal"] = -returncode
    return {
        "phase": "Succeeded" if code == 0 else "Failed",
        "conditions": pod_conditions(False, finished_at, "PodCompleted"),
        "containerStatuses": [
            {
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "containerID": cid,
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"terminated": term},
            }
        ],
    }


def terminated_container(
    c: Container, code: int, reason: str, message: str, started: str | None, finished: str
) -> Json:
    """A container status for a container that never ran here."""
    term: Json = {
        "exitCode": code,
        "reason": reason,
        "finishedAt": finished,
        "startedAt": started or finished,
    }
    if message:
        term["message"] = message
    return {
        "name": c.name,
        "image": c.image,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": 0,
        "state": {"terminated": term},
    }


def start_failed_status(c: Container, reason: str, message: str, t: str) -> Json:
    return {
        "phase": "Failed",
        "reason": reason,
        "message": message,
        "hostIP": HOST_IP,
        "startTime": t,
        "conditions": pod_conditions(False, t, "PodCompleted"),
        "containerStatuses": [terminated_container(c, 128, reason, message, t, t)],
    }


def node_restart_status(c: Container, t: str) -> Json:
    return {
        "phase": "Failed",
        "reason": "NodeRestart",
        "message": "the dev cluster's pod runner restarted and lost this pod's process",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "NodeRestart"},
            {"type": "ContainersReady", "status": "False", "reason": "NodeRestart"},
        ],
        "containerStatuses": [terminated_container(c, 137, "NodeRestart", "", None, t)],
    }


def _done(resp: Any) -> None:
    """Read an unread reply to its end and give its connection back to the pool."""
    resp.read()
    resp.release_conn()


class PodWriter:
    def __init__(self, api: Any) -> None:
        self.api = api

    def patch_status(self, ns: str, name: str, status: Json) -> None:
        try:
            # The reply is drained, not decoded into the client's models: the runner never
            # looks at it (the watch brings the pod back) and the decoding costs CPU per call.
            resp = self.api.patch_namespaced_pod_status(
                name, ns, {"status": status}, _preload_content=False, _request_timeout=15
            )
            _done(resp)
        except ApiException as e:
            if e.status in (404, 409):
                log.debug("status patch of %s/%s: %s", ns, name, e.status)
            else:
                log.warning("status patch of %s/%s failed: %s %s", ns, name, e.status, e.reason)
        except Exception as e:
            log.warning("status patch of %s/%s failed: %s", ns, name, e)

    def force_delete(self, ns: str, name: str, uid: str) -> None:
        """Delete with grace period 0: the kubelet's last step of a graceful deletion. The uid
        precondition keeps it from deleting a new pod of the same name."""
        body = kubernetes.client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=kubernetes.client.V1Preconditions(uid=uid)
        )
        try:
            resp = self.api.delete_namespaced_pod(
                name,
                ns,
                grace_period_seconds=0,
                body=body,
                _preload_content=False,
                _request_timeout=15,
            )
            _done(resp)
            log.info("%s/%s deleted", ns, name)
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("delete of %s/%s failed: %s %s", ns, name, e.status, e.reason)
