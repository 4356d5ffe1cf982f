"""`bertsweep run --resume DIR` and `spec.warmStart` end to end: real runs of the CLI, killed
(SIGINT, SIGKILL) and resumed, and warm-started from earlier runs' folders. The trials are the
real trainer simulating its training (`bertsweep-trainer --simulate`: the whole trial contract
without a model) where a model is not the point, and real fine-tuning where kept models are."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweeps import SweepManifest

pytestmark = pytest.mark.local

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def simulated(sweep_manifest: SweepManifest, name: str, seconds: float = 3, **spec: Any) -> Any:
    """The shared tiny sweep, its trials simulated: `seconds` each, two evaluations."""
    document = sweep_manifest(
        name,
        **{
            "parameters": [
                {
                    "name": "learning_rate",
                    "type": "float",
                    "min": 1e-5,
                    "max": 1e-3,
                    "scale": "log",
                },
                {"name": "num_hidden_layers", "type": "int", "min": 1, "max": 6},
            ],
            "fixed": {"num_train_epochs": 2},
            "maxTrials": 4,
            "parallelism": 2,
            **spec,
        },
    )
    document["spec"]["trialTemplate"]["args"] = ["--simulate", str(seconds)]
    return document


def write(folder: Path, document: Any, name: str = "sweep.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(document))
    return path


def bertsweep(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bertsweep"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
        cwd=cwd,
    )


def result_of(output: Path) -> Any:
    return json.loads((output / "result.json").read_text())


def phases(result: Any) -> dict[str, str]:
    return {t["name"]: t["phase"] for t in result["trials"]}


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(
    manifest: Path, output: Path, when: Callable[[Any], bool], how: signal.Signals
) -> subprocess.Popen[str]:
    """Start a run, and send it `how` once its result.json meets `when`."""
    runner = subprocess.Popen(
        [str(BIN / "bertsweep"), "run", str(manifest), "--output", str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        # As at a terminal: a test run started in the background (`make test &`, some CI
        # runners) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
        preexec_fn=_interruptible,
    )
    deadline = time.monotonic() + 300
    while True:
        assert runner.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "the run never reached the state to interrupt"
        try:
            if when(result_of(output)):
                break
        except (OSError, ValueError):
            pass  # not written yet (it is replaced whole, never half-written)
        time.sleep(0.2)
    runner.send_signal(how)
    runner.wait(timeout=60)
    return runner


def trainers_of(output: Path) -> list[int]:
    """Trainer processes still running for this output folder (their result file is in it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if f"BERTSWEEP_RESULT_FILE={output}".encode() in environ:
            found.append(int(proc.name))
    return found


def two_done_one_running(result: Any) -> bool:
    seen = list(phases(result).values())
    return seen.count("Succeeded") >= 2 and "Running" in seen


def snapshot(output: Path, names: list[str]) -> dict[str, tuple[int, str]]:
    """Each trial folder's log as it stands (when it was written, what it says)."""
    return {
        n: (
            (output / "trials" / n / "trainer.log").stat().st_mtime_ns,
            (output / "trials" / n / "trainer.log").read_text(),
        )
        for n in names
    }


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_run_resumes_keeping_what_finished_and_restarting_what_ran(
    tmp_path: Path, sweep_manifest: SweepManifest, how: signal.Signals
) -> None:
    manifest = write(tmp_path, simulated(sweep_manifest, "resumed"))
    output = tmp_path / "out"
    runner = interrupt(manifest, output, two_done_one_running, how)
    if how is signal.SIGINT:
        assert runner.returncode == 130
        assert runner.stdout is not None and "--resume" in runner.stdout.read()
    else:
        assert runner.returncode == -signal.SIGKILL
    # No trainer outlives its runner, however the runner ended.
    deadline = time.monotonic() + 30
    while trainers_of(output) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert trainers_of(output) == []

    before = result_of(output)
    finished = [n for n, p in phases(before).items() if p == "Succeeded"]
    running = [n for n, p in phases(before).items() if p in ("Running", "Pending")]
    assert len(finished) >= 2 and running
    records = {t["name"]: t for t in before["trials"]}
    logs = snapshot(output, finished)

    # More trials than the interrupted run asked for, and fewer at a time: both may change.
    document = simulated(sweep_manifest, "resumed", maxTrials=5)
    write(tmp_path, document)
    done = bertsweep("run", manifest, "--resume", output, "--workers", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"resuming: {len(finished)} finished trials kept, {', '.join(running)} started again"
        in (done.stdout)
    )

    after = result_of(output)
    assert after["phase"] == "Succeeded"
    trials = {t["name"]: t for t in after["trials"]}
    assert [t["index"] for t in after["trials"]] == [0, 1, 2, 3, 4], "no index taken twice"
    assert all(t["phase"] == "Succeeded" for t in after["trials"]), phases(after)
    assert after["status"]["trials"]["total"] == 5 and after["status"]["done"] == "5/5"
    for name in finished:
        # Kept as they were: not run again (their folder untouched), their record the same.
        assert trials[name] == records[name]
    assert snapshot(output, finished) == logs
    for name in running:
        again = trials[name]
        assert again["parameters"] == records[name]["parameters"]
        assert again["index"] == records[name]["index"] and again["retries"] == 1
        log = (output / "trials" / name / "trainer.log").read_text()
        assert log.count(f"trial {name} of sweep resumed") == 1, "one attempt in its folder"
    assert after["status"]["trials"]["retried"] == len(running)
    assert after["bestTrial"]["name"] in trials


def test_a_result_is_on_disk_before_the_run_ends(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    """Written when trials start and end, not only at the end: a run killed mid-way leaves
    every trial it started recorded."""
    manifest = write(tmp_path, simulated(sweep_manifest, "early", seconds=30, maxTrials=2))
    output = tmp_path / "out"
    runner = interrupt(
        manifest, output, lambda r: r["status"]["trials"]["running"] == 2, signal.SIGKILL
    )
    assert runner.returncode == -signal.SIGKILL
    result = result_of(output)
    assert result["phase"] == "Running"
    assert sorted(phases(result).values()) == ["Running", "Running"]


def test_a_run_that_cannot_be_resumed_is_refused_with_one_line(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    manifest = write(tmp_path, simulated(sweep_manifest, "refused", maxTrials=1, seconds=0.5))
    output = tmp_path / "out"
    assert bertsweep("run", manifest, "--output", output).returncode == 0

    def refused(*args: str | Path) -> str:
        done = bertsweep("run", *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done.stderr

    assert "not allowed with argument" in refused(manifest, "--resume", output, "--output", output)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert refused(manifest, "--resume", empty) == (
        f"error: {empty} holds no result.json: not the output of a run\n"
    )
    changed = simulated(sweep_manifest, "refused", maxTrials=1, seconds=0.5)
    changed["spec"]["parameters"][0]["max"] = 1e-2
    assert refused(write(tmp_path, changed, "changed.yaml"), "--resume", output) == (
        f"error: {output} ran another sweep: spec.parameters differs from the manifest (a "
        "resumed run may change only maxFailedTrials, maxRetries, maxTrials, metrics, "
        "parallelism, trialTemplate)\n"
    )
    other = simulated(sweep_manifest, "another", maxTrials=1, seconds=0.5)
    assert refused(write(tmp_path, other, "other.yaml"), "--resume", output) == (
        f"error: {output} holds a run of sweep 'refused', not 'another'\n"
    )


def test_a_run_warm_started_from_earlier_runs_learns_from_them_and_says_so(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    earlier = simulated(sweep_manifest, "tuning", seconds=1, maxTrials=3)
    assert (
        bertsweep("run", write(tmp_path, earlier), "--output", tmp_path / "runs/a").returncode == 0
    )
    # Another dataset: its trials measured another task.
    other = simulated(sweep_manifest, "tuning", seconds=1, maxTrials=2)
    other["spec"]["dataset"]["maxTrainSamples"] = 50
    done = bertsweep("run", write(tmp_path, other, "other.yaml"), "--output", tmp_path / "runs/b")
    assert done.returncode == 0

    # The same sweep name again: the earlier trials' names cannot collide with this run's.
    today = simulated(
        sweep_manifest, "tuning", seconds=1, maxTrials=2, warmStart={"sweeps": ["runs/a", "runs/b"]}
    )
    manifests = tmp_path / "manifests"
    manifest = write(manifests, today)
    # Paths are relative to the manifest's folder, as data paths are.
    (manifests / "runs").symlink_to(tmp_path / "runs")
    output = tmp_path / "runs/c"
    done = bertsweep("run", manifest, "--output", output)
    assert done.returncode == 0, done.stdout + done.stderr

    # Named by where they are (result.json records the folders so).
    a, b = (tmp_path / "runs/a").resolve(), (tmp_path / "runs/b").resolve()
    message = (
        f"3 of 5 earlier trials used; {a}: 3 of 3; {b}: another dataset (maxTrainSamples "
        "differs), none of its 2 trials used"
    )
    assert f"warm start: {message}" in " ".join(done.stdout.split())
    result = result_of(output)
    (condition,) = [c for c in result["status"]["conditions"] if c["type"] == "WarmStarted"]
    assert (condition["status"], condition["reason"]) == ("True", "EarlierTrialsUsed")
    assert condition["message"] == message
    # Only its own trials: two, though the three earlier ones finished and maxTrials is 2.
    assert [t["name"] for t in result["trials"]] == ["tuning-0000", "tuning-0001"]
    assert result["status"]["trials"]["total"] == 2 and result["status"]["done"] == "2/2"
    assert {s["name"] for s in result["status"]["leaderboard"]} <= {"tuning-0000", "tuning-0001"}
    assert "runs/a" not in done.stdout.split("Leaderboard")[-1]


def test_a_warm_start_from_a_folder_that_is_no_run_is_refused(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    document = simulated(sweep_manifest, "typo", maxTrials=1, warmStart={"sweeps": ["runs/nope"]})
    done = bertsweep("run", write(tmp_path, document), "--output", tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path / 'runs/nope'}: no such folder\n"
    assert not (tmp_path / "out").exists() or not (tmp_path / "out" / "result.json").exists()


def test_a_resumed_fine_tuning_run_keeps_the_models_its_finished_trials_saved(
    tmp_path: Path, sweep_manifest: SweepManifest
) -> None:
    """Real fine-tuning (MiniLM cut to one layer): the model a finished trial saved before
    the kill is the one the resumed run keeps; the trial that was running saves its own."""
    document = sweep_manifest("models", maxTrials=2, parallelism=1, output={"keep": 2})
    manifest = write(tmp_path, document)
    output = tmp_path / "out"

    def one_done_one_running(result: Any) -> bool:
        return sorted(phases(result).values()) == ["Running", "Succeeded"]

    runner = interrupt(manifest, output, one_done_one_running, signal.SIGKILL)
    assert runner.returncode == -signal.SIGKILL
    first = output / "models" / "models-0000"
    assert (first / "bertsweep-trial.json").is_file()
    saved = first.stat().st_mtime_ns, (first / "bertsweep-trial.json").read_text()

    done = bertsweep("run", manifest, "--resume", output)
    assert done.returncode == 0, done.stdout + done.stderr
    result = result_of(output)
    assert [(t["name"], t["phase"], t["retries"]) for t in result["trials"]] == [
        ("models-0000", "Succeeded", 0),
        ("models-0001", "Succeeded", 1),
    ]
    assert (first.stat().st_mtime_ns, (first / "bertsweep-trial.json").read_text()) == saved
    for t in result["trials"]:
        assert t["modelPath"] == str((output / "models" / t["name"]).resolve()), t
        marker = json.loads(Path(t["modelPath"], "bertsweep-trial.json").read_text())
        assert marker["metrics"]["eval_accuracy"] == t["metrics"]["eval_accuracy"]
    assert sorted(p.name for p in (output / "models").iterdir()) == [
        "models-0000",
        "models-0001",
    ], "nothing left of the interrupted attempt"
