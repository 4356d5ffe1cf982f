"""The only module that talks to the Kubernetes API.

It uses the `kubernetes` package for what it is good at (kubeconfig and in-cluster
credentials, exec plugins, TLS, a connection pool) and sends and receives plain JSON: pods and
records go out exactly as `pods.py` and `decide.py` render them, and come back as the dicts
`observe.py` reads. (The generated typed models of kubernetes 37 would round-trip every pod
through pydantic classes that the pure code must not import.)

Idempotence lives here: a create that meets 409 AlreadyExists means "already there" (names are
deterministic), a delete that meets 404 means "already gone", and writes to a status carry the
resourceVersion that was read, so a stale pass loses with `Conflict` instead of overwriting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.config import ConfigException

from bertsweep import names, pods
from bertsweep.api import GROUP, VERSION
from bertsweep.events import SweepEvent
from bertsweep.observe import controller_uid

log = logging.getLogger(__name__)

SWEEPS = "bertsweeps"
TRIALS = "berttrials"
COMPONENT = "bertsweep-operator"
# (connect, read) seconds: a hung API server fails the pass, which is retried, instead of
# hanging the sweep's worker.
REQUEST_TIMEOUT = (5.0, 30.0)
PAGE_SIZE = 500
# Pods that have not ended: the ones a pass must look at whatever their trial's record says.
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


class ApiError(Exception):
    def __init__(self, status: int, reason: str, body: str) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        try:
            detail = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            detail = body
        self.message = str(detail)
        """The API server's own message."""
        super().__init__(f"{status} {reason}: {detail}")


class Conflict(ApiError):
    """A write lost to a newer version of the object: the pass starts again from a fresh read."""


class Gone(ApiError):
    """The object disappeared in the middle of a pass (the sweep was deleted)."""


class Refused(ApiError):
    """The API server will not create the object as it is: invalid (422), forbidden by an
    admission plugin (403), or over a ResourceQuota (403 exceeded quota, see `quota`)."""

    @property
    def quota(self) -> bool:
        """A ResourceQuota is exhausted: the same object is accepted once quota frees."""
        return self.status == 403 and "exceeded quota" in self.body


class ForeignObject(Exception):
    """A deterministic name is taken by an object that is not ours, usually a record of an
    earlier sweep of the same name that the garbage collector has not removed yet."""


class KubeconfigError(ConfigException):
    """No usable kubeconfig: none where kubectl would look, unreadable, or without the
    context asked for. The message is one line for the user."""


class Unreachable(Exception):
    """The API server did not answer: connection refused, a timeout, a TLS failure. The
    message is one line for the user and names the server."""


# Where a pod finds its own namespace (kubectl's default in a pod without a kubeconfig).
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class Kube:
    """The operator's view of the API: BertSweeps, BertTrials, Pods, Events."""

    def __init__(self, api: client.ApiClient, namespace: str = "default") -> None:
        self.api = api
        self.instance = socket.gethostname()
        self.namespace = namespace
        """The namespace a user's commands default to (the kubeconfig context's)."""

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster credentials in a pod, else the current kubeconfig context."""
        configuration = client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        if not configuration.verify_ssl:
            # A dev cluster with insecure-skip-tls-verify: one warning at start, not one a call.
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS verification of the API server is off (kubeconfig says so)")
        return cls(client.ApiClient(configuration))

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        """A user's view of the API, found as kubectl finds it: the kubeconfig FILE
        (`--kubeconfig`), else the files of $KUBECONFIG (`:`-separated, merged: the first
        definition of a name wins), else ~/.kube/config; the context named, else the
        current-context. `namespace` is that context's namespace, else "default". In a pod
        with none of these files, its service account and its own namespace.

        Nothing is written back to the kubeconfig. Raises KubeconfigError with a one-line
        message (no file, an unreadable file, no such context)."""
        if kubeconfig is not None:
            paths = [Path(kubeconfig).expanduser()]
            if not paths[0].is_file():
                raise KubeconfigError(f"kubeconfig {kubeconfig}: no such file")
        elif os.environ.get("KUBECONFIG"):
            listed = [p for p in os.environ["KUBECONFIG"].split(os.pathsep) if p]
            paths = [Path(p).expanduser() for p in listed if Path(p).expanduser().is_file()]
            if not paths:
                raise KubeconfigError(
                    f"no kubeconfig: $KUBECONFIG names {', '.join(listed) or 'nothing'}, "
                    "which does not exist (or pass --kubeconfig FILE)"
                )
        else:
            paths = [Path("~/.kube/config").expanduser()]
            if not paths[0].is_file():
                if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
                    return cls._in_cluster()
                raise KubeconfigError(
                    "no kubeconfig: ~/.kube/config does not exist and $KUBECONFIG is not set "
                    "(or pass --kubeconfig FILE)"
                )
        where = os.pathsep.join(str(p) for p in paths)
        chosen, namespace = _pick_context(paths, context)
        configuration = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=where,
                context=chosen,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError, KeyError, TypeError) as error:
            raise KubeconfigError(
                f"kubeconfig {where}, context {chosen}: {_one_line(error)}"
            ) from None
        if not configuration.verify_ssl:
            # insecure-skip-tls-verify is the kubeconfig's explicit choice: kubectl does not
            # warn about it on every call either.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return cls(client.ApiClient(configuration), namespace or "default")

    @classmethod
    def _in_cluster(cls) -> Kube:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        except (ConfigException, OSError) as error:
            raise KubeconfigError(
                f"no kubeconfig, and the pod's service account is unusable: {_one_line(error)}"
            ) from None
        return cls(client.ApiClient(configuration), namespace or "default")

    @property
    def server(self) -> str:
        """The API server's URL, to name it in messages."""
        return str(self.api.configuration.host)

    @contextlib.contextmanager
    def reaching(self) -> Iterator[None]:
        """Transport failures of the calls inside (nothing answered) as Unreachable, naming
        the server; what the API server answers is still an ApiError."""
        try:
            yield
        except urllib3.exceptions.HTTPError as error:
            detail = _one_line(getattr(error, "reason", None) or error)
            raise Unreachable(
                f"cannot reach the Kubernetes API at {self.server}: {detail}"
            ) from None
        except client.ApiException as error:  # TLS failures come as status 0
            if error.status:
                raise
            detail = _one_line(error.reason or error)
            raise Unreachable(
                f"cannot reach the Kubernetes API at {self.server}: {detail}"
            ) from None

    # ---- plumbing -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
    ) -> Any:
        """One API call with JSON in and out; raises ApiError (Conflict for 409)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        params = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=[(k, v) for k, v in (query or {}).items()],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*params, _request_timeout=REQUEST_TIMEOUT)
        data = response.read()  # type: ignore[no-untyped-call]
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
        if not 200 <= response.status <= 299:
            kind = {409: Conflict, 404: Gone, 422: Refused, 403: Refused, 400: Refused}.get(
                response.status, ApiError
            )
            raise kind(response.status, str(response.reason), text)
        return json.loads(text) if text else None

    def _list(self, path: str, query: Mapping[str, str | int]) -> list[dict[str, Any]]:
        return list(self._items(path, query))

    def _items(self, path: str, query: Mapping[str, str | int]) -> Iterator[dict[str, Any]]:
        """Every item, a page at a time: a 10,000-trial sweep is never one huge response."""
        token = ""
        while True:
            page = self.request(
                "GET", path, {**query, "limit": PAGE_SIZE, **({"continue": token} if token else {})}
            )
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    # ---- BertSweeps -----------------------------------------------------------------------

    def get_sweep(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            sweep: dict[str, Any] = self.request("GET", _custom(namespace, SWEEPS, name))
        except Gone:
            return None
        return sweep

    def list_sweeps(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every BertSweep of `namespace`, or of all namespaces (None), as the API server
        orders them (namespace, then name). Raises Gone when the API server serves no
        BertSweeps at all (see `serves_sweeps`)."""
        if namespace is None:
            return self._list(f"/apis/{GROUP}/{VERSION}/{SWEEPS}", {})
        return self._list(_custom(namespace, SWEEPS), {})

    def serves_sweeps(self) -> bool:
        """Whether the API server knows the BertSweep kind (its CRD is installed). A 404 on a
        sweep says either "no such sweep" or "no such kind"; this tells them apart."""
        try:
            group = self.request("GET", f"/apis/{GROUP}/{VERSION}")
        except Gone:
            return False
        return any(r.get("name") == SWEEPS for r in (group or {}).get("resources") or [])

    def replace_sweep_status(
        self, sweep: Mapping[str, Any], status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The one write of a sweep's status per pass."""
        return self._replace_status(SWEEPS, sweep, status)

    # ---- BertTrials -----------------------------------------------------------------------

    def list_trials(self, namespace: str, sweep: str) -> Iterator[dict[str, Any]]:
        """The sweep's BertTrial objects, read a page at a time as they are consumed."""
        return self._items(
            _custom(namespace, TRIALS),
            {"labelSelector": f"{pods.SWEEP_LABEL}={names.sweep_label(sweep)}"},
        )

    def create_trial(self, body: Mapping[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
        """Create a trial record: (the record, True), or if it exists already (409), (the
        existing record, False); an existing record must belong to the same sweep. Raises
        Refused when the API server will not take it."""
        meta = body["metadata"]
        path = _custom(meta["namespace"], TRIALS)
        try:
            created: dict[str, Any] = self.request("POST", path, body=body)
            return created, True
        except Conflict:
            existing: dict[str, Any] = self.request("GET", f"{path}/{meta['name']}")
        if controller_uid(existing) != owner_uid:
            raise ForeignObject(
                f"BertTrial {meta['name']} belongs to an earlier sweep of the same name; "
                "waiting for it to be garbage-collected"
            )
        return existing, False

    def replace_trial_status(
        self, trial: Mapping[str, Any], status: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._replace_status(TRIALS, trial, status)

    def _replace_status(
        self, plural: str, obj: Mapping[str, Any], status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT the status subresource with the resourceVersion read: a stale read conflicts."""
        meta = obj["metadata"]
        result: dict[str, Any] = self.request(
            "PUT",
            _custom(meta["namespace"], plural, meta["name"]) + "/status",
            body={**obj, "status": status},
        )
        return result

    # ---- Pods -------------------------------------------------------------------------------

    def live_pods(self, namespace: str, sweep: str) -> dict[str, dict[str, Any]]:
        """The sweep's pods that have not ended, by name (O(parallelism), not O(trials))."""
        items = self._list(
            f"/api/v1/namespaces/{quote(namespace)}/pods",
            {
                "labelSelector": f"{pods.SWEEP_LABEL}={names.sweep_label(sweep)}",
                "fieldSelector": LIVE_PODS,
            },
        )
        return {p["metadata"]["name"]: p for p in items}

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            pod: dict[str, Any] = self.request("GET", _pod(namespace, name))
        except Gone:
            return None
        return pod

    def create_pod(self, body: Mapping[str, Any]) -> bool:
        """Create a trial's pod; False if it exists already (409), after checking that the
        existing one belongs to the same trial record. Raises Refused when the API server
        will not take it (invalid, forbidden, over quota)."""
        meta = body["metadata"]
        try:
            self.request("POST", f"/api/v1/namespaces/{quote(meta['namespace'])}/pods", body=body)
            return True
        except Conflict:
            existing = self.get_pod(meta["namespace"], meta["name"])
        owner = body["metadata"]["ownerReferences"][0]["uid"]
        if existing is not None and controller_uid(existing) != owner:
            raise ForeignObject(
                f"pod {meta['name']} belongs to an earlier trial of the same name; "
                "waiting for it to be garbage-collected"
            ) from None
        return False

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod with its grace period: the trainer gets SIGTERM and stops cleanly."""
        with contextlib.suppress(Gone):
            self.request("DELETE", _pod(namespace, name))

    # ---- Events -----------------------------------------------------------------------------

    def post_event(self, sweep: Mapping[str, Any], event: SweepEvent) -> None:
        """Post an Event on the sweep, at most once (its name is derived from its key). Events
        are best effort: a failure is logged and the pass goes on."""
        meta = sweep["metadata"]
        uid = str(meta.get("uid", ""))
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name(meta["name"], uid, event.key),
                "namespace": meta["namespace"],
                "labels": {pods.SWEEP_LABEL: names.sweep_label(meta["name"])},
            },
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": sweep.get("kind", "BertSweep"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": uid,
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": event.reason,
            "message": event.message,
            "type": "Warning" if event.warning else "Normal",
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
        }
        try:
            self.request("POST", f"/api/v1/namespaces/{quote(meta['namespace'])}/events", body=body)
        except Conflict:
            pass  # posted by an earlier pass
        except Exception as error:  # Events must never fail a pass.
            log.warning("could not post event %s on %s: %s", event.reason, meta["name"], error)


_NOT_DNS = re.compile(r"[^a-z0-9.-]+")


def event_name(sweep: str, uid: str, key: str) -> str:
    """A deterministic Event name: the sweep, a slice of its uid (a re-created sweep of the same
    name posts its own events), and the event's key."""
    name = _NOT_DNS.sub("-", f"{sweep}.{uid[:8]}.{key}".lower()).strip(".-")
    return name[:253].rstrip(".-")


def _pick_context(paths: list[Path], context: str | None) -> tuple[str, str | None]:
    """The context to use and its namespace, from kubeconfig files merged as kubectl merges
    them: the first file defining a context name or setting current-context wins."""
    contexts: dict[str, Mapping[str, Any]] = {}
    current: str | None = None
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
            raise KubeconfigError(f"kubeconfig {path}: {_one_line(error)}") from None
        if document is None:
            continue
        if not isinstance(document, dict):
            raise KubeconfigError(f"kubeconfig {path}: not a kubeconfig (a YAML mapping)")
        for entry in document.get("contexts") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                body = entry.get("context")
                contexts.setdefault(entry["name"], body if isinstance(body, dict) else {})
        if current is None and document.get("current-context"):
            current = str(document["current-context"])
    where = os.pathsep.join(str(p) for p in paths)
    known = ", ".join(sorted(contexts)) or "none"
    chosen = context or current
    if chosen is None:
        raise KubeconfigError(
            f"kubeconfig {where} sets no current-context: pass --context NAME (contexts: {known})"
        )
    if chosen not in contexts:
        raise KubeconfigError(f'kubeconfig {where} has no context "{chosen}" (contexts: {known})')
    namespace = contexts[chosen].get("namespace")
    return chosen, str(namespace) if namespace else None


def _one_line(error: object) -> str:
    """An exception's message on one line, without the object reprs urllib3 puts first."""
    text = " ".join(str(error).split())
    text = re.sub(r"^<[^>]*>:\s*", "", text)
    text = re.sub(r"^.*Failed to establish a new connection:\s*(\[Errno -?\d+\]\s*)?", "", text)
    return text[:300] or type(error).__name__


def _custom(namespace: str, plural: str, name: str | None = None) -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path


def _pod(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}"
