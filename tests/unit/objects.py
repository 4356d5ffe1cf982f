"""Cluster objects as plain dicts, for the unit tests of the cluster adapter (observe,
outcomes, decide): a sweep, its trial records, their pods, termination messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
T0 = "2026-11-25T11:59:00Z"
SWEEP_UID = "sweep-uid-1"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- builders --------------------------------------------------------------------------------


def spec_doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "m",
        "dataset": {"train": "t.csv"},
        "algorithm": {"name": "grid"},
        "parameters": [{"name": "learning_rate", "type": "categorical", "values": [1, 2, 3, 4]}],
        "maxTrials": 4,
        "parallelism": 2,
        "maxFailedTrials": 0,
    }
    base.update(changes)
    return base


def sweep_obj(status: dict[str, Any] | None = None, generation: int = 1, **spec: Any) -> Any:
    return {
        "apiVersion": "tuning.bertsweep.io/v1alpha1",
        "kind": "BertSweep",
        "metadata": {
            "name": "s",
            "namespace": "ns",
            "uid": SWEEP_UID,
            "generation": generation,
            "resourceVersion": "1",
        },
        "spec": spec_doc(**spec),
        **({"status": status} if status is not None else {}),
    }


def trial_obj(index: int, status: dict[str, Any] | None = None, owner: str = SWEEP_UID) -> Any:
    name = f"s-{index:04d}"
    return {
        "apiVersion": "tuning.bertsweep.io/v1alpha1",
        "kind": "BertTrial",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"trial-uid-{index}",
            "resourceVersion": "7",
            "creationTimestamp": T0,
            "labels": {"bertsweep": "s"},
            "ownerReferences": [{"kind": "BertSweep", "uid": owner, "controller": True}],
        },
        "spec": {"sweep": "s", "index": index, "parameters": {"learning_rate": index + 1}},
        **({"status": status} if status is not None else {}),
    }


def pod(
    phase: str = "Running",
    *,
    name: str = "s-0000",
    owner: str = "trial-uid-0",
    created: str = T0,
    terminated: dict[str, Any] | None = None,
    waiting: dict[str, Any] | None = None,
    **status: Any,
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if terminated is not None:
        state["terminated"] = terminated
    elif waiting is not None:
        state["waiting"] = waiting
    elif phase == "Running":
        state["running"] = {"startedAt": T0}
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "creationTimestamp": created,
            "ownerReferences": [{"kind": "BertTrial", "uid": owner, "controller": True}],
        },
        "spec": {
            "containers": [
                {"name": "trainer", "ports": [{"name": "metrics", "containerPort": 8000}]}
            ]
        },
        "status": {
            "phase": phase,
            "podIP": "127.1.0.5",
            "startTime": T0,
            "containerStatuses": [{"name": "trainer", "state": state}],
            **status,
        },
    }


def result(status: str = "completed", **fields: Any) -> str:
    return json.dumps({"status": status, **fields})


METRICS = {"eval_accuracy": 0.8, "eval_loss": 0.4}


def spec_of(sweep: Any) -> Any:
    from bertsweep.api import parse_spec

    return parse_spec(sweep["spec"])
