"""Helpers and fixtures for tests against the dev cluster (`make devcluster`): a fresh
namespace per test, the operator as a subprocess (`.venv/bin/bertsweep operator`), kubectl,
and a switch for the dev cluster's Prometheus.

Nothing is skipped: without a running dev cluster these tests fail and say how to start one.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".devcluster"
BIN = Path(sys.executable).parent
T = TypeVar("T")


def read_cluster_env() -> dict[str, str]:
    """The environment `.devcluster/env` exports (KUBECONFIG, PROMETHEUS_URL, PATH)."""
    env_file = STATE / "env"
    if not env_file.exists():
        pytest.fail("the dev cluster is not up: run `make devcluster` (devcluster/up.sh) first")
    script = f"set -a; source {shlex.quote(str(env_file))}; env -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.fixture(scope="session")
def env() -> dict[str, str]:
    return read_cluster_env()


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 180.0,
    interval: float = 1.0,
    explain: Callable[[], str] = lambda: "",
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{explain()}")
        time.sleep(interval)


@dataclass
class Kubectl:
    env: dict[str, str]
    namespace: str

    def run(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", "-n", self.namespace, *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def apply(
        self, document: dict[str, Any], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", input=yaml.safe_dump(document), check=check)

    def get(self, kind: str, name: str | None = None, *selector: str) -> Any:
        args = [kind, *([name] if name else []), *selector, "-o", "json"]
        done = self.run("get", *args, check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr:
                return None
            raise AssertionError(f"kubectl get {' '.join(args)} failed:\n{done.stderr}")
        return json.loads(done.stdout)

    def sweep(self, name: str) -> Any:
        return self.get("bertsweep", name)

    def trials(self, sweep: str) -> list[Any]:
        found = self.get("berttrials", None, "-l", f"bertsweep={sweep}")
        return sorted(found["items"], key=lambda t: t["spec"]["index"])

    def pods(self, sweep: str) -> list[Any]:
        return list(self.get("pods", None, "-l", f"bertsweep={sweep}")["items"])

    def events(self) -> list[Any]:
        return list(self.get("events")["items"])


@pytest.fixture
def namespace(env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, deleted at the end (with every sweep, trial and pod in it)."""
    short = request.node.name.removeprefix("test_").replace("_", "-")[:30].strip("-")
    name = f"bs-{short}-{uuid.uuid4().hex[:5]}"
    subprocess.run(
        ["kubectl", "create", "namespace", name], env=env, check=True, capture_output=True
    )
    wait_for(
        f"the default service account in {name}",
        lambda: (
            subprocess.run(
                ["kubectl", "-n", name, "get", "serviceaccount", "default"],
                env=env,
                capture_output=True,
            ).returncode
            == 0
        ),
        timeout=30,
        interval=0.5,
    )
    yield name
    subprocess.run(
        ["kubectl", "delete", "namespace", name, "--wait=false"],
        env=env,
        capture_output=True,
    )


@pytest.fixture
def kubectl(env: dict[str, str], namespace: str) -> Kubectl:
    return Kubectl(env, namespace)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class OperatorProcess:
    """`bertsweep operator` as a subprocess, watching one namespace."""

    env: dict[str, str]
    namespace: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n==== operator start #{self.starts} ====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [str(BIN / "bertsweep"), "operator", "--namespace", self.namespace],
            env={
                **self.env,
                "BERTSWEEP_OPERATOR_METRICS_PORT": str(self.metrics_port),
                "BERTSWEEP_OPERATOR_METRICS_ADDR": "127.0.0.1",
                **self.extra_env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, as if the node died."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def passes(self) -> int:
        """Reconcile passes so far, from the operator's own /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith("bertsweep_operator_reconcile_seconds_count"):
                return int(float(line.split()[-1]))
        return 0

    def tail(self, lines: int = 60) -> str:
        return "operator log (tail):\n" + "\n".join(self.log().splitlines()[-lines:])


@pytest.fixture
def operator(
    env: dict[str, str], namespace: str, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start the operator (call it; keyword arguments become extra environment)."""
    started: list[OperatorProcess] = []

    def start(**extra_env: str) -> OperatorProcess:
        op = OperatorProcess(env, namespace, tmp_path / "operator.log", dict(extra_env))
        op.start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
        print(op.tail(200))  # shown by pytest when the test failed


def termination_message(pod: Any) -> Any:
    """The trainer's result as the pod's status carries it."""
    for status in pod["status"].get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return json.loads(terminated.get("message") or "null")
    return None


@dataclass
class Prometheus:
    """The dev cluster's Prometheus (devcluster/up.sh starts it; its pid file says where)."""

    pid_file: Path = STATE / "pids" / "prometheus.pid"
    log_file: Path = STATE / "logs" / "prometheus.log"
    command: list[str] = field(default_factory=list)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if any(b"prometheus" in part for part in cmdline[:1]) else None

    def stop(self) -> None:
        pid = self.pid()
        assert pid is not None, "the dev cluster's Prometheus is not running"
        self.command = [
            part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part
        ]
        os.kill(pid, signal.SIGTERM)
        wait_for("Prometheus to exit", lambda: not Path(f"/proc/{pid}").exists(), timeout=30)

    def start(self) -> None:
        """Start it again exactly as up.sh did (same flags, same data), detached like up.sh."""
        if self.pid() is not None or not self.command:
            return
        with self.log_file.open("ab") as log:
            subprocess.Popen(
                [
                    "setsid",
                    "bash",
                    "-c",
                    'echo $$ >"$0"; exec "$@"',
                    str(self.pid_file),
                    *self.command,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for("Prometheus to start again", self.pid, timeout=30, interval=0.2)


@pytest.fixture
def prometheus(env: dict[str, str]) -> Iterator[Prometheus]:
    """Stop and start the dev cluster's Prometheus; it is always running again afterwards."""
    control = Prometheus()
    yield control
    control.start()
    url = env["PROMETHEUS_URL"]
    wait_for(
        "Prometheus to be ready",
        lambda: (
            subprocess.run(
                ["curl", "-sf", "-m", "2", f"{url}/-/ready"], capture_output=True
            ).returncode
            == 0
        ),
        timeout=30,
    )
