"""A report page opened in a real browser (Debian's Chromium, driven by Playwright): what it
requested, what it complained of, and what each figure drew. Shared by the local tier's report
test and the cluster tier's."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium_page(profile: Path) -> Iterator[Page]:
    """A page of a fresh, headless Chromium with the browser's own background traffic off."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


@dataclass
class Rendered:
    requests: list[str]
    """Every URL the page asked for (anything but the page itself is refused)."""
    errors: list[str]
    """Console errors and warnings, page errors, failed requests."""
    figures: dict[str, Any]
    """Per figure id (figure-KEY): its svgs, height, points per trace, lines, bars, legend and
    axis labels; None for a figure that is not on the page."""


def render(page: Page, file: Path, figures: Sequence[str], drawn_at_least: int) -> Rendered:
    """Open `file` offline and wait until `drawn_at_least` plotly figures are drawn."""
    url = file.resolve().as_uri()
    requests: list[str] = []
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            errors.append(f"console {message.type}: {message.text}")

    def only_the_page(route: Route) -> None:
        # Anything but the page itself would be a fetch: refused, and recorded below.
        route.continue_() if route.request.url == url else route.abort()

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("request", lambda request: requests.append(request.url))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.context.route("**/*", only_the_page)
    page.goto(url, wait_until="load")
    page.wait_for_function(
        "n => document.querySelectorAll('.plotly-graph-div .main-svg').length >= n",
        arg=drawn_at_least,
        timeout=30_000,
    )
    drawn = page.evaluate(
        """keys => Object.fromEntries(keys.map(key => {
            const div = document.getElementById('figure-' + key);
            if (!div) return [key, null];
            const traces = [...div.querySelectorAll('.scatterlayer g.trace')];
            return [key, {
                svgs: div.querySelectorAll('.main-svg').length,
                height: div.getBoundingClientRect().height,
                points: traces.map(t => t.querySelectorAll('path.point').length),
                lines: traces.filter(t => t.querySelector('path.js-line')).length,
                bars: div.querySelectorAll('g.trace.bars path').length,
                legend: [...div.querySelectorAll('.legendtext')].map(t => t.textContent),
                labels: [...div.querySelectorAll('.xtick text, .annotation-text')]
                    .map(t => t.textContent),
            }];
        }))""",
        list(figures),
    )
    return Rendered(requests, errors, drawn)
