"""Simulated trainer pods run inside the pod runner: a thread per pod instead of a process.

A simulated trial (``bertsweep-trainer --simulate SECONDS``) loads no model, but as a process it
still costs an interpreter, pydantic and prometheus_client: about 0.45 s of CPU to start, which at
50 trials a second is all of a 2-core machine. With ``--simulate-in-process`` the runner plays
such a pod itself, by calling the trainer's own pieces: ``bertsweep_trainer.config.parse_config``
over the container's argv and environment (exactly as built for a process), the metrics endpoint
``bertsweep_trainer.metrics.TrialMetrics`` bound on the pod's IP (Prometheus scrapes the same
series at the same target), ``bertsweep_trainer.simulate.simulate`` for the learning curve, and
``TrialResult.render()`` written to the pod's termination-message file. The order of
``bertsweep_trainer.main.run_trial`` is kept: configuration, /metrics, the simulation, the final
values, the result, the wait for a last scrape (``BERTSWEEP_SCRAPE_WAIT_SECONDS``), exit code 0
(completed or stopped) or 1 (failed).

What is NOT the same as a process, and why it does not matter for a simulated trial: there is no
pid (the containerID is ``bertsweep-inprocess://RUNNER_PID-N``), no private mount namespace
(nothing is mounted: the simulation reads no file and writes only the result, which goes
straight to the termination-message file), and the trial shares the runner's CPU time and
memory. The trainer's log lines go to the pod's log file as a process's would. And the code is
the trainer as the runner imported it when it started, where a process runs the checkout as it is
when the pod starts: after changing the trainer, restart the pod runner (as one would rebuild an
image).

Signals keep the trainer's meaning (``bertsweep_trainer.signals.StopRequest``): SIGTERM asks the
trial to stop (or, once it is finishing, to stop waiting for a scrape); SIGKILL, sent after the
grace period, abandons it at once with exit code 137 (a thread cannot be killed, but a simulated
trial only ever waits, so it returns promptly and its late result is discarded).

``simulated_argv`` (which pods qualify) is pure; ``plan_trial`` runs the trainer's parser.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bertsweep import contract
from bertsweep.contract import ResultStatus, TrialResult
from bertsweep_trainer.config import TrialConfig, parse_config, result_file_from
from bertsweep_trainer.errors import TrialError, one_line
from bertsweep_trainer.metrics import TrialMetrics
from bertsweep_trainer.signals import StopRequest
from bertsweep_trainer.simulate import simulate

log = logging.getLogger("podrunner")

TRAINER = "bertsweep-trainer"
# Addresses that mean "every interface": in a pod that is the pod's own address (its network
# namespace has no other), here it would be the whole host, shared by every pod.
WILDCARD = frozenset({"", "0.0.0.0", "::", "[::]"})
KILLED = -signal.SIGKILL  # Popen's return code for a process killed by SIGKILL


def simulated_argv(argv: Sequence[str], env: Mapping[str, str]) -> list[str] | None:
    """The trainer's arguments (after the program) when ``argv`` (resolved, expanded) runs the
    simulated trainer: the program is ``bertsweep-trainer`` and ``--simulate`` or
    ``BERTSWEEP_SIMULATE_SECONDS`` asks for a simulation. None for any other command, which
    then runs as a process. Whether the rest of the configuration qualifies is ``plan_trial``'s
    to say."""
    if not argv or os.path.basename(argv[0]) != TRAINER:
        return None
    args = list(argv[1:])
    asked = any(a == "--simulate" or a.startswith("--simulate=") for a in args)
    if not asked and not env.get(contract.ENV_SIMULATE):
        return None
    return args


@dataclass(frozen=True)
class TrialPlan:
    """A pod the runner plays itself: the trainer's configuration, or the configuration error
    the trainer would fail with (the process would write it as its result and exit 1)."""

    config: TrialConfig | None
    error: TrialError | None = None


def plan_trial(
    args: Sequence[str], env: Mapping[str, str], termination_path: str
) -> TrialPlan | None:
    """What the trainer makes of ``args`` and ``env``, if the runner can play it: a training
    task that is simulated and writes its result to the container's termination-message path
    (``termination_path``; anything else would need the pod's mounts). None otherwise: the pod
    runs as a process, exactly as without the switch."""
    try:
        config = parse_config(args, env)
    except TrialError as error:
        if result_file_from(args, env) != termination_path:
            return None
        return TrialPlan(config=None, error=error)
    if config.task != contract.TASK_TRAIN or config.simulate is None:
        return None
    if config.result_file != termination_path:
        return None
    return TrialPlan(config=config)


def bind_address(config_addr: str, pod_ip: str) -> str:
    """Where the in-process endpoint listens: the pod's IP for a wildcard address."""
    return pod_ip if config_addr in WILDCARD else config_addr


def failure(error: TrialError) -> TrialResult:
    """The result the trainer writes for a configuration that does not parse (main.py's
    ``run_trial``: ``_failure(error.reason, error.message)``, no faulty parameters)."""
    return TrialResult(
        status=ResultStatus.failed, reason=error.reason, message=one_line(error.message)
    )


_ids = itertools.count(1)  # next() on a count is atomic under the GIL


def next_container_id() -> str:
    return f"bertsweep-inprocess://{os.getpid()}-{next(_ids)}"


class SimulatedPod:
    """One simulated trial played in the runner's process: ``run`` (in the pod's own thread)
    does what the trainer's process would do and returns its Popen-style return code;
    ``signal`` delivers a signal as the trainer's handler would take it."""

    def __init__(self, plan: TrialPlan, pod_ip: str, log_path: Path, term_path: Path) -> None:
        self.plan = plan
        self.pod_ip = pod_ip
        self.log_path = log_path
        self.term_path = term_path
        self.container_id = next_container_id()
        self.stop = StopRequest()
        self.killed = threading.Event()
        self.metrics: TrialMetrics | None = None

    # ------------------------------------------------------------------------ signals
    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            self.killed.set()
            # Whatever it waits for, it stops waiting now.
            self.stop.requested.set()
            self.stop.abandon_wait.set()
            return
        if sig in (signal.SIGTERM, signal.SIGINT):
            # Exactly what the trainer's handler does with it (a stop, or once it is finishing,
            # an end to the wait for the last scrape); it sets flags only.
            self.stop._handle(sig, None)

    # ------------------------------------------------------------------------ the trial
    def run(self) -> int:
        with open(self.log_path, "a", encoding="utf-8") as out:
            try:
                return self._run(out)
            except Exception as error:
                # A bug here must end this pod, not the runner: as a crashed trainer would.
                log.exception("in-process trial %s failed", self.log_path.name)
                self._log(out, f"ERROR podrunner: in-process trial crashed: {error!r}")
                return KILLED if self.killed.is_set() else 1

    def _run(self, out: TextIO) -> int:
        if self.killed.is_set():
            return KILLED  # killed before it began (a deletion with no grace period)
        plan = self.plan
        if plan.config is None:
            assert plan.error is not None
            result = failure(plan.error)
            self._log(out, f"bertsweep-trainer: {plan.error.reason.value}: {result.message}")
            return self._finish(out, result, None)
        config = plan.config
        assert config.simulate is not None
        metrics = TrialMetrics(config.sweep, config.trial)
        addr = bind_address(config.metrics_addr, self.pod_ip)
        try:
            port = metrics.start(addr, config.metrics_port)
        except OSError as error:
            result = TrialResult(
                status=ResultStatus.failed,
                reason=contract.Reason.invalid_config,
                message=f"cannot serve /metrics on {addr}:{config.metrics_port}: {error}",
            )
            self._log(out, f"bertsweep-trainer: {result.reason}: {result.message}")
            return self._finish(out, result, None)
        self.metrics = metrics
        self._log(
            out,
            f"INFO trial {config.trial} of sweep {config.sweep}: /metrics on port {port} "
            "(simulated, run in-process by the dev cluster's pod runner)",
        )

        def record(step: int, epoch: float, values: dict[str, float]) -> None:
            metrics.set_progress(step, epoch)
            metrics.record_eval(step, epoch, values)

        outcome = simulate(config.parameters, config.simulate, record, self.stop.requested.wait)
        # From here on, a signal only cuts the wait for the last scrape (as in the trainer).
        self.stop.finishing = True
        if self.killed.is_set():
            return KILLED
        if outcome.status is not ResultStatus.failed:
            metrics.set_progress(outcome.step, outcome.epoch)
            metrics.set_final(outcome.metrics)
        return self._finish(out, outcome, config)

    def _finish(self, out: TextIO, result: TrialResult, config: TrialConfig | None) -> int:
        if self.killed.is_set():
            return KILLED
        # As bertsweep_trainer.result.write_result writes it: the rendered result and a newline.
        self.term_path.write_text(result.render() + "\n", encoding="utf-8")
        values = " ".join(f"{k}={v:.4f}" for k, v in result.metrics.items())
        self._log(
            out,
            f"INFO trial {config.trial if config else '?'} {result.status.value} at step "
            f"{result.step}: {values or result.message}",
        )
        if config is not None and self.metrics is not None:
            self.metrics.wait_for_scrape(config.scrape_wait, abandon=self.stop.abandon_wait.is_set)
        if self.killed.is_set():
            return KILLED
        return 1 if result.status is ResultStatus.failed else 0

    def close(self) -> None:
        """Stop serving /metrics (what the process's exit does to its socket). Blocks up to the
        server's poll interval (0.5 s): call it once the pod's final status is out."""
        metrics, self.metrics = self.metrics, None
        if metrics is not None:
            metrics.stop()

    @staticmethod
    def _log(out: TextIO, line: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        out.write(f"{stamp} {line}\n")
        out.flush()
