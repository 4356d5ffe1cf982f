"""The contract between the trainer and its watchers: the result file and the metric series."""

from __future__ import annotations

import json

import pytest

from bertsweep.contract import (
    RESULT_FILE_LIMIT,
    Reason,
    ResultStatus,
    TrialResult,
)

pytestmark = pytest.mark.unit


def test_result_file_stays_under_the_limit() -> None:
    failed = TrialResult(
        status=ResultStatus.failed, reason=Reason.invalid_data, message="x" * 10_000
    )
    text = failed.render()
    assert len(text.encode()) < RESULT_FILE_LIMIT
    assert json.loads(text)["message"].endswith("...")
    completed = TrialResult(
        status=ResultStatus.completed,
        metrics={"eval_loss": float("nan"), "eval_f1": 0.5},
        step=10,
        epoch=1.0,
    )
    assert json.loads(completed.render()) == {
        "status": "completed",
        "metrics": {"eval_f1": 0.5},
        "step": 10,
        "epoch": 1.0,
        "reason": None,
        "message": None,
        "faultyParameters": [],
        "modelPath": None,
        "testMetrics": {},
        "timings": {},
    }


def test_what_the_trainer_writes_the_watchers_read_back() -> None:
    written = TrialResult(
        status=ResultStatus.failed,
        reason=Reason.invalid_parameter,
        message="bad",
        faulty_parameters=["learning_rate"],
        step=3,
        epoch=0.5,
    )
    assert TrialResult.parse(written.render()) == written


@pytest.mark.parametrize(
    "text",
    [None, "", "  \n", "Traceback (most recent call last): ...", "[1, 2]", '{"metrics": {}}'],
)
def test_what_is_not_a_result_reads_as_none(text: str | None) -> None:
    assert TrialResult.parse(text) is None


def test_results_are_read_leniently() -> None:
    # A newer trainer's extra keys, a non-finite or non-numeric metric, a bad step: the
    # outcome and the usable values still come through.
    text = json.dumps(
        {
            "status": "completed",
            "metrics": {"eval_accuracy": 0.8, "eval_loss": "nan", "x": None, "flag": True},
            "step": True,
            "epoch": "two",
            "futureField": {"a": 1},
        }
    )
    result = TrialResult.parse(text)
    assert result is not None
    assert result.status is ResultStatus.completed
    assert result.metrics == {"eval_accuracy": 0.8}
    assert (result.step, result.epoch) == (0, 0.0)
    assert result.last_report() is None  # no step: not an evaluation anyone can place


def test_reasons_are_their_camel_case_names() -> None:
    assert Reason.invalid_parameter == "InvalidParameter"
    assert all(r.value[0].isupper() and " " not in r.value for r in Reason)
    assert len({r.value for r in Reason}) == len(Reason)
