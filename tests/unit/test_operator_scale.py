"""The operator-scale benchmark's arithmetic (benchmarks/operator_scale.py), on plain data:
Prometheus text, histogram quantiles, the API server's request counters and who sent each
write, pass durations over a run, /proc readings, the sweeps it submits. Its figures are in
benchmarks/README.md ("Operator scale")."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bertsweep.api import parse_spec

pytestmark = pytest.mark.unit

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "operator_scale.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("operator_scale", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


HISTOGRAM_TEXT = """\
# HELP bertsweep_operator_reconcile_seconds Duration of one reconcile pass of one sweep
# TYPE bertsweep_operator_reconcile_seconds histogram
bertsweep_operator_reconcile_seconds_bucket{le="0.1"} 10.0
bertsweep_operator_reconcile_seconds_bucket{le="0.25"} 20.0
bertsweep_operator_reconcile_seconds_bucket{le="0.5"} 30.0
bertsweep_operator_reconcile_seconds_bucket{le="+Inf"} 30.0
bertsweep_operator_reconcile_seconds_count 30.0
bertsweep_operator_reconcile_seconds_sum 4.5
bertsweep_operator_reconcile_seconds_created 1.7e+09
"""


def test_histograms_read_from_the_text_format(bench: ModuleType) -> None:
    h = bench.parse_histogram(HISTOGRAM_TEXT, bench.HISTOGRAM)
    assert h.buckets == ((0.1, 10.0), (0.25, 20.0), (0.5, 30.0), (math.inf, 30.0))
    assert (h.count, h.total) == (30.0, 4.5)
    assert bench.parse_histogram("", bench.HISTOGRAM) == bench.Histogram.empty()


def test_histogram_quantile_interpolates_as_prometheus_does(bench: ModuleType) -> None:
    h = bench.parse_histogram(HISTOGRAM_TEXT, bench.HISTOGRAM)
    # Rank 15 of 30 lies halfway through the bucket (0.1, 0.25].
    assert bench.histogram_quantile(0.5, h) == pytest.approx(0.175)
    # Rank 5 in the first bucket: from 0 to its bound.
    assert bench.histogram_quantile(1 / 6, h) == pytest.approx(0.05)
    assert bench.histogram_quantile(1.0, h) == pytest.approx(0.5)
    # A rank in the +Inf bucket gives the largest finite bound.
    spill = bench.Histogram(((0.1, 1.0), (1.0, 2.0), (math.inf, 10.0)), 10.0, 50.0)
    assert bench.histogram_quantile(0.95, spill) == 1.0
    assert math.isnan(bench.histogram_quantile(0.95, bench.Histogram.empty()))


def test_what_a_histogram_observed_between_two_readings(bench: ModuleType) -> None:
    before = bench.Histogram(((0.1, 4.0), (0.5, 5.0), (math.inf, 5.0)), 5.0, 0.6)
    after = bench.parse_histogram(HISTOGRAM_TEXT, bench.HISTOGRAM)
    d = bench.histogram_delta(before, after)
    assert d.buckets == ((0.1, 6.0), (0.25, 20.0), (0.5, 25.0), (math.inf, 25.0))
    assert (d.count, d.total) == (25.0, pytest.approx(3.9))


def request_line(verb: str, resource: str, value: float, **labels: str) -> str:
    lab = {
        "code": "201",
        "component": "apiserver",
        "contentType": "application/json",
        "dry_run": "",
        "group": "",
        "resource": resource,
        "scope": "namespace",
        "subresource": "",
        "verb": verb,
        "version": "v1",
        **labels,
    }
    inner = ",".join(f'{k}="{v}"' for k, v in lab.items())
    return f"apiserver_request_total{{{inner}}} {value}"


def test_api_writes_per_trial_from_two_readings_of_the_counter(bench: ModuleType) -> None:
    trials = "tuning.bertsweep.io"
    before = "\n".join(
        [
            "# TYPE apiserver_request_total counter",
            request_line("POST", "pods", 10),
            request_line("PATCH", "pods", 30, subresource="status", code="200"),
            request_line("LIST", "berttrials", 7, group=trials, code="200"),
            request_line("WATCH", "pods", 3, code="0"),
        ]
    )
    after = "\n".join(
        [
            request_line("POST", "pods", 20),
            request_line("PATCH", "pods", 50, subresource="status", code="200"),
            request_line("LIST", "berttrials", 27, group=trials, code="200"),
            request_line("WATCH", "pods", 9, code="0"),
            # New since: writes the operator lost to a newer version, and the scheduler's.
            request_line("PUT", "berttrials", 4, group=trials, subresource="status", code="409"),
            request_line(
                "POST",
                "pods",
                10,
                subresource="binding",
                contentType="application/vnd.kubernetes.protobuf",
            ),
            request_line("POST", "bertsweeps", 1, group=trials),
        ]
    )
    delta = bench.counter_delta(bench.request_counts(before), bench.request_counts(after))
    writes = bench.writes_summary(delta, trials=10)
    assert writes["total"] == 10 + 20 + 4 + 10 + 1
    assert writes["per_trial"] == pytest.approx(4.5)
    assert writes["conflicts_409"] == 4
    assert writes["by_writer_per_trial"] == {
        "operator": pytest.approx(1.4),
        "podrunner": pytest.approx(2.0),
        "kube-scheduler": pytest.approx(1.0),
        "benchmark": pytest.approx(0.1),
    }
    assert writes["by_request_per_trial"]["podrunner: PATCH pods/status"] == pytest.approx(2.0)
    # Reads are counted apart; watches not at all.
    assert bench.reads_summary(delta, trials=10) == {"LIST berttrials": pytest.approx(2.0)}


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource", "content_type", "writer"),
    [
        ("PUT", "tuning.bertsweep.io", "bertsweeps", "status", "application/json", "operator"),
        ("POST", "tuning.bertsweep.io", "berttrials", "", "application/json", "operator"),
        ("POST", "", "pods", "", "application/json", "operator"),
        ("POST", "", "events", "", "application/json", "operator"),
        ("PATCH", "", "pods", "status", "application/json", "podrunner"),
        ("PATCH", "", "nodes", "status", "application/json", "podrunner"),
        ("DELETE", "", "pods", "", "application/json", "operator+podrunner"),
        ("POST", "", "pods", "binding", "application/vnd.kubernetes.protobuf", "kube-scheduler"),
        (
            "POST",
            "events.k8s.io",
            "events",
            "",
            "application/vnd.kubernetes.protobuf",
            "kube-scheduler",
        ),
        (
            "PUT",
            "",
            "endpoints",
            "",
            "application/vnd.kubernetes.protobuf",
            "kube-controller-manager",
        ),
        (
            "DELETE",
            "",
            "pods",
            "",
            "application/vnd.kubernetes.protobuf",
            "kube-controller-manager",
        ),
        ("POST", "tuning.bertsweep.io", "bertsweeps", "", "application/json", "benchmark"),
        ("POST", "", "configmaps", "", "application/json", "other"),
    ],
)
def test_who_sent_a_write(
    bench: ModuleType,
    verb: str,
    group: str,
    resource: str,
    subresource: str,
    content_type: str,
    writer: str,
) -> None:
    key = bench.RequestKey(verb, group, resource, subresource, content_type, "201")
    assert bench.writer_of(key) == writer


def test_percentiles(bench: ModuleType) -> None:
    values = [0.5, 0.1, 0.3, 0.2, 0.4]
    assert bench.percentile(values, 0.5) == 0.3
    assert bench.percentile(values, 0.95) == 0.5
    assert bench.percentile([7.0], 0.95) == 7.0
    assert math.isnan(bench.percentile([], 0.5))
    assert bench.quantiles(values) == {"p50": 0.3, "p95": 0.5}
    assert bench.weighted_percentile([(1.0, 90), (9.0, 10)], 0.5) == 1.0
    assert bench.weighted_percentile([(1.0, 90), (9.0, 10)], 0.95) == 9.0


def samples(bench: ModuleType, durations: list[float], finished_per_pass: int) -> list[object]:
    """One histogram reading per pass (as the sampler reads a single sweep's worker)."""
    out = []
    count, total = 0.0, 0.0
    for i in range(len(durations) + 1):
        h = bench.Histogram(((math.inf, count),), count, total)
        out.append(bench.PassSample(float(i), h, i * finished_per_pass))
        if i < len(durations):
            count, total = count + 1, total + durations[i]
    return out


def test_a_pass_that_grows_with_the_finished_trials_shows_in_its_slope(bench: ModuleType) -> None:
    # 100 passes, 100 trials finished between two; each pass 10 ms more per 1,000 finished.
    growing = [0.05 + 0.01 * (i + 1) * 100 / 1000 for i in range(100)]
    g = bench.pass_growth(bench.pass_windows(samples(bench, growing, 100)))
    assert g["slope_s_per_1000_finished"] == pytest.approx(0.01)
    assert g["first_tenth"]["passes"] == 10
    assert g["first_tenth"]["mean_s"] == pytest.approx(sum(growing[:10]) / 10)
    assert g["last_tenth"]["mean_s"] == pytest.approx(sum(growing[-10:]) / 10)
    assert g["last_tenth"]["p95_s"] == pytest.approx(growing[-1])
    flat = bench.pass_growth(bench.pass_windows(samples(bench, [0.08] * 100, 100)))
    assert flat["slope_s_per_1000_finished"] == pytest.approx(0.0)
    assert flat["last_over_first_mean"] == pytest.approx(1.0)


def test_windows_with_several_passes_give_their_mean(bench: ModuleType) -> None:
    a = bench.PassSample(0.0, bench.Histogram((), 4.0, 1.0), 0)
    b = bench.PassSample(0.5, bench.Histogram((), 4.0, 1.0), 3)  # no pass in between
    c = bench.PassSample(1.0, bench.Histogram((), 7.0, 1.9), 9)
    assert bench.pass_windows([a, b, c]) == [bench.PassWindow(3.0, pytest.approx(0.3), 9)]


def test_proc_readings(bench: ModuleType) -> None:
    # A command name may hold spaces and parentheses: fields are counted after the last ")".
    stat = "4242 (py (thon) x) S 1 2 3 4 5 6 7 8 9 10 250 150 40 10 20 0 1 0 777 0 0"
    assert bench.proc_cpu(stat, 100) == (4.0, 0.5)
    status = "Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n"
    assert bench.proc_status_kb(status, "VmHWM") == 204800.0
    assert math.isnan(bench.proc_status_kb(status, "VmSwap"))
    busy, total = bench.machine_busy("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n", 100)
    assert (busy, total) == (1.5, 10.0)


def test_a_freed_slot_is_matched_with_the_pod_that_takes_it(bench: ModuleType) -> None:
    created = [0.0, 0.0, 1.3, 1.5, 2.6]  # two slots; three pods come after the first two
    ended = [1.0, 1.2, 2.4, 2.7, 3.9]
    assert bench.matched_reactions(ended, created, 2) == pytest.approx([0.3, 0.3, 0.2])


def test_pod_stages(bench: ModuleType) -> None:
    pods = {
        "old": {"created": -5.0, "bound": -4.9, "running": -4.8, "ended": -3.0},
        "a": {"created": 1.0, "bound": 1.1, "running": 1.3, "ended": 2.3},
        "b": {"created": 1.0, "bound": 1.2, "running": 1.4, "ended": 2.6, "failed": 1.0},
        "c": {"created": 2.5},
    }
    stages = bench.pod_stages(pods, since=0.0, slots=2)
    assert (stages["pods"], stages["failed"]) == (3, 1)
    assert stages["created_to_bound_s"]["p95"] == pytest.approx(0.2)
    assert stages["running_to_ended_s"]["p50"] == pytest.approx(1.0)
    assert stages["ended_to_next_pod_s"]["p50"] == pytest.approx(0.2)
    assert "ended_to_next_pod_s" not in bench.pod_stages(pods, since=0.0, slots=None)


def test_top_frames_of_a_py_spy_profile(bench: ModuleType) -> None:
    raw = (
        "main (op.py:1);run_pass (handlers.py:90);list_trials (kube.py:213) 6\n"
        "main (op.py:1);run_pass (handlers.py:90);decide (decide.py:40) 3\n"
        "main (op.py:1);idle (loop.py:5) 1\n"
        "garbage\n"
    )
    top = bench.top_frames(raw, n=3)
    assert top["inclusive"][0] == ("main (op.py:1)", 1.0)
    assert top["inclusive"][1] == ("run_pass (handlers.py:90)", 0.9)
    assert top["self"][0] == ("list_trials (kube.py:213)", 0.6)
    assert bench.top_frames("") == {"inclusive": [], "self": []}


@pytest.mark.parametrize("process", [False, True])
def test_the_benchmarks_sweeps_are_valid_and_simulated(bench: ModuleType, process: bool) -> None:
    doc = bench.sweep_manifest("tput", 1000, 50, 1.0, 0.0, process)
    spec = parse_spec(doc["spec"])  # the operator's own reading of it
    assert (spec.max_trials, spec.parallelism) == (1000, 50)
    assert spec.algorithm.name.value == "random"
    assert spec.early_stopping.name.value == "none"
    assert not spec.trial_template.resources.requests
    template = spec.trial_template
    assert template.args == ["--simulate", "1"]
    expected = ["python", "-m", "bertsweep_trainer.main"] if process else ["bertsweep-trainer"]
    assert template.command == expected
    assert [(e.name, e.value) for e in template.env] == [("BERTSWEEP_SCRAPE_WAIT_SECONDS", "0")]


def test_objects_and_counts(bench: ModuleType) -> None:
    assert bench.json_size({"a": [1, 2]}) == len('{"a":[1,2]}')
    sweep = {"status": {"trials": {"succeeded": 5, "failed": 1, "pruned": 2, "running": 9}}}
    assert bench.finished_count(sweep) == 8
    assert bench.finished_count({}) == 0
    assert bench.ideal_s(1000, 50, 1.0) == 20.0
    assert bench.ideal_s(20, 3, 2.0) == 14.0


def test_memory_growth_against_finished_trials(bench: ModuleType) -> None:
    h = bench.Histogram.empty()
    points = [bench.PassSample(float(i), h, 1000 * i, 100.0 + 30.0 * i) for i in range(5)]
    assert bench.memory_growth(points) == {
        "start_mb": 100.0,
        "end_mb": 220.0,
        "mb_per_1000_finished": pytest.approx(30.0),
    }
    assert math.isnan(bench.memory_growth([])["end_mb"])
