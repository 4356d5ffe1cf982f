"""A local run's result.json read back (`runs.py`): what a resumed run keeps, starts again and
refuses, and how an earlier run is read for a warm start."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bertsweep.api import ManifestError, Report, SweepSpec, Trial, TrialPhase, parse_spec
from bertsweep.names import trial_name
from bertsweep.planner import plan
from bertsweep.runs import earlier_sweep, read_run, resumable, resumed_trials, spec_changes

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def spec_doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "m",
        "dataset": {"train": "/data/t.csv"},
        "algorithm": {"name": "random", "seed": 2},
        "parameters": [{"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-3}],
        "fixed": {"num_train_epochs": 2},
        "maxTrials": 5,
        "parallelism": 2,
    }
    base.update(changes)
    return base


def spec(**changes: Any) -> SweepSpec:
    return parse_spec(spec_doc(**changes))


def trial(index: int, phase: TrialPhase, **fields: Any) -> dict[str, Any]:
    record = Trial(
        name=trial_name("s", index),
        index=index,
        parameters={"learning_rate": 1e-4 * (index + 1)},
        phase=phase,
        reports=[Report(step=10, epoch=1.0, metrics={"eval_accuracy": 0.6})],
        metrics={"eval_accuracy": 0.7} if phase is TrialPhase.succeeded else {},
        start_time=NOW,
        **fields,
    )
    return record.model_dump(mode="json", by_alias=True)


def result(trials: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    return {
        "sweep": "s",
        "phase": "Running",
        "spec": spec_doc(**changes),
        "status": {"phase": "Running", "startTime": "2026-11-25T11:00:00Z", "newKey": 1},
        "trials": trials,
        "fromANewerVersion": True,
    }


def test_a_result_is_read_leniently() -> None:
    bad = trial(2, TrialPhase.succeeded)
    bad["phase"] = "Exploded"
    run = read_run(
        result([trial(0, TrialPhase.succeeded), {**trial(1, TrialPhase.running), "x": 1}, bad]), "r"
    )
    assert run.sweep == "s" and run.spec == spec()
    assert run.status.start_time == datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    assert [t.index for t in run.trials] == [0, 1]
    assert run.unreadable == [
        "trials[2]: phase: Input should be 'Pending', 'Running', 'Succeeded', 'Failed' or 'Pruned'"
    ]
    older = read_run({"sweep": "s", "trials": [{"name": "s-0000", "parameters": {}}]}, "r")
    assert older.spec is None and "older bertsweep" in str(older.problem)
    assert older.trials[0].index == 0  # its position, as `report` reads it
    with pytest.raises(ManifestError, match="r: not the result of a bertsweep run"):
        read_run([1, 2], "r")


def test_finished_trials_are_kept_and_the_others_start_again_as_they_were() -> None:
    run = read_run(
        result(
            [
                trial(0, TrialPhase.succeeded, model_path="/m/s-0000"),
                trial(1, TrialPhase.running, model_path="/m/s-0001"),
                trial(2, TrialPhase.pruned),
                trial(3, TrialPhase.pending),
            ]
        ),
        "r",
    )
    kept, running, pruned, pending = resumed_trials(run.trials)
    assert kept == run.trials[0] and pruned == run.trials[2]
    for again, before in ((running, run.trials[1]), (pending, run.trials[3])):
        assert (again.name, again.index, again.parameters) == (
            before.name,
            before.index,
            before.parameters,
        )
        assert again.phase is TrialPhase.pending and again.retries == 1
        assert again.reports == [] and again.metrics == {} and again.model_path is None
        assert again.start_time is None
    # The planner starts no index twice: the next trial comes after all of them.
    records = resumed_trials(run.trials)
    p = plan("s", spec(parallelism=3), records, NOW)
    assert [t.index for t in p.create] == [4]


def test_how_much_and_how_fast_may_change_on_resume_but_not_what() -> None:
    recorded = spec()
    allowed = spec(
        maxTrials=9,
        parallelism=4,
        maxFailedTrials=1,
        maxRetries=0,
        trialTemplate={"args": ["--simulate", "1"]},
        metrics={"prometheusURL": "http://p"},
    )
    assert spec_changes(recorded, allowed) == []
    refused = spec(
        fixed={"num_train_epochs": 3},
        parameters=[{"name": "learning_rate", "type": "float", "min": 1e-5, "max": 1e-2}],
        dataset={"train": "/data/other.csv"},
        objective={"metric": "eval_f1"},
        algorithm={"name": "random", "seed": 3},
        earlyStopping={"name": "median"},
        warmStart={"sweeps": ["/runs/a"]},
    )
    assert spec_changes(recorded, refused) == [
        "spec.dataset",
        "spec.objective",
        "spec.algorithm",
        "spec.earlyStopping",
        "spec.parameters",
        "spec.fixed",
        "spec.warmStart",
    ]


def test_a_run_that_cannot_go_on_is_refused_in_one_line() -> None:
    run = read_run(result([trial(0, TrialPhase.succeeded)]), "runs/s")
    resumable("s", spec(maxTrials=8), run, "runs/s")  # fine
    cases = [
        ("t", spec(), "runs/s holds a run of sweep 's', not 't'"),
        (
            "s",
            spec(fixed={}),
            "runs/s ran another sweep: spec.fixed differs from the manifest (a resumed run may "
            "change only maxFailedTrials, maxRetries, maxTrials, metrics, parallelism, "
            "trialTemplate)",
        ),
    ]
    for name, today, message in cases:
        with pytest.raises(ManifestError) as error:
            resumable(name, today, run, "runs/s")
        assert str(error.value) == message
    broken = read_run(result([{"name": "s-0000"}]), "runs/s")
    with pytest.raises(ManifestError, match=r"cannot resume: a trial record cannot be read"):
        resumable("s", spec(), broken, "runs/s")
    older = read_run({"sweep": "s", "trials": []}, "runs/s")
    with pytest.raises(ManifestError, match="cannot resume: no spec recorded"):
        resumable("s", spec(), older, "runs/s")


def test_an_earlier_run_lends_its_readable_trials_to_a_warm_start() -> None:
    run = read_run(result([trial(0, TrialPhase.succeeded), {"name": "broken"}]), "r")
    earlier = earlier_sweep("/runs/a", run)
    assert earlier.name == "/runs/a" and earlier.spec == spec() and earlier.problem is None
    assert [t.name for t in earlier.trials] == ["s-0000"]
