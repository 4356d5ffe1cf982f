"""Reading what a pass sees, with plain dicts: whose records and pods are whose, what is
fetched, and records of another version read leniently or set aside."""

from __future__ import annotations

from typing import Any

import pytest
from objects import T0, pod, sweep_obj, trial_obj

from bertsweep import contract
from bertsweep.api import TrialPhase
from bertsweep.observe import (
    MetricsReading,
    is_settled,
    owned_pods,
    owned_records,
    pods_to_fetch,
    read_status,
    read_trial,
    scrape_targets,
)

pytestmark = pytest.mark.unit


# ---- reading objects --------------------------------------------------------------------------


def test_records_of_an_earlier_sweep_of_the_same_name_are_not_ours() -> None:
    objs = [trial_obj(1), trial_obj(0), trial_obj(2, owner="old-sweep")]
    deleting = trial_obj(3)
    deleting["metadata"]["deletionTimestamp"] = T0
    records = owned_records(sweep_obj(), [*objs, deleting]).readable
    assert [r.name for r in records] == ["s-0000", "s-0001"]
    foreign = {
        "s-0000": pod(owner="someone-else"),
        "s-0001": pod(name="s-0001", owner="trial-uid-1"),
    }
    assert list(owned_pods(records, foreign)) == ["s-0001"]


def test_only_active_trials_missing_from_the_live_pods_are_fetched() -> None:
    records = owned_records(
        sweep_obj(),
        [trial_obj(0, {"phase": "Running"}), trial_obj(1, {"phase": "Succeeded"}), trial_obj(2)],
    ).readable
    assert pods_to_fetch(records, {"s-0000": pod()}) == ["s-0002"]


def test_scrape_targets_are_running_pods_of_active_trials() -> None:
    records = owned_records(sweep_obj(), [trial_obj(0, {"phase": "Running"})]).readable
    assert scrape_targets(records, {"s-0000": pod()}) == {"s-0000": "http://127.1.0.5:8000/metrics"}
    assert scrape_targets(records, {"s-0000": pod("Pending")}) == {}


def test_read_trial_round_trips_a_record() -> None:
    record = read_trial(trial_obj(3, {"phase": "Failed", "reason": "OOMKilled"}))
    assert record.name == "s-0003" and record.uid == "trial-uid-3"
    assert record.trial.phase is TrialPhase.failed and record.trial.parameters == {
        "learning_rate": 4
    }


def test_a_finished_sweep_settles() -> None:
    sweep = sweep_obj()
    assert not is_settled(sweep)
    sweep["status"] = {"phase": "Succeeded", "observedGeneration": 1, "trials": {"running": 0}}
    assert is_settled(sweep)
    sweep["status"]["trials"]["running"] = 1
    assert not is_settled(sweep)


# ---- version skew: what another operator or CRD version wrote ----------------------------------


def test_status_fields_this_operator_does_not_know_are_ignored() -> None:
    future = {
        "phase": "Running",
        "objective": 0.5,
        "podName": "s-0000",
        "attemptHistory": [{"pod": "s-0000"}],
        "reports": [{"step": 1, "epoch": 0.5, "metrics": {"eval_accuracy": 0.5}, "device": "x"}],
    }
    record = read_trial(trial_obj(0, future))
    assert record.trial.phase is TrialPhase.running
    assert record.trial.reports[0].metrics == {"eval_accuracy": 0.5}
    sweep = sweep_obj({"phase": "Running", "paretoFront": [], "trials": {"total": 2, "lost": 1}})
    status = read_status(sweep)
    assert status.trials.total == 2


def test_a_record_that_cannot_be_read_is_set_aside_and_its_index_kept() -> None:
    broken = trial_obj(5, {"phase": "Exploded"})
    nameless = trial_obj(6)
    nameless["spec"] = {"index": "six"}
    records = owned_records(sweep_obj(), [trial_obj(0), broken, nameless])
    assert [r.name for r in records.readable] == ["s-0000"]
    assert [(u.name, u.index) for u in records.unreadable] == [("s-0005", 5), ("s-0006", None)]
    assert "phase" in records.unreadable[0].problem
    assert records.first_free_index == 6, "a new trial must not take an unreadable one's name"


# ---- metrics of a trial started again --------------------------------------------------------


def test_series_of_an_earlier_attempts_pod_are_left_out() -> None:
    def sample(pod_name: str, value: float, **labels: str) -> contract.Sample:
        return contract.Sample(
            contract.EVAL_SERIES,
            {
                "trial": "s-0000",
                "pod": pod_name,
                "metric": "eval_accuracy",
                "step": "5",
                "epoch": "1",
                **labels,
            },
            value,
        )

    reading = MetricsReading(samples=[sample("s-0000", 0.9), sample("s-0000-r1", 0.6)])
    seen = reading.observations({"s-0000": "s-0000-r1"})
    assert [r.metrics for r in seen["s-0000"].reports] == [{"eval_accuracy": 0.6}]
    unlabelled: dict[str, Any] = {"trial": "s-0000", "metric": "eval_accuracy", "step": "5"}
    plain = MetricsReading(samples=[contract.Sample(contract.EVAL_SERIES, unlabelled, 0.7)])
    assert plain.observations({"s-0000": "s-0000-r1"})["s-0000"].reports, "no pod label: kept"
