"""List and watch the pods bound to this node (``spec.nodeName``, all namespaces).

``PodWatcher.loop`` lists the node's pods, hands each to ``PodHandler.handle``, reports the pods
the runner knows that the list no longer has as gone, then watches from the list's
resourceVersion (with bookmarks) and hands on every event: ADDED and MODIFIED to ``handle``,
DELETED to ``deleted``. A watch the server ends is resumed from the last resourceVersion seen; an
expired one (410) or any failure leads to a fresh list, after a backoff (1 s doubling to 15 s)
for failures. A handler's exception is logged and does not end the watch.

Objects are raw JSON (dicts), never the client's models: the runner reads fields the models may
not know and skips their (slow) deserialization.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Collection
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from .common import Json, pod_key

log = logging.getLogger("podrunner")

WATCH_TIMEOUT_S = 240
MAX_BACKOFF_S = 15.0


class PodHandler(Protocol):
    def handle(self, pod: Json) -> None: ...

    def deleted(self, uid: str, pod: Json | None) -> None: ...

    def known_uids(self) -> Collection[str]: ...


class PodWatcher:
    def __init__(self, api: Any, node: str, handler: PodHandler, stop: threading.Event) -> None:
        self.api = api
        self.node = node
        self.handler = handler
        self.stop = stop
        self.field_selector = f"spec.nodeName={node}"
        self.resp: Any = None

    def close(self) -> None:
        """End a watch in progress (from another thread), so that ``loop`` sees ``stop``."""
        resp = self.resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()

    def relist(self) -> str:
        resp = self.api.list_pod_for_all_namespaces(
            field_selector=self.field_selector, _preload_content=False, _request_timeout=30
        )
        data = json.loads(resp.data)
        seen = set()
        for pod in data.get("items") or []:
            seen.add(pod["metadata"]["uid"])
            self.handler.handle(pod)
        for uid in [u for u in self.handler.known_uids() if u not in seen]:
            self.handler.deleted(uid, None)
        return str(data["metadata"]["resourceVersion"])

    def loop(self) -> None:
        rv: str | None = None
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if rv is None:
                    rv = self.relist()
                    log.info("synced pods of node %s at resourceVersion %s", self.node, rv)
                rv = self.watch_once(rv)
                backoff = 1.0
                continue
            except ApiException as e:
                if self.stop.is_set():
                    return
                rv = None
                if e.status == 410:
                    log.info("watch expired (410); relisting")
                    continue
                log.warning(
                    "list/watch failed: %s %s; retrying in %.0f s", e.status, e.reason, backoff
                )
            except Exception as e:
                if self.stop.is_set():
                    return
                rv = None
                log.warning("list/watch failed: %s; retrying in %.0f s", e, backoff)
            self.stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def watch_once(self, rv: str) -> str:
        """Watch from ``rv`` until the server ends the stream; returns the last resourceVersion."""
        resp = self.api.list_pod_for_all_namespaces(
            field_selector=self.field_selector,
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_S,
            _preload_content=False,
            _request_timeout=(10, WATCH_TIMEOUT_S + 60),
        )
        self.resp = resp
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self.stop.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                etype = event.get("type")
                obj = event.get("object") or {}
                if etype == "ERROR":
                    raise ApiException(
                        status=int(obj.get("code") or 500),
                        reason=f"{obj.get('reason')}: {obj.get('message')}",
                    )
                new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                if new_rv:
                    rv = str(new_rv)
                if etype == "BOOKMARK":
                    continue
                try:
                    if etype == "DELETED":
                        self.handler.deleted(obj["metadata"]["uid"], obj)
                    else:
                        self.handler.handle(obj)
                except Exception:
                    log.exception("handling %s of %s failed", etype, pod_key(obj))
        finally:
            self.resp = None
            with contextlib.suppress(Exception):
                resp.close()
                resp.release_conn()
        return rv
