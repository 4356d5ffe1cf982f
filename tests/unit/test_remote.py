"""The CLI's cluster commands and `best`, with plain data: the best trial's whole
configuration and its three formats, the flags and their quoting, TARGET as a path or a
sweep's name, kubeconfig contexts, `list`'s rows, `get`'s order, and `watch` over a fake API.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from objects import SWEEP_UID, T0, sweep_obj, trial_obj
from rich.console import Console

from bertsweep import best, cli, remote
from bertsweep.api import TrialSummary
from bertsweep.kube import Kube, KubeconfigError, Unreachable, _pick_context

pytestmark = pytest.mark.unit


def summary(**changes: Any) -> TrialSummary:
    fields: dict[str, Any] = {
        "name": "s-0002",
        "parameters": {"learning_rate": 3e-05, "lr_scheduler_type": "cosine"},
        "metrics": {"eval_accuracy": 0.81},
    }
    fields.update(changes)
    return TrialSummary.model_validate(fields)


SPEC = {"model": "bert-base-uncased", "fixed": {"fp16": True, "weight_decay": 0.01}}


def parse_flags(text: str) -> dict[str, Any]:
    """Flags back into values, as a parser that knows each flag's type would read them."""
    words = shlex.split(text)
    values: dict[str, Any] = {}
    while words:
        flag = words.pop(0)
        assert flag.startswith("--"), flag
        name, _, value = flag[2:].partition("=")
        if not _:
            value = words.pop(0)
        try:
            values[name] = json.loads(value)
        except ValueError:
            values[name] = value
    return values


# ---- the whole configuration ------------------------------------------------------------------


def test_the_configuration_holds_the_fixed_values_and_the_model() -> None:
    config = best.configuration("s", SPEC, summary(modelPath="/models/s-0002"))
    assert config.model == "bert-base-uncased"
    assert config.parameters == {
        "learning_rate": 3e-05,
        "lr_scheduler_type": "cosine",
        "fp16": True,
        "weight_decay": 0.01,
    }
    assert config.wire() == {
        "sweep": "s",
        "name": "s-0002",
        "model": "bert-base-uncased",
        "parameters": config.parameters,
        "metrics": {"eval_accuracy": 0.81},
        "modelPath": "/models/s-0002",
    }


def test_a_searched_model_is_the_model_and_not_a_parameter() -> None:
    trial = summary(parameters={"model": "pkg:x/m", "learning_rate": 1e-4})
    config = best.configuration("s", SPEC, trial)
    assert config.model == "pkg:x/m"
    assert "model" not in config.parameters
    assert best.as_args(config)[:2] == ["--model", "pkg:x/m"]


def test_a_searched_value_wins_over_a_fixed_one_of_the_same_name() -> None:
    spec = {"model": "m", "fixed": {"learning_rate": 0.1, "seed": 3}}
    config = best.configuration("s", spec, summary())
    assert config.parameters["learning_rate"] == 3e-05 and config.parameters["seed"] == 3


def test_test_metrics_appear_when_the_trial_has_them() -> None:
    assert "testMetrics" not in best.configuration("s", SPEC, summary()).wire()
    with_test = best.configuration("s", SPEC, summary(testMetrics={"eval_accuracy": 0.7}))
    assert with_test.wire()["testMetrics"] == {"eval_accuracy": 0.7}


# ---- formats ------------------------------------------------------------------------------------


def test_args_are_flags_with_values_as_json_scalars_and_strings_bare() -> None:
    config = best.configuration("s", SPEC, summary())
    text = best.render(config, best.Format.args)
    assert text == (
        "--model bert-base-uncased --learning_rate 3e-05 --lr_scheduler_type cosine "
        "--fp16 true --weight_decay 0.01\n"
    )
    assert parse_flags(text) == {"model": config.model, **config.parameters}


@pytest.mark.parametrize(
    "value",
    [
        "two words",
        "it's",
        'a "quote"',
        "$HOME",
        "",
        "-starts-with-dash",
        "--flag",
        -1,
        -0.5,
        16,
        2.0,
        1e-7,
        False,
        "ünïcode",
    ],
)
def test_args_round_trip_through_a_shell(value: Any) -> None:
    config = best.configuration("s", {"model": "m", "fixed": {"x": value}}, summary())
    parsed = parse_flags(best.render(config, best.Format.args))
    assert parsed["x"] == value and type(parsed["x"]) is type(value)


def test_a_value_starting_with_a_dash_is_attached_to_its_flag() -> None:
    config = best.configuration("s", {"model": "m", "fixed": {"x": "-y", "n": -1}}, summary())
    args = best.as_args(config)
    assert "--x=-y" in args and "--n=-1" in args


def test_json_and_yaml_hold_the_same_document() -> None:
    config = best.configuration("s", SPEC, summary())
    assert json.loads(best.render(config, best.Format.json)) == config.wire()
    assert yaml.safe_load(best.render(config, best.Format.yaml)) == config.wire()


# ---- local results -------------------------------------------------------------------------------


def local_result(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "sweep": "quickstart",
        "phase": "Succeeded",
        "bestTrial": summary().wire(),
        "spec": {"model": "pkg:gt/m", "fixed": {"num_train_epochs": 2}, "parameters": []},
        "status": {},
        "trials": [],
    }
    result.update(changes)
    return result


def test_a_local_result_gives_the_fixed_values_of_its_spec() -> None:
    config = best.from_result(local_result(), "r")
    assert config is not None and config.spec_known
    assert config.model == "pkg:gt/m" and config.parameters["num_train_epochs"] == 2


def test_a_result_without_a_spec_says_what_it_lacks() -> None:
    result = local_result()
    del result["spec"]
    config = best.from_result(result, "r")
    assert config is not None and not config.spec_known and config.model is None
    assert best.from_result(local_result(bestTrial=None), "r") is None
    with pytest.raises(best.ResultError, match="bestTrial"):
        best.from_result(local_result(bestTrial={"name": "x"}), "r")


def test_bertsweep_best_of_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "result.json").write_text(json.dumps(local_result()))
    assert cli.main(["best", str(tmp_path), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["parameters"] == {**summary().parameters, "num_train_epochs": 2}
    assert cli.main(["best", str(tmp_path / "result.json"), "--format", "args"]) == 0
    assert capsys.readouterr().out.startswith("--model pkg:gt/m --learning_rate 3e-05 ")
    assert cli.main(["best", str(tmp_path)]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["name"] == "s-0002"


def test_bertsweep_best_of_a_run_that_found_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "result.json").write_text(json.dumps(local_result(bestTrial=None)))
    assert cli.main(["best", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "quickstart: no trial succeeded\n"
    assert cli.main(["best", str(tmp_path / "missing") + "/"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_target_is_a_path_when_it_exists_else_a_sweep_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").mkdir()
    (tmp_path / "result.json").write_text("{}")
    assert best.target("quickstart") == Path("quickstart")
    assert best.target("result.json") == Path("result.json")
    assert best.target("rt-sentiment") is None
    assert best.target("sweep.v2") is None
    assert best.target("runs/quickstart") == Path("runs/quickstart")
    assert best.target("My_Run") == Path("My_Run")


# ---- kubeconfig ---------------------------------------------------------------------------------


def kubeconfig(path: Path, current: str | None, **contexts: str | None) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {
                "name": n,
                "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})},
            }
            for n, ns in contexts.items()
        ],
    }
    if current:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_context_and_its_namespace_are_found_as_kubectl_finds_them(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a", "dev", dev="team", other=None)
    second = kubeconfig(tmp_path / "b", "prod", dev="shadowed", prod="ops")
    assert _pick_context([first], None) == ("dev", "team")
    assert _pick_context([first], "other") == ("other", None)
    # Merged: the first file's current-context and definitions win.
    assert _pick_context([first, second], None) == ("dev", "team")
    assert _pick_context([second, first], None) == ("prod", "ops")
    assert _pick_context([second, first], "dev") == ("dev", "shadowed")
    with pytest.raises(KubeconfigError, match=r'no context "nope" \(contexts: dev, other\)'):
        _pick_context([first], "nope")
    with pytest.raises(KubeconfigError, match="sets no current-context"):
        _pick_context([kubeconfig(tmp_path / "c", None, x=None)], None)
    (tmp_path / "bad").write_text("{ not yaml")
    with pytest.raises(KubeconfigError, match="bad"):
        _pick_context([tmp_path / "bad"], None)


def test_the_kubeconfig_is_found_as_kubectl_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeconfigError, match=r"~/\.kube/config does not exist"):
        Kube.from_kubeconfig()
    with pytest.raises(KubeconfigError, match="no such file"):
        Kube.from_kubeconfig(str(tmp_path / "nope"))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'x'}:{tmp_path / 'y'}")
    with pytest.raises(KubeconfigError, match=r"\$KUBECONFIG names .*x, .*y"):
        Kube.from_kubeconfig()
    kubeconfig(tmp_path / "y", "dev", dev="team", other=None)
    kube = Kube.from_kubeconfig()
    assert (kube.namespace, kube.server) == ("team", "https://127.0.0.1:1")
    assert Kube.from_kubeconfig(context="other").namespace == "default"
    with pytest.raises(remote.RemoteError) as raised:
        remote.connect(context="missing")
    assert raised.value.code == remote.EXIT_USAGE
    assert remote.connect(namespace="mine").namespace == "mine"


# ---- list ---------------------------------------------------------------------------------------


def test_age_is_written_as_kubectl_writes_it() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    cases = {
        timedelta(seconds=45): "45s",
        timedelta(seconds=119): "119s",
        timedelta(minutes=3, seconds=20): "3m20s",
        timedelta(minutes=5): "5m",
        timedelta(minutes=42): "42m",
        timedelta(hours=5, minutes=30): "5h30m",
        timedelta(hours=20): "20h",
        timedelta(days=2, hours=3): "2d3h",
        timedelta(days=40): "40d",
        timedelta(days=800): "2y70d",
    }
    for delta, text in cases.items():
        assert remote.age(now - delta, now) == text
    assert remote.age(None, now) == "<unknown>"


def test_list_shows_what_kubectl_get_bertsweeps_shows() -> None:
    done = sweep_obj(
        status={
            "phase": "Succeeded",
            "done": "4/4",
            "bestObjective": 0.8125,
            "bestTrial": {"name": "s-0002", "parameters": {}, "metrics": {}},
        }
    )
    done["metadata"]["creationTimestamp"] = T0
    fresh = sweep_obj()
    fresh["metadata"].update(name="new-one", namespace="other")
    rows = [remote.sweep_row(done), remote.sweep_row(fresh)]
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    table = remote.list_table(rows, now, all_namespaces=True).splitlines()
    assert table[0].split() == [
        "NAMESPACE",
        "NAME",
        "PHASE",
        "DONE",
        "OBJECTIVE",
        "BEST",
        "BEST-TRIAL",
        "AGE",
    ]
    assert table[1].split() == [
        "ns",
        "s",
        "Succeeded",
        "4/4",
        "eval_accuracy",
        "0.8125",
        "s-0002",
        "60s",
    ]
    # A sweep the operator has not seen yet: no phase, as kubectl shows it.
    assert table[2].split() == ["other", "new-one", "eval_accuracy", "<unknown>"]
    assert "NAMESPACE" not in remote.list_table(rows, now, all_namespaces=False)
    assert rows[0].wire()["bestTrial"] == "s-0002"


# ---- get ---------------------------------------------------------------------------------------


def finished(index: int, value: float | None, phase: str = "Succeeded", **more: Any) -> Any:
    metrics = {"eval_accuracy": value} if value is not None else {}
    return trial_obj(index, {"phase": phase, "metrics": metrics, **more})


def test_the_leaderboard_ranks_succeeded_trials_first_then_the_rest_by_index() -> None:
    trials = [
        finished(0, 0.6),
        finished(1, None, "Failed", reason="OOMKilled", message="out of memory"),
        finished(2, 0.9),
        finished(3, 0.95, "Pruned", reason="Pruned"),
        trial_obj(4, {"phase": "Running"}),
        finished(5, 0.9),
        trial_obj(6, owner="an-earlier-sweep"),
        {**trial_obj(7), "spec": {"index": "x"}},
    ]
    view = remote.view_of(sweep_obj({"phase": "Running"}), trials)
    assert [t.name for t in view.ranked()] == [
        "s-0002",
        "s-0005",
        "s-0000",
        "s-0001",
        "s-0003",
        "s-0004",
    ]
    rows = remote.trial_rows(view)
    assert [(r["name"], r["phase"], r["objective"]) for r in rows[:3]] == [
        ("s-0002", "Succeeded", 0.9),
        ("s-0005", "Succeeded", 0.9),
        ("s-0000", "Succeeded", 0.6),
    ]
    assert rows[3]["reason"] == "OOMKilled"
    assert [u.name for u in view.unreadable] == ["s-0007"]
    console = Console(width=160, record=True)
    console.print(remote.show(view))
    text = console.export_text()
    assert "s-0001: OOMKilled: out of memory" in text and "Unreadable" in text


def test_a_sweep_whose_spec_cannot_be_read_still_shows_its_status() -> None:
    obj = sweep_obj({"phase": "Failed"}, maxTrials=0)
    view = remote.view_of(obj, [finished(0, 0.5)])
    assert view.spec is None and view.spec_problem and "maxTrials" in view.spec_problem
    assert [t.name for t in view.ranked()] == ["s-0000"]
    console = Console(width=160, record=True)
    console.print(remote.show(view))
    assert "cannot be read" in console.export_text()


# ---- watch ---------------------------------------------------------------------------------------


class FakeKube:
    """The part of Kube the CLI reads through, serving one look after another."""

    server = "https://fake:6443"
    namespace = "ns"

    def __init__(self, looks: list[Any]) -> None:
        """Each look: (sweep, trials), None (the sweep is not there), or an exception."""
        self.looks = looks
        self.current: Any = looks[0]

    @contextlib.contextmanager
    def reaching(self) -> Iterator[None]:
        yield

    def get_sweep(self, namespace: str, name: str) -> Any:
        self.current = self.looks.pop(0) if len(self.looks) > 1 else self.looks[0]
        if isinstance(self.current, Exception):
            raise self.current
        return None if self.current is None else self.current[0]

    def list_trials(self, namespace: str, sweep: str) -> list[Any]:
        return list(self.current[1])

    def serves_sweeps(self) -> bool:
        return True


def settled(phase: str) -> Any:
    return sweep_obj({"phase": phase, "observedGeneration": 1, "trials": {}})


def watching(looks: list[Any]) -> tuple[int, str]:
    console = Console(width=160, record=True, force_terminal=False)
    target = remote.Target(FakeKube(looks), "ns")  # type: ignore[arg-type]
    code = remote.watch(target, "s", console, interval=0, sleep=lambda _: None)
    return code, console.export_text()


def test_watch_follows_a_sweep_until_it_ends() -> None:
    running = sweep_obj({"phase": "Running", "observedGeneration": 1, "trials": {"running": 1}})
    code, text = watching(
        [
            (running, [trial_obj(0, {"phase": "Running"})]),
            (running, [trial_obj(0, {"phase": "Running"})]),
            # Succeeded, but a trial is still being stopped: not over yet.
            (settled("Succeeded"), [finished(0, 0.7), trial_obj(1, {"phase": "Running"})]),
            (settled("Succeeded"), [finished(0, 0.7), finished(1, 0.8, "Pruned", reason="P")]),
        ]
    )
    assert code == remote.EXIT_OK
    assert text.count("s-0000: Running") == 1
    assert "s-0000: Succeeded  eval_accuracy 0.7000" in text
    assert "s-0001: Pruned  eval_accuracy 0.8000  (P)" in text
    assert "Leaderboard" in text


def test_watch_of_a_failed_sweep_exits_1_and_a_deleted_one_is_not_found() -> None:
    assert watching([(settled("Failed"), [finished(0, None, "Failed")])])[0] == remote.EXIT_FAILED
    running = sweep_obj({"phase": "Running"})
    with pytest.raises(remote.NotFound, match="was deleted"):
        watching([(running, []), None])
    with pytest.raises(remote.NotFound, match="no BertSweep s in namespace ns"):
        watching([None])


def test_watch_waits_for_an_api_server_that_stops_answering_then_gives_up() -> None:
    running = sweep_obj({"phase": "Running"})
    down = Unreachable("cannot reach the Kubernetes API at https://fake:6443: refused")
    code, text = watching([(running, []), down, (settled("Succeeded"), [finished(0, 0.5)])])
    assert code == 0 and text.count("refused; trying again") == 1
    ticks = iter(range(0, 1000, 30))
    console = Console(width=160, record=True)
    target = remote.Target(FakeKube([(running, []), down]), "ns")  # type: ignore[arg-type]
    with pytest.raises(remote.RemoteError, match="refused"):
        remote.watch(target, "s", console, sleep=lambda _: None, clock=lambda: next(ticks))


def test_the_sweep_of_another_uid_is_not_read_as_ours() -> None:
    view = remote.view_of(sweep_obj(), [trial_obj(0, owner="other"), trial_obj(1, owner=SWEEP_UID)])
    assert [t.name for t in view.trials] == ["s-0001"]


def test_prefer_picks_the_cheapest_trial_within_the_tolerance_of_the_best() -> None:
    from bertsweep.api import TrialSummary
    from bertsweep.best import Preference, prefer, preferred

    def trial(name: str, accuracy: float, latency: float) -> TrialSummary:
        return TrialSummary(
            name=name,
            parameters={},
            metrics={"eval_accuracy": accuracy, "inference_latency_ms": latency},
        )

    front = [trial("a", 0.90, 30.0), trial("b", 0.895, 12.0), trial("c", 0.86, 3.0)]
    near = Preference("inference_latency_ms", 0.01)
    assert prefer(front, "eval_accuracy", True, near) == front[1]
    assert (
        prefer(front, "eval_accuracy", True, Preference("inference_latency_ms", 0.05)) == front[2]
    )
    assert prefer(front, "eval_accuracy", True, Preference("model_size_mb", 0.01)) is None
    status = {"paretoFront": [t.model_dump(mode="json", by_alias=True) for t in front]}
    spec = {"objectives": [{"metric": "eval_accuracy", "goal": "maximize"}]}
    assert preferred(status, spec, near, "here") == front[1]
