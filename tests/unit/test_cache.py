"""The operator's cache of BertTrial objects (bertsweep.cache): current with the watch and its
own writes, parsed once a version, and never trusted past its resync."""

from __future__ import annotations

from typing import Any

import pytest
from objects import sweep_obj, trial_obj

from bertsweep.cache import RecordCache
from bertsweep.observe import owned_records

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def versioned(index: int, version: int, **status: Any) -> Any:
    obj = trial_obj(index, status or None)
    obj["metadata"]["resourceVersion"] = str(version)
    return obj


def test_a_sweep_is_listed_first_then_served_from_the_cache_until_resync() -> None:
    clock = Clock()
    cache = RecordCache(resync=300, clock=clock)
    assert cache.objects("ns", "s") is None, "never listed: list it"
    cache.replace("ns", "s", [versioned(0, 5), versioned(1, 6)])
    assert [o["metadata"]["name"] for o in cache.objects("ns", "s") or []] == ["s-0000", "s-0001"]
    cache.put(versioned(2, 7))  # a watch event: a new record
    assert len(cache.objects("ns", "s") or []) == 3
    clock.now = 301
    assert cache.objects("ns", "s") is None, "stale: list again, a missed event heals"


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = RecordCache()
    cache.replace("ns", "s", [versioned(0, 9, phase="Running")])
    cache.put(versioned(0, 8, phase="Pending"))  # a late watch event of before our write
    (obj,) = cache.objects("ns", "s") or []
    assert obj["metadata"]["resourceVersion"] == "9"
    cache.put(versioned(0, 10, phase="Succeeded"))
    (obj,) = cache.objects("ns", "s") or []
    assert obj["status"]["phase"] == "Succeeded"
    cache.remove(obj)
    assert cache.objects("ns", "s") == []


def test_each_version_is_parsed_once_and_reads_as_observe_reads_it() -> None:
    cache = RecordCache()
    first = versioned(0, 3, phase="Succeeded")
    cache.replace("ns", "s", [first])
    a = cache.read(first)
    assert cache.read(versioned(0, 3, phase="Succeeded")) is a, "same uid and version: one parse"
    records = owned_records(sweep_obj(), cache.objects("ns", "s") or [], cache.read)
    assert [r.trial for r in records.readable] == [a.trial]
    newer = versioned(0, 4, phase="Failed")
    cache.put(newer)
    assert cache.read(newer) is not a and cache.read(newer).trial.phase.value == "Failed"


def test_a_deleted_sweep_is_forgotten() -> None:
    cache = RecordCache()
    cache.replace("ns", "s", [versioned(0, 1)])
    cache.forget("ns", "s")
    assert cache.objects("ns", "s") is None


def test_an_ended_trial_is_held_without_its_status_once_read_and_still_reads_whole() -> None:
    cache = RecordCache()
    ended = versioned(0, 3, phase="Succeeded", metrics={"eval_accuracy": 0.8})
    running = versioned(1, 4, phase="Running")

    def pages() -> Any:  # a listing consumed a page at a time
        yield ended
        yield running

    held = cache.replace("ns", "s", pages())
    by_name = {o["metadata"]["name"]: o for o in held}
    assert "status" not in by_name["s-0000"], "an ended trial's status is not held twice"
    assert by_name["s-0001"]["status"]["phase"] == "Running", "an active one is held whole"
    records = owned_records(sweep_obj(), cache.objects("ns", "s") or [], cache.read)
    first = records.readable[0]
    assert first.trial.phase.value == "Succeeded" and first.trial.metrics == {"eval_accuracy": 0.8}
    # The body a status write starts from: the same object, minus the status it replaces.
    assert first.body["metadata"]["resourceVersion"] == "3" and "status" not in first.body

    # A watch event of a newer version is held whole until read, then slimmed in turn.
    cache.put(versioned(1, 5, phase="Succeeded"))
    (obj,) = [o for o in cache.objects("ns", "s") or [] if o["metadata"]["name"] == "s-0001"]
    assert cache.read(obj).trial.phase.value == "Succeeded"
    assert all("status" not in o for o in cache.objects("ns", "s") or [])


def test_a_slim_object_whose_record_is_lost_is_never_read_as_a_new_trial() -> None:
    from bertsweep.cache import CacheMiss

    clock = Clock()
    cache = RecordCache(clock=clock)
    (slim,) = cache.replace("ns", "s", [versioned(0, 3, phase="Succeeded")])
    cache._parsed.clear()  # what no code path does; if one ever did, the sweep is listed again
    with pytest.raises(CacheMiss):
        cache.read(slim)
    assert cache.objects("ns", "s") is None


def test_no_object_is_held_with_its_managed_fields_and_what_was_given_is_unchanged() -> None:
    cache = RecordCache()

    def managed(index: int, version: int, **status: Any) -> Any:
        obj = versioned(index, version, **status)
        obj["metadata"]["managedFields"] = [{"manager": "bertsweep", "fieldsV1": {"f:spec": {}}}]
        return obj

    listed = managed(0, 3, phase="Succeeded")
    cache.replace("ns", "s", [listed])
    watched = managed(1, 4, phase="Running")
    cache.put(watched)
    held = cache.objects("ns", "s") or []
    assert len(held) == 2 and all("managedFields" not in o["metadata"] for o in held)
    assert "managedFields" in listed["metadata"] and "managedFields" in watched["metadata"]
    records = owned_records(sweep_obj(), held, cache.read)
    assert [r.trial.phase.value for r in records.readable] == ["Succeeded", "Running"]
    assert all("managedFields" not in r.body["metadata"] for r in records.readable)
