"""The dev cluster itself (devcluster/): real control plane, the pod runner, Prometheus.

Assumes the cluster is up (``make devcluster`` or ``devcluster/up.sh``); ``make test-cluster``
starts it. Every test works in one fresh namespace that is deleted at the end.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import shlex
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kubernetes
import pytest
import urllib3
from cluster_helpers import read_cluster_env
from kubernetes.client.exceptions import ApiException

pytestmark = [
    pytest.mark.cluster,
    # The dev cluster's API server has a self-signed certificate (insecure-skip-tls-verify).
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / ".devcluster" / "env"
NODE = "bertsweep-dev"
T = TypeVar("T")


def wait_until(what: str, fn: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Polls ``fn`` until it returns something truthy; fails with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def read_env() -> dict[str, str]:
    if not ENV_FILE.is_file():
        pytest.fail(
            f"the dev cluster is not up ({ENV_FILE} missing): run `make devcluster` "
            "(devcluster/up.sh) first, or use `make test-cluster`",
            pytrace=False,
        )
    env: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        parts = shlex.split(line, comments=True)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, value = parts[1].split("=", 1)
            env[key] = value
    for key in ("KUBECONFIG", "PROMETHEUS_URL"):
        if key not in env:
            pytest.fail(f"{ENV_FILE} has no {key}: re-run devcluster/up.sh", pytrace=False)
    return env


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    return read_env()


@pytest.fixture(scope="module")
def v1(cluster_env: dict[str, str]) -> Any:
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=cluster_env["KUBECONFIG"]
    )
    api = kubernetes.client.CoreV1Api(client)
    try:
        api.read_node(NODE, _request_timeout=10)
    except Exception as e:
        pytest.fail(f"the dev cluster does not answer ({e}): run devcluster/up.sh", pytrace=False)
    return api


@pytest.fixture(scope="module")
def ns(v1: Any) -> Iterator[str]:
    name = f"devcluster-test-{uuid.uuid4().hex[:8]}"
    v1.create_namespace({"metadata": {"name": name}})
    yield name
    v1.delete_namespace(name)


def pod_manifest(
    name: str,
    code: str,
    *,
    labels: dict[str, str] | None = None,
    env: list[dict[str, Any]] | None = None,
    **container: Any,
) -> dict[str, Any]:
    """A pod running ``python -c CODE`` (the image is ignored by the dev cluster)."""
    c: dict[str, Any] = {
        "name": "main",
        "image": "bertsweep/devcluster-test:unused",
        "command": ["python", "-c", code],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
        + (env or []),
    }
    c.update(container)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"restartPolicy": "Never", "containers": [c]},
    }


def read_pod(v1: Any, ns: str, name: str) -> Any | None:
    try:
        return v1.read_namespaced_pod(name, ns)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def wait_phase(v1: Any, ns: str, name: str, phases: set[str], timeout: float = 60.0) -> Any:
    def check() -> Any | None:
        pod = read_pod(v1, ns, name)
        return pod if pod is not None and pod.status.phase in phases else None

    return wait_until(f"pod {ns}/{name} in {sorted(phases)}", check, timeout)


def pid_of(pod: Any) -> int:
    cid = pod.status.container_statuses[0].container_id
    assert cid.startswith("bertsweep://"), cid
    return int(cid.removeprefix("bertsweep://"))


def pod_gone(v1: Any, ns: str, name: str) -> bool:
    return read_pod(v1, ns, name) is None


def process_gone(pid: int) -> bool:
    return not process_alive(pid)


def process_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_exit_codes_and_termination_messages(v1: Any, ns: str) -> None:
    v1.create_namespaced_pod(
        ns,
        pod_manifest(
            "fails",
            "import sys; open('/dev/termination-log', 'w').write('trial diverged: loss=nan');"
            " sys.exit(3)",
        ),
    )
    v1.create_namespaced_pod(ns, pod_manifest("succeeds", "print('ok')"))
    v1.create_namespaced_pod(
        ns,
        pod_manifest(
            "logs-fallback",
            "import sys; print('CUDA out of memory', file=sys.stderr); sys.exit(2)",
            terminationMessagePolicy="FallbackToLogsOnError",
        ),
    )

    failed = wait_phase(v1, ns, "fails", {"Succeeded", "Failed"})
    assert failed.status.phase == "Failed"
    assert failed.spec.node_name == NODE
    term = failed.status.container_statuses[0].state.terminated
    assert term.exit_code == 3
    assert term.reason == "Error"
    assert term.message == "trial diverged: loss=nan"

    ok = wait_phase(v1, ns, "succeeds", {"Succeeded", "Failed"})
    assert ok.status.phase == "Succeeded"
    term = ok.status.container_statuses[0].state.terminated
    assert term.exit_code == 0
    assert term.reason == "Completed"
    assert (REPO / ".devcluster" / "pods" / f"{ns}_succeeds.log").read_text() == "ok\n"

    fallback = wait_phase(v1, ns, "logs-fallback", {"Succeeded", "Failed"})
    term = fallback.status.container_statuses[0].state.terminated
    assert term.exit_code == 2
    assert "CUDA out of memory" in term.message


def test_a_volume_over_the_checkouts_parent_hides_neither_it_nor_its_venv(v1: Any, ns: str) -> None:
    """Trial pods mount a scratch emptyDir at /tmp; a checkout under /tmp (CI's clones) must stay
    visible to them, as a container image's files would. Mounting over the checkout's parent
    is the same situation wherever the checkout lies."""
    code = (
        "import pathlib, sys; "
        f"assert pathlib.Path({str(REPO / 'pyproject.toml')!r}).is_file(); "
        f"pathlib.Path({str(REPO.parent / 'scratch-ok')!r}).write_text(sys.prefix)"
    )
    pod = pod_manifest(
        "shadowed",
        code,
        volumeMounts=[{"name": "scratch", "mountPath": str(REPO.parent)}],
    )
    pod["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    v1.create_namespaced_pod(ns, pod)
    done = wait_phase(v1, ns, "shadowed", {"Succeeded", "Failed"})
    term = done.status.container_statuses[0].state.terminated
    assert done.status.phase == "Succeeded", (term.exit_code, term.message)
    # The write went to the volume, not to the host's directory.
    assert not (REPO.parent / "scratch-ok").exists()


def test_gpu_requests_are_scheduled_against_node_capacity(v1: Any, ns: str) -> None:
    def gpu_pod(name: str, gpus: int) -> dict[str, Any]:
        pod = pod_manifest(
            name, "import os; assert os.environ['CUDA_VISIBLE_DEVICES'] == ''; print('gpu ok')"
        )
        pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
        return pod

    v1.create_namespaced_pod(ns, gpu_pod("one-gpu", 1))
    v1.create_namespaced_pod(ns, gpu_pod("many-gpus", 99))

    one = wait_phase(v1, ns, "one-gpu", {"Succeeded", "Failed"})
    assert one.spec.node_name == NODE
    assert one.status.phase == "Succeeded", one.status.container_statuses

    def unschedulable() -> Any | None:
        pod = read_pod(v1, ns, "many-gpus")
        for cond in (pod.status.conditions or []) if pod else []:
            if cond.type == "PodScheduled" and cond.reason == "Unschedulable":
                return pod
        return None

    pending = wait_until("the 99-GPU pod to be reported Unschedulable", unschedulable, 60)
    assert pending.status.phase == "Pending"
    assert not pending.spec.node_name
    v1.delete_namespaced_pod("many-gpus", ns)


METRICS_SERVER = """
import os, time
from prometheus_client import Gauge, start_http_server
Gauge('bertsweep_devcluster_probe', 'dev cluster scrape probe').set(float(os.environ['VALUE']))
start_http_server(8000, addr=os.environ['POD_IP'])
time.sleep(600)
"""


def test_prometheus_scrapes_pod_metrics(v1: Any, ns: str, cluster_env: dict[str, str]) -> None:
    # Two pods on the same container port: each pod has its own loopback address.
    for name, value in (("metrics-a", "1"), ("metrics-b", "2")):
        pod = pod_manifest(
            name,
            METRICS_SERVER,
            labels={"bertsweep": f"probe-{name}", "app.kubernetes.io/name": "devcluster-probe"},
            env=[{"name": "VALUE", "value": value}],
            ports=[{"name": "metrics", "containerPort": 8000}],
        )
        v1.create_namespaced_pod(ns, pod)
    a = wait_phase(v1, ns, "metrics-a", {"Running"})
    b = wait_phase(v1, ns, "metrics-b", {"Running"})
    assert a.status.pod_ip != b.status.pod_ip
    assert a.status.pod_ip.startswith("127.1.")

    url = cluster_env["PROMETHEUS_URL"] + "/api/v1/query"
    query = f'bertsweep_devcluster_probe{{namespace="{ns}"}}'

    def scraped() -> list[dict[str, Any]] | None:
        try:
            r = httpx.get(url, params={"query": query}, timeout=5)
            r.raise_for_status()
        except httpx.HTTPError:
            return None
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result if len(result) == 2 else None

    result = wait_until("both probe pods' metric in Prometheus", scraped, 60)
    by_pod = {s["metric"]["pod"]: s for s in result}
    assert set(by_pod) == {"metrics-a", "metrics-b"}
    for name, value, pod in (("metrics-a", "1", a), ("metrics-b", "2", b)):
        labels = by_pod[name]["metric"]
        assert labels["namespace"] == ns
        assert labels["bertsweep"] == f"probe-{name}"
        assert labels["app_kubernetes_io_name"] == "devcluster-probe"
        assert labels["instance"] == f"{pod.status.pod_ip}:8000"
        assert by_pod[name]["value"][1] == value
    for name in ("metrics-a", "metrics-b"):
        v1.delete_namespaced_pod(name, ns, grace_period_seconds=1)


def test_deleting_a_pod_kills_its_process(v1: Any, ns: str) -> None:
    v1.create_namespaced_pod(ns, pod_manifest("sleeper", "import time; time.sleep(600)"))
    stubborn = pod_manifest(
        "stubborn",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('ignoring SIGTERM', flush=True); time.sleep(600)",
    )
    stubborn["spec"]["terminationGracePeriodSeconds"] = 2
    v1.create_namespaced_pod(ns, stubborn)

    pids = {}
    for name in ("sleeper", "stubborn"):
        pod = wait_phase(v1, ns, name, {"Running"})
        pids[name] = pid_of(pod)
        assert process_alive(pids[name])
    stubborn_log = REPO / ".devcluster" / "pods" / f"{ns}_stubborn.log"
    wait_until(
        "the stubborn pod to ignore SIGTERM",
        lambda: stubborn_log.is_file() and "ignoring" in stubborn_log.read_text(),
    )
    for name in pids:
        v1.delete_namespaced_pod(name, ns)
    for name, pid in pids.items():
        wait_until(f"pod {name} to disappear", functools.partial(pod_gone, v1, ns, name), 60)
        wait_until(f"process {pid} of pod {name} to end", functools.partial(process_gone, pid), 10)


def test_garbage_collection_of_owned_pods(v1: Any, ns: str) -> None:
    owner = v1.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}, "data": {}})
    pod = pod_manifest("owned", "import time; time.sleep(600)")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    ]
    v1.create_namespaced_pod(ns, pod)
    running = wait_phase(v1, ns, "owned", {"Running"})
    pid = pid_of(running)

    v1.delete_namespaced_config_map("owner", ns)
    wait_until(
        "the garbage collector to delete the owned pod",
        functools.partial(pod_gone, v1, ns, "owned"),
        90,
    )
    wait_until(f"process {pid} to end", functools.partial(process_gone, pid), 10)


def test_env_file_contract(cluster_env: dict[str, str]) -> None:
    assert Path(cluster_env["KUBECONFIG"]).is_file()
    assert cluster_env["PROMETHEUS_URL"].startswith("http://127.0.0.1:")
    r = httpx.get(cluster_env["PROMETHEUS_URL"] + "/-/ready", timeout=5)
    assert r.status_code == 200
    assert os.access(REPO / "devcluster" / "up.sh", os.X_OK)


def kubectl(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "-n", ns, *args],
        env=read_cluster_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


CHATTY = """
import sys
for i in range(40):
    print(f"line {i:02d} of the chatty pod", flush=True)
print("a word on stderr", file=sys.stderr, flush=True)
sys.stdout.write("no newline at the end")
"""


def test_kubectl_logs_reads_the_pods_output(v1: Any, ns: str) -> None:
    v1.create_namespaced_pod(ns, pod_manifest("chatty", CHATTY))
    done = wait_phase(v1, ns, "chatty", {"Succeeded", "Failed"})
    assert done.status.phase == "Succeeded"
    expected = (
        "".join(f"line {i:02d} of the chatty pod\n" for i in range(40))
        + "a word on stderr\nno newline at the end"
    )
    assert (REPO / ".devcluster" / "pods" / f"{ns}_chatty.log").read_text() == expected

    logs = kubectl(ns, "logs", "chatty")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == expected

    tail = kubectl(ns, "logs", "chatty", "--tail=3")
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout == "line 39 of the chatty pod\na word on stderr\nno newline at the end"

    head = kubectl(ns, "logs", "chatty", "--limit-bytes=12")
    assert head.returncode == 0, head.stderr
    assert head.stdout == "line 00 of t"

    # No container is ever restarted, so there is no previous one: an error that says so.
    previous = kubectl(ns, "logs", "chatty", "--previous")
    assert previous.returncode != 0
    assert 'previous terminated container "main" in pod "chatty" not found' in previous.stderr


def test_kubectl_logs_follow_streams_until_the_process_exits(
    v1: Any, ns: str, tmp_path: Path
) -> None:
    # The pod writes its second part only once the test has seen the first, so the first can
    # only have come while the process ran.
    go = tmp_path / "go"
    code = (
        "import os, time\n"
        "print('first part', flush=True)\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.1)\n"
        "for i in range(3):\n"
        "    print(f'second part {i}', flush=True)\n"
    )
    v1.create_namespaced_pod(ns, pod_manifest("follower", code))
    wait_phase(v1, ns, "follower", {"Running"})
    follow = subprocess.Popen(
        ["kubectl", "-n", ns, "logs", "-f", "follower"],
        env=read_cluster_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read_lines() -> None:
        assert follow.stdout is not None
        for line in follow.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_lines, daemon=True).start()
    try:
        assert lines.get(timeout=60) == "first part\n"
        assert read_pod(v1, ns, "follower").status.phase == "Running"
        go.touch()
        rest = []
        while (line := lines.get(timeout=60)) is not None:
            rest.append(line)
        # The stream ended by itself, because the process did.
        assert follow.wait(timeout=60) == 0, follow.stderr.read() if follow.stderr else ""
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert rest == [f"second part {i}\n" for i in range(3)]
    done = wait_phase(v1, ns, "follower", {"Succeeded", "Failed"})
    assert done.status.phase == "Succeeded"


def test_the_node_is_reached_on_loopback_by_the_api_server_only(v1: Any) -> None:
    node = v1.read_node(NODE)
    assert ("InternalIP", "127.0.0.1") in [(a.type, a.address) for a in node.status.addresses]
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    pki = REPO / ".devcluster" / "pki"
    url = f"https://127.0.0.1:{port}/healthz"
    as_api_server = ssl.create_default_context()
    as_api_server.check_hostname = False
    as_api_server.verify_mode = ssl.CERT_NONE  # as the API server: the certificate is self-signed
    as_api_server.load_cert_chain(pki / "kubelet-client.crt", pki / "kubelet-client.key")
    r = httpx.get(url, verify=as_api_server, timeout=10)
    assert (r.status_code, r.text) == (200, "ok\n")
    # Without the API server's client certificate the kubelet API serves nothing.
    with pytest.raises(httpx.TransportError):
        httpx.get(url, verify=False, timeout=10)
    # It listens on 127.0.0.1 alone.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.2:{port}/healthz", verify=as_api_server, timeout=10)


# ------------------------------------------------------------ simulated trainers in-process
IN_PROCESS_ANNOTATION = "bertsweep.io/simulate-in-process"
FINAL = "bertsweep_trial_final"
EVAL = "bertsweep_trial_eval"


def trainer_pod(name: str, command: list[str], seconds: str, scrape_wait: str) -> dict[str, Any]:
    """A pod of the simulated trainer, with the environment the operator gives a trial."""
    env = {
        "BERTSWEEP_SWEEP": "simcheck",
        "BERTSWEEP_TRIAL": name,
        "BERTSWEEP_DATASET": '{"train": "not-read.csv"}',
        "BERTSWEEP_PARAMETERS": '{"learning_rate": 0.001, "num_train_epochs": 3}',
        "BERTSWEEP_METRICS_PORT": "8000",
        "BERTSWEEP_RESULT_FILE": "/dev/termination-log",
        "BERTSWEEP_SCRAPE_WAIT_SECONDS": scrape_wait,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bertsweep": "simcheck", "trial": name}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "trainer",
                    "image": "bertsweep-trainer:unused",
                    "command": command,
                    "args": ["--simulate", seconds],
                    "env": [{"name": k, "value": v} for k, v in env.items()]
                    + [
                        {
                            "name": "BERTSWEEP_METRICS_ADDR",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        }
                    ],
                    "ports": [{"name": "metrics", "containerPort": 8000}],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        },
    }


def in_process_switch(v1: Any) -> bool:
    annotations = v1.read_node(NODE).metadata.annotations or {}
    assert IN_PROCESS_ANNOTATION in annotations, "the pod runner predates --simulate-in-process"
    return bool(annotations[IN_PROCESS_ANNOTATION] == "true")


def test_a_simulated_trainer_runs_in_process_exactly_as_its_process_would(
    v1: Any, ns: str, cluster_env: dict[str, str]
) -> None:
    """`bertsweep-trainer --simulate` is played by the pod runner itself when its switch is on
    (up.sh's default); `python -m bertsweep_trainer.main --simulate` always runs as a process.
    Same status, same termination message, same series in Prometheus."""
    in_process = in_process_switch(v1)
    played = trainer_pod("sim-played", ["bertsweep-trainer"], "1.5", "10")
    spawned = trainer_pod("sim-spawned", ["python", "-m", "bertsweep_trainer.main"], "1.5", "10")
    v1.create_namespaced_pod(ns, played)
    v1.create_namespaced_pod(ns, spawned)
    done = {
        name: wait_phase(v1, ns, name, {"Succeeded", "Failed"}, timeout=90)
        for name in ("sim-played", "sim-spawned")
    }
    ids = {name: pod.status.container_statuses[0].container_id for name, pod in done.items()}
    assert ids["sim-spawned"].startswith("bertsweep://")
    scheme = "bertsweep-inprocess://" if in_process else "bertsweep://"
    assert ids["sim-played"].startswith(scheme), ids

    messages = {}
    for name, pod in done.items():
        assert pod.status.phase == "Succeeded", pod.status.container_statuses
        assert pod.status.pod_ip.startswith("127.1.")
        term = pod.status.container_statuses[0].state.terminated
        assert (term.exit_code, term.reason) == (0, "Completed")
        messages[name] = term.message
    # (The runner plays the trainer it imported at its start: a trainer changed since then
    # differs from the process's until the pod runner is restarted.)
    assert messages["sim-played"] == messages["sim-spawned"]
    result = json.loads(messages["sim-played"])
    assert (result["status"], result["step"], result["epoch"]) == ("completed", 30, 3.0)
    assert set(result["metrics"]) >= {"eval_accuracy", "eval_loss", "train_loss"}

    # What Prometheus scraped from each: every evaluation and the final values, the same numbers.
    url = cluster_env["PROMETHEUS_URL"] + "/api/v1/query"

    def series(metric: str) -> dict[str, dict[tuple[str, ...], str]] | None:
        # The pods have ended, so their series are stale: the last value of each, not the
        # current one (which an instant query would give only while the target is up).
        query = f'last_over_time({metric}{{namespace="{ns}"}}[10m])'
        r = httpx.get(url, params={"query": query}, timeout=5)
        r.raise_for_status()
        found: dict[str, dict[tuple[str, ...], str]] = {}
        for s in r.json()["data"]["result"]:
            labels = s["metric"]
            key = tuple(labels.get(k, "") for k in ("metric", "step", "epoch"))
            found.setdefault(labels["pod"], {})[key] = s["value"][1]
            assert labels["trial"] == labels["pod"]
            assert labels["instance"] == f"{done[labels['pod']].status.pod_ip}:8000"
        return found if len(found) == 2 else None

    finals = wait_until("both pods' final metrics in Prometheus", lambda: series(FINAL), 30)
    assert finals["sim-played"] == finals["sim-spawned"]
    assert {k[0]: float(v) for k, v in finals["sim-played"].items()} == result["metrics"]
    evals = wait_until("both pods' evaluations in Prometheus", lambda: series(EVAL), 30)
    assert evals["sim-played"] == evals["sim-spawned"]
    assert len(evals["sim-played"]) == 3 * len(result["metrics"])  # three epochs

    logs = kubectl(ns, "logs", "sim-played")
    assert logs.returncode == 0, logs.stderr
    assert "trial sim-played completed at step 30" in logs.stdout


def test_deleting_an_in_process_trial_stops_it_with_its_last_values(v1: Any, ns: str) -> None:
    """Deletion is a stop request (SIGTERM), then the stopped result, then the object goes."""
    in_process = in_process_switch(v1)
    v1.create_namespaced_pod(ns, trainer_pod("sim-stopped", ["bertsweep-trainer"], "60", "0"))
    running = wait_phase(v1, ns, "sim-stopped", {"Running"})
    cid = running.status.container_statuses[0].container_id
    assert cid.startswith("bertsweep-inprocess://" if in_process else "bertsweep://"), cid
    # Once the trainer serves /metrics its SIGTERM handler is in place (as a process, a signal
    # before that finds an interpreter still importing, which it kills). Its first evaluation
    # would come after 20 s (60 s, three epochs): the stop comes first.
    log = REPO / ".devcluster" / "pods" / f"{ns}_sim-stopped.log"
    wait_until(
        "the trainer to serve /metrics",
        lambda: log.is_file() and "/metrics on port" in log.read_text(),
        30,
    )
    v1.delete_namespaced_pod("sim-stopped", ns, grace_period_seconds=10)
    # Every change since it was seen Running, however soon the pod is gone.
    watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
    stream = watch.stream(
        v1.list_namespaced_pod,
        ns,
        field_selector="metadata.name=sim-stopped",
        resource_version=running.metadata.resource_version,
        timeout_seconds=60,
    )
    terminated = None
    for event in stream:
        statuses = event["object"].status.container_statuses or []
        if statuses and statuses[0].state.terminated is not None:
            terminated = statuses[0].state.terminated
            watch.stop()
    assert terminated is not None, "no final status before the pod went"
    assert terminated.exit_code == 0
    result = json.loads(terminated.message)
    assert (result["status"], result["reason"]) == ("stopped", "Signal")
    assert result["message"] == "stopped by a signal at step 0"
    wait_until("the stopped pod to go", functools.partial(pod_gone, v1, ns, "sim-stopped"), 30)
