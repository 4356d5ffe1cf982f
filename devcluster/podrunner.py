"""The dev cluster's kubelet: runs the pods bound to one Node as local processes.

There is no container runtime on the development machine, so this process plays the kubelet for
the node ``bertsweep-dev`` (see devcluster/up.sh). Everything else is the real control plane.

What it does, per pod with ``spec.nodeName == NODE`` (all namespaces):

* gives the pod its own loopback address 127.1.x.y (Linux answers all of 127/8), so that every pod
  can listen on the same container port, as on a real cluster;
* runs the FIRST container's ``command`` + ``args`` as a local process. The container IMAGE IS
  IGNORED: executables resolve on a PATH that puts the repository's ``.venv/bin`` first, so a pod
  spec written for the BertSweep images runs the same code from this checkout. ``env`` (plain
  values, ``valueFrom`` fieldRef/resourceFieldRef/configMapKeyRef/secretKeyRef, ``envFrom``) and
  ``workingDir`` (default: the repository root) are honoured, ``$(VAR)`` references expanded;
* runs it in a private mount namespace (``unshare --mount --propagation private``) where the
  container's ``terminationMessagePath`` and its ``emptyDir``/``configMap``/``secret``/``hostPath``
  volumes are per-pod host files and directories bind-mounted at their paths (a missing mount
  point is created on the host, empty, and removed again when the runner stops);
* reports the pod Running, then Succeeded/Failed with the container's exit code and termination
  message (``FallbackToLogsOnError`` supported); the containerID is ``bertsweep://<pid>``;
* on deletion sends SIGTERM to the pod's process group, SIGKILL after the grace period, then
  deletes the pod object with grace period 0 (the kubelet's part of graceful deletion);
* never restarts a container (``restartPolicy: Never`` semantics for every pod);
* publishes the Running pods that expose a container port named ``metrics`` (or the annotation
  ``prometheus.io/port``) as Prometheus file_sd targets with the labels ``namespace``, ``pod`` and
  every pod label, sanitized as kubernetes_sd + labelmap would (``app.kubernetes.io/name`` ->
  ``app_kubernetes_io_name``); annotation ``prometheus.io/path`` sets the metrics path;
* registers the Node (capacity, ``nvidia.com/gpu``) and heartbeats its Ready condition.

stdout and stderr of a pod go to ``STATE/pods/NAMESPACE_NAME.log``. ``kubectl logs`` and
``kubectl exec`` do not work (there is no kubelet API server).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity
from kubernetes.watch.watch import iter_resp_lines

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Kubelet limits (pkg/kubelet/container): termination message file and log fallback.
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
DEFAULT_GRACE_S = 30
# Host environment variables a pod process inherits (a container gets its image's environment).
PASSTHROUGH_ENV = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")

log = logging.getLogger("podrunner")

Json = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prom_label_name(key: str) -> str:
    """A Kubernetes label key as a Prometheus label name (kubernetes_sd's sanitizing)."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", key)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


_VAR_REF = re.compile(r"\$(\$|\(([A-Za-z_][A-Za-z0-9_.\-]*)\))")


def expand_vars(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes ``$``."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(repl, text)


def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time), to recognise a process after a runner restart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class PodStartError(Exception):
    """The pod cannot be started as specified; it is reported Failed with this message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Run:
    """One pod this runner started a process for."""

    uid: str
    namespace: str
    name: str
    ip: str
    pod_dir: Path
    log_path: Path
    term_path: Path
    fallback_to_logs: bool
    container: str
    image: str
    grace_s: int
    labels: dict[str, str]
    metrics_port: int | None
    metrics_path: str | None
    proc: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    finished: bool = False
    reaped: bool = False
    terminating: bool = False
    deleted: bool = False
    delete_sent: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class PodRunner:
    def __init__(self, args: argparse.Namespace) -> None:
        kubernetes.config.load_kube_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
        # Typed as Any: the runner sends and reads raw JSON (dicts), never the client's models.
        self.api: Any = kubernetes.client.CoreV1Api()
        self.node: str = args.node_name
        self.args = args
        self.state_dir = Path(args.state_dir).resolve()
        self.pods_dir = self.state_dir / "pods"
        self.run_dir = self.pods_dir / "run"
        self.sd_file = Path(args.sd_file).resolve()
        self.mountpoints_file = self.pods_dir / "mountpoints.txt"
        self.lock = threading.RLock()
        self.runs: dict[str, Run] = {}
        self.used_ips: set[str] = set()
        self.next_ip = 0
        self.stop = threading.Event()
        self.resp: Any = None
        self.sd_written: str | None = None
        self.unshare = shutil.which("unshare") or "unshare"
        self.mount = shutil.which("mount") or "mount"
        self.can_unshare = self._check_unshare()
        # What every pod runs from: the checkout (with its .venv) and the interpreter behind it.
        self.host_paths = sorted({REPO, Path(sys.base_prefix).resolve()})
        self.field_selector = f"spec.nodeName={self.node}"

    # ----------------------------------------------------------------- setup and node
    def _check_unshare(self) -> bool:
        if shutil.which("unshare") is None or shutil.which("mount") is None:
            log.warning("unshare/mount not found: pods run without private mounts")
            return False
        rc = subprocess.run(
            [self.unshare, "--mount", "--propagation", "private", "true"],
            capture_output=True,
            check=False,
        ).returncode
        if rc != 0:
            log.warning(
                "unshare --mount failed (not root?): pods run without private mounts, "
                "termination messages and volumes are not available"
            )
        return rc == 0

    def node_status(self) -> Json:
        hb = now_rfc3339()
        capacity = {
            "cpu": str(self.args.cpu),
            "memory": self.args.memory,
            "pods": str(self.args.max_pods),
            "nvidia.com/gpu": str(self.args.gpus),
            "ephemeral-storage": "100Gi",
        }

        def cond(ctype: str, status: str, reason: str, message: str) -> Json:
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": hb,
                "lastTransitionTime": self.ready_since,
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
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "bertsweep-dev",
                "containerRuntimeVersion": "bertsweep-podrunner://1",
                "kernelVersion": os.uname().release,
                "kubeProxyVersion": "v1.20.2",
                "kubeletVersion": "v1.20.2",
                "machineID": "bertsweep-dev",
                "operatingSystem": "linux",
                "osImage": "bertsweep dev cluster",
                "systemUUID": "bertsweep-dev",
            },
        }

    def register_node(self) -> None:
        self.ready_since = now_rfc3339()
        body: Json = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "bertsweep.io/devcluster": "true",
                },
            },
        }
        try:
            self.api.create_node(body, _request_timeout=10)
            log.info("registered node %s", self.node)
        except ApiException as e:
            if e.status != 409:
                raise
        # The TaintNodesByCondition admission adds node.kubernetes.io/not-ready at creation;
        # no node lifecycle controller runs here, so the taint goes once the node is Ready.
        self.api.patch_node_status(self.node, {"status": self.node_status()}, _request_timeout=10)
        self.api.patch_node(
            self.node,
            {"spec": {"taints": None, "unschedulable": False}},
            _content_type="application/merge-patch+json",
            _request_timeout=10,
        )

    def heartbeat_loop(self) -> None:
        while not self.stop.wait(self.args.heartbeat):
            try:
                self.api.patch_node_status(
                    self.node, {"status": self.node_status()}, _request_timeout=10
                )
            except ApiException as e:
                if e.status == 404:
                    log.warning("node %s vanished; registering it again", self.node)
                    with contextlib.suppress(Exception):
                        self.register_node()
                else:
                    log.warning("node heartbeat failed: %s", e.reason)
            except Exception as e:
                log.warning("node heartbeat failed: %s", e)

    # ----------------------------------------------------------------- leftovers
    def reap_leftovers(self) -> None:
        """Kill process groups a previous runner instance left behind, drop their state."""
        if not self.run_dir.is_dir():
            return
        for d in self.run_dir.iterdir():
            pid_file = d / "pid"
            if pid_file.is_file():
                with contextlib.suppress(ValueError, OSError):
                    pid_s, start = pid_file.read_text().split()
                    pid = int(pid_s)
                    if proc_start_time(pid) == start:
                        log.info("killing leftover process group %d (%s)", pid, d.name)
                        os.killpg(pid, signal.SIGKILL)
            shutil.rmtree(d, ignore_errors=True)
        self.remove_mountpoints()

    def remember_mountpoint(self, path: str) -> None:
        with open(self.mountpoints_file, "a") as f:
            f.write(path + "\n")

    def remove_mountpoints(self) -> None:
        """Remove the (empty) mount points this runner created on the host."""
        if not self.mountpoints_file.is_file():
            return
        paths = sorted(set(self.mountpoints_file.read_text().split("\n")) - {""}, reverse=True)
        for p in paths:
            path = Path(p)
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                elif path.is_file() and path.stat().st_size == 0:
                    path.unlink()
        self.mountpoints_file.unlink(missing_ok=True)

    # ----------------------------------------------------------------- list / watch
    def list_pods(self) -> tuple[list[Json], str]:
        resp = self.api.list_pod_for_all_namespaces(
            field_selector=self.field_selector, _preload_content=False, _request_timeout=30
        )
        data = json.loads(resp.data)
        return list(data.get("items") or []), str(data["metadata"]["resourceVersion"])

    def relist(self) -> str:
        pods, rv = self.list_pods()
        seen = set()
        for pod in pods:
            seen.add(pod["metadata"]["uid"])
            self.handle(pod)
        with self.lock:
            gone = [uid for uid in self.runs if uid not in seen]
        for uid in gone:
            self.on_deleted(uid, None)
        return rv

    def watch_loop(self) -> None:
        rv: str | None = None
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if rv is None:
                    rv = self.relist()
                    log.info("synced pods of node %s at resourceVersion %s", self.node, rv)
                rv = self.watch_once(rv)
                backoff = 1.0
            except ApiException as e:
                if self.stop.is_set():
                    return
                if e.status == 410:
                    log.info("watch expired (410); relisting")
                else:
                    log.warning(
                        "list/watch failed: %s %s; retrying in %.0f s", e.status, e.reason, backoff
                    )
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, 15.0)
                rv = None
            except Exception as e:
                if self.stop.is_set():
                    return
                log.warning("list/watch failed: %s; retrying in %.0f s", e, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 15.0)
                rv = None

    def watch_once(self, rv: str) -> str:
        """Watch from ``rv`` until the server ends the stream; returns the last resourceVersion."""
        resp = self.api.list_pod_for_all_namespaces(
            field_selector=self.field_selector,
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=240,
            _preload_content=False,
            _request_timeout=(10, 300),
        )
        self.resp = resp
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self.stop.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                etype = event.get("type")
                obj = event.get("object") or {}
                if etype == "ERROR":
                    raise ApiException(
                        status=int(obj.get("code") or 500),
                        reason=f"{obj.get('reason')}: {obj.get('message')}",
                    )
                new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                if new_rv:
                    rv = str(new_rv)
                if etype == "BOOKMARK":
                    continue
                try:
                    if etype == "DELETED":
                        self.on_deleted(obj["metadata"]["uid"], obj)
                    else:
                        self.handle(obj)
                except Exception:
                    log.exception("handling %s of %s failed", etype, pod_key(obj))
        finally:
            self.resp = None
            with contextlib.suppress(Exception):
                resp.close()
                resp.release_conn()
        return rv

    # ----------------------------------------------------------------- reconcile one pod
    def handle(self, pod: Json) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        phase = (pod.get("status") or {}).get("phase", "Pending")
        with self.lock:
            run = self.runs.get(uid)
        if meta.get("deletionTimestamp"):
            if run is None:
                self.force_delete(pod["metadata"]["namespace"], meta["name"], uid)
            elif run.finished:
                self.delete_once(run)
            elif not run.terminating:
                grace = meta.get("deletionGracePeriodSeconds")
                if grace is None:
                    grace = run.grace_s
                self.terminate(run, int(grace))
            return
        if run is not None:
            return
        if phase == "Pending":
            self.start(pod)
        elif phase == "Running":
            # Running, but no process of ours: this runner restarted (or never ran it).
            log.info(
                "%s: Running without a process here; marking Failed (NodeRestart)", pod_key(pod)
            )
            self.patch_status(
                pod["metadata"]["namespace"],
                meta["name"],
                {
                    "phase": "Failed",
                    "reason": "NodeRestart",
                    "message": "the dev cluster's pod runner restarted and lost this pod's process",
                    "conditions": [
                        {"type": "Ready", "status": "False", "reason": "NodeRestart"},
                        {"type": "ContainersReady", "status": "False", "reason": "NodeRestart"},
                    ],
                    "containerStatuses": [
                        self.terminated_status(pod, 137, "NodeRestart", "", None, now_rfc3339())
                    ],
                },
            )

    def terminated_status(
        self,
        pod: Json,
        code: int,
        reason: str,
        message: str,
        started: str | None,
        finished: str,
        container_id: str = "",
    ) -> Json:
        containers = pod["spec"].get("containers") or [{}]
        c = containers[0]
        term: Json = {
            "exitCode": code,
            "reason": reason,
            "finishedAt": finished,
            "startedAt": started or finished,
        }
        if message:
            term["message"] = message
        if container_id:
            term["containerID"] = container_id
        status: Json = {
            "name": c.get("name", "main"),
            "image": c.get("image", ""),
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": 0,
            "state": {"terminated": term},
        }
        if container_id:
            status["containerID"] = container_id
        return status

    # ----------------------------------------------------------------- start
    def allocate_ip(self) -> str:
        with self.lock:
            for _ in range(256 * 254):
                idx = self.next_ip
                self.next_ip = (self.next_ip + 1) % (256 * 254)
                ip = f"127.1.{idx // 254}.{idx % 254 + 1}"
                if ip not in self.used_ips:
                    self.used_ips.add(ip)
                    return ip
        raise PodStartError("OutOfAddresses", "no free loopback address in 127.1.0.0/16")

    def start(self, pod: Json) -> None:
        meta = pod["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        spec = pod["spec"]
        containers = spec.get("containers") or []
        c: Json = containers[0] if containers else {}
        ip = self.allocate_ip()
        pod_dir = self.run_dir / uid
        metrics_port, metrics_path = metrics_endpoint(pod)
        run = Run(
            uid=uid,
            namespace=ns,
            name=name,
            ip=ip,
            pod_dir=pod_dir,
            log_path=self.pods_dir / f"{ns}_{name}.log",
            term_path=pod_dir / "termination-log",
            fallback_to_logs=c.get("terminationMessagePolicy") == "FallbackToLogsOnError",
            container=c.get("name", "main"),
            image=c.get("image", ""),
            grace_s=int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)),
            labels=dict(meta.get("labels") or {}),
            metrics_port=metrics_port,
            metrics_path=metrics_path,
        )
        with self.lock:
            self.runs[uid] = run
        if len(containers) > 1:
            log.warning("%s/%s: only the first of %d containers runs", ns, name, len(containers))
        try:
            argv, env, cwd, mounts = self.prepare(pod, c, run)
            self.launch(run, argv, env, cwd, mounts)
        except PodStartError as e:
            log.warning("%s/%s cannot start: %s", ns, name, e.message)
            threading.Thread(target=self.fail_start, args=(run, pod, e), daemon=True).start()
            return
        except Exception as e:
            log.exception("%s/%s: start failed", ns, name)
            err = PodStartError("StartError", f"podrunner: {e}")
            threading.Thread(target=self.fail_start, args=(run, pod, err), daemon=True).start()
            return
        log.info(
            "%s/%s started: pid %s ip %s: %s",
            ns,
            name,
            run.proc.pid if run.proc else "-",
            ip,
            summarize(argv),
        )
        threading.Thread(
            target=self.supervise, args=(run, pod), daemon=True, name=f"pod-{ns}/{name}"
        ).start()

    def fail_start(self, run: Run, pod: Json, err: PodStartError) -> None:
        t = now_rfc3339()
        with run.lock:
            run.finished = run.reaped = True
        run.done.set()
        self.release_ip(run)
        if run.deleted or run.terminating:
            self.delete_once(run)
            return
        self.patch_status(
            run.namespace,
            run.name,
            {
                "phase": "Failed",
                "reason": err.reason,
                "message": err.message,
                "hostIP": "127.0.0.1",
                "startTime": t,
                "conditions": pod_conditions(False, t, "PodCompleted"),
                "containerStatuses": [
                    self.terminated_status(pod, 128, err.reason, err.message, t, t)
                ],
            },
        )

    def resolve_env(self, pod: Json, c: Json, run: Run) -> dict[str, str]:
        meta, spec = pod["metadata"], pod["spec"]
        env: dict[str, str] = {"PATH": f"{VENV_BIN}:{os.environ.get('PATH') or DEFAULT_PATH}"}
        for k in PASSTHROUGH_ENV:
            if k in os.environ:
                env[k] = os.environ[k]
        env["HOSTNAME"] = run.name
        # No GPU on the development machine: GPU requests are honoured by the scheduler only.
        env["CUDA_VISIBLE_DEVICES"] = ""
        ns = run.namespace
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                ref = src["configMapRef"]
                data = self.read_config(ns, "configmap", ref["name"], bool(ref.get("optional")))
            elif "secretRef" in src:
                ref = src["secretRef"]
                data = self.read_config(ns, "secret", ref["name"], bool(ref.get("optional")))
            else:
                continue
            for k, v in data.items():
                env[prefix + k] = v.decode(errors="replace")
        for item in c.get("env") or []:
            key = item["name"]
            if "valueFrom" not in item:
                env[key] = expand_vars(str(item.get("value", "")), env)
                continue
            vf = item["valueFrom"]
            if "fieldRef" in vf:
                env[key] = self.field_value(vf["fieldRef"]["fieldPath"], meta, spec, run)
            elif "resourceFieldRef" in vf:
                env[key] = resource_value(vf["resourceFieldRef"], c, self.args)
            elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
                kind = "configmap" if "configMapKeyRef" in vf else "secret"
                ref = vf.get("configMapKeyRef") or vf.get("secretKeyRef")
                optional = bool(ref.get("optional"))
                data = self.read_config(ns, kind, ref["name"], optional)
                if ref["key"] in data:
                    env[key] = data[ref["key"]].decode(errors="replace")
                elif not optional:
                    raise PodStartError(
                        "CreateContainerConfigError",
                        f"{kind} {ref['name']} has no key {ref['key']}",
                    )
        return env

    def field_value(self, path: str, meta: Json, spec: Json, run: Run) -> str:
        simple: dict[str, str] = {
            "metadata.name": run.name,
            "metadata.namespace": run.namespace,
            "metadata.uid": run.uid,
            "spec.nodeName": self.node,
            "spec.serviceAccountName": str(spec.get("serviceAccountName", "default")),
            "status.podIP": run.ip,
            "status.podIPs": run.ip,
            "status.hostIP": "127.0.0.1",
        }
        if path in simple:
            return simple[path]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        raise PodStartError("CreateContainerConfigError", f"unsupported fieldRef {path}")

    def read_config(self, ns: str, kind: str, name: str, optional: bool) -> dict[str, bytes]:
        """The data of a ConfigMap or Secret as bytes per key ({} if optional and missing)."""
        try:
            if kind == "configmap":
                resp = self.api.read_namespaced_config_map(
                    name, ns, _preload_content=False, _request_timeout=10
                )
            else:
                resp = self.api.read_namespaced_secret(
                    name, ns, _preload_content=False, _request_timeout=10
                )
        except ApiException as e:
            if e.status == 404 and optional:
                return {}
            raise PodStartError(
                "CreateContainerConfigError", f"{kind} {ns}/{name}: {e.status} {e.reason}"
            ) from e
        obj = json.loads(resp.data)
        out: dict[str, bytes] = {}
        if kind == "configmap":
            for k, v in (obj.get("data") or {}).items():
                out[k] = str(v).encode()
            for k, v in (obj.get("binaryData") or {}).items():
                out[k] = base64.b64decode(v)
        else:
            for k, v in (obj.get("data") or {}).items():
                out[k] = base64.b64decode(v)
            for k, v in (obj.get("stringData") or {}).items():
                out[k] = str(v).encode()
        return out

    def prepare_volumes(self, pod: Json, run: Run) -> dict[str, Path]:
        vols: dict[str, Path] = {}
        vol_root = run.pod_dir / "volumes"
        for v in pod["spec"].get("volumes") or []:
            vname = v["name"]
            vdir = vol_root / vname
            if "emptyDir" in v:
                vdir.mkdir(parents=True, exist_ok=True)
                vols[vname] = vdir
            elif "configMap" in v or "secret" in v:
                kind = "configmap" if "configMap" in v else "secret"
                src = v.get("configMap") or v.get("secret") or {}
                ref_name = src.get("name") or src.get("secretName", "")
                data = self.read_config(run.namespace, kind, ref_name, bool(src.get("optional")))
                mode = int(src.get("defaultMode", 0o644))
                items = src.get("items")
                pairs = (
                    [(i["key"], i["path"], int(i.get("mode", mode))) for i in items]
                    if items
                    else [(k, k, mode) for k in data]
                )
                vdir.mkdir(parents=True, exist_ok=True)
                for key, rel, m in pairs:
                    if key not in data:
                        if src.get("optional"):
                            continue
                        raise PodStartError(
                            "CreateContainerConfigError", f"{kind} {ref_name} has no key {key}"
                        )
                    target = vdir / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data[key])
                    target.chmod(m)
                vols[vname] = vdir
            elif "hostPath" in v:
                hp = Path(v["hostPath"]["path"])
                if v["hostPath"].get("type") == "DirectoryOrCreate":
                    hp.mkdir(parents=True, exist_ok=True)
                vols[vname] = hp
            else:
                log.warning("%s: volume %s of an unsupported type is not mounted", run.key, vname)
        return vols

    def prepare(
        self, pod: Json, c: Json, run: Run
    ) -> tuple[list[str], dict[str, str], str, list[tuple[Path, str, bool]]]:
        if not c:
            raise PodStartError("CreateContainerConfigError", "the pod has no container")
        command = list(c.get("command") or [])
        args = list(c.get("args") or [])
        if not command:
            raise PodStartError(
                "CreateContainerConfigError",
                "the dev cluster ignores images: the container needs an explicit `command`",
            )
        run.pod_dir.mkdir(parents=True, exist_ok=True)
        env = self.resolve_env(pod, c, run)
        argv = [expand_vars(str(a), env) for a in command + args]
        exe = argv[0]
        if "/" not in exe:
            found = shutil.which(exe, path=env.get("PATH", DEFAULT_PATH))
            if found is None:
                raise PodStartError(
                    "StartError", f'executable "{exe}" not found in $PATH ({env.get("PATH")})'
                )
            argv[0] = found
        cwd = c.get("workingDir") or str(REPO)
        mounts: list[tuple[Path, str, bool]] = []
        run.term_path.touch()
        mounts.append(
            (run.term_path, c.get("terminationMessagePath") or "/dev/termination-log", False)
        )
        vols = self.prepare_volumes(pod, run)
        for vm in c.get("volumeMounts") or []:
            src = vols.get(vm["name"])
            if src is None:
                continue
            if vm.get("subPath"):
                src = src / vm["subPath"]
                if not src.exists():
                    src.mkdir(parents=True, exist_ok=True)
            mounts.append((src, vm["mountPath"], bool(vm.get("readOnly"))))
        return argv, env, cwd, mounts

    def ensure_mountpoint(self, src: Path, target: str) -> None:
        t = Path(target)
        if t.exists():
            return
        missing = [p for p in [t, *t.parents] if not p.exists()]
        if src.is_dir():
            t.mkdir(parents=True, exist_ok=True)
        else:
            t.parent.mkdir(parents=True, exist_ok=True)
            t.touch()
        for p in missing:
            self.remember_mountpoint(str(p))

    def launch(
        self,
        run: Run,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        mounts: list[tuple[Path, str, bool]],
    ) -> None:
        lines = ["set -e"]
        if self.can_unshare:
            for src, target, ro in mounts:
                try:
                    self.ensure_mountpoint(src, target)
                except OSError as e:
                    raise PodStartError(
                        "StartError", f"cannot create mount point {target}: {e}"
                    ) from e
                q = shlex.quote(target)
                # A container image carries its own program; here the program is the host's
                # checkout and interpreter. A volume mounted over one of their parents (the
                # scratch emptyDir at /tmp over a checkout in /tmp) would hide them: bind them
                # into the volume first, and mount it with its submounts.
                shadowed = [p for p in self.host_paths if Path(target) in p.parents]
                for p in shadowed:
                    inner = src / p.relative_to(target)
                    inner.mkdir(parents=True, exist_ok=True)
                    lines.append(
                        f"{self.mount} --bind {shlex.quote(str(p))} {shlex.quote(str(inner))}"
                    )
                bind = "--rbind" if shadowed else "--bind"
                lines.append(f"{self.mount} {bind} {shlex.quote(str(src))} {q}")
                if ro:
                    lines.append(f"{self.mount} -o remount,bind,ro {q}")
        lines.append(f"cd {shlex.quote(cwd)}")
        lines.append('exec "$@"')
        script = "\n".join(lines)
        cmd = ["/bin/sh", "-c", script, "pod", *argv]
        if self.can_unshare:
            cmd = [self.unshare, "--mount", "--propagation", "private", *cmd]
        run.started_at = now_rfc3339()
        with open(run.log_path, "wb") as logf:
            run.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(REPO),
                start_new_session=True,  # own session and process group
            )
        start = proc_start_time(run.proc.pid)
        (run.pod_dir / "pid").write_text(f"{run.proc.pid} {start}\n")
        self.write_sd()

    # ----------------------------------------------------------------- supervise
    def supervise(self, run: Run, pod: Json) -> None:
        proc = run.proc
        assert proc is not None
        cid = f"bertsweep://{proc.pid}"
        c = (pod["spec"].get("containers") or [{}])[0]
        self.patch_status(
            run.namespace,
            run.name,
            {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "podIP": run.ip,
                "podIPs": [{"ip": run.ip}],
                "startTime": run.started_at,
                "conditions": pod_conditions(True, run.started_at, None),
                "containerStatuses": [
                    {
                        "name": run.container,
                        "image": run.image,
                        "imageID": "",
                        "containerID": cid,
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": run.started_at}},
                    }
                ],
            },
        )
        # Wait without reaping, so that the process group id cannot be reused while we
        # kill what is left of the "container" (children of the main process).
        while True:
            try:
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue
        with run.lock:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
            run.reaped = True
        finished = now_rfc3339()
        code = rc if rc >= 0 else 128 - rc
        message = read_limited(run.term_path, MAX_TERMINATION_MESSAGE)
        if not message and code != 0 and run.fallback_to_logs:
            message = log_tail(run.log_path)
        reason = "Completed" if code == 0 else "Error"
        with self.lock:
            run.finished = True
        run.done.set()
        self.release_ip(run)
        self.write_sd()
        log.info("%s exited with code %d", run.key, code)
        if self.stop.is_set():
            return
        if not run.deleted:
            term: Json = {
                "exitCode": code,
                "reason": reason,
                "startedAt": run.started_at,
                "finishedAt": finished,
                "containerID": cid,
            }
            if message:
                term["message"] = message
            if rc < 0:
                term["signal"] = -rc
            self.patch_status(
                run.namespace,
                run.name,
                {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "conditions": pod_conditions(False, finished, "PodCompleted"),
                    "containerStatuses": [
                        {
                            "name": run.container,
                            "image": run.image or c.get("image", ""),
                            "imageID": "",
                            "containerID": cid,
                            "ready": False,
                            "started": False,
                            "restartCount": 0,
                            "state": {"terminated": term},
                        }
                    ],
                },
            )
        if run.terminating and not run.deleted:
            self.delete_once(run)
        if run.deleted:
            self.cleanup_run(run)

    def release_ip(self, run: Run) -> None:
        with self.lock:
            self.used_ips.discard(run.ip)

    def terminate(self, run: Run, grace_s: int) -> None:
        """SIGTERM the pod's process group, SIGKILL after ``grace_s`` (in a thread)."""
        with self.lock:
            if run.terminating:
                return
            run.terminating = True

        def kill() -> None:
            log.info("%s: terminating (grace %d s)", run.key, grace_s)
            self.signal_group(run, signal.SIGTERM)
            if not run.done.wait(max(grace_s, 0)):
                log.info("%s: grace period over; SIGKILL", run.key)
                self.signal_group(run, signal.SIGKILL)

        threading.Thread(target=kill, daemon=True, name=f"kill-{run.key}").start()

    def signal_group(self, run: Run, sig: int) -> None:
        with run.lock:
            if run.proc is None or run.reaped:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.proc.pid, sig)

    def on_deleted(self, uid: str, obj: Json | None) -> None:
        with self.lock:
            run = self.runs.pop(uid, None)
            if run is None:
                return
            run.deleted = True
        if run.finished:
            self.cleanup_run(run)
            return
        grace = run.grace_s
        if obj is not None:
            g = obj["metadata"].get("deletionGracePeriodSeconds")
            if g is not None:
                grace = int(g)
        if run.terminating:
            return  # a kill thread is already running; the supervisor cleans up
        self.terminate(run, grace)

    def cleanup_run(self, run: Run) -> None:
        shutil.rmtree(run.pod_dir, ignore_errors=True)

    # ----------------------------------------------------------------- API helpers
    def patch_status(self, ns: str, name: str, status: Json) -> None:
        try:
            self.api.patch_namespaced_pod_status(name, ns, {"status": status}, _request_timeout=15)
        except ApiException as e:
            if e.status in (404, 409):
                log.debug("status patch of %s/%s: %s", ns, name, e.status)
            else:
                log.warning("status patch of %s/%s failed: %s %s", ns, name, e.status, e.reason)
        except Exception as e:
            log.warning("status patch of %s/%s failed: %s", ns, name, e)

    def delete_once(self, run: Run) -> None:
        with self.lock:
            if run.delete_sent or run.deleted:
                return
            run.delete_sent = True
        self.force_delete(run.namespace, run.name, run.uid)

    def force_delete(self, ns: str, name: str, uid: str) -> None:
        body = kubernetes.client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=kubernetes.client.V1Preconditions(uid=uid)
        )
        try:
            self.api.delete_namespaced_pod(
                name, ns, grace_period_seconds=0, body=body, _request_timeout=15
            )
            log.info("%s/%s deleted", ns, name)
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("delete of %s/%s failed: %s %s", ns, name, e.status, e.reason)

    # ----------------------------------------------------------------- Prometheus targets
    def write_sd(self) -> None:
        with self.lock:
            groups = []
            for run in sorted(self.runs.values(), key=lambda r: r.key):
                if run.finished or run.metrics_port is None or run.proc is None:
                    continue
                labels = {prom_label_name(k): str(v) for k, v in run.labels.items()}
                labels = {k: v for k, v in labels.items() if not k.startswith("__")}
                labels["namespace"] = run.namespace
                labels["pod"] = run.name
                if run.metrics_path:
                    labels["__metrics_path__"] = run.metrics_path
                groups.append({"targets": [f"{run.ip}:{run.metrics_port}"], "labels": labels})
            text = json.dumps(groups, indent=1, sort_keys=True) + "\n"
            if text == self.sd_written:
                return
            self.sd_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.sd_file.with_name(self.sd_file.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.sd_file)
            self.sd_written = text

    # ----------------------------------------------------------------- main
    def serve(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.reap_leftovers()
        self.write_sd()
        self.register_node()
        threading.Thread(target=self.heartbeat_loop, daemon=True, name="heartbeat").start()
        threading.Thread(target=self.watch_loop, daemon=True, name="watch").start()
        log.info("pod runner for node %s up (private mounts: %s)", self.node, self.can_unshare)
        self.stop.wait()
        self.shutdown()

    def shutdown(self) -> None:
        log.info("stopping: killing the processes of %d pods", len(self.runs))
        resp = self.resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()
        with self.lock:
            runs = [r for r in self.runs.values() if not r.finished]
        for r in runs:
            self.signal_group(r, signal.SIGTERM)
        deadline = time.monotonic() + self.args.shutdown_grace
        for r in runs:
            r.done.wait(max(0.0, deadline - time.monotonic()))
        for r in runs:
            self.signal_group(r, signal.SIGKILL)
        for r in runs:
            r.done.wait(2.0)
        for r in list(self.runs.values()):
            self.cleanup_run(r)
        self.remove_mountpoints()
        with self.lock:
            self.runs.clear()
            self.sd_written = None
        self.write_sd()
        log.info("stopped")


# --------------------------------------------------------------------- pure helpers
def pod_key(pod: Json) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def summarize(argv: list[str], width: int = 120) -> str:
    text = re.sub(r"\s+", " ", shlex.join(argv))
    return text if len(text) <= width else text[: width - 3] + "..."


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


def metrics_endpoint(pod: Json) -> tuple[int | None, str | None]:
    ann = pod["metadata"].get("annotations") or {}
    if str(ann.get("prometheus.io/scrape", "")).lower() == "false":
        return None, None
    path = ann.get("prometheus.io/path")
    containers = pod["spec"].get("containers") or [{}]
    for p in containers[0].get("ports") or []:
        if p.get("name") == "metrics":
            return int(p["containerPort"]), path
    if ann.get("prometheus.io/port"):
        with contextlib.suppress(ValueError):
            return int(ann["prometheus.io/port"]), path
    return None, None


def resource_value(ref: Json, c: Json, args: argparse.Namespace) -> str:
    res = ref.get("resource", "")
    kind, _, rname = res.partition(".")
    value = ((c.get("resources") or {}).get(kind) or {}).get(rname)
    if value is None:  # as the kubelet: the node's allocatable when there is no limit
        value = {"cpu": str(args.cpu), "memory": args.memory}.get(rname, "0")
    qty: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
    divisor: Decimal = parse_quantity(ref.get("divisor", "1"))  # type: ignore[no-untyped-call]
    out = qty / divisor if divisor else Decimal(0)
    return str(math.ceil(out))


def read_limited(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace")
    except OSError:
        return ""


def log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - FALLBACK_LOG_BYTES))
            data = f.read()
    except OSError:
        return ""
    lines = data.decode(errors="replace").splitlines()[-FALLBACK_LOG_LINES:]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--node-name", default="bertsweep-dev")
    p.add_argument("--state-dir", default=str(REPO / ".devcluster"))
    p.add_argument(
        "--sd-file",
        default=None,
        help="Prometheus file_sd JSON (default STATE/prometheus/targets.json)",
    )
    p.add_argument("--cpu", type=int, default=16)
    p.add_argument("--memory", default="64Gi")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--gpus", type=int, default=4)
    p.add_argument("--heartbeat", type=float, default=10.0)
    p.add_argument(
        "--shutdown-grace",
        type=float,
        default=5.0,
        help="seconds the pods get between SIGTERM and SIGKILL when the runner stops",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.sd_file is None:
        args.sd_file = str(Path(args.state_dir) / "prometheus" / "targets.json")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname).1s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    runner = PodRunner(args)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d received", signum)
        runner.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
