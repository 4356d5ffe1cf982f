"""What the operator remembers of BertTrial objects between passes, as client-go's informers do.

A sweep of 10,000 trials would otherwise be listed (megabytes of JSON) and parsed on every
pass, though nearly all of its records ended long ago and can no longer change. The cache holds
each sweep's BertTrial objects, kept current by the BertTrial watch and by the operator's own
writes (write-through, so the next pass never acts on a version older than its last write),
and each object's parsed record, parsed once per resourceVersion.

It is a cache, not state: a sweep's first pass, and one every `resync` seconds, lists the
sweep's records from the API server and replaces what is here, so a missed watch event heals
and a restarted operator starts from the cluster. No I/O: it is fed from outside.

Memory grows with the trials a sweep has finished, so what is held is trimmed as client-go's
informers trim it. No object is held with its `metadata.managedFields` (the server-side apply
bookkeeping, which nothing here reads, was half of an ended trial's memory; a write without
them leaves the server's as they are). And an ended trial's object is held without its status
once parsed (`_Slim`): what a pass needs of it is the parsed record, and a write needs only its
metadata. Measured in benchmarks/README.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from bertsweep.observe import TrialRecord, read_trial

Key = tuple[str, str]  # namespace, sweep label


def _version(obj: Mapping[str, Any]) -> int | None:
    version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(version) if version.isdigit() else None


def _identity(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid", "")), str(meta.get("resourceVersion", ""))


def _key(obj: Mapping[str, Any]) -> tuple[Key, str] | None:
    meta = obj.get("metadata") or {}
    label = (meta.get("labels") or {}).get("bertsweep")
    if not label or not meta.get("name"):
        return None
    return (str(meta.get("namespace") or ""), str(label)), str(meta["name"])


def _trimmed(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object without its managedFields (a shallow copy: what was given is not changed)."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


class _Slim(dict[str, Any]):
    """An ended trial's object without its status: readable only through its parsed record."""


def _slim(obj: Mapping[str, Any]) -> _Slim:
    return _Slim((k, v) for k, v in obj.items() if k != "status")


def _held(obj: Mapping[str, Any], record: TrialRecord) -> tuple[Mapping[str, Any], TrialRecord]:
    """What to hold of a parsed object: an ended trial's slimmed, with its record's body."""
    if record.trial.phase.active:
        return obj, record
    if isinstance(record.body, _Slim):
        return record.body, record
    slim = _slim(obj)
    return slim, replace(record, body=slim)


class CacheMiss(RuntimeError):
    """A slimmed object whose parsed record is gone: the sweep is listed again."""


@dataclass
class _Sweep:
    objects: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    listed_at: float | None = None


class RecordCache:
    """BertTrial objects by sweep, current with the watch and our writes, and parsed once."""

    def __init__(self, resync: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.resync = resync
        self._clock = clock
        self._lock = threading.Lock()
        self._sweeps: dict[Key, _Sweep] = {}
        self._parsed: dict[tuple[str, str], TrialRecord] = {}

    def objects(self, namespace: str, sweep_label: str) -> list[Mapping[str, Any]] | None:
        """The sweep's objects, or None when they must be listed (never yet, or stale)."""
        with self._lock:
            entry = self._sweeps.get((namespace, sweep_label))
            if entry is None or entry.listed_at is None:
                return None
            if self._clock() - entry.listed_at >= self.resync:
                return None
            return list(entry.objects.values())

    def replace(
        self, namespace: str, sweep_label: str, objs: Iterable[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        """What a full listing of the sweep's records found: it is all there is; returns
        what is now held. `objs` may be read a page at a time: each ended trial is held
        slimmed as soon as it is read, so a listing of 10,000 records never holds them all
        in full at once."""
        entry = _Sweep()
        parsed: dict[tuple[str, str], TrialRecord] = {}
        for obj in map(_trimmed, objs):
            found = _key(obj)
            if found is None:
                continue
            identity = _identity(obj)
            with self._lock:
                record = self._parsed.get(identity)
            if record is None:
                try:
                    record = read_trial(obj)
                except ValidationError:
                    entry.objects[found[1]] = obj  # unreadable: observe says so, in full
                    continue
            held, record = _held(obj, record)
            entry.objects[found[1]] = held
            parsed[identity] = record
        with self._lock:
            entry.listed_at = self._clock()
            self._sweeps[(namespace, sweep_label)] = entry
            self._parsed.update(parsed)
            self._forget_parsed()
            return list(entry.objects.values())

    def put(self, obj: Mapping[str, Any]) -> None:
        """A watch event or the object a write returned; an older version than the one held
        is ignored (watch events can arrive after our own write's answer)."""
        obj = _trimmed(obj)
        found = _key(obj)
        if found is None:
            return
        key, name = found
        with self._lock:
            entry = self._sweeps.setdefault(key, _Sweep())
            held = entry.objects.get(name)
            new, old = _version(obj), _version(held) if held is not None else None
            if held is None or new is None or old is None or new >= old:
                entry.objects[name] = obj
                if held is not None and held is not obj:
                    self._parsed.pop(_identity(held), None)

    def remove(self, obj: Mapping[str, Any]) -> None:
        found = _key(obj)
        if found is None:
            return
        key, name = found
        with self._lock:
            entry = self._sweeps.get(key)
            if entry is not None:
                entry.objects.pop(name, None)

    def forget(self, namespace: str, sweep_label: str) -> None:
        """The sweep is gone: so are its records."""
        with self._lock:
            self._sweeps.pop((namespace, sweep_label), None)
            self._forget_parsed()

    def read(self, obj: Mapping[str, Any]) -> TrialRecord:
        """`observe.read_trial`, once per object version (raises as it does). Once an ended
        trial's version is parsed, the cache holds its object slimmed, and the record's `body`
        is the slim object (enough for a status write)."""
        key = _identity(obj)
        with self._lock:
            record = self._parsed.get(key)
        if record is None:
            if isinstance(obj, _Slim):
                # Never expected (a slim object is held only beside its record); parsing it
                # would read an ended trial as a new one, so the sweeps are listed again.
                with self._lock:
                    for stale in self._sweeps.values():
                        stale.listed_at = None
                name = (obj.get("metadata") or {}).get("name")
                raise CacheMiss(f"the cached record of {name} is gone; listing again")
            record = read_trial(obj)
        if isinstance(obj, _Slim):
            return record
        held, record = _held(obj, record)
        found = _key(obj)
        with self._lock:
            self._parsed[key] = record
            entry = self._sweeps.get(found[0]) if found is not None else None
            if found is not None and entry is not None and entry.objects.get(found[1]) is obj:
                entry.objects[found[1]] = held
        return record

    def _forget_parsed(self) -> None:
        """Keep only the parsed versions still held (called with the lock held)."""
        held = {_identity(o) for entry in self._sweeps.values() for o in entry.objects.values()}
        self._parsed = {k: v for k, v in self._parsed.items() if k in held}
