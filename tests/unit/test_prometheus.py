"""Reading trial metrics over HTTP, with httpx's MockTransport in place of Prometheus and pods."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from bertsweep import contract
from bertsweep.prometheus import MetricsUnavailable, PrometheusClient, TrialMetrics

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def vector(*items: tuple[dict[str, str], float]) -> httpx.Response:
    result = [{"metric": labels, "value": [1764072000.0, repr(value)]} for labels, value in items]
    return httpx.Response(
        200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
    )


def test_queries_survive_staleness_and_are_scoped_to_the_sweep() -> None:
    queries: list[str] = []

    def prometheus(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/prom/api/v1/query" and request.method == "POST"
        query = parse_qs(request.content.decode())["query"][0]
        queries.append(query)
        if contract.EVAL_SERIES in query:
            labels = {"trial": "s-0001", "metric": "eval_accuracy", "step": "10", "epoch": "1.0"}
            return vector((labels, 0.75))
        if contract.FINAL_SERIES in query:
            return vector(({"trial": "s-0001", "metric": "eval_accuracy"}, 0.75))
        return vector()

    reader = TrialMetrics(client(prometheus), "http://prom:9090/prom/")
    reading = reader.read(
        None, "ns", "s", ["s-0001", "s-0002"], NOW - timedelta(minutes=5), NOW, {}
    )
    assert reading.source == "prometheus" and reading.problem is None
    observed = reading.observations()["s-0001"]
    assert observed.final == {"eval_accuracy": 0.75}
    assert observed.reports[0].step == 10 and observed.reports[0].metrics == {"eval_accuracy": 0.75}
    assert len(queries) == 4
    for query in queries:
        assert query.startswith("last_over_time(") and query.endswith("[300s])")
        assert 'namespace="ns",sweep="s",trial=~"s-0001|s-0002"' in query


def test_the_window_is_at_least_a_minute() -> None:
    seen: list[str] = []

    def prometheus(request: httpx.Request) -> httpx.Response:
        seen.append(parse_qs(request.content.decode())["query"][0])
        return vector()

    TrialMetrics(client(prometheus), "http://p").read(None, "ns", "s", ["s-0000"], NOW, NOW, {})
    assert all(q.endswith("[60s])") for q in seen)


def test_a_sweeps_own_url_wins_over_the_default() -> None:
    hosts: list[str] = []

    def prometheus(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return vector()

    reader = TrialMetrics(client(prometheus), "http://default")
    reader.read("http://mine:9090", "ns", "s", ["s-0000"], None, NOW, {})
    assert set(hosts) == {"mine"}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, text="unavailable"),
        httpx.Response(400, json={"status": "error", "error": "parse error"}),
        httpx.Response(200, text="not json"),
    ],
)
def test_errors_are_metrics_unavailable(answer: httpx.Response) -> None:
    with pytest.raises(MetricsUnavailable, match="answered"):
        PrometheusClient(client(lambda _: answer), "http://p").query("up")


EXPOSITION = f"""# HELP {contract.EVAL_SERIES} x
# TYPE {contract.EVAL_SERIES} gauge
{contract.EVAL_SERIES}{{sweep="s",trial="s-0000",metric="eval_accuracy",step="13",epoch="1.0"}} 0.58
{contract.FINAL_SERIES}{{sweep="s",trial="s-0000",metric="eval_accuracy"}} 0.58
"""


def test_unreachable_prometheus_falls_back_to_the_pods_own_pages() -> None:
    def network(request: httpx.Request) -> httpx.Response:
        if request.url.host == "prom":
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.host == "127.1.0.5":
            return httpx.Response(200, text=EXPOSITION)
        raise httpx.ConnectError("no route", request=request)

    reader = TrialMetrics(client(network), "http://prom:9090")
    targets = {"s-0000": "http://127.1.0.5:8000/metrics", "s-0001": "http://127.1.0.6:8000/metrics"}
    reading = reader.read(None, "ns", "s", ["s-0000", "s-0001"], None, NOW, targets)
    assert reading.source == "pods" and "unreachable" in (reading.problem or "")
    assert reading.url == "http://prom:9090"
    observed = reading.observations()
    assert observed["s-0000"].final == {"eval_accuracy": 0.58}
    assert "s-0001" not in observed


def test_without_any_prometheus_the_pods_are_read() -> None:
    reader = TrialMetrics(client(lambda _: httpx.Response(200, text=EXPOSITION)), None)
    reading = reader.read(None, "ns", "s", ["s-0000"], None, NOW, {"s-0000": "http://x/metrics"})
    assert reading.source == "pods" and reading.url is None
    assert "no Prometheus URL" in (reading.problem or "")
    assert json.dumps(reading.observations()["s-0000"].final) == '{"eval_accuracy": 0.58}'
