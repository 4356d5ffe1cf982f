"""What a pass sees: cluster objects read into records, leniently.

The operator reads back what it (or an older or newer operator) wrote, so everything here is
lenient: unknown keys are ignored, and a BertTrial that cannot be read at all is set aside as
`Unreadable` (the pass goes on and says so in an Event) instead of failing every pass of its
sweep. Which pods and metrics belong to which trial is decided here too: ownership by uid, the
pod of a trial's current attempt, series from that pod only. Pure: plain dicts in, values out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from bertsweep import contract, names, pods
from bertsweep.api import (
    BertTrialSpec,
    BertTrialStatus,
    ConditionType,
    ManifestError,
    SweepPhase,
    SweepStatus,
    Trial,
    is_sweep_name,
    parse_spec,
    trial_from_parts,
)
from bertsweep.contract import Reason
from bertsweep.outcomes import parse_time
from bertsweep.warm import EarlierSweep

# Pods created up to this long before a trial record are still its own (clock skew between the
# operator and Prometheus); older series under the same names are a previous sweep's.
METRICS_WINDOW_MARGIN = timedelta(seconds=10)


@dataclass(frozen=True)
class TrialRecord:
    """A BertTrial object as read: the trial it describes plus what optimistic writes need."""

    name: str
    uid: str
    resource_version: str
    created: datetime | None
    trial: Trial
    status: BertTrialStatus
    """The status as stored, to write only what changed."""
    owner_uid: str | None
    body: Mapping[str, Any]

    @property
    def pod_name(self) -> str:
        """The pod of the trial's current attempt."""
        return names.pod_name(self.name, self.trial.retries)


@dataclass(frozen=True)
class Unreadable:
    """A BertTrial of the sweep that could not be read (written by another version, or by
    hand): left alone, its name and index kept out of the way of new trials."""

    name: str
    index: int | None
    problem: str


def read_trial(obj: Mapping[str, Any]) -> TrialRecord:
    """A BertTrial object -> TrialRecord (raises pydantic's ValidationError on a bad record)."""
    meta = obj.get("metadata") or {}
    spec = BertTrialSpec.model_validate(obj.get("spec") or {})
    status = BertTrialStatus.model_validate(obj.get("status") or {})
    name = str(meta.get("name"))
    return TrialRecord(
        name=name,
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        created=parse_time(meta.get("creationTimestamp")),
        trial=trial_from_parts(name, spec, status),
        status=status,
        owner_uid=controller_uid(obj),
        body=obj,
    )


def read_status(sweep: Mapping[str, Any]) -> SweepStatus:
    """The sweep's status as last written; a status we cannot read counts as none."""
    try:
        return SweepStatus.model_validate(sweep.get("status") or {})
    except ValidationError:
        return SweepStatus()


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


@dataclass(frozen=True)
class Records:
    """A sweep's own trial records, by index, and those it could not read."""

    readable: list[TrialRecord] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def first_free_index(self) -> int:
        """No new trial may take an index at or below one in use, readable or not."""
        used = [r.trial.index for r in self.readable]
        used += [u.index for u in self.unreadable if u.index is not None]
        return max(used) + 1 if used else 0


def owned_records(
    sweep: Mapping[str, Any],
    objs: Iterable[Mapping[str, Any]],
    read: Callable[[Mapping[str, Any]], TrialRecord] = read_trial,
) -> Records:
    """The sweep's own trial records. A sweep deleted and created again under the same name
    leaves records that the garbage collector has not removed yet: they are not this sweep's.
    `read` parses one (the operator's cache parses each version once)."""
    uid = (sweep.get("metadata") or {}).get("uid")
    records = Records()
    for obj in objs:
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp") or controller_uid(obj) != uid:
            continue
        try:
            records.readable.append(read(obj))
        except ValidationError as error:
            index = (obj.get("spec") or {}).get("index")
            records.unreadable.append(
                Unreadable(
                    name=str(meta.get("name")),
                    index=index if isinstance(index, int) and not isinstance(index, bool) else None,
                    problem="; ".join(
                        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
                    ),
                )
            )
    records.readable.sort(key=lambda r: r.trial.index)
    return records


def earlier_sweep(
    name: str,
    sweep: Mapping[str, Any] | None,
    objs: Iterable[Mapping[str, Any]],
    read: Callable[[Mapping[str, Any]], TrialRecord] = read_trial,
) -> EarlierSweep:
    """A sweep another one warm-starts from (`spec.warmStart`), as the cluster holds it: its
    spec, and its own trial records that can be read (the others are skipped: an earlier
    sweep's record is worth no Event of this one). None: no such sweep (yet)."""
    if sweep is None:
        if not is_sweep_name(name):
            return EarlierSweep(name, problem="not a BertSweep's name (a local run's folder?)")
        return EarlierSweep(name, problem="not found (yet)")
    try:
        spec = parse_spec(sweep.get("spec"))
    except ManifestError as error:
        first = str(error).splitlines()[0]
        return EarlierSweep(name, problem=f"its spec cannot be read ({first})")
    records = owned_records(sweep, objs, read)
    return EarlierSweep(name, spec, [r.trial for r in records.readable])


def owned_pods(
    records: Sequence[TrialRecord], pod_objs: Mapping[str, Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """Each trial's pod of its current attempt, keyed by trial name; a same-named pod owned by
    something else (an earlier trial record of that name) is not the trial's."""
    result = {}
    for record in records:
        pod = pod_objs.get(record.pod_name)
        if pod is not None and controller_uid(pod) == record.uid:
            result[record.name] = pod
    return result


def is_settled(sweep: Mapping[str, Any]) -> bool:
    """Nothing left to do until the spec changes: the current generation was seen and either
    rejected, or its sweep ended with no trial still active. Saves listing 10,000 records."""
    status = sweep.get("status") or {}
    if status.get("observedGeneration") != (sweep.get("metadata") or {}).get("generation"):
        return False
    for condition in status.get("conditions") or []:
        if condition.get("type") == ConditionType.spec_valid and condition.get("status") == "False":
            return True
        if condition.get("type") == ConditionType.models_kept and condition.get("reason") == (
            Reason.finalizing
        ):
            return False  # its finalize pod is still to be read
    counts = status.get("trials") or {}
    return status.get("phase") in (SweepPhase.succeeded.value, SweepPhase.failed.value) and not (
        counts.get("pending") or counts.get("running")
    )


def active_trials(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.trial.phase.active]


def pods_to_fetch(records: Sequence[TrialRecord], live: Mapping[str, Any]) -> list[str]:
    """Active trials whose pod is not among the live (unfinished) ones: their pod has ended,
    or was never created. Only these are read one by one, so a pass reads O(parallelism) pods."""
    return [r.pod_name for r in active_trials(records) if r.pod_name not in live]


def metrics_window_start(records: Sequence[TrialRecord]) -> datetime | None:
    """The earliest moment an active trial's series can date from: older series under the
    same names belong to an earlier sweep of the same name."""
    created = [r.created for r in active_trials(records) if r.created is not None]
    return min(created) - METRICS_WINDOW_MARGIN if created else None


def scrape_targets(
    records: Sequence[TrialRecord], trial_pods: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """The /metrics URL of every active trial whose pod runs: the fallback when Prometheus is
    unreachable (the operator reaches pod IPs, as Prometheus does)."""
    targets = {}
    for record in active_trials(records):
        pod = trial_pods.get(record.name)
        if pod is None or (pod.get("status") or {}).get("phase") != "Running":
            continue
        ip = (pod.get("status") or {}).get("podIP")
        port = _metrics_port(pod)
        if ip and port:
            host = f"[{ip}]" if ":" in ip else ip
            targets[record.name] = f"http://{host}:{port}/metrics"
    return targets


def _metrics_port(pod: Mapping[str, Any]) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == pods.METRICS_PORT_NAME:
                return int(port["containerPort"])
    return None


@dataclass(frozen=True)
class MetricsReading:
    """What one pass read of its active trials' metrics, and from where."""

    samples: list[contract.Sample] = field(default_factory=list)
    source: Literal["prometheus", "pods", "none"] = "prometheus"
    problem: str | None = None
    """Why Prometheus was not the source (unreachable, not configured)."""
    url: str | None = None

    def observations(
        self, current_pods: Mapping[str, str] | None = None
    ) -> dict[str, contract.Observation]:
        """Each trial's observation. With `current_pods` (trial -> pod of its current
        attempt), series scraped from an earlier attempt's pod are left out: a trial started
        again begins its reports afresh."""
        samples: Iterable[contract.Sample] = self.samples
        if current_pods:
            samples = [
                s
                for s in self.samples
                if "pod" not in s.labels
                or s.labels.get("trial") not in current_pods
                or s.labels["pod"] == current_pods[s.labels["trial"]]
            ]
        return contract.observe_trials(samples)
