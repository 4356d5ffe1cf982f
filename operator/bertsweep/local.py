"""The local runner (`bertsweep run`): the planner's decisions carried out with subprocesses.

Each trial is the real trainer as a child process, started from the trial template's command
with the same BERTSWEEP_* environment a pod gets. Metrics come from each trial's /metrics
endpoint over HTTP (the contract the operator reads through Prometheus), with the trial's
result file as the fallback for whatever the last scrape missed. This module owns the
processes and that HTTP; the decisions are `planner.plan()`'s, and what becomes of a trial
whose process ended is `outcomes.finish()`'s, as in the operator.

result.json is written (atomically) whenever the state changes: a trial is recorded, starts
or ends, or the sweep's phase or counts change; not on every poll. A runner killed at any moment, by
SIGKILL too, leaves a whole result that `bertsweep run --resume DIR` continues from
(`runs.py` says what a resumed run keeps and starts again). Trainers die with the runner: on
Linux each one gets SIGTERM from the kernel when its runner exits, however it exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bertsweep import contract
from bertsweep.api import ManifestError, SweepSpec, SweepStatus, Trial, TrialPhase
from bertsweep.contract import Reason, TrialResult
from bertsweep.events import shown
from bertsweep.outcomes import end, exit_outcome, finish, observed
from bertsweep.planner import Plan, plan
from bertsweep.runs import RecordedRun, earlier_sweep, read_run
from bertsweep.warm import WarmHistory, warm_history

POLL_SECONDS = 1.0
# How long a finished trainer waits for one last scrape; ours comes within a poll.
SCRAPE_WAIT_SECONDS = 10
STOP_GRACE_SECONDS = 30


def resolve_reference(value: str, base: Path) -> str:
    """A model or data reference made absolute against the manifest's folder when it names a
    file or folder there; hub ids and `pkg:` references pass through."""
    if value.startswith("pkg:") or Path(value).is_absolute():
        return value
    candidate = base / value
    return str(candidate.resolve()) if candidate.exists() else value


def localize(spec: SweepSpec, base: Path) -> SweepSpec:
    """The spec with relative data paths and model folders resolved against `base`."""

    def data_path(value: str) -> str:
        return value if value.startswith("pkg:") else str((base / value).resolve())

    validation, test = spec.dataset.validation, spec.dataset.test
    dataset = spec.dataset.model_copy(
        update={
            "train": data_path(spec.dataset.train),
            "validation": None if validation is None else data_path(validation),
            "test": None if test is None else data_path(test),
        }
    )
    output = spec.output
    if output.path is not None:
        output = output.model_copy(update={"path": str((base / output.path).resolve())})
    warm = spec.warm_start
    if warm is not None:
        warm = warm.model_copy(update={"sweeps": [str((base / s).resolve()) for s in warm.sweeps]})
    parameters = [
        p.model_copy(update={"values": [resolve_reference(str(v), base) for v in p.values or []]})
        if p.name == "model"
        else p
        for p in spec.parameters
    ]
    return spec.model_copy(
        update={
            "model": resolve_reference(spec.model, base),
            "dataset": dataset,
            "parameters": parameters,
            "output": output,
            "warm_start": warm,
        }
    )


RESULT_FILE = "result.json"


def read_recorded_run(folder: Path) -> RecordedRun:
    """The run recorded in `folder` (its result.json). ManifestError, naming the folder, when
    there is none or it cannot be read."""
    path = folder / RESULT_FILE
    if not folder.is_dir():
        raise ManifestError(f"{folder}: no such folder")
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{folder} holds no {RESULT_FILE}: not the output of a run") from None
    except (OSError, ValueError) as error:
        raise ManifestError(f"cannot read {path}: {error}") from None
    return read_run(document, str(path))


def local_warm_history(sweep: str, spec: SweepSpec, output: Path) -> WarmHistory:
    """The warm start `spec.warmStart` asks for (localized: absolute folders), read once from
    the earlier runs' folders. ManifestError for a folder that does not exist or holds no
    result (a typo would otherwise start a cold sweep), or that is this run's own output."""
    if spec.warm_start is None:
        return WarmHistory()
    earlier = []
    for folder in spec.warm_start.sweeps:
        if Path(folder).resolve() == output.resolve():
            raise ManifestError(
                f"spec.warmStart.sweeps: {folder} is this run's own output folder "
                "(to continue a run, use --resume)"
            )
        run = read_recorded_run(Path(folder))
        earlier.append(earlier_sweep(folder, run))
    return warm_history(sweep, spec, earlier)


def _die_with_runner() -> Callable[[], None] | None:
    """For `Popen(preexec_fn=)`, on Linux: the kernel sends the trainer SIGTERM when the
    runner that started it exits, however it exits (SIGKILL included), so that no trainer
    outlives its runner and writes into a folder a resumed run has given to a new attempt."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    runner = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != runner:  # the runner died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    port: int
    result_file: Path
    log: Any
    stop_sent: float | None = None
    observation: contract.Observation = field(default_factory=contract.Observation)


@dataclass
class LocalRunner:
    """Runs one sweep to its end on this machine."""

    sweep: str
    spec: SweepSpec
    output: Path
    workers: int | None = None
    on_update: Callable[[SweepStatus, list[Trial], Mapping[str, contract.Observation]], None] = (
        lambda *_: None
    )
    on_event: Callable[[str], None] = lambda _: None
    trials: dict[str, Trial] = field(default_factory=dict)
    """The sweep's trial records: empty for a new run; a resumed run's (`runs.resumed_trials`:
    the ones to start again are Pending)."""
    status: SweepStatus = field(default_factory=SweepStatus)
    warm: WarmHistory = field(default_factory=WarmHistory)
    """Earlier runs' trials to learn from (`local_warm_history`) and the WarmStarted condition."""
    _processes: dict[str, _Process] = field(default_factory=dict)
    _written: object = None

    def run(self) -> SweepStatus:
        """Run until the planner says the sweep has ended and every trial process has exited."""
        if self.workers is not None:
            self.spec = self.spec.model_copy(update={"parallelism": self.workers})
        self.output.mkdir(parents=True, exist_ok=True)
        try:
            # Generous: a trainer busy on both cores can be slow to answer, and a scrape that
            # times out may be the one its final wait was counting on.
            with httpx.Client(timeout=5.0) as http:
                while True:
                    self._observe(http)
                    self._reconcile()
                    self.on_update(
                        self.status,
                        self._ordered(),
                        {n: p.observation for n, p in self._processes.items()},
                    )
                    if self.status.phase.finished and not self._processes:
                        self._finalize()
                        return self.status
                    time.sleep(POLL_SECONDS)
        finally:
            self._kill_all()
            self.write_result()

    def _state(self) -> object:
        """What a result.json must be rewritten for when it changes: each trial's phase and
        attempt, the sweep's phase and counts (not each poll's new reports)."""
        return (
            tuple((t.name, t.phase, t.retries) for t in self._ordered()),
            self.status.phase,
            self.status.trials,
        )

    def _record(self) -> None:
        """Write result.json if the state changed since it was last written."""
        state = self._state()
        if state != self._written:
            self.write_result()
            self._written = state

    # ---- observe ---------------------------------------------------------------------------

    def _observe(self, http: httpx.Client) -> None:
        for name, process in list(self._processes.items()):
            exited = process.popen.poll() is not None
            self._scrape(http, name, process)
            if exited:
                self._finish(name, process)
            elif process.stop_sent and time.monotonic() - process.stop_sent > STOP_GRACE_SECONDS:
                process.popen.kill()

    def _scrape(self, http: httpx.Client, name: str, process: _Process) -> None:
        try:
            text = http.get(f"http://127.0.0.1:{process.port}/metrics").text
        except httpx.HTTPError:
            return  # not listening yet, or gone: the result file covers the end
        process.observation = contract.observe_trial(contract.parse_exposition(text))
        self.trials[name] = observed(self.trials[name], process.observation)

    def _finish(self, name: str, process: _Process) -> None:
        del self._processes[name]
        process.log.close()
        result = TrialResult.parse(_read_text(process.result_file))
        log_tail = _tail(process.result_file.parent / "trainer.log")
        outcome = exit_outcome(process.popen.returncode, result, log_tail, finished=_now())
        finished = finish(self.trials[name], outcome, _now())
        self.trials[name] = finished
        self.on_event(_describe_end(finished, self.spec))

    # ---- decide and act ----------------------------------------------------------------------

    def _plan(self) -> Plan:
        """The planner's decision on the records as they are, the earlier runs' trials its
        history, the WarmStarted condition added to its status."""
        decision = plan(
            self.sweep, self.spec, self._ordered(), _now(), self.status, history=self.warm.trials
        )
        if self.warm.condition is None:
            return decision
        condition = self.warm.condition.carried_from(self.status.conditions, _now())
        conditions = [*decision.status.conditions, condition]
        return replace(
            decision, status=decision.status.model_copy(update={"conditions": conditions})
        )

    def _reconcile(self) -> None:
        decision = self._plan()
        for name, message in decision.prune.items():
            self._stop(name, Reason.pruned, message)
            self.on_event(f"{name} pruned: {message}")
        for name in decision.stop:
            self._stop(name, Reason.sweep_ended, "the sweep ended before this trial finished")
        # Recorded before started (as the operator creates a trial's record before its pod):
        # a runner killed in between leaves a Pending trial that a resumed run starts.
        for trial in decision.create:
            self.trials[trial.name] = trial
        self.status = decision.status
        self._record()
        free = self.spec.parallelism - len(self._processes)
        for trial in self._ordered():
            if free <= 0:
                break
            if trial.phase is TrialPhase.pending and trial.name not in self._processes:
                self._start(trial)
                free -= 1
        self._record()

    def _start(self, trial: Trial) -> None:
        directory = self.output / "trials" / trial.name
        # A trial started again (a resumed run) begins with nothing of its last attempt.
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        models = self._models()
        if models is not None and trial.retries:
            for leftover in (trial.name, f"{contract.PARTIAL_PREFIX}{trial.name}"):
                shutil.rmtree(Path(models.root) / leftover, ignore_errors=True)
        result_file = directory / "result.json"
        port = _free_port()
        threads = max(1, (os.cpu_count() or 1) // self.spec.parallelism)
        env = {
            **os.environ,
            **{e.name: e.value for e in self.spec.trial_template.env if e.value is not None},
            **contract.trial_environment(self.sweep, self.spec, trial, self._models()),
            contract.ENV_METRICS_ADDR: "127.0.0.1",
            contract.ENV_METRICS_PORT: str(port),
            contract.ENV_RESULT_FILE: str(result_file),
            contract.ENV_SCRAPE_WAIT: str(SCRAPE_WAIT_SECONDS),
            # Trials share the machine's cores; oversubscribed BLAS threads make all of them slow.
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
        }
        command = self._command()
        log = (directory / "trainer.log").open("wb")
        popen = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_runner(),
        )
        self._processes[trial.name] = _Process(popen, port, result_file, log)
        self.trials[trial.name] = trial.model_copy(
            update={"phase": TrialPhase.running, "start_time": _now()}
        )
        self.on_event(f"{trial.name} started: {_format_parameters(trial.parameters)}")

    def _models(self) -> contract.ModelStore | None:
        """DIR/models/ unless the spec names a folder (made absolute by `localize`)."""
        root = self.spec.output.path or str((self.output / "models").resolve())
        return contract.model_store(self.spec, root)

    def _finalize(self) -> None:
        """Once every trial has ended: keep exactly the best models, and measure them on the
        test data (the trainer's finalize task, as a process of its own)."""
        models = self._models()
        if models is None:
            return
        kept = [s.name for s in self.status.leaderboard[: models.keep] if s.model_path]
        directory = self.output / "finalize"
        directory.mkdir(parents=True, exist_ok=True)
        result_file = directory / "result.json"
        result_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            **{e.name: e.value for e in self.spec.trial_template.env if e.value is not None},
            **contract.finalize_environment(self.sweep, self.spec, models, kept),
            contract.ENV_METRICS_ADDR: "127.0.0.1",
            contract.ENV_METRICS_PORT: "0",
            contract.ENV_RESULT_FILE: str(result_file),
            contract.ENV_SCRAPE_WAIT: "0",
            "TOKENIZERS_PARALLELISM": "false",
        }
        if self.spec.dataset.test:
            self.on_event(f"evaluating the kept models on the test data: {', '.join(kept)}")
        with (directory / "trainer.log").open("wb") as log:
            code = subprocess.run(
                self._command(), env=env, stdout=log, stderr=subprocess.STDOUT, check=False
            ).returncode
        result = TrialResult.parse(_read_text(result_file))
        if code != 0 or result is None:
            why = (result.message if result else None) or _tail(directory / "trainer.log")
            self.on_event(f"finalizing the models failed (exit code {code}): {why}")
        tested = result.test_metrics if result else {}
        for name, trial in self.trials.items():
            present = trial.model_path is not None and Path(trial.model_path).is_dir()
            self.trials[name] = trial.model_copy(
                update={
                    "model_path": trial.model_path if present else None,
                    "test_metrics": tested.get(name, {}),
                }
            )
        # The status again, now that the kept trials carry their test metrics.
        self.status = self._plan().status

    def _command(self) -> list[str]:
        template = self.spec.trial_template
        executable, *rest = template.command
        # The trainer installed beside this interpreter (the project's venv) comes first.
        beside = Path(sys.executable).parent / executable
        found = str(beside) if beside.exists() else shutil.which(executable)
        if found is None:
            raise FileNotFoundError(f"trial command {executable!r} not found on PATH")
        return [found, *rest, *template.args]

    def _stop(self, name: str, reason: str, message: str) -> None:
        self.trials[name] = end(self.trials[name], TrialPhase.pruned, reason, message, _now())
        process = self._processes.get(name)
        if process is not None and process.stop_sent is None:
            process.stop_sent = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                process.popen.send_signal(signal.SIGTERM)

    def _kill_all(self) -> None:
        """On interrupt or error: no trainer outlives the runner."""
        for process in self._processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGTERM)
        for process in self._processes.values():
            try:
                process.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.popen.pid, signal.SIGKILL)
            process.log.close()

    def _ordered(self) -> list[Trial]:
        return sorted(self.trials.values(), key=lambda t: t.index)

    # ---- report ------------------------------------------------------------------------------

    def result(self) -> dict[str, Any]:
        """result.json: the sweep's spec (as run), the same status a BertSweep carries, and
        every trial's whole record."""
        best = self.status.best_trial
        return {
            "sweep": self.sweep,
            "phase": self.status.phase.value,
            "bestTrial": best.wire() if best else None,
            "paretoFront": [s.wire() for s in self.status.pareto_front],
            "spec": self.spec.wire(),
            "status": self.status.wire(),
            "trials": [t.model_dump(mode="json", by_alias=True) for t in self._ordered()],
        }

    def write_result(self) -> Path:
        path = self.output / RESULT_FILE
        temporary = path.with_suffix(".tmp")
        with temporary.open("w") as stream:
            stream.write(json.dumps(self.result(), indent=2) + "\n")
            # On disk before it replaces the last one: a machine that goes down right after
            # must not find an empty result where a whole one was.
            stream.flush()
            os.fsync(stream.fileno())
        temporary.replace(path)
        return path


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return " | ".join(text[-lines:]) or "no output"


def _describe_end(trial: Trial, spec: SweepSpec) -> str:
    if trial.phase is TrialPhase.failed:
        return f"{trial.name} failed: {trial.reason}: {trial.message}"
    return f"{trial.name} {trial.phase.value.lower()}: {shown(trial, spec)}"


def _format_parameters(parameters: Mapping[str, object]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in parameters.items()
    )
