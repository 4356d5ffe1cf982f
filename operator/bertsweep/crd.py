"""CustomResourceDefinitions generated from the API models (`bertsweep crd`).

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 schema that
installs on 1.20 and newer: no `$ref`, `nullable` instead of `null` in unions, boolean
`exclusiveMinimum`, and `x-kubernetes-preserve-unknown-fields` only where a value really is
free-form (Pod fragments, scalar hyperparameters). Generating it, rather than keeping it by
hand, keeps the API server's validation and ours from drifting apart (katib#1170).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from bertsweep.api import (
    GROUP,
    SWEEP_KIND,
    TRIAL_KIND,
    VERSION,
    BertTrialSpec,
    BertTrialStatus,
    SweepSpec,
    SweepStatus,
)

_DROPPED = {"title", "$defs"}


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    structural: dict[str, Any] = _structural(schema, schema.get("$defs", {}))
    return structural


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite one JSON Schema node (recursively) into the OpenAPI v3.0 structural subset."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "anyOf":
            out.update(_union(value, defs))
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "additionalProperties" and value is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "additionalProperties" and value is False:
            # Structural schemas forbid it beside `properties`; the API server prunes unknown
            # fields instead, and the operator's parse reports them.
            continue
        elif key == "description":
            out[key] = " ".join(value.split())
        elif key in ("items", "additionalProperties"):
            out[key] = _structural(value, defs)
        elif key == "default" and value in (None, ""):
            # Kubernetes 1.20 reads an empty-string default as null and rejects the CRD.
            continue
        else:
            out[key] = value
    if out.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" in out:
        del out["additionalProperties"]
    if node.get("type") == "object" and node.get("additionalProperties") is True:
        out["type"] = "object"
    if not out.get("type") and not (
        out.get("x-kubernetes-preserve-unknown-fields") or out.get("x-kubernetes-int-or-string")
    ):
        # `Any`: a free-form value, kept as the user wrote it.
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _union(members: list[Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`X | None` becomes nullable X; a union of scalars becomes a free-form scalar."""
    non_null = [m for m in members if m.get("type") != "null"]
    nullable = len(non_null) < len(members)
    if len(non_null) == 1:
        out = dict(_structural(non_null[0], defs))
    else:
        # Scalar hyperparameter values (bool | int | float | str): the schema cannot say
        # "any scalar" structurally, so the API server keeps them and pydantic checks them.
        out = {"x-kubernetes-preserve-unknown-fields": True}
    if nullable:
        out["nullable"] = True
    return out


def _version(
    spec: type[BaseModel], status: type[BaseModel], columns: list[dict[str, Any]], doc: str
) -> dict[str, Any]:
    return {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": columns,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": doc,
                "required": ["spec"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": _schema_of(spec),
                    "status": _schema_of(status),
                },
            }
        },
    }


def _crd(kind: str, plural: str, short: str, version: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
            },
            "versions": [version],
        },
    }


def _age() -> dict[str, str]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def custom_resource_definitions() -> list[dict[str, Any]]:
    """The BertSweep and BertTrial CRDs, as dicts."""
    sweep = _version(
        SweepSpec,
        SweepStatus,
        [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": "Done",
                "type": "string",
                "jsonPath": ".status.done",
                "description": "Finished trials / maxTrials",
            },
            {"name": "Objective", "type": "string", "jsonPath": ".spec.objective.metric"},
            {"name": "Best", "type": "number", "jsonPath": ".status.bestObjective"},
            {"name": "Best-Trial", "type": "string", "jsonPath": ".status.bestTrial.name"},
            _age(),
        ],
        "A hyperparameter sweep over BERT fine-tuning runs; each trial is a BertTrial and a pod.",
    )
    trial = _version(
        BertTrialSpec,
        BertTrialStatus,
        [
            {"name": "Sweep", "type": "string", "jsonPath": ".spec.sweep"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Objective", "type": "number", "jsonPath": ".status.objective"},
            {"name": "Parameters", "type": "string", "jsonPath": ".spec.parameters"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
            _age(),
        ],
        "One trial of a BertSweep: its parameters and what became of them (outlives its pod).",
    )
    return [
        _crd(SWEEP_KIND, "bertsweeps", "bsw", sweep),
        _crd(TRIAL_KIND, "berttrials", "btr", trial),
    ]


def render() -> str:
    """The CRDs as one multi-document YAML stream (what crds/bertsweep.yaml holds)."""
    header = "# Generated by `bertsweep crd` from operator/bertsweep/api.py. Do not edit.\n"
    return header + yaml.safe_dump_all(
        custom_resource_definitions(), sort_keys=False, width=100, explicit_start=True
    )
