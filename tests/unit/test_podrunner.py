"""The dev cluster's pod runner (devcluster/podrunner), its pure parts with plain data: container
environments, Prometheus targets, the per-pod state machine, log and termination-message
reading, status patches, the Node's status, mount scripts, and which pods a runner with
``--simulate-in-process`` plays itself (and what such a pod does with signals and a refused
configuration)."""

from __future__ import annotations

import base64
import io
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from bertsweep.contract import TrialResult
from podrunner import discovery, env, inprocess, logs, node, state, status, volumes
from podrunner.common import VENV_BIN, PodStartError, Settings
from podrunner.runner import pod_ip, summarize
from podrunner.state import PodEvent, PodState

pytestmark = pytest.mark.unit

PLACE = env.PodPlace(
    ip="127.1.0.7", node="bertsweep-dev", allocatable={"cpu": "16", "memory": "64Gi"}
)


def pod(**container: Any) -> dict[str, Any]:
    c = {"name": "main", "image": "img:1", "command": ["python"], **container}
    return {
        "metadata": {
            "name": "trial-0003",
            "namespace": "sweeps",
            "uid": "uid-3",
            "labels": {"bertsweep": "rt", "app.kubernetes.io/name": "trainer"},
            "annotations": {"note": "hello"},
        },
        "spec": {"serviceAccountName": "runner", "containers": [c]},
    }


class FakeConfig:
    """A ConfigLookup over plain data, recording what was asked."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, bytes]]) -> None:
        self.objects = objects
        self.asked: list[tuple[str, str, str, bool]] = []

    def __call__(self, ns: str, kind: str, name: str, optional: bool) -> dict[str, bytes]:
        self.asked.append((ns, kind, name, optional))
        if (kind, name) in self.objects:
            return self.objects[(kind, name)]
        if optional:
            return {}
        raise PodStartError("CreateContainerConfigError", f"{kind} {ns}/{name}: 404")


# ------------------------------------------------------------------------------------ env
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-$(B)", "a-b"),
        ("$(MISSING) stays", "$(MISSING) stays"),
        ("$$(A) escapes", "$(A) escapes"),
        ("cost: $$5", "cost: $5"),
        ("$A is not a reference", "$A is not a reference"),
        ("$(A.B-c_d)", "dotted"),
    ],
)
def test_expand_vars(text: str, expected: str) -> None:
    assert env.expand_vars(text, {"A": "a", "B": "b", "A.B-c_d": "dotted"}) == expected


def test_base_env_puts_the_checkouts_venv_first_and_hides_gpus() -> None:
    e = env.base_env({"PATH": "/usr/bin", "HOME": "/root", "SECRET": "x"}, "trial-0003")
    assert e["PATH"] == f"{VENV_BIN}:/usr/bin"
    assert e["HOME"] == "/root"
    assert "SECRET" not in e
    assert e["HOSTNAME"] == "trial-0003"
    assert e["CUDA_VISIBLE_DEVICES"] == ""
    assert env.base_env({}, "p")["PATH"].endswith(
        ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "trial-0003"),
        ("metadata.namespace", "sweeps"),
        ("metadata.uid", "uid-3"),
        ("spec.nodeName", "bertsweep-dev"),
        ("spec.serviceAccountName", "runner"),
        ("status.podIP", "127.1.0.7"),
        ("status.podIPs", "127.1.0.7"),
        ("status.hostIP", "127.0.0.1"),
        ("metadata.labels['app.kubernetes.io/name']", "trainer"),
        ("metadata.annotations['note']", "hello"),
        ("metadata.labels['absent']", ""),
    ],
)
def test_field_value(path: str, expected: str) -> None:
    assert env.field_value(path, pod(), PLACE) == expected


def test_an_unsupported_field_ref_fails_the_start() -> None:
    with pytest.raises(PodStartError) as e:
        env.field_value("spec.hostname", pod(), PLACE)
    assert e.value.reason == "CreateContainerConfigError"


@pytest.mark.parametrize(
    ("ref", "resources", "expected"),
    [
        ({"resource": "limits.cpu"}, {"limits": {"cpu": "2"}}, "2"),
        ({"resource": "limits.cpu", "divisor": "1m"}, {"limits": {"cpu": "500m"}}, "500"),
        ({"resource": "limits.cpu"}, {"limits": {"cpu": "500m"}}, "1"),  # rounded up
        (
            {"resource": "requests.memory", "divisor": "1Mi"},
            {"requests": {"memory": "1Gi"}},
            "1024",
        ),
        ({"resource": "limits.cpu"}, {}, "16"),  # no limit: the node's allocatable
        ({"resource": "limits.memory", "divisor": "1Gi"}, {}, "64"),
        ({"resource": "limits.nvidia.com/gpu"}, {}, "0"),
    ],
)
def test_resource_value(ref: dict[str, str], resources: dict[str, Any], expected: str) -> None:
    assert env.resource_value(ref, {"resources": resources}, PLACE.allocatable) == expected


def test_container_env_in_kubernetes_order() -> None:
    config = FakeConfig(
        {
            ("configmap", "settings"): {"MODE": b"fast", "SEED": b"7"},
            ("secret", "creds"): {"TOKEN": b"s3cret"},
        }
    )
    p = pod(
        envFrom=[
            {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
            {"secretRef": {"name": "absent", "optional": True}},
        ],
        env=[
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "OUT", "value": "/out/$(POD)/$(CFG_MODE)"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "TOKEN"}}},
            {
                "name": "NOPE",
                "valueFrom": {
                    "configMapKeyRef": {"name": "settings", "key": "absent", "optional": True}
                },
            },
            {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CUDA_VISIBLE_DEVICES", "value": "0"},
        ],
    )
    e = env.container_env(p, p["spec"]["containers"][0], PLACE, {"PATH": "/bin"}, config)
    assert e["CFG_MODE"] == "fast"
    assert e["CFG_SEED"] == "7"
    assert e["POD"] == "trial-0003"
    assert e["OUT"] == "/out/trial-0003/fast"
    assert e["TOKEN"] == "s3cret"
    assert "NOPE" not in e
    assert e["CPUS"] == "16"
    assert e["CUDA_VISIBLE_DEVICES"] == "0"  # the spec's env comes last
    assert ("sweeps", "secret", "absent", True) in config.asked


def test_a_missing_key_fails_the_start_unless_optional() -> None:
    config = FakeConfig({("configmap", "settings"): {"MODE": b"fast"}})
    ref = {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "absent"}}}
    p = pod(env=[ref])
    with pytest.raises(PodStartError, match="configmap settings has no key absent"):
        env.container_env(p, p["spec"]["containers"][0], PLACE, {}, config)
    p = pod(envFrom=[{"configMapRef": {"name": "absent"}}])
    with pytest.raises(PodStartError):
        env.container_env(p, p["spec"]["containers"][0], PLACE, {}, config)


def test_config_data_decodes_secrets_and_binary_data() -> None:
    b64 = base64.b64encode
    cm = {"data": {"a": "text", "n": 3}, "binaryData": {"b": b64(b"\x00\x01").decode()}}
    assert env.config_data("configmap", cm) == {"a": b"text", "n": b"3", "b": b"\x00\x01"}
    secret = {"data": {"token": b64(b"s3cret").decode()}}
    assert env.config_data("secret", secret) == {"token": b"s3cret"}
    assert env.config_data("secret", {}) == {}


# ------------------------------------------------------------------------------ discovery
@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("bertsweep", "bertsweep"),
        ("app.kubernetes.io/name", "app_kubernetes_io_name"),
        ("tuning.bertsweep.io/trial-index", "tuning_bertsweep_io_trial_index"),
        ("9lives", "_9lives"),
        ("", "_"),
    ],
)
def test_prom_label_name(key: str, name: str) -> None:
    assert discovery.prom_label_name(key) == name


def metrics_pod(ports: list[dict[str, Any]], annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations}, "spec": {"containers": [{"ports": ports}]}}


@pytest.mark.parametrize(
    ("ports", "annotations", "expected"),
    [
        ([{"name": "metrics", "containerPort": 8000}], {}, (8000, None)),
        ([{"name": "http", "containerPort": 80}], {}, (None, None)),
        ([], {"prometheus.io/port": "9100"}, (9100, None)),
        ([], {"prometheus.io/port": "not-a-port"}, (None, None)),
        (
            [{"name": "metrics", "containerPort": 8000}],
            {"prometheus.io/port": "9100", "prometheus.io/path": "/m"},
            (8000, "/m"),
        ),
        (
            [{"name": "metrics", "containerPort": 8000}],
            {"prometheus.io/scrape": "False"},
            (None, None),
        ),
    ],
)
def test_metrics_endpoint(
    ports: list[dict[str, Any]], annotations: dict[str, str], expected: tuple[Any, Any]
) -> None:
    assert discovery.metrics_endpoint(metrics_pod(ports, annotations)) == expected


def test_target_groups_label_pods_as_kubernetes_sd_and_labelmap_would() -> None:
    targets = [
        discovery.Target("sweeps", "b", "127.1.0.2", 8000, "/m", {"x": "1"}),
        discovery.Target(
            "sweeps",
            "a",
            "127.1.0.1",
            8000,
            None,
            {"app.kubernetes.io/name": "trainer", "pod": "ignored", "__meta": "dropped"},
        ),
    ]
    assert discovery.target_groups(targets) == [
        {
            "targets": ["127.1.0.1:8000"],
            "labels": {"app_kubernetes_io_name": "trainer", "namespace": "sweeps", "pod": "a"},
        },
        {
            "targets": ["127.1.0.2:8000"],
            "labels": {"x": "1", "namespace": "sweeps", "pod": "b", "__metrics_path__": "/m"},
        },
    ]
    assert discovery.render([]) == "[]\n"


# ---------------------------------------------------------------------------------- state
def test_every_event_edge_is_an_allowed_transition() -> None:
    for s in PodState:
        for e in PodEvent:
            new = state.next_state(s, e)
            assert new is s or new in state.ALLOWED[s], (s, e, new)
    reachable = {(s, state.next_state(s, e)) for s in PodState for e in PodEvent}
    for s, targets in state.ALLOWED.items():
        for t in targets:
            assert (s, t) in reachable, f"{s} -> {t} is allowed but no event leads there"


@pytest.mark.parametrize(
    ("events", "final"),
    [
        ([PodEvent.LAUNCHED, PodEvent.PROCESS_EXITED], PodState.EXITED),
        (
            [PodEvent.LAUNCHED, PodEvent.PROCESS_EXITED, PodEvent.DELETION_REQUESTED],
            PodState.DELETING,
        ),
        (
            [
                PodEvent.LAUNCHED,
                PodEvent.DELETION_REQUESTED,
                PodEvent.PROCESS_EXITED,
                PodEvent.OBJECT_GONE,
            ],
            PodState.GONE,
        ),
        ([PodEvent.LAUNCHED, PodEvent.OBJECT_GONE], PodState.ORPHANED),
        ([PodEvent.LAUNCHED, PodEvent.OBJECT_GONE, PodEvent.PROCESS_EXITED], PodState.GONE),
        ([PodEvent.LAUNCHED, PodEvent.DELETION_REQUESTED, PodEvent.OBJECT_GONE], PodState.ORPHANED),
        ([PodEvent.PROCESS_EXITED], PodState.EXITED),  # a start that failed
        ([PodEvent.DELETION_REQUESTED, PodEvent.PROCESS_EXITED], PodState.DELETING),
        # Repeated events change nothing: each action happens once.
        (
            [PodEvent.LAUNCHED, PodEvent.DELETION_REQUESTED, PodEvent.DELETION_REQUESTED],
            PodState.TERMINATING,
        ),
        ([PodEvent.PROCESS_EXITED, PodEvent.OBJECT_GONE, PodEvent.OBJECT_GONE], PodState.GONE),
    ],
)
def test_pod_lifecycles(events: list[PodEvent], final: PodState) -> None:
    s = PodState.STARTING
    for e in events:
        s = state.next_state(s, e)
    assert s is final


def test_gone_is_final_and_process_ended_states() -> None:
    assert state.ALLOWED[PodState.GONE] == frozenset()
    assert {s for s in PodState if s.process_ended} == {
        PodState.EXITED,
        PodState.DELETING,
        PodState.GONE,
    }
    assert {s for s in PodState if s.object_gone} == {PodState.ORPHANED, PodState.GONE}


def test_run_advance_reports_the_edge_and_refuses_others(tmp_path: Path) -> None:
    run = state.Run(
        uid="u",
        namespace="ns",
        name="p",
        ip="127.1.0.1",
        pod_dir=tmp_path,
        log_path=tmp_path / "log",
        term_path=tmp_path / "term",
        fallback_to_logs=False,
        container="main",
        image="",
        grace_s=30,
        labels={},
        metrics_port=None,
        metrics_path=None,
    )
    assert run.advance(PodEvent.LAUNCHED) == (PodState.STARTING, PodState.RUNNING)
    assert run.state is PodState.RUNNING
    assert run.advance(PodEvent.LAUNCHED) == (PodState.RUNNING, PodState.RUNNING)
    assert run.advance(PodEvent.DELETION_REQUESTED) == (PodState.RUNNING, PodState.TERMINATING)
    with pytest.raises(state.InvalidTransition):
        state.check_transition(PodState.GONE, PodState.RUNNING)
    with pytest.raises(state.InvalidTransition):
        state.check_transition(PodState.TERMINATING, PodState.EXITED)


# ----------------------------------------------------------------------------------- logs
def test_read_limited_and_the_fallback_message(tmp_path: Path) -> None:
    term = tmp_path / "termination-log"
    term.write_bytes(b"x" * 5000)
    assert logs.read_limited(term, 4096) == "x" * 4096
    assert logs.read_limited(tmp_path / "absent", 4096) == ""
    log = tmp_path / "pod.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)) + "CUDA out of memory\n")
    tail = logs.log_tail(log)
    assert tail.endswith("line 999\nCUDA out of memory")
    assert len(tail.encode()) <= 2048
    assert len(tail.splitlines()) <= 80
    assert logs.log_tail(tmp_path / "absent") == ""


def test_fallback_message_keeps_the_last_80_lines() -> None:
    data = "".join(f"{i}\n" for i in range(100)).encode()
    assert logs.fallback_message(data).splitlines() == [str(i) for i in range(20, 100)]
    assert logs.fallback_message(b"\xff bad bytes\n") == "\ufffd bad bytes"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, logs.LogQuery()),
        ({"follow": ["true"]}, logs.LogQuery(follow=True)),
        ({"follow": ["false"]}, logs.LogQuery()),
        ({"follow": ["0"], "previous": ["False"]}, logs.LogQuery()),
        ({"tailLines": ["5"], "limitBytes": ["100"]}, logs.LogQuery(tail_lines=5, limit_bytes=100)),
        ({"tailLines": ["0"]}, logs.LogQuery(tail_lines=0)),
    ],
)
def test_parse_log_query(params: dict[str, list[str]], expected: logs.LogQuery) -> None:
    assert logs.parse_log_query(params, "main", "p") == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"previous": ["true"]}, 'previous terminated container "main" in pod "p" not found'),
        ({"timestamps": ["true"]}, "does not record when a log line was written"),
        ({"sinceSeconds": ["60"]}, "does not record when a log line was written"),
        ({"sinceTime": ["2026-01-01T00:00:00Z"]}, "does not record"),
        ({"tailLines": ["-1"]}, "tailLines must be at least 0"),
        ({"limitBytes": ["0"]}, "limitBytes must be at least 1"),
        ({"limitBytes": ["lots"]}, "not an integer"),
    ],
)
def test_log_queries_the_file_cannot_answer(params: dict[str, list[str]], message: str) -> None:
    with pytest.raises(logs.LogRequestError) as e:
        logs.parse_log_query(params, "main", "p")
    assert e.value.status == 400
    assert message in e.value.message


@pytest.mark.parametrize(
    ("data", "lines", "expected"),
    [
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc", 2, b"b\nc"),  # an unterminated last line counts
        (b"a\nb\nc\n", 3, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 10, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 0, b""),
        (b"", 3, b""),
        (b"\n\n", 1, b"\n"),
        (b"x" * 200_000 + b"\nlast\n", 1, b"last\n"),  # beyond one read block
        (b"y\n" + b"x" * 200_000 + b"\n", 1, b"x" * 200_000 + b"\n"),
    ],
)
def test_tail_offset(data: bytes, lines: int, expected: bytes) -> None:
    f = io.BytesIO(data)
    assert data[logs.tail_offset(f, lines) :] == expected


def copy(data: bytes, query: logs.LogQuery, more: list[bytes] | None = None) -> tuple[bytes, int]:
    """stream_log over a BytesIO; ``more``: what the "process" appends each time it is waited for
    (it ends when nothing is left)."""
    f = io.BytesIO(data)
    out: list[bytes] = []
    pending = list(more or [])

    def wait_more() -> bool:
        if not pending:
            return False
        pos = f.tell()
        f.seek(0, io.SEEK_END)
        f.write(pending.pop(0))
        f.seek(pos)
        return True

    sent = logs.stream_log(f, query, out.append, wait_more)
    return b"".join(out), sent


def test_stream_log() -> None:
    assert copy(b"a\nb\nc\n", logs.LogQuery()) == (b"a\nb\nc\n", 6)
    assert copy(b"a\nb\nc\n", logs.LogQuery(tail_lines=1)) == (b"c\n", 2)
    assert copy(b"a\nb\nc\n", logs.LogQuery(limit_bytes=3)) == (b"a\nb", 3)
    assert copy(b"a\nb\nc\n", logs.LogQuery(tail_lines=2, limit_bytes=3)) == (b"b\nc", 3)
    # Not following: what comes later is not waited for.
    assert copy(b"a\n", logs.LogQuery(), more=[b"b\n"]) == (b"a\n", 2)


def test_stream_log_follows_until_the_process_ends() -> None:
    out, _ = copy(b"a\n", logs.LogQuery(follow=True), more=[b"b\n", b"", b"c\n"])
    assert out == b"a\nb\nc\n"
    out, _ = copy(b"a\nb\n", logs.LogQuery(follow=True, tail_lines=1), more=[b"c\n"])
    assert out == b"b\nc\n"
    # limitBytes ends a follow too.
    out, sent = copy(b"a\n", logs.LogQuery(follow=True, limit_bytes=4), more=[b"bbbb\n", b"c\n"])
    assert (out, sent) == (b"a\nbb", 4)


# --------------------------------------------------------------------------------- status
C = status.Container("main", "img:1")


def test_exit_codes() -> None:
    assert status.exit_code(0) == 0
    assert status.exit_code(3) == 3
    assert status.exit_code(-9) == 137
    assert status.exit_code(-15) == 143


def test_running_status() -> None:
    s = status.running_status(C, "127.1.0.7", status.container_id(4242), "2026-01-01T00:00:00Z")
    assert s["phase"] == "Running"
    assert (s["hostIP"], s["podIP"], s["podIPs"]) == (
        "127.0.0.1",
        "127.1.0.7",
        [{"ip": "127.1.0.7"}],
    )
    (cs,) = s["containerStatuses"]
    assert cs["containerID"] == "bertsweep://4242"
    assert cs["ready"] is True
    assert cs["state"] == {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    ready = {c["type"]: c["status"] for c in s["conditions"]}
    assert ready == {
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }


@pytest.mark.parametrize(
    ("rc", "message", "phase", "term"),
    [
        (0, "", "Succeeded", {"exitCode": 0, "reason": "Completed"}),
        (3, "diverged", "Failed", {"exitCode": 3, "reason": "Error", "message": "diverged"}),
        (-9, "", "Failed", {"exitCode": 137, "reason": "Error", "signal": 9}),
    ],
)
def test_exited_status(rc: int, message: str, phase: str, term: dict[str, Any]) -> None:
    s = status.exited_status(C, status.container_id(4242), rc, message, "t0", "t1")
    assert s["phase"] == phase
    (cs,) = s["containerStatuses"]
    assert cs["ready"] is False
    assert cs["state"]["terminated"] == {
        **term,
        "startedAt": "t0",
        "finishedAt": "t1",
        "containerID": "bertsweep://4242",
    }
    ready = [c for c in s["conditions"] if c["type"] == "Ready"]
    assert ready == [
        {
            "type": "Ready",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": "t1",
            "reason": "PodCompleted",
        }
    ]


def test_failures_without_a_process() -> None:
    p = {"spec": {"containers": [{"name": "trainer", "image": "img:2"}]}}
    c = status.Container.of(p)
    assert c == status.Container("trainer", "img:2")
    assert status.Container.of({"spec": {}}) == status.Container("main", "")
    s = status.start_failed_status(c, "CreateContainerConfigError", "no key x", "t")
    assert (s["phase"], s["reason"], s["message"]) == (
        "Failed",
        "CreateContainerConfigError",
        "no key x",
    )
    (cs,) = s["containerStatuses"]
    assert cs["name"] == "trainer"
    assert "containerID" not in cs
    assert cs["state"]["terminated"] == {
        "exitCode": 128,
        "reason": "CreateContainerConfigError",
        "message": "no key x",
        "startedAt": "t",
        "finishedAt": "t",
    }
    s = status.node_restart_status(c, "t")
    assert (s["phase"], s["reason"]) == ("Failed", "NodeRestart")
    assert s["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137


# ---------------------------------------------------------------------------- node, misc
def settings(tmp: Path) -> Settings:
    return Settings(
        kubeconfig="k",
        node_name="bertsweep-dev",
        state_dir=tmp,
        sd_file=tmp / "targets.json",
        cpu=16,
        memory="64Gi",
        max_pods=110,
        gpus=4,
        heartbeat_s=10.0,
        shutdown_grace_s=5.0,
        kubelet_port=0,
        tls_cert=None,
        tls_key=None,
        client_ca=None,
    )


def test_node_status_points_the_api_server_at_loopback() -> None:
    s = node.node_status(settings(Path("/state")), "hb", "since", 10250, "6.1.0")
    assert s["capacity"] == {
        "cpu": "16",
        "memory": "64Gi",
        "pods": "110",
        "nvidia.com/gpu": "4",
        "ephemeral-storage": "100Gi",
    }
    assert s["allocatable"] == s["capacity"]
    assert s["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.1"}
    assert s["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    conds = {
        c["type"]: (c["status"], c["lastHeartbeatTime"], c["lastTransitionTime"])
        for c in s["conditions"]
    }
    assert conds["Ready"] == ("True", "hb", "since")
    assert conds["MemoryPressure"][0] == "False"
    assert s["nodeInfo"]["kernelVersion"] == "6.1.0"


def test_pod_ips_and_summaries() -> None:
    assert [pod_ip(i) for i in (0, 1, 253, 254)] == [
        "127.1.0.1",
        "127.1.0.2",
        "127.1.0.254",
        "127.1.1.1",
    ]
    assert pod_ip(256 * 254 - 1) == "127.1.255.254"
    assert summarize(["python", "-c", "print( 1 )\n"]) == "python -c 'print( 1 ) '"
    assert summarize(["x" * 200]) == "x" * 117 + "..."


# -------------------------------------------------------------------------------- volumes
def test_projected_items() -> None:
    data = {"a": b"1", "b": b"2"}
    assert volumes.projected_items({}, data) == [("a", "a", 0o644), ("b", "b", 0o644)]
    src = {
        "defaultMode": 0o600,
        "items": [{"key": "a", "path": "sub/a.txt"}, {"key": "b", "path": "b", "mode": 0o400}],
    }
    assert volumes.projected_items(src, data) == [("a", "sub/a.txt", 0o600), ("b", "b", 0o400)]


def test_container_mounts(tmp_path: Path) -> None:
    vols = {"scratch": tmp_path / "scratch", "cfg": tmp_path / "cfg"}
    c = {
        "terminationMessagePath": "/tmp/term",
        "volumeMounts": [
            {"name": "scratch", "mountPath": "/tmp/work", "subPath": "one"},
            {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
            {"name": "unprepared", "mountPath": "/nowhere"},
        ],
    }
    mounts = volumes.container_mounts(c, vols, tmp_path / "term")
    assert mounts == [
        volumes.Mount(tmp_path / "term", "/tmp/term"),
        volumes.Mount(tmp_path / "scratch" / "one", "/tmp/work"),
        volumes.Mount(tmp_path / "cfg", "/etc/cfg", read_only=True),
    ]
    assert (tmp_path / "scratch" / "one").is_dir()  # a subPath is created, as the kubelet does
    assert volumes.container_mounts({}, {}, Path("/t"))[0].target == "/dev/termination-log"


def test_mount_script_keeps_the_checkout_visible_under_a_volume() -> None:
    mounts = [
        volumes.Mount(Path("/state/term"), "/dev/termination-log"),
        volumes.Mount(Path("/state/scratch"), "/tmp"),
        volumes.Mount(Path("/state/cfg"), "/etc/my cfg", read_only=True),
    ]
    lines, inner = volumes.mount_script(
        mounts, [Path("/tmp/ci/repo"), Path("/usr")], "mount", "/tmp/ci/repo"
    )
    assert lines == [
        "set -e",
        "mount --bind /state/term /dev/termination-log",
        "mount --bind /tmp/ci/repo /state/scratch/ci/repo",
        "mount --rbind /state/scratch /tmp",
        "mount --bind /state/cfg '/etc/my cfg'",
        "mount -o remount,bind,ro '/etc/my cfg'",
        "cd /tmp/ci/repo",
        'exec "$@"',
    ]
    assert inner == [Path("/state/scratch/ci/repo")]
    assert volumes.mount_script([], [], "mount", "/w") == (["set -e", "cd /w", 'exec "$@"'], [])


# ------------------------------------------------------------------------------ in-process
TERM = "/dev/termination-log"
TRIAL_ENV = {
    # What the operator's trial pod gives the trainer (bertsweep.pods.container_env).
    "BERTSWEEP_SWEEP": "bench",
    "BERTSWEEP_TRIAL": "bench-0003",
    "BERTSWEEP_TRIAL_INDEX": "3",
    "BERTSWEEP_DATASET": json.dumps({"train": "unused.csv"}),
    "BERTSWEEP_PARAMETERS": json.dumps({"learning_rate": 1e-3}),
    "BERTSWEEP_METRICS_ADDR": "127.1.0.7",
    "BERTSWEEP_METRICS_PORT": "8000",
    "BERTSWEEP_RESULT_FILE": TERM,
    "BERTSWEEP_SCRAPE_WAIT_SECONDS": "0.5",
}


@pytest.mark.parametrize(
    ("argv", "extra_env", "expected"),
    [
        (["/repo/.venv/bin/bertsweep-trainer", "--simulate", "1"], {}, ["--simulate", "1"]),
        (["/repo/.venv/bin/bertsweep-trainer", "--simulate=2"], {}, ["--simulate=2"]),
        (["/usr/bin/bertsweep-trainer"], {"BERTSWEEP_SIMULATE_SECONDS": "1"}, []),
        # A real trial, or a simulated trainer that is not the program: processes.
        (["/repo/.venv/bin/bertsweep-trainer", "--learning_rate", "1e-3"], {}, None),
        (["/usr/bin/python", "-m", "bertsweep_trainer.main", "--simulate", "1"], {}, None),
        (["/bin/sh", "-c", "bertsweep-trainer --simulate 1"], {}, None),
        (["/usr/bin/bertsweep-trainer"], {"BERTSWEEP_SIMULATE_SECONDS": ""}, None),
        ([], {}, None),
    ],
)
def test_which_pods_run_the_simulated_trainer(
    argv: list[str], extra_env: dict[str, str], expected: list[str] | None
) -> None:
    assert inprocess.simulated_argv(argv, {**TRIAL_ENV, **extra_env}) == expected


def test_a_simulated_training_trial_is_played_with_the_trainers_own_configuration() -> None:
    plan = inprocess.plan_trial(["--simulate", "1.5"], TRIAL_ENV, TERM)
    assert plan is not None and plan.error is None and plan.config is not None
    c = plan.config
    assert (c.sweep, c.trial, c.index, c.simulate, c.scrape_wait) == (
        "bench",
        "bench-0003",
        3,
        1.5,
        0.5,
    )
    assert (c.metrics_addr, c.metrics_port, c.parameters) == (
        "127.1.0.7",
        8000,
        {"learning_rate": 1e-3},
    )
    # Arguments win over the environment, as in the trainer.
    plan = inprocess.plan_trial(["--simulate", "1", "--scrape-wait", "0"], TRIAL_ENV, TERM)
    assert plan is not None and plan.config is not None and plan.config.scrape_wait == 0.0


def test_what_only_a_process_can_do_is_left_to_a_process() -> None:
    # Not simulated, the finalize task, or a result file elsewhere than the termination
    # message (it would be on one of the pod's mounts).
    assert inprocess.plan_trial([], TRIAL_ENV, TERM) is None
    assert inprocess.plan_trial(["--simulate", "1", "--task", "finalize"], TRIAL_ENV, TERM) is None
    assert inprocess.plan_trial(["--simulate", "1"], TRIAL_ENV, "/tmp/term") is None
    bad = {**TRIAL_ENV, "BERTSWEEP_RESULT_FILE": "/out/result.json"}
    assert inprocess.plan_trial(["--simulate", "1"], bad, TERM) is None
    assert inprocess.plan_trial(["--simulate", "x"], bad, TERM) is None


def test_a_refused_configuration_fails_as_the_trainer_would(tmp_path: Path) -> None:
    env_ = {k: v for k, v in TRIAL_ENV.items() if k != "BERTSWEEP_DATASET"}
    plan = inprocess.plan_trial(["--simulate", "1"], env_, TERM)
    assert plan is not None and plan.config is None and plan.error is not None
    pod = inprocess.SimulatedPod(plan, "127.1.0.7", tmp_path / "log", tmp_path / "term")
    assert pod.run() == 1
    result = TrialResult.parse((tmp_path / "term").read_text())
    assert result is not None
    assert (result.status.value, result.reason) == ("failed", "InvalidConfig")
    assert "no dataset" in (result.message or "")
    assert "bertsweep-trainer: InvalidConfig: no dataset" in (tmp_path / "log").read_text()


def test_signals_mean_what_they_mean_to_the_trainer(tmp_path: Path) -> None:
    plan = inprocess.plan_trial(["--simulate", "1"], TRIAL_ENV, TERM)
    assert plan is not None
    pod = inprocess.SimulatedPod(plan, "127.1.0.7", tmp_path / "log", tmp_path / "term")
    pod.signal(signal.SIGTERM)
    assert pod.stop.requested.is_set() and not pod.stop.abandon_wait.is_set()
    pod.stop.finishing = True  # a later SIGTERM only cuts the wait for the last scrape
    pod.signal(signal.SIGTERM)
    assert pod.stop.abandon_wait.is_set() and not pod.killed.is_set()
    pod.signal(signal.SIGKILL)
    assert pod.killed.is_set()
    assert status.exit_code(inprocess.KILLED) == 137
    # A killed trial writes no result, as a killed process would not.
    assert pod.run() == inprocess.KILLED
    assert (tmp_path / "term").exists() is False


def test_in_process_endpoints_bind_the_pods_address() -> None:
    assert inprocess.bind_address("0.0.0.0", "127.1.0.7") == "127.1.0.7"
    assert inprocess.bind_address("", "127.1.0.7") == "127.1.0.7"
    assert inprocess.bind_address("127.1.0.7", "127.1.0.9") == "127.1.0.7"


def test_in_process_containers_are_told_apart_from_processes(tmp_path: Path) -> None:
    plan = inprocess.plan_trial(["--simulate", "1"], TRIAL_ENV, TERM)
    assert plan is not None
    a = inprocess.SimulatedPod(plan, "127.1.0.7", tmp_path / "a", tmp_path / "ta")
    b = inprocess.SimulatedPod(plan, "127.1.0.8", tmp_path / "b", tmp_path / "tb")
    assert a.container_id.startswith("bertsweep-inprocess://")
    assert a.container_id != b.container_id
    s = status.running_status(C, "127.1.0.7", a.container_id, "t0")
    assert s["containerStatuses"][0]["containerID"] == a.container_id
    assert node.node_annotations(settings(tmp_path)) == {
        "bertsweep.io/simulate-in-process": "false"
    }
