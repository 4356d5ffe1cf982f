"""The trial's Prometheus endpoint: exactly the series of `bertsweep.contract`, each labelled
with the sweep and the trial, on a registry of its own (no process or platform collectors: the
operator reads these series and nothing else, and a small page is quick to scrape).

Why the trainer waits for a scrape before it exits: the operator (through Prometheus) and the
local runner learn a trial's final metrics and its last evaluations by scraping. Once the
process exits the endpoint is gone, so values set after the previous scrape would be lost. The
trainer therefore counts scrapes, and at the end keeps serving until one scrape that *started*
after the last value was published (it then holds every value) has been written out whole to
the scraper, or until the wait runs out. Counting a scrape once its values were collected is
not enough: on a loaded machine the response may still be unsent when the process exits, and
the scraper then gets a reset connection and keeps the previous, incomplete page.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, RestrictedRegistry

import bertsweep.contract as contract

log = logging.getLogger(__name__)


class _ScrapeCounter(Collector):
    """The collector behind the HTTP server: the trial's registry, plus a count of scrapes.

    Each scrape remembers which publication it started after, so a scrape that began before
    the final values were set does not count as having seen them; and it counts only once its
    response has been written out (`wsgi_app`).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._published = 0  # bumped whenever values that must be seen are set
        self._seen = 0  # the latest publication a delivered scrape started after
        self._request = threading.local()  # the server runs each request in a thread of its own
        self.scraped = threading.Event()

    def publish(self) -> None:
        with self._lock:
            self._published += 1
            self.scraped.clear()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._request.publication = self._published
        yield from self._registry.collect()

    def restricted_registry(self, names: Iterable[str]) -> RestrictedRegistry:
        # `/metrics?name[]=...` asks for a subset: it never calls collect(), so is not counted.
        return self._registry.restricted_registry(names)

    def unseen(self) -> bool:
        with self._lock:
            return self._seen < self._published

    def _delivered(self, publication: int) -> None:
        with self._lock:
            self._seen = max(self._seen, publication)
            if self._seen >= self._published:
                self.scraped.set()

    def wsgi_app(self) -> Callable[..., Iterable[bytes]]:
        """prometheus_client's /metrics app, counting a full scrape once its body is written.

        wsgiref writes each chunk of the body before it asks the iterator for the next, so
        the code after the last `yield` runs only once the whole page went to the socket."""
        exposition = make_wsgi_app(self)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
            self._request.publication = None
            body = exposition(environ, start_response)
            publication: int | None = self._request.publication

            def written() -> Iterator[bytes]:
                yield from body
                if publication is not None:
                    self._delivered(publication)

            return written()

        return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would bury the training log


def _label(value: float, digits: int) -> str:
    """A label value that is the same number every time it is written (no float noise)."""
    return f"{round(value, digits):g}" if digits else str(int(value))


class TrialMetrics:
    """The series one trial exposes, and the HTTP server that exposes them."""

    def __init__(self, sweep: str, trial: str) -> None:
        self.registry = CollectorRegistry()
        self._labels = {"sweep": sweep, "trial": trial}
        trial_labels = list(contract.TRIAL_LABELS)

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, [*trial_labels, *extra], registry=self.registry)

        self._eval = gauge(
            contract.EVAL_SERIES,
            "A metric of one evaluation (one series per evaluation, never overwritten).",
            ("metric", "step", "epoch"),
        )
        self._final = gauge(
            contract.FINAL_SERIES, "Final metrics, present once training has ended.", ("metric",)
        )
        self._step = gauge(contract.STEP_SERIES, "Optimizer steps taken.")
        self._epoch = gauge(contract.EPOCH_SERIES, "Epochs trained (fractional).")
        self._train_loss = gauge(contract.TRAIN_LOSS_SERIES, "Running training loss.")
        self._samples = gauge(
            contract.SAMPLES_PER_SECOND_SERIES, "Training throughput, evaluation excluded."
        )
        self._counter = _ScrapeCounter(self.registry)
        self._server: WSGIServer | None = None
        self.set_progress(0, 0.0)

    def start(self, addr: str, port: int) -> int:
        """Serve /metrics on addr:port (port 0: a free port); returns the port bound."""

        # The family of what addr resolves to, as prometheus_client's own server picks it, so
        # an IPv6 address or a host name that resolves only to one still binds.
        family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)

        class Server(ThreadingWSGIServer):
            address_family = family[0][0]

        server = make_server(
            addr, port, self._counter.wsgi_app(), Server, handler_class=_QuietHandler
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return int(server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def set_progress(self, step: int, epoch: float) -> None:
        self._step.labels(**self._labels).set(step)
        self._epoch.labels(**self._labels).set(epoch)

    def set_train_loss(self, loss: float) -> None:
        self._train_loss.labels(**self._labels).set(loss)

    def set_samples_per_second(self, rate: float) -> None:
        self._samples.labels(**self._labels).set(rate)

    def record_eval(self, step: int, epoch: float, values: Mapping[str, float]) -> None:
        where = {"step": _label(step, 0), "epoch": _label(epoch, 4)}
        for metric, value in values.items():
            self._eval.labels(**self._labels, metric=metric, **where).set(value)
        self._counter.publish()

    def set_final(self, values: Mapping[str, float]) -> None:
        for metric, value in values.items():
            self._final.labels(**self._labels, metric=metric).set(value)
        self._counter.publish()

    def wait_for_scrape(self, timeout: float, abandon: Callable[[], bool] = lambda: False) -> bool:
        """Block until a scrape has seen everything published, `timeout` passes, or `abandon()`
        says to give up; True if the scrape happened. Nothing published: returns at once."""
        if not self._counter.unseen():
            return True
        deadline = time.monotonic() + timeout
        while not self._counter.scraped.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or abandon():
                if timeout > 0:
                    log.info("no scrape of the final values within %g s; exiting", timeout)
                return False
            # Short waits so that a signal (abandon) is noticed promptly.
            self._counter.scraped.wait(min(left, 0.2))
        return True
