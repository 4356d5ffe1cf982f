"""Prometheus service discovery for the dev cluster: the running pods as file_sd targets.

Debian's Prometheus has no kubernetes_sd, so the runner publishes what kubernetes_sd plus a
``labelmap`` of the pod labels would give: one target group per running pod that exposes a
container port named ``metrics`` (or the annotation ``prometheus.io/port``; annotation
``prometheus.io/scrape: "false"`` opts out), target ``podIP:port``, labels ``namespace``, ``pod``
and every pod label with its name sanitized (``app.kubernetes.io/name`` ->
``app_kubernetes_io_name``); annotation ``prometheus.io/path`` sets ``__metrics_path__``.

``metrics_endpoint``, ``target_groups`` and ``render`` are pure; ``TargetFile`` replaces the file
atomically, and only when its content changes, so Prometheus never reads half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .common import Json, first_container


@dataclass(frozen=True)
class Target:
    namespace: str
    pod: str
    ip: str
    port: int
    path: str | None
    labels: Mapping[str, str]


def prom_label_name(key: str) -> str:
    """A Kubernetes label key as a Prometheus label name (kubernetes_sd's sanitizing)."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", key)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def metrics_endpoint(pod: Json) -> tuple[int | None, str | None]:
    """The port and path Prometheus should scrape the pod on; (None, None) for none."""
    ann = pod["metadata"].get("annotations") or {}
    if str(ann.get("prometheus.io/scrape", "")).lower() == "false":
        return None, None
    path = ann.get("prometheus.io/path")
    for p in first_container(pod).get("ports") or []:
        if p.get("name") == "metrics":
            return int(p["containerPort"]), path
    if ann.get("prometheus.io/port"):
        with contextlib.suppress(ValueError):
            return int(ann["prometheus.io/port"]), path
    return None, None


def target_groups(targets: Iterable[Target]) -> list[Json]:
    groups = []
    for t in sorted(targets, key=lambda t: f"{t.namespace}/{t.pod}"):
        labels = {prom_label_name(k): str(v) for k, v in t.labels.items()}
        # Names Prometheus reserves (a label "__x" would configure the scrape) stay out.
        labels = {k: v for k, v in labels.items() if not k.startswith("__")}
        labels["namespace"] = t.namespace
        labels["pod"] = t.pod
        if t.path:
            labels["__metrics_path__"] = t.path
        groups.append({"targets": [f"{t.ip}:{t.port}"], "labels": labels})
    return groups


def render(groups: list[Json]) -> str:
    return json.dumps(groups, indent=1, sort_keys=True) + "\n"


class TargetFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.written: str | None = None

    def write(self, targets: Iterable[Target]) -> None:
        text = render(target_groups(targets))
        if text == self.written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)
        self.written = text

    def clear(self) -> None:
        """Publish no targets, whatever was written before."""
        self.written = None
        self.write([])
