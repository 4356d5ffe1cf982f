"""`bertsweep report RUN --html PAGE` on a real sweep, opened in a real browser.

The sweep is small and serial so that what becomes of each trial is certain: five grid points
train (MiniLM cut to one layer), a learning-rate scheduler TrainingArguments rejects fails the
sixth, and the seventh's learning rate (0.05) wrecks the model (eval_loss ~8 against ~0.69):
the median rule, which waits for five finished trials, stops it at its first evaluation.

The page is opened by Debian's Chromium (`make browser` installs it) driven by Playwright,
with a fresh profile and the browser's own background traffic off; every request the page
makes is recorded (and refused unless it is the page itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Page

from browser import chromium_page, render
from sweeps import build_sweep_manifest

pytestmark = pytest.mark.local

BIN = Path(sys.executable).parent
SCHEDULERS = ["linear", "cosine", "constant", "polynomial", "constant_with_warmup", "bogus"]
FIGURES = ("history", "parallel", "curves", "importance")


def bertsweep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bertsweep"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of the sweep above, run once for this module."""
    document = build_sweep_manifest(
        "report",
        algorithm={"name": "grid"},
        objective={"metric": "eval_loss", "goal": "minimize"},
        earlyStopping={"name": "median", "resource": "step", "minResource": 4, "minTrials": 5},
        parameters=[
            # A log-scale float and a categorical: the axes the report must draw sensibly.
            {"name": "learning_rate", "type": "float", "min": 5e-4, "max": 0.05}
            | {"scale": "log", "gridPoints": 2},
            {"name": "lr_scheduler_type", "type": "categorical", "values": SCHEDULERS},
        ],
        maxTrials=7,
        parallelism=1,  # serial: the median rule judges the wrecked trial, never a good one
        maxFailedTrials=1,
    )
    document["spec"]["fixed"]["eval_steps"] = 4
    document["spec"]["dataset"]["maxTrainSamples"] = 320  # 20 steps: time to stop it
    folder = tmp_path_factory.mktemp("report")
    (folder / "sweep.yaml").write_text(yaml.safe_dump(document))
    done = bertsweep("run", str(folder / "sweep.yaml"), "--output", str(folder / "out"))
    assert done.returncode == 0, done.stdout + done.stderr
    return folder / "out"


@pytest.fixture(scope="module")
def trials(run: Path) -> list[dict[str, Any]]:
    result = json.loads((run / "result.json").read_text())
    phases = [t["phase"] for t in result["trials"]]
    assert phases == ["Succeeded"] * 5 + ["Failed", "Pruned"], result["trials"]
    return list(result["trials"])


@pytest.fixture(scope="module")
def page_file(run: Path, trials: list[dict[str, Any]]) -> Path:
    page = run.parent / "page.html"
    done = bertsweep("report", str(run), "--html", str(page))
    assert done.returncode == 0, done.stdout + done.stderr
    return page


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Page]:
    with chromium_page(tmp_path / "profile") as page:
        yield page


def test_the_terminal_report_gives_each_failure_its_reason(
    run: Path, trials: list[dict[str, Any]]
) -> None:
    done = bertsweep("report", str(run))
    assert done.returncode == 0, done.stderr
    assert "report: Succeeded" in done.stdout and "InvalidParameter" in done.stdout
    assert "report-0005 failed: InvalidParameter:" in done.stdout
    assert "bogus" in done.stdout and "Pruned" in done.stdout


def test_the_page_opens_offline_and_draws_every_figure(
    page_file: Path, trials: list[dict[str, Any]], browser_page: Page
) -> None:
    rendered = render(browser_page, page_file, FIGURES, drawn_at_least=len(FIGURES))
    drawn = rendered.figures
    assert rendered.requests == [page_file.resolve().as_uri()], rendered.requests
    assert rendered.errors == [], rendered.errors
    for key in FIGURES:
        figure = drawn[key]
        assert figure is not None, f"figure-{key} is not on the page"
        assert figure["svgs"] >= 1 and figure["height"] > 150, (key, figure)
    finished = [t for t in trials if t["phase"] == "Succeeded"]
    # History: a point per finished trial, and the best-so-far line.
    history = drawn["history"]
    assert max(history["points"]) == len(finished), history
    assert "Best Value" in history["legend"]
    # Parallel coordinates: a line per finished trial across the objective and both
    # parameters, the categorical axis labelled with its values.
    parallel = drawn["parallel"]
    assert parallel["lines"] == len(finished), parallel
    assert {"eval_loss", "learning_rate", "lr_scheduler_type"} <= set(parallel["labels"])
    assert set(SCHEDULERS[:5]) <= set(parallel["labels"]), parallel["labels"]
    # Learning curves: every trial that reported, the pruned one cut at its first evaluations.
    curves = drawn["curves"]
    reported = [t for t in trials if t["reports"]]
    assert curves["lines"] == len(reported), curves
    pruned = next(t for t in trials if t["phase"] == "Pruned")
    label = next(text for text in curves["legend"] if text.startswith(pruned["name"]))
    assert "pruned at epoch" in label, curves["legend"]
    stopped = curves["legend"].index(label)
    assert curves["points"][stopped] == len(pruned["reports"]) < len(finished[0]["reports"])
    # Importance: a bar per parameter.
    assert drawn["importance"]["bars"] == 2, drawn["importance"]
    # The tables: the failure's reason and TrainingArguments' own words.
    failure = browser_page.locator("#trials tr", has_text="report-0005").inner_text()
    assert "Failed" in failure and "InvalidParameter" in failure and "bogus" in failure
