"""The operator: thin kopf handlers over one reconcile pass per sweep.

A pass reads what exists (the sweep, its trial records, their pods, their metrics), decides
with the pure `decide.decide()` (which asks the sweep policy, `planner.plan()`), carries the
decision out, and writes the sweep's status once, last. Nothing lives only in memory: a
restarted operator's first pass sees what the last one left and continues from there.

What drives the passes: one asyncio task per sweep, which runs a pass every `interval_seconds`
while the sweep is active (metrics move without any Kubernetes event), at once when the sweep's
spec or one of its pods changes, and rarely once the sweep has settled. kopf supplies the watch
streams through `@kopf.on.event`, which writes nothing to the objects it watches. kopf's own
`@kopf.timer` and `@kopf.daemon` would do the periodic part, but kopf puts a finalizer on every
object that has one, and then a sweep (or its namespace) cannot be deleted while the operator
is down; nothing here needs a finalizer, since ownerReferences let the garbage collector delete
trials and pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import kopf
import prometheus_client
from kubernetes.config import ConfigException
from pydantic import ValidationError

from bertsweep import decide, names, observe, pods
from bertsweep.api import (
    API_VERSION,
    GROUP,
    SWEEP_KIND,
    VERSION,
    ManifestError,
    SweepPhase,
    SweepSpec,
    describe_validation_error,
    is_sweep_name,
    parse_spec,
)
from bertsweep.cache import RecordCache
from bertsweep.contract import model_store
from bertsweep.kube import Conflict, ForeignObject, Kube, Refused
from bertsweep.outcomes import Timeouts
from bertsweep.pods import SWEEP_LABEL
from bertsweep.prometheus import TrialMetrics
from bertsweep.settings import OperatorSettings
from bertsweep.warm import WarmHistory, warm_history

log = logging.getLogger("bertsweep.operator")

DEBOUNCE = 0.3  # a burst of watch events becomes one pass
MAX_BACKOFF = 60.0  # after repeated failures of a pass

# The operator's own metrics (served on $BERTSWEEP_OPERATOR_METRICS_PORT, default 8080).
RECONCILE_SECONDS = prometheus_client.Histogram(
    "bertsweep_operator_reconcile_seconds",
    "Duration of one reconcile pass of one sweep",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_ERRORS = prometheus_client.Counter(
    "bertsweep_operator_reconcile_errors", "Reconcile passes that failed (and will be retried)"
)
SWEEPS = prometheus_client.Gauge("bertsweep_operator_sweeps", "Sweeps by phase", ["phase"])
TRIALS_CREATED = prometheus_client.Counter(
    "bertsweep_operator_trials_created", "Trial records created"
)
TRIALS_ENDED = prometheus_client.Counter(
    "bertsweep_operator_trials_ended", "Trials that ended, by phase", ["phase"]
)

REGISTRY = kopf.OperatorRegistry()


@dataclass(frozen=True)
class PassResult:
    gone: bool = False
    phase: str | None = None
    settled: bool = False


@dataclass
class Operator:
    """One reconcile pass of one sweep, over injected I/O (the Kubernetes API, metrics)."""

    kube: Kube
    metrics: TrialMetrics
    timeouts: Timeouts = field(default_factory=Timeouts)
    allow_host_path: bool = False
    cache: RecordCache | None = None
    """The BertTrial objects seen (the watch feeds it): None lists them on every pass."""

    def trial_objects(self, namespace: str, name: str) -> list[Mapping[str, Any]]:
        """The sweep's BertTrial objects: from the cache while it is fresh, else listed."""
        if self.cache is None:
            return list(self.kube.list_trials(namespace, name))
        label = names.sweep_label(name)
        held = self.cache.objects(namespace, label)
        if held is None:
            held = self.cache.replace(namespace, label, self.kube.list_trials(namespace, name))
        return held

    def remember(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        """Write-through: what a write returned is the newest version there is."""
        if self.cache is not None:
            self.cache.put(obj)
        return obj

    def run_pass(self, namespace: str, name: str) -> PassResult:
        sweep = self.kube.get_sweep(namespace, name)
        if sweep is None:
            return PassResult(gone=True)
        phase = (sweep.get("status") or {}).get("phase")
        if observe.is_settled(sweep):
            return PassResult(phase=phase, settled=True)
        now = datetime.now(UTC).replace(microsecond=0)
        try:
            spec = self.parse(sweep.get("spec"))
        except ManifestError as error:
            log.warning("%s/%s: invalid spec: %s", namespace, name, error)
            self.apply(sweep, None, decide.invalid_spec(sweep, str(error), now))
            return PassResult(phase=SweepPhase.failed.value, settled=True)

        # Observe.
        read = self.cache.read if self.cache is not None else observe.read_trial
        records = observe.owned_records(sweep, self.trial_objects(namespace, name), read)
        readable = records.readable
        found = self.kube.live_pods(namespace, name)
        for pod_name in observe.pods_to_fetch(readable, found):
            pod = self.kube.get_pod(namespace, pod_name)
            if pod is not None:
                found[pod_name] = pod
        trial_pods = observe.owned_pods(readable, found)
        active = [r.name for r in observe.active_trials(readable)]
        reading = None
        if active:
            reading = self.metrics.read(
                spec.metrics.prometheus_url,
                namespace,
                name,
                active,
                since=observe.metrics_window_start(readable),
                now=now,
                targets=observe.scrape_targets(readable, trial_pods),
            )
        finalize_pod = None
        if not active and model_store(spec, spec.output.path) is not None:
            pod_name = names.finalize_pod_name(name, sweep["metadata"].get("generation"))
            finalize_pod = self.kube.get_pod(namespace, pod_name)
            if finalize_pod is not None and observe.controller_uid(finalize_pod) != sweep[
                "metadata"
            ].get("uid"):
                finalize_pod = None  # an earlier sweep's of the same name
        warm = self.warm_history(namespace, name, spec)
        # Decide, apply, write status once.
        decision = decide.decide(
            sweep, spec, records, trial_pods, reading, now, self.timeouts, finalize_pod, warm
        )
        decision = self.apply(sweep, spec, decision, {r.name: r.body for r in readable})
        return PassResult(phase=decision.status.phase.value, settled=decision.status.phase.finished)

    def warm_history(self, namespace: str, name: str, spec: SweepSpec) -> WarmHistory:
        """The earlier sweeps `spec.warmStart` names, read on every pass (levels: one that
        appears, or lends more finished trials, is seen on the next): each BertSweep, and its
        BertTrial records from the cache as this sweep's own are."""
        if spec.warm_start is None:
            return WarmHistory()
        read = self.cache.read if self.cache is not None else observe.read_trial
        earlier = []
        for source in spec.warm_start.sweeps:
            asked = source != name and is_sweep_name(source)
            obj = self.kube.get_sweep(namespace, source) if asked else None
            objs = self.trial_objects(namespace, source) if obj is not None else []
            earlier.append(observe.earlier_sweep(source, obj, objs, read))
        return warm_history(name, spec, earlier)

    def parse(self, raw: Any) -> SweepSpec:
        """The spec, and what this operator's policy allows beyond the schema."""
        spec = parse_spec(raw)
        pods.check_policy(spec, allow_host_path=self.allow_host_path)
        return spec

    def apply(
        self,
        sweep: Mapping[str, Any],
        spec: SweepSpec | None,
        decision: decide.Decision,
        bodies: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> decide.Decision:
        """Carry a decision out in its order: records, then pods, then the status, which
        says what the API server refused on the way. Returns the decision as carried out."""
        uid = str(sweep["metadata"]["uid"])
        bodies = dict(bodies or {})
        for write in decision.trial_writes:
            bodies[write.name] = self.remember(
                self.kube.replace_trial_status(bodies[write.name], decide.status_body(write.status))
            )
        for trial in decision.ended:
            TRIALS_ENDED.labels(trial.phase.value).inc()
        for pod_name in decision.delete_pods:
            self.kube.delete_pod(sweep["metadata"]["namespace"], pod_name)
        refusals: list[decide.Refusal] = []
        if spec is not None:
            for pod in decision.create_pods:
                refusals += self._create_pod(sweep, spec, pod)
            for trial in decision.create_trials:
                # The record first: once it exists, a restarted operator knows of the trial and
                # gives it a pod if this pass dies before the next line.
                try:
                    obj, created = self.kube.create_trial(decide.trial_manifest(sweep, trial), uid)
                except Refused as error:
                    refusals.append(decide.Refusal(trial, error.message, error.quota, False))
                    continue
                if created:
                    TRIALS_CREATED.inc()
                bodies[trial.name] = self.remember(obj)
                record = observe.read_trial(obj)
                if record.trial.phase.active:
                    refusals += self._create_pod(
                        sweep, spec, decide.PodToCreate(record.trial, record.uid)
                    )
            decision = decide.refused(sweep, spec, decision, refusals, datetime.now(UTC))
            for write in decision.trial_writes:
                if write.name in {r.trial.name for r in refusals if r.recorded}:
                    self.remember(
                        self.kube.replace_trial_status(
                            bodies[write.name], decide.status_body(write.status)
                        )
                    )
        if spec is not None and decision.finalize is not None:
            owner = pods.Owner(API_VERSION, SWEEP_KIND, sweep["metadata"]["name"], uid)
            self.kube.create_pod(
                pods.finalize_pod(
                    sweep["metadata"]["name"],
                    sweep["metadata"]["namespace"],
                    spec,
                    decision.finalize,
                    owner,
                    sweep["metadata"].get("generation"),
                )
            )
        for event in decision.events:
            log.log(
                logging.WARNING if event.warning else logging.INFO,
                "%s/%s: %s: %s",
                sweep["metadata"]["namespace"],
                sweep["metadata"]["name"],
                event.reason,
                event.message,
            )
            self.kube.post_event(sweep, event)
        if decision.write_status:
            self.kube.replace_sweep_status(sweep, decide.status_body(decision.status))
        return decision

    def _create_pod(
        self, sweep: Mapping[str, Any], spec: SweepSpec, pod: decide.PodToCreate
    ) -> list[decide.Refusal]:
        try:
            self.kube.create_pod(decide.pod_manifest(sweep, spec, pod.trial, pod.record_uid))
        except Refused as error:
            log.warning(
                "%s: the API server refused pod %s: %s", pod.trial.name, pod.trial.name, error
            )
            return [decide.Refusal(pod.trial, error.message, error.quota)]
        return []


Key = tuple[str, str]


class Workers:
    """One reconcile loop per sweep, started when the sweep is first seen (a restarted operator
    sees every sweep in its initial listing), woken by changes, ended when the sweep is gone."""

    def __init__(
        self, operator: Operator, interval: float = 2.0, idle_interval: float = 60.0
    ) -> None:
        self.operator = operator
        self.interval = interval
        self.idle_interval = idle_interval
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._kicks: dict[Key, asyncio.Event] = {}
        self._generations: dict[Key, Any] = {}
        self._phases: dict[Key, str] = {}
        self._by_label: dict[Key, Key] = {}

    def sweep_changed(self, namespace: str, name: str, generation: Any, deleted: bool) -> None:
        key = (namespace, name)
        # Pods carry the sweep's label, which is its name cut to 63 characters past that.
        self._by_label[(namespace, names.sweep_label(name))] = key
        if deleted:
            self._forget(key)
            if self.operator.cache is not None:
                self.operator.cache.forget(namespace, names.sweep_label(name))
            return
        task = self._tasks.get(key)
        if task is None or task.done():
            self._kicks[key] = asyncio.Event()
            self._tasks[key] = asyncio.create_task(self._loop(key), name=f"{namespace}/{name}")
        elif self._generations.get(key) == generation:
            return  # a status write (ours) or a re-listing: nothing new to act on
        self._generations[key] = generation
        self._kicks[key].set()

    def pod_changed(self, namespace: str, sweep_label: str) -> None:
        key = self._by_label.get((namespace, sweep_label), (namespace, sweep_label))
        kick = self._kicks.get(key)
        if kick is not None:
            kick.set()

    async def stop(self) -> None:
        for key in list(self._tasks):
            self._forget(key)

    def _forget(self, key: Key) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._kicks.pop(key, None)
        self._by_label = {k: v for k, v in self._by_label.items() if v != key}
        self._generations.pop(key, None)
        self._phases.pop(key, None)
        self._count_phases()

    def _count_phases(self) -> None:
        for phase in SweepPhase:
            SWEEPS.labels(phase.value).set(sum(p == phase.value for p in self._phases.values()))

    async def _loop(self, key: Key) -> None:
        namespace, name = key
        failures = 0
        while key in self._kicks:
            kick = self._kicks[key]
            kick.clear()
            started = time.monotonic()
            try:
                with RECONCILE_SECONDS.time():
                    result = await asyncio.to_thread(self.operator.run_pass, namespace, name)
            except Conflict as error:
                # Someone (the user, a second operator) wrote first: read again and redo.
                log.info("%s/%s: %s; retrying", namespace, name, error)
                delay = DEBOUNCE
            except ForeignObject as error:
                log.warning("%s/%s: %s", namespace, name, error)
                delay = self.interval * 2
            except Exception:
                # Logged and retried with backoff: a failing pass never stops the operator.
                failures += 1
                RECONCILE_ERRORS.inc()
                delay = min(MAX_BACKOFF, self.interval * 2**failures)
                log.exception("%s/%s: reconcile failed; retrying in %.0fs", namespace, name, delay)
            else:
                failures = 0
                if result.gone:
                    self._forget(key)
                    return
                if result.phase:
                    self._phases[key] = result.phase
                    self._count_phases()
                elapsed = time.monotonic() - started
                # A huge sweep's pass takes a while; keep the API server's load bounded.
                delay = self.idle_interval if result.settled else max(self.interval, 2 * elapsed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(kick.wait(), timeout=delay)
                await asyncio.sleep(DEBOUNCE)


# ---- kopf wiring -----------------------------------------------------------------------------


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: every handler here is `@kopf.on.event`, which never reads a diff, yet kopf
    builds one for each watch event (a deep copy of the object) unless told otherwise. In the
    scale benchmark that was a sixth of the operator's time (benchmarks/README.md)."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup(registry=REGISTRY)
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True
    settings.persistence.diffbase_storage = NoDiffBase()
    # Our own Events say what happened; kopf posts only its warnings and errors.
    settings.posting.level = logging.WARNING
    # Watches are re-established every few minutes, so a silently dead connection heals.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10


@kopf.on.login(registry=REGISTRY)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # The same credentials as kube.py's client: kubeconfig, or the pod's service account. (Only
    # kopf's default registry has login handlers; this one is ours so that tests import it.)
    return kopf.login_via_client(**kwargs)


@kopf.on.event(GROUP, VERSION, "bertsweeps", registry=REGISTRY)
async def sweep_event(
    event: kopf.RawEvent, name: str, namespace: str | None, meta: kopf.Meta, memo: Any, **_: Any
) -> None:
    memo.workers.sweep_changed(
        namespace or "", name, meta.get("generation"), deleted=event.get("type") == "DELETED"
    )


@kopf.on.event("v1", "pods", labels={SWEEP_LABEL: kopf.PRESENT}, registry=REGISTRY)
async def pod_event(labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any) -> None:
    memo.workers.pod_changed(namespace or "", labels[SWEEP_LABEL])


@kopf.on.event(GROUP, VERSION, "berttrials", registry=REGISTRY)
async def trial_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    # Only the cache: our own writes are most of these events, and pods wake the sweeps.
    obj = event.get("object") or {}
    if event.get("type") == "DELETED":
        memo.cache.remove(obj)
    else:
        memo.cache.put(obj)


@kopf.on.cleanup(registry=REGISTRY)
async def stop_workers(memo: Any, **_: Any) -> None:
    await memo.workers.stop()


def start_metrics_server(settings: OperatorSettings) -> None:
    """The operator's /metrics (BERTSWEEP_OPERATOR_METRICS_PORT, default 8080; 0: off)."""
    port, address = settings.operator_metrics_port, settings.operator_metrics_addr
    if port == 0:
        return
    try:
        prometheus_client.start_http_server(port, addr=address)
    except OSError as error:
        # A port in use must not keep sweeps from running.
        log.warning("operator metrics not served on %s:%d: %s", address, port, error)
    else:
        log.info("operator metrics on http://%s:%d/metrics", address, port)


def run_operator(namespaces: Sequence[str] | None = None, prometheus_url: str | None = None) -> int:
    """`bertsweep operator`: watch all namespaces (or those named) until interrupted."""
    try:
        settings = OperatorSettings()
    except ValidationError as error:
        print(f"error: {describe_validation_error(error, 'BERTSWEEP')}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per request or per watch event says nothing an operator's reader needs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    start_metrics_server(settings)
    default_url = prometheus_url or settings.prometheus_url or None
    try:
        kube = Kube.from_environment()
    except ConfigException as error:
        log.error("no Kubernetes credentials (kubeconfig or in-cluster): %s", error)
        return 2
    cache = RecordCache()
    operator = Operator(
        kube=kube,
        metrics=TrialMetrics(httpx.Client(timeout=httpx.Timeout(5.0)), default_url),
        timeouts=Timeouts(
            pod_error_seconds=settings.pod_error_timeout_seconds,
            unschedulable_seconds=settings.unschedulable_timeout_seconds,
        ),
        allow_host_path=settings.allow_host_path,
        cache=cache,
    )
    log.info(
        "watching %s; default Prometheus: %s; hostPath volumes %s",
        ", ".join(namespaces) if namespaces else "all namespaces",
        default_url or "none",
        "allowed" if settings.allow_host_path else "refused",
    )
    kopf.run(
        registry=REGISTRY,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces or ()),
        memo=kopf.Memo(
            workers=Workers(operator, settings.interval_seconds, settings.idle_interval_seconds),
            cache=cache,
        ),
    )
    return 0
