"""The only module that reads trial metrics over HTTP: Prometheus's query API, and the trials'
own /metrics pages when Prometheus cannot be reached.

Queries use `last_over_time(...[window])`, not instant selectors: a finished pod's series go
stale five minutes after its last scrape (or at once, when its target disappears), and the
operator may look only after that. The window starts when the oldest active trial was created,
so series left by an earlier sweep of the same name never count. What is read becomes
`contract.Sample`s, folded by `contract.observe_trials` exactly as the local runner folds what
it scrapes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from bertsweep import contract
from bertsweep.observe import MetricsReading

log = logging.getLogger(__name__)

# The series a pass needs: evaluations (reports and pruning), final values, and progress.
QUERIED_SERIES = (
    contract.EVAL_SERIES,
    contract.FINAL_SERIES,
    contract.STEP_SERIES,
    contract.EPOCH_SERIES,
)
MIN_WINDOW_SECONDS = 60
DEFAULT_WINDOW_SECONDS = 3600


class MetricsUnavailable(Exception):
    """Prometheus did not answer, or answered with an error."""


class PrometheusClient:
    """Prometheus's HTTP API, over an injected httpx client (tests hand it a MockTransport)."""

    def __init__(self, http: httpx.Client, url: str) -> None:
        self.http = http
        self.url = url.rstrip("/")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector; raises MetricsUnavailable."""
        try:
            # POST: a regex over many trial names can outgrow a URL.
            response = self.http.post(f"{self.url}/api/v1/query", data={"query": promql})
        except httpx.HTTPError as error:
            raise MetricsUnavailable(f"Prometheus at {self.url} is unreachable: {error}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            detail = body.get("error") or response.reason_phrase
            raise MetricsUnavailable(
                f"Prometheus at {self.url} answered {response.status_code}: {detail}"
            )
        result = body.get("data", {}).get("result", [])
        return result if isinstance(result, list) else []

    def trial_samples(
        self,
        namespace: str,
        sweep: str,
        trials: Sequence[str],
        window_seconds: int,
    ) -> list[contract.Sample]:
        """Every sample of our series for these trials of one sweep."""
        names = "|".join(trials)
        samples = []
        for series in QUERIED_SERIES:
            selector = (
                f'{series}{{namespace="{_quote(namespace)}",sweep="{_quote(sweep)}",'
                f'trial=~"{names}"}}'
            )
            for item in self.query(f"last_over_time({selector}[{window_seconds}s])"):
                labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
                try:
                    value = float(item["value"][1])
                except (KeyError, IndexError, TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    # last_over_time keeps the labels; the name is ours to put back.
                    samples.append(contract.Sample(series, labels, value))
        return samples


class TrialMetrics:
    """Reads what a pass needs of its active trials: from Prometheus when it answers, else
    straight from the pods' /metrics pages (the termination message covers the rest)."""

    def __init__(self, http: httpx.Client, default_url: str | None) -> None:
        self.http = http
        self.default_url = default_url

    def read(
        self,
        url: str | None,
        namespace: str,
        sweep: str,
        trials: Sequence[str],
        since: datetime | None,
        now: datetime,
        targets: Mapping[str, str],
    ) -> MetricsReading:
        url = url or self.default_url
        problem = "no Prometheus URL is configured (spec.metrics.prometheusURL or $PROMETHEUS_URL)"
        if url:
            window = DEFAULT_WINDOW_SECONDS
            if since is not None:
                window = max(MIN_WINDOW_SECONDS, math.ceil((now - since).total_seconds()))
            try:
                samples = PrometheusClient(self.http, url).trial_samples(
                    namespace, sweep, trials, window
                )
                return MetricsReading(samples=samples, source="prometheus", url=url)
            except MetricsUnavailable as error:
                problem = str(error)
                log.warning("%s/%s: %s", namespace, sweep, problem)
        samples = []
        for trial, target in targets.items():
            found = self.scrape(target)
            if found is not None:
                # A page's samples carry the trial label already; stamp it in case they don't.
                samples += [
                    contract.Sample(s.name, {**s.labels, "trial": trial}, s.value) for s in found
                ]
        return MetricsReading(
            samples=samples,
            source="pods" if targets else "none",
            problem=problem,
            url=url,
        )

    def scrape(self, target: str) -> list[contract.Sample] | None:
        """One trial's /metrics page, or None when it does not answer."""
        try:
            response = self.http.get(target)
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.debug("scraping %s failed: %s", target, error)
            return None
        return contract.parse_exposition(response.text)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
