"""What the operator remembers of BertTrial objects between passes, as client-go's informers do.

A sweep of 10,000 trials would otherwise be listed (megabytes of JSON) and parsed on every
pass, though nearly all of its records ended long ago and can no longer change. The cache holds
each sweep's BertTrial objects, kept current by the BertTrial watch and by the operator's own
writes (write-through, so the next pass never acts on a version older than its last write),
and each object's parsed record, parsed once per resourceVersion.

It is a cache, not state: a sweep's first pass, and one every `resync` seconds, lists the
sweep's records from the API server and replaces what is here, so a missed watch event heals
and a restarted operator starts from the cluster. No I/O: it is fed from outside.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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

    def replace(self, namespace: str, sweep_label: str, objs: list[Mapping[str, Any]]) -> None:
        """What a full listing of the sweep's records found: it is all there is."""
        with self._lock:
            entry = _Sweep(listed_at=self._clock())
            for obj in objs:
                found = _key(obj)
                if found is not None:
                    entry.objects[found[1]] = obj
            self._sweeps[(namespace, sweep_label)] = entry
            self._forget_parsed()

    def put(self, obj: Mapping[str, Any]) -> None:
        """A watch event or the object a write returned; an older version than the one held
        is ignored (watch events can arrive after our own write's answer)."""
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
        """`observe.read_trial`, once per object version (raises as it does)."""
        key = _identity(obj)
        with self._lock:
            record = self._parsed.get(key)
        if record is None:
            record = read_trial(obj)
            with self._lock:
                self._parsed[key] = record
        return record

    def _forget_parsed(self) -> None:
        """Keep only the parsed versions still held (called with the lock held)."""
        held = {_identity(o) for entry in self._sweeps.values() for o in entry.objects.values()}
        self._parsed = {k: v for k, v in self._parsed.items() if k in held}
