"""What every part of the pod runner shares: its settings, the repository's paths, the kubelet's
limits it copies, the JSON type of API objects and the error a pod start fails with.

No I/O happens at import or in anything here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The node's address as the API server and the pods see it: everything stays on loopback.
HOST_IP = "127.0.0.1"
# Kubelet limits (pkg/kubelet/container): termination message file and log fallback.
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
DEFAULT_GRACE_S = 30
# Host environment variables a pod process inherits (a container gets its image's environment).
PASSTHROUGH_ENV = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")
# What every pod runs from: the checkout (with its .venv) and the interpreter behind it. A volume
# mounted over one of their parents must not hide them (see volumes.mount_script).
HOST_PATHS = tuple(sorted({REPO, Path(sys.base_prefix).resolve()}))

Json = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    """The runner's command line (see main.py), resolved."""

    kubeconfig: str
    node_name: str
    state_dir: Path
    sd_file: Path
    cpu: int
    memory: str
    max_pods: int
    gpus: int
    heartbeat_s: float
    shutdown_grace_s: float
    kubelet_port: int
    tls_cert: Path | None
    tls_key: Path | None
    client_ca: Path | None
    # Play simulated trainer pods in-process (inprocess.py) instead of as processes.
    simulate_in_process: bool = False

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"

    @property
    def run_dir(self) -> Path:
        return self.pods_dir / "run"

    @property
    def allocatable(self) -> dict[str, str]:
        """What a container without a limit sees as its limit (the kubelet's rule)."""
        return {"cpu": str(self.cpu), "memory": self.memory}


class PodStartError(Exception):
    """The pod cannot be started as specified; it is reported Failed with this message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_key(pod: Json) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def first_container(pod: Json) -> Json:
    """The container the dev cluster runs ({} when the spec has none)."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    c: Json = containers[0]
    return c
