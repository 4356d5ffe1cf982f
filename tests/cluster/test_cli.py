"""`bertsweep list`, `get`, `watch` and `best NAME` against the real control plane of `make
devcluster`: one real tiny sweep run by the real operator, shared by the tests of this module,
read back by the CLI as a user would run it (a subprocess with the dev cluster's kubeconfig),
and compared with what kubectl reads of the same objects. Then what a user gets when the sweep,
the kubeconfig, the cluster or the CRDs are not there.

Every wait is bounded polling; nothing asserts how long anything took.
"""

from __future__ import annotations

import http.server
import json
import shlex
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_helpers import BIN, Kubectl, OperatorProcess, free_port, wait_for

from sweeps import build_sweep_manifest

pytestmark = pytest.mark.cluster

SWEEP = "cli"


def bertsweep(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bertsweep"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The command failed with `code`, printing nothing on stdout and one line on stderr."""
    context = f"rc={done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == code, context
    assert done.stdout == "" and done.stderr.count("\n") == 1, context
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr, context
    for word in words:
        assert word in done.stderr, context
    return done.stderr


@dataclass
class Swept:
    """The module's sweep, run to its end while `bertsweep watch` followed it."""

    env: dict[str, str]
    namespace: str
    kubectl: Kubectl
    operator: OperatorProcess
    watch: subprocess.CompletedProcess[str]

    def sweep(self) -> Any:
        return self.kubectl.sweep(SWEEP)

    def trials(self) -> list[Any]:
        return self.kubectl.trials(SWEEP)


@pytest.fixture(scope="module")
def swept(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    """A namespace, the operator watching it, and the tiny sweep of `sweep_manifest` (what
    that fixture builds: it and `namespace`/`operator` are per test, this sweep is shared)."""
    namespace = f"bs-cli-{uuid.uuid4().hex[:5]}"
    subprocess.run(["kubectl", "create", "namespace", namespace], env=env, check=True)
    kubectl = Kubectl(env, namespace)
    wait_for(
        f"the default service account in {namespace}",
        lambda: kubectl.run("get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=30,
        interval=0.5,
    )
    logs = tmp_path_factory.mktemp("cli")
    op = OperatorProcess(env, namespace, logs / "operator.log")
    op.start()
    try:
        # eval_loss differs from trial to trial (accuracy on 100 snippets often ties).
        manifest = build_sweep_manifest(
            SWEEP, objective={"metric": "eval_loss", "goal": "minimize"}
        )
        kubectl.apply(manifest)
        # `watch` starts as soon as the sweep exists, before the operator has written any
        # status (waiting for a Running trial raced with trials that end within the operator's
        # 10 s record refresh), follows it while it runs and must end by itself once it has ended.
        out, err = (logs / "watch.out").open("w+"), (logs / "watch.err").open("w+")
        watcher = subprocess.Popen(
            [str(BIN / "bertsweep"), "watch", SWEEP, "-n", namespace, "--interval", "1"],
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )
        wait_for(
            "the sweep to end",
            lambda: (
                ((kubectl.sweep(SWEEP) or {}).get("status") or {}).get("phase")
                in ("Succeeded", "Failed")
            ),
            timeout=420,
            explain=op.tail,
        )
        try:
            code = watcher.wait(timeout=90)
        except subprocess.TimeoutExpired:
            watcher.kill()
            code = watcher.wait()
        out.seek(0)
        err.seek(0)
        watch = subprocess.CompletedProcess(watcher.args, code, out.read(), err.read())
        yield Swept(env, namespace, kubectl, op, watch)
    finally:
        op.stop()
        print(op.tail(100))
        subprocess.run(
            ["kubectl", "delete", "namespace", namespace, "--wait=false"],
            env=env,
            capture_output=True,
        )


def ranked(records: list[Any]) -> list[Any]:
    """The order `get` promises: succeeded trials by the objective (eval_loss, lower first;
    ties to the earlier trial), then the others by index."""
    done = [t for t in records if t["status"].get("phase") == "Succeeded"]
    done.sort(key=lambda t: (t["status"]["objective"], t["spec"]["index"]))
    rest = [t for t in records if t not in done]
    return done + sorted(rest, key=lambda t: t["spec"]["index"])


# ---- the sweep, read back -----------------------------------------------------------------------


def test_the_sweep_succeeded(swept: Swept) -> None:
    status = swept.sweep()["status"]
    assert status["phase"] == "Succeeded" and status["done"] == "3/3", swept.operator.tail()


def test_watch_ends_by_itself_once_the_sweep_has_ended(swept: Swept) -> None:
    watch = swept.watch
    context = f"rc={watch.returncode}\nstdout:\n{watch.stdout}\nstderr:\n{watch.stderr}"
    assert watch.returncode == 0, context
    assert watch.stderr == "", context
    # One line per change, as `bertsweep run` prints off a terminal, then the leaderboard.
    for trial in swept.trials():
        assert f"{trial['metadata']['name']}: Succeeded  eval_loss " in watch.stdout, context
    assert f"{SWEEP}: Succeeded  done 3/3" in watch.stdout, context
    assert "Leaderboard" in watch.stdout and "Best trial" in watch.stdout, context
    assert watch.stdout.index("Leaderboard") > watch.stdout.index(f"{SWEEP}: Succeeded"), context


def test_get_shows_every_trial_record_best_first(swept: Swept) -> None:
    expected = ranked(swept.trials())
    assert len(expected) == 3
    done = bertsweep(swept.env, "get", SWEEP, "-n", swept.namespace, "-o", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["name"], document["namespace"]) == (SWEEP, swept.namespace)
    assert [
        (t["name"], t["phase"], t["objective"], t["parameters"]) for t in document["trials"]
    ] == [
        (
            t["metadata"]["name"],
            t["status"]["phase"],
            t["status"]["objective"],
            t["spec"]["parameters"],
        )
        for t in expected
    ]

    # The table a person reads: the same trials in the same order, then status and conditions.
    table = bertsweep(swept.env, "get", SWEEP, "-n", swept.namespace)
    assert table.returncode == 0 and table.stderr == "", table.stderr
    # A row is a line of the table's body; the title names the namespace, whose random
    # suffix may itself contain the sweep's name followed by a digit.
    rows = [line for line in table.stdout.splitlines() if line.startswith(f"│ {SWEEP}-")]
    assert len(rows) == 3, table.stdout
    for row, trial in zip(rows, expected, strict=True):
        assert trial["metadata"]["name"] in row and "Succeeded" in row, table.stdout
        assert f"{trial['status']['objective']:.4f}" in row, table.stdout
    assert "Succeeded  done 3/3" in table.stdout
    assert "Succeeded=True MaxTrialsReached" in table.stdout, table.stdout


def test_best_is_the_best_trial_with_the_fixed_values(swept: Swept, tmp_path: Path) -> None:
    sweep = swept.sweep()
    best, spec = sweep["status"]["bestTrial"], sweep["spec"]
    expected = {
        "sweep": SWEEP,
        "name": best["name"],
        "model": spec["model"],
        "parameters": {**best["parameters"], **spec["fixed"]},
        "metrics": best["metrics"],
        **({"modelPath": best["modelPath"]} if best.get("modelPath") else {}),
        **({"testMetrics": best["testMetrics"]} if best.get("testMetrics") else {}),
    }
    assert set(spec["fixed"]) == {
        "num_train_epochs",
        "num_hidden_layers",
        "per_device_train_batch_size",
    }
    # Run where no file or folder is named like the sweep: NAME is the cluster's.
    done = bertsweep(
        swept.env, "best", SWEEP, "-n", swept.namespace, "--format", "json", cwd=tmp_path
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json.loads(done.stdout) == expected
    as_yaml = bertsweep(swept.env, "best", SWEEP, "-n", swept.namespace, cwd=tmp_path)
    assert yaml.safe_load(as_yaml.stdout) == expected

    # --format args: the flags parse back into the same configuration.
    args = bertsweep(
        swept.env, "best", SWEEP, "-n", swept.namespace, "--format", "args", cwd=tmp_path
    )
    assert args.returncode == 0, args.stderr
    words = shlex.split(args.stdout)
    assert words[:2] == ["--model", spec["model"]]
    flags = dict(zip(words[::2], words[1::2], strict=True))
    assert {
        name.removeprefix("--"): json.loads(value)
        for name, value in flags.items()
        if name != "--model"
    } == expected["parameters"]

    # A folder of that name here is a local result, not the cluster's sweep.
    (tmp_path / SWEEP).mkdir()
    local = bertsweep(swept.env, "best", SWEEP, "-n", swept.namespace, cwd=tmp_path)
    one_line_error(local, 2, "cannot read a result from", "result.json")


def test_list_shows_the_sweep_with_its_phase(swept: Swept) -> None:
    best = swept.sweep()["status"]
    done = bertsweep(swept.env, "list", "-n", swept.namespace)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "DONE", "OBJECTIVE", "BEST", "BEST-TRIAL", "AGE"]
    assert [row.split()[:6] for row in rows] == [
        [
            SWEEP,
            "Succeeded",
            "3/3",
            "eval_loss",
            f"{best['bestObjective']:.4f}",
            best["bestTrial"]["name"],
        ]
    ]
    everywhere = bertsweep(swept.env, "list", "-A")
    assert everywhere.returncode == 0, everywhere.stderr
    assert everywhere.stdout.split()[:8] == [
        "NAMESPACE",
        "NAME",
        "PHASE",
        "DONE",
        "OBJECTIVE",
        "BEST",
        "BEST-TRIAL",
        "AGE",
    ]
    mine = [
        line.split()
        for line in everywhere.stdout.splitlines()
        if line.startswith(swept.namespace + " ")
    ]
    assert [row[:4] for row in mine] == [[swept.namespace, SWEEP, "Succeeded", "3/3"]], (
        everywhere.stdout
    )
    data = json.loads(bertsweep(swept.env, "list", "-n", swept.namespace, "-o", "json").stdout)
    assert [(d["name"], d["phase"], d["bestTrial"]) for d in data] == [
        (SWEEP, "Succeeded", best["bestTrial"]["name"])
    ]
    # A namespace without sweeps: said on stderr, as kubectl says "No resources found".
    empty = bertsweep(swept.env, "list", "-n", f"{swept.namespace}-none")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr == f"No BertSweeps in namespace {swept.namespace}-none.\n"


def test_context_picks_the_kubeconfig_context_and_its_namespace(
    swept: Swept, tmp_path: Path
) -> None:
    config = yaml.safe_load(Path(swept.env["KUBECONFIG"]).read_text())
    original = config["contexts"][0]
    config["contexts"].append(
        {"name": "sweeps", "context": {**original["context"], "namespace": swept.namespace}}
    )
    copy = tmp_path / "kubeconfig"
    copy.write_text(yaml.safe_dump(config))
    other = {**swept.env, "KUBECONFIG": str(copy)}

    done = bertsweep(other, "get", SWEEP, "--context", "sweeps", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["namespace"] == swept.namespace
    done = bertsweep(swept.env, "list", "--kubeconfig", str(copy), "--context", "sweeps")
    assert done.returncode == 0 and done.stdout.splitlines()[1].startswith(SWEEP + " "), done.stdout
    # The current context's namespace is another one: the sweep is not there.
    one_line_error(
        bertsweep(other, "get", SWEEP),
        1,
        f"no BertSweep {SWEEP} in namespace {original['context'].get('namespace', 'default')}",
    )
    one_line_error(bertsweep(other, "get", SWEEP, "--context", "nope"), 2, 'no context "nope"')


# ---- what is not there --------------------------------------------------------------------------


def test_a_sweep_that_is_not_there(env: dict[str, str], tmp_path: Path) -> None:
    namespace = f"bs-nowhere-{uuid.uuid4().hex[:5]}"
    for command in ("get", "watch"):
        one_line_error(
            bertsweep(env, command, "nope", "-n", namespace),
            1,
            f"no BertSweep nope in namespace {namespace}",
        )
    one_line_error(
        bertsweep(env, "best", "nope", "-n", namespace, cwd=tmp_path),
        1,
        f"no BertSweep nope in namespace {namespace}",
        "no file or folder nope here either",
    )


def test_an_api_server_that_does_not_answer(env: dict[str, str], tmp_path: Path) -> None:
    config = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    port = free_port()  # nothing listens there
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    closed = tmp_path / "kubeconfig"
    closed.write_text(yaml.safe_dump(config))
    for args in (["list"], ["list", "-A"], ["get", SWEEP], ["watch", SWEEP]):
        one_line_error(
            bertsweep(env, *args, "--kubeconfig", str(closed)),
            2,
            f"cannot reach the Kubernetes API at https://127.0.0.1:{port}",
        )
    one_line_error(
        bertsweep(env, "best", SWEEP, "--kubeconfig", str(closed), cwd=tmp_path), 2, "cannot reach"
    )


def test_no_kubeconfig(env: dict[str, str], tmp_path: Path) -> None:
    bare = {k: v for k, v in env.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    bare["HOME"] = str(tmp_path)
    one_line_error(bertsweep(bare, "list"), 2, "no kubeconfig", "~/.kube/config")
    one_line_error(
        bertsweep({**bare, "KUBECONFIG": str(tmp_path / "missing")}, "get", SWEEP),
        2,
        "no kubeconfig",
        "missing",
    )
    one_line_error(
        bertsweep(env, "list", "--kubeconfig", str(tmp_path / "missing")), 2, "no such file"
    )


class NoCrds(http.server.BaseHTTPRequestHandler):
    """What kube-apiserver answers for a group nobody installed: 404, "404 page not found"."""

    def do_GET(self) -> None:
        body = b"404 page not found\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_api_server_without_the_crds(env: dict[str, str], tmp_path: Path) -> None:
    # The dev cluster is shared and must keep its CRDs: an API server of one answer stands in.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoCrds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
        config["clusters"][0]["cluster"] = {"server": f"http://127.0.0.1:{server.server_port}"}
        bare = tmp_path / "kubeconfig"
        bare.write_text(yaml.safe_dump(config))
        for args in (["list"], ["get", SWEEP], ["watch", SWEEP]):
            one_line_error(
                bertsweep(env, *args, "--kubeconfig", str(bare)),
                2,
                "has no BertSweep kind: the CRDs are not installed",
            )
    finally:
        server.shutdown()


# ---- the report of a cluster sweep --------------------------------------------------------------


def test_the_report_of_a_cluster_sweep_renders_as_a_local_one(swept: Swept, tmp_path: Path) -> None:
    from browser import chromium_page, render

    page = tmp_path / "cluster.html"
    done = bertsweep(swept.env, "report", SWEEP, "-n", swept.namespace, "--html", str(page))
    assert done.returncode == 0, done.stdout + done.stderr
    records = swept.trials()
    finished = [t for t in records if t["status"].get("phase") == "Succeeded"]
    with chromium_page(tmp_path / "profile") as browser:
        # Three trials on one parameter: too few for importance (a note instead of a figure).
        rendered = render(browser, page, ("history", "parallel", "curves", "importance"), 3)
    assert rendered.requests == [page.resolve().as_uri()], rendered.requests
    assert rendered.errors == [], rendered.errors
    drawn = rendered.figures
    assert max(drawn["history"]["points"]) == len(finished), drawn["history"]
    assert drawn["parallel"]["lines"] == len(finished), drawn["parallel"]
    assert drawn["curves"]["lines"] == len([t for t in records if t["status"].get("reports")])
    assert drawn["importance"] is None, "importance needs five finished trials"
    html = page.read_text()
    for record in records:
        assert record["metadata"]["name"] in html
    terminal = bertsweep(swept.env, "report", SWEEP, "-n", swept.namespace)
    assert terminal.returncode == 0 and f"{SWEEP}: Succeeded" in terminal.stdout, terminal.stderr
    missing = bertsweep(swept.env, "report", "nope", "-n", swept.namespace)
    one_line_error(missing, 1, "no BertSweep nope")
