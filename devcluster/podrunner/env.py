"""A container's environment, as the kubelet would build it, and the ConfigMaps and Secrets it
(and the pod's volumes) read.

``container_env`` is pure: the pod, the container, what the node knows about the pod (its IP,
the node's name and allocatable resources) and a ``ConfigLookup`` for ConfigMap/Secret data go
in, the process environment comes out. It honours ``envFrom`` (configMapRef, secretRef, with
``prefix``), ``env`` values with ``$(VAR)`` expansion, and ``valueFrom`` fieldRef,
resourceFieldRef, configMapKeyRef and secretKeyRef (``optional`` included). What the dev cluster
cannot honour raises ``PodStartError`` (reason ``CreateContainerConfigError``), so the pod is
reported Failed with the reason instead of running with a wrong environment.

``ConfigReader`` is the only part that talks to the API server.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

from .common import DEFAULT_PATH, HOST_IP, PASSTHROUGH_ENV, VENV_BIN, Json, PodStartError

CONFIG_ERROR = "CreateContainerConfigError"
_VAR_REF = re.compile(r"\$(\$|\(([A-Za-z_][A-Za-z0-9_.\-]*)\))")
_META_REF = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


class ConfigLookup(Protocol):
    def __call__(self, ns: str, kind: str, name: str, optional: bool) -> dict[str, bytes]:
        """The data of ConfigMap (kind ``configmap``) or Secret (``secret``) ``ns/name``, by key;
        {} when it is missing and ``optional``; ``PodStartError`` when it is missing otherwise."""
        ...


@dataclass(frozen=True)
class PodPlace:
    """What the node knows about a pod that its spec does not say."""

    ip: str
    node: str
    allocatable: Mapping[str, str]


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes ``$``."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        return env.get(m.group(2), m.group(0))

    return _VAR_REF.sub(repl, text)


def base_env(host_env: Mapping[str, str], pod_name: str) -> dict[str, str]:
    """What every pod process gets before its spec's ``env``: PATH with the checkout's venv first
    (the image is ignored, the checkout's programs stand in for it) and a few host variables."""
    env = {"PATH": f"{VENV_BIN}:{host_env.get('PATH') or DEFAULT_PATH}"}
    env.update({k: host_env[k] for k in PASSTHROUGH_ENV if k in host_env})
    env["HOSTNAME"] = pod_name
    # No GPU on the development machine: GPU requests are honoured by the scheduler only.
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def field_value(path: str, pod: Json, place: PodPlace) -> str:
    """The downward API's ``fieldRef``."""
    meta, spec = pod["metadata"], pod["spec"]
    simple: dict[str, str] = {
        "metadata.name": str(meta["name"]),
        "metadata.namespace": str(meta["namespace"]),
        "metadata.uid": str(meta["uid"]),
        "spec.nodeName": place.node,
        "spec.serviceAccountName": str(spec.get("serviceAccountName", "default")),
        "status.podIP": place.ip,
        "status.podIPs": place.ip,
        "status.hostIP": HOST_IP,
    }
    if path in simple:
        return simple[path]
    m = _META_REF.fullmatch(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise PodStartError(CONFIG_ERROR, f"unsupported fieldRef {path}")


def resource_value(ref: Json, container: Json, allocatable: Mapping[str, str]) -> str:
    """The downward API's ``resourceFieldRef``: the limit or request divided by ``divisor``,
    rounded up; the node's allocatable for a limit that is not set (the kubelet's rule)."""
    kind, _, rname = str(ref.get("resource", "")).partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(rname)
    if value is None:
        value = allocatable.get(rname, "0")
    qty: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
    divisor: Decimal = parse_quantity(ref.get("divisor", "1"))  # type: ignore[no-untyped-call]
    out = qty / divisor if divisor else Decimal(0)
    return str(math.ceil(out))


def container_env(
    pod: Json,
    container: Json,
    place: PodPlace,
    host_env: Mapping[str, str],
    lookup: ConfigLookup,
) -> dict[str, str]:
    ns = str(pod["metadata"]["namespace"])
    env = base_env(host_env, str(pod["metadata"]["name"]))
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            ref, kind = src["configMapRef"], "configmap"
        elif "secretRef" in src:
            ref, kind = src["secretRef"], "secret"
        else:
            continue
        for k, v in lookup(ns, kind, ref["name"], bool(ref.get("optional"))).items():
            env[prefix + k] = v.decode(errors="replace")
    for item in container.get("env") or []:
        key = item["name"]
        if "valueFrom" not in item:
            env[key] = expand_vars(str(item.get("value", "")), env)
            continue
        vf = item["valueFrom"]
        if "fieldRef" in vf:
            env[key] = field_value(vf["fieldRef"]["fieldPath"], pod, place)
        elif "resourceFieldRef" in vf:
            env[key] = resource_value(vf["resourceFieldRef"], container, place.allocatable)
        elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
            kind = "configmap" if "configMapKeyRef" in vf else "secret"
            ref = vf.get("configMapKeyRef") or vf.get("secretKeyRef")
            optional = bool(ref.get("optional"))
            data = lookup(ns, kind, ref["name"], optional)
            if ref["key"] in data:
                env[key] = data[ref["key"]].decode(errors="replace")
            elif not optional:
                raise PodStartError(CONFIG_ERROR, f"{kind} {ref['name']} has no key {ref['key']}")
    return env


def config_data(kind: str, obj: Json) -> dict[str, bytes]:
    """A ConfigMap's or Secret's data as bytes per key (Secrets' ``data`` is base64)."""
    out: dict[str, bytes] = {}
    if kind == "configmap":
        for k, v in (obj.get("data") or {}).items():
            out[k] = str(v).encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = str(v).encode()
    return out


class ConfigReader:
    """A ``ConfigLookup`` that reads the API server, once per call (no cache: a pod starts with
    the data as it is when the pod starts, as on a kubelet)."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def __call__(self, ns: str, kind: str, name: str, optional: bool) -> dict[str, bytes]:
        read = (
            self.api.read_namespaced_config_map
            if kind == "configmap"
            else self.api.read_namespaced_secret
        )
        try:
            resp = read(name, ns, _preload_content=False, _request_timeout=10)
        except ApiException as e:
            if e.status == 404 and optional:
                return {}
            raise PodStartError(CONFIG_ERROR, f"{kind} {ns}/{name}: {e.status} {e.reason}") from e
        return config_data(kind, json.loads(resp.data))
