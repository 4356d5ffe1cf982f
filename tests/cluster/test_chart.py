"""The Helm chart (charts/bertsweep) against the dev cluster: it lints, renders for the ways it
is installed, passes the API server's own validation, ships the generated CRDs, and its RBAC is
enough for a real sweep and nothing more.

The RBAC proof runs the operator with the chart's ServiceAccount token instead of the admin's,
so every call the operator and kopf make meets the chart's rules. That run serves one namespace
(the chart rendered with watchNamespaces: a Role there): a cluster-wide operator in a test would
adopt every sweep in the shared dev cluster, other tests' and users' included. The ClusterRole of
the default install holds the same rules (asserted below), and what only it adds, the list and
watch across all namespaces, is checked with the API server's authorizer (`kubectl auth can-i`).

helm is the devcluster's cached binary (on the PATH of `.devcluster/env`). Every wait is
bounded; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_helpers import BIN, REPO, Kubectl, free_port, wait_for

from sweeps import SweepManifest

pytestmark = pytest.mark.cluster

CHART = REPO / "charts" / "bertsweep"
GROUP = "tuning.bertsweep.io"
MONITORING = "monitoring.coreos.com/v1"
# Every request the operator makes in a namespace it serves: kube.py's calls and kopf's watches.
OPERATOR_REQUESTS = [
    *[(verb, f"bertsweeps.{GROUP}") for verb in ("get", "list", "watch")],
    ("update", f"bertsweeps.{GROUP}/status"),
    *[(verb, f"berttrials.{GROUP}") for verb in ("get", "list", "watch", "create")],
    ("update", f"berttrials.{GROUP}/status"),
    *[(verb, "pods") for verb in ("get", "list", "watch", "create", "delete")],
    ("create", "events"),
]
# What a cluster-wide operator does across all namespaces: kopf lists and watches every
# namespace at once, and CRDs (cluster-scoped) to notice resources appearing.
CLUSTER_WIDE_WATCHES = [
    ("list", f"bertsweeps.{GROUP}"),
    ("watch", f"bertsweeps.{GROUP}"),
    ("list", f"berttrials.{GROUP}"),
    ("watch", f"berttrials.{GROUP}"),
    ("list", "pods"),
    ("watch", "pods"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
]
# What the operator never does, so its service account must not be able to.
FORBIDDEN = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("create", "configmaps"),
    ("create", "pods/exec"),
    ("patch", "pods"),
    ("delete", f"bertsweeps.{GROUP}"),
    ("patch", f"bertsweeps.{GROUP}"),
    ("update", f"bertsweeps.{GROUP}"),
    ("delete", f"berttrials.{GROUP}"),
    ("create", "deployments.apps"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("list", "namespaces"),
]
ENDED = ("Succeeded", "Failed")
DENIED_IN_LOG = re.compile(r"forbidden|not enough permissions|unauthorized", re.IGNORECASE)


# ---- helpers ------------------------------------------------------------------------------------


def helm(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["helm", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def render(
    env: dict[str, str], tmp_path: Path, release: str, namespace: str, **values: Any
) -> list[dict[str, Any]]:
    """`helm template` with these values (a values file: lists need no --set escaping)."""
    values_file = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = helm(env, "template", release, str(CHART), "-n", namespace, "-f", str(values_file))
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def kubectl_out(env: dict[str, str], *args: str, input: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", *args], input=input, capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def can_i(env: dict[str, str], subject: str, verb: str, resource: str, *scope: str) -> bool:
    """The API server's RBAC authorizer answers (a SubjectAccessReview, via impersonation).
    `pods/exec` means the subresource (kubectl would read it as the pod named exec)."""
    resource, _, subresource = resource.partition("/")
    if subresource:
        scope = (*scope, f"--subresource={subresource}")
    done = subprocess.run(
        ["kubectl", "auth", "can-i", verb, resource, *scope, f"--as={subject}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i {verb} {resource}: {done.stderr}"
    return answer == "yes"


def rules(role: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(role["rules"], key=lambda r: json.dumps(r, sort_keys=True))


@pytest.fixture
def cluster_scoped(env: dict[str, str]) -> Iterator[list[str]]:
    """Releases whose cluster-scoped RBAC objects this test created: deleted at the end (the
    namespaced ones go with the test's namespace)."""
    releases: list[str] = []
    yield releases
    for release in releases:
        subprocess.run(
            [
                "kubectl",
                "delete",
                "clusterrole,clusterrolebinding",
                "-l",
                f"app.kubernetes.io/instance={release}",
                "--ignore-not-found",
            ],
            env=env,
            capture_output=True,
            timeout=60,
        )


# ---- the chart as files -------------------------------------------------------------------------


def test_helm_lint_passes(env: dict[str, str], tmp_path: Path) -> None:
    helm(env, "lint", "--strict", str(CHART))
    everything = tmp_path / "everything.yaml"
    everything.write_text(
        yaml.safe_dump(
            {
                "watchNamespaces": ["a", "b"],
                "prometheusURL": "http://prometheus:9090",
                "serviceMonitor": {"enabled": True},
                "podMonitor": {"enabled": True},
                "grafanaDashboard": {"enabled": True},
            }
        )
    )
    helm(env, "lint", "--strict", str(CHART), "-f", str(everything))


# ---- rendering ----------------------------------------------------------------------------------


def test_default_install_serves_every_namespace_with_a_clusterrole(
    env: dict[str, str], tmp_path: Path
) -> None:
    docs = render(env, tmp_path, "rel", "ops")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"]
    )

    deployment = one(docs, "Deployment")
    # kopf runs standalone (no peering): never two operators, not even during an upgrade.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    container = pod["containers"][0]
    assert "args" not in container, "no --namespace: every namespace"
    assert container["image"] == "bertsweep-operator:0.1.0"
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    assert env_vars["BERTSWEEP_OPERATOR_METRICS_PORT"] == "8080"
    # The restricted Pod Security Standard.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsUser"] == 10001 and security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]

    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == one(docs, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "ops"}
    ]
    for rule in one(docs, "ClusterRole")["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert not {"secrets", "configmaps"} & set(rule["resources"]), rule

    # The Service selects the operator, never a trial pod (app.kubernetes.io/name=bertsweep-trial).
    service = one(docs, "Service")
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"]["app.kubernetes.io/name"] != "bertsweep-trial"


def test_named_namespaces_get_a_role_each_with_the_clusterroles_rules(
    env: dict[str, str], tmp_path: Path
) -> None:
    cluster_wide = one(render(env, tmp_path, "rel", "ops"), "ClusterRole")
    docs = render(env, tmp_path, "rel", "ops", watchNamespaces=["a", "b"])

    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["a", "b"]
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["a", "b"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "ops", "the operator's service account"
    # The e2e proof below runs on a Role; it carries over to the ClusterRole because the
    # ClusterRole is the same rules plus kopf's read-only CRD scanning.
    crd_scan = {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    }
    for role in roles:
        assert rules({"rules": [*role["rules"], crd_scan]}) == rules(cluster_wide)

    # Cluster-scoped: only kopf's read-only scanning (namespaces, CRDs).
    scanning = one(docs, "ClusterRole")
    assert {r for rule in scanning["rules"] for r in rule["resources"]} == {
        "customresourcedefinitions",
        "namespaces",
    }
    assert all(set(rule["verbs"]) == {"list", "watch"} for rule in scanning["rules"])
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--namespace", "a", "--namespace", "b"]

    # Without kopf's scanning, a namespaced install has nothing cluster-scoped at all.
    bare = render(env, tmp_path, "rel", "ops", watchNamespaces=["a"], rbac={"kopfScanning": False})
    assert not by_kind(bare, "ClusterRole") and not by_kind(bare, "ClusterRoleBinding")


def test_monitors_and_dashboard_render(env: dict[str, str], tmp_path: Path) -> None:
    docs = render(
        env,
        tmp_path,
        "rel",
        "ops",
        watchNamespaces=["a", "b"],
        prometheusURL="http://prometheus:9090",
        serviceMonitor={"enabled": True, "labels": {"release": "kps"}},
        podMonitor={"enabled": True},
        grafanaDashboard={"enabled": True},
    )
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--prometheus-url", "http://prometheus:9090"]

    service_monitor = one(docs, "ServiceMonitor")
    assert service_monitor["apiVersion"] == MONITORING
    assert service_monitor["metadata"]["labels"]["release"] == "kps"
    service = one(docs, "Service")
    assert (
        service_monitor["spec"]["selector"]["matchLabels"].items()
        <= service["metadata"]["labels"].items()
    )
    assert service_monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]

    # Trial pods: those with a `bertsweep` label, their port named `metrics`, every pod label
    # a target label, as the dev cluster's file_sd publishes them (devcluster/podrunner.py).
    pod_monitor = one(docs, "PodMonitor")
    spec = pod_monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["a", "b"]}
    assert spec["selector"] == {"matchExpressions": [{"key": "bertsweep", "operator": "Exists"}]}
    endpoint = spec["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is False
    assert {
        "action": "labelmap",
        "regex": "__meta_kubernetes_pod_label_(.+)",
        "replacement": "$1",
    } in endpoint["relabelings"]
    everywhere = one(
        render(env, tmp_path, "rel", "ops", podMonitor={"enabled": True}), "PodMonitor"
    )
    assert everywhere["spec"]["namespaceSelector"] == {"any": True}

    dashboard = one(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["bertsweep.json"])
    queries = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for series in (
        "bertsweep_operator_sweeps",
        "bertsweep_operator_trials_created_total",
        "bertsweep_operator_reconcile_seconds_bucket",
        "bertsweep_trial_eval",
    ):
        assert series in queries, series


def test_rendered_objects_pass_server_side_validation(
    env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    """The API server validates every rendered object (dry run: nothing is stored). The
    monitoring.coreos.com kinds are left out: the dev cluster has no Prometheus Operator CRDs."""
    release = f"dry-{uuid.uuid4().hex[:6]}"
    for values in (
        {"grafanaDashboard": {"enabled": True}, "prometheusURL": env["PROMETHEUS_URL"]},
        {"watchNamespaces": [namespace], "grafanaDashboard": {"enabled": True}},
    ):
        docs = render(env, tmp_path, release, namespace, **values)
        core = [d for d in docs if d["apiVersion"] != MONITORING]
        out = kubectl_out(
            env, "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(core)
        )
        assert out.count("(server dry run)") == len(core), out


# ---- the RBAC proof ------------------------------------------------------------------------------


def service_account_kubeconfig(
    env: dict[str, str], namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig that authenticates as the service account (a TokenRequest token)."""
    token = kubectl_out(env, "-n", namespace, "create", "token", account, "--duration=1h").strip()
    assert token, "no token for the service account"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "dev",
                        "cluster": {
                            "server": env["KUBE_API_URL"],
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "operator",
                        "context": {"cluster": "dev", "user": account, "namespace": namespace},
                    }
                ],
                "current-context": "operator",
            }
        )
    )
    path.chmod(0o600)
    return path


def test_the_clusterrole_grants_cluster_wide_watches_and_nothing_sensitive(
    env: dict[str, str], namespace: str, tmp_path: Path, cluster_scoped: list[str]
) -> None:
    release = f"bscw-{uuid.uuid4().hex[:6]}"
    cluster_scoped.append(release)
    docs = render(env, tmp_path, release, namespace)
    rbac = [d for d in docs if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")]
    kubectl_out(env, "apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    account = one(docs, "ServiceAccount")["metadata"]["name"]
    subject = f"system:serviceaccount:{namespace}:{account}"

    for verb, resource in OPERATOR_REQUESTS:
        assert can_i(env, subject, verb, resource, "-n", namespace), (verb, resource)
    for verb, resource in CLUSTER_WIDE_WATCHES:
        assert can_i(env, subject, verb, resource, "--all-namespaces"), (verb, resource)
    for verb, resource in FORBIDDEN:
        assert not can_i(env, subject, verb, resource, "-n", namespace), (verb, resource)
        assert not can_i(env, subject, verb, resource, "--all-namespaces"), (verb, resource)


def test_the_operator_runs_a_sweep_with_nothing_but_the_charts_rbac(
    env: dict[str, str],
    namespace: str,
    kubectl: Kubectl,
    tmp_path: Path,
    cluster_scoped: list[str],
    sweep_manifest: SweepManifest,
) -> None:
    release = f"bsns-{uuid.uuid4().hex[:6]}"
    cluster_scoped.append(release)
    docs = render(
        env,
        tmp_path,
        release,
        namespace,
        watchNamespaces=[namespace],
        prometheusURL=env["PROMETHEUS_URL"],
    )
    kinds = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    rbac = [d for d in docs if d["kind"] in kinds]
    assert sorted(d["kind"] for d in rbac) == sorted(kinds)
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    account = one(docs, "ServiceAccount")["metadata"]["name"]
    subject = f"system:serviceaccount:{namespace}:{account}"
    assert not can_i(env, subject, "get", "secrets", "-n", namespace)
    assert not can_i(env, subject, "get", "secrets", "--all-namespaces")

    # The operator as the chart's Deployment runs it: its args, its metrics port variable, and
    # the service account's credentials (no PROMETHEUS_URL from the environment: the URL must
    # come from the chart's --prometheus-url).
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    operator_env = {k: v for k, v in env.items() if k != "PROMETHEUS_URL"}
    operator_env.update(
        KUBECONFIG=str(service_account_kubeconfig(env, namespace, account, tmp_path / "sa.kube")),
        BERTSWEEP_OPERATOR_METRICS_PORT=str(free_port()),
        BERTSWEEP_OPERATOR_METRICS_ADDR="127.0.0.1",
    )
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "bertsweep"), "operator", *container.get("args", [])],
            env=operator_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def tail() -> str:
        return "operator log (tail):\n" + "\n".join(
            log_path.read_text(errors="replace").splitlines()[-60:]
        )

    try:
        kubectl.apply(sweep_manifest("rbac", maxTrials=2, parallelism=2))

        def ended() -> Any:
            sweep = kubectl.sweep("rbac") or {}
            return sweep if sweep.get("status", {}).get("phase") in ENDED else None

        sweep = wait_for("the sweep to end", ended, timeout=420, explain=tail)
        assert process.poll() is None, tail()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    log_text = log_path.read_text(errors="replace")
    denied = [line for line in log_text.splitlines() if DENIED_IN_LOG.search(line)]
    assert not denied, "the operator met RBAC denials:\n" + "\n".join(denied[:20])
    status = sweep["status"]
    assert status["phase"] == "Succeeded", f"{status}\n{tail()}"
    assert status["trials"]["succeeded"] == 2, status
    # Trial records, their pods and Events were all written under the chart's rules.
    assert len(kubectl.trials("rbac")) == 2
    assert any(
        e["involvedObject"].get("name") == "rbac" and e["reason"] == "SweepSucceeded"
        for e in kubectl.events()
    )
