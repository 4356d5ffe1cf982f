"""`bertsweep-trainer`: run one trial and report it (entry point of the trainer image).

Order of work, cheapest checks first: configuration, the /metrics endpoint, the data (standard
library only), then torch, the model and training. At the end: final metrics, the result file,
a last scrape, and the exit code: 0 for a completed or stopped trial, 1 for a failed one.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from bertsweep.api import REPORTED_METRICS
from bertsweep.contract import TASK_TRAIN, Reason, ResultStatus, TrialResult
from bertsweep_trainer.config import TrialConfig, parse_config, result_file_from
from bertsweep_trainer.data import load_task
from bertsweep_trainer.errors import TrialError, one_line
from bertsweep_trainer.metrics import TrialMetrics
from bertsweep_trainer.models import keep_model
from bertsweep_trainer.params import model_override
from bertsweep_trainer.refs import trial_model
from bertsweep_trainer.result import write_result
from bertsweep_trainer.signals import StopRequest
from bertsweep_trainer.simulate import simulate
from bertsweep_trainer.threads import configure_threads

log = logging.getLogger("bertsweep_trainer")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: run the trial, then leave at once.

    Once the result file is written and the output flushed there is nothing left to clean
    up, while interpreter teardown (garbage-collecting the model, the data and torch's
    state) was measured at 0.5 to 3 seconds: time a pruned trial's pod would hold its node.
    """
    code = run_trial(argv)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_trial(argv: Sequence[str] | None = None) -> int:
    """The whole trial; returns the exit code (0 completed or stopped, 1 failed)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    stop = StopRequest()
    stop.install()
    try:
        config = parse_config(argv, os.environ)
    except TrialError as error:
        outcome = _failure(error.reason, error.message)
        write_result(result_file_from(argv, os.environ), outcome)
        return 1

    configure_threads(os.environ)
    metrics = TrialMetrics(config.sweep, config.trial)
    try:
        port = metrics.start(config.metrics_addr, config.metrics_port)
    except OSError as error:
        write_result(
            config.result_file,
            _failure(
                Reason.invalid_config,
                f"cannot serve /metrics on {config.metrics_addr}:{config.metrics_port}: {error}",
            ),
        )
        return 1
    log.info("trial %s of sweep %s: /metrics on port %d", config.trial, config.sweep, port)

    if config.task != TASK_TRAIN:
        outcome = _finalize(config)
    elif config.simulate is not None:
        outcome = _simulate(config, metrics, stop, config.simulate)
    else:
        outcome = _run(config, metrics, stop)
    stop.finishing = True  # from here on, a signal only cuts the wait for the last scrape
    if outcome.status is not ResultStatus.failed:
        metrics.set_progress(outcome.step, outcome.epoch)
        metrics.set_final(outcome.metrics)
    write_result(config.result_file, outcome)
    log.info(
        "trial %s %s at step %d: %s",
        config.trial,
        outcome.status.value,
        outcome.step,
        " ".join(f"{k}={v:.4f}" for k, v in outcome.metrics.items()) or outcome.message,
    )
    metrics.wait_for_scrape(config.scrape_wait, abandon=stop.abandon_wait.is_set)
    # No metrics.stop(): shutting the server down waits out its poll interval, and the exit
    # closes the socket anyway.
    return 1 if outcome.status is ResultStatus.failed else 0


def _run(config: TrialConfig, metrics: TrialMetrics, stop: StopRequest) -> TrialResult:
    try:
        task = load_task(config.dataset)
        model = trial_model(model_override(config.parameters), config.model)
        # Imported here, not at the top: torch and transformers take seconds to import, and
        # the checks above should fail without that wait.
        from bertsweep_trainer.training import run_training

        result = run_training(config, task, metrics, stop, model)
    except TrialError as error:
        return _failure(error.reason, error.message, error.faulty_parameters)
    except Exception as error:
        # A bug or a resource problem (out of memory, ...): the traceback is for whoever fixes it.
        traceback.print_exc()
        return _failure(Reason.trainer_error, f"{type(error).__name__}: {error}")

    progress = result.progress
    last = progress.evaluations[-1].metrics if progress.evaluations else {}
    if progress.train_loss is not None:
        last = {**last, "train_loss": progress.train_loss}
    final = {m: last[m] for m in REPORTED_METRICS if m in last}
    if result.diverged is not None:
        return TrialResult(
            status=ResultStatus.diverged,
            metrics=final,
            step=progress.step,
            epoch=progress.epoch,
            reason=Reason.diverged,
            message=f"{result.diverged}; these are the last metrics before it",
        )
    if result.stopped:
        return TrialResult(
            status=ResultStatus.stopped,
            metrics=final,
            step=progress.step,
            epoch=progress.epoch,
            reason=Reason.signal,
            message=f"stopped by {stop.signal_name or 'a signal'} at step {progress.step}",
        )
    missing = [m for m in REPORTED_METRICS if m not in final]
    if missing:  # only if the Trainer logged no loss at all: worth a line, not a failure
        log.warning("final metrics lack %s", ", ".join(missing))
    model_path = None
    if config.models is not None:
        try:
            model_path = keep_model(config.models, config.trial, config.index, final, result.save)
        except OSError as error:
            return _failure(
                Reason.trainer_error, f"cannot save the model under {config.models.root}: {error}"
            )
    return TrialResult(
        status=ResultStatus.completed,
        metrics=final,
        step=progress.step,
        epoch=progress.epoch,
        model_path=model_path,
        timings=progress.timings(),
    )


def _simulate(
    config: TrialConfig, metrics: TrialMetrics, stop: StopRequest, seconds: float
) -> TrialResult:
    def record(step: int, epoch: float, values: dict[str, float]) -> None:
        metrics.set_progress(step, epoch)
        metrics.record_eval(step, epoch, values)

    return simulate(config.parameters, seconds, record, stop.requested.wait)


def _finalize(config: TrialConfig) -> TrialResult:
    try:
        # Imported here for the reason _run imports training late.
        from bertsweep_trainer.evaluate import finalize

        tested = finalize(config)
    except TrialError as error:
        return _failure(error.reason, error.message, error.faulty_parameters)
    except Exception as error:
        traceback.print_exc()
        return _failure(Reason.trainer_error, f"{type(error).__name__}: {error}")
    return TrialResult(status=ResultStatus.completed, test_metrics=tested)


def _failure(reason: Reason, message: str, faulty: Sequence[str] = ()) -> TrialResult:
    message = one_line(message)
    # Expected failures get one line and no traceback: the message is the whole story.
    print(f"bertsweep-trainer: {reason.value}: {message}", file=sys.stderr, flush=True)
    return TrialResult(
        status=ResultStatus.failed,
        reason=reason,
        message=message,
        faulty_parameters=list(faulty),
    )


if __name__ == "__main__":
    main()
