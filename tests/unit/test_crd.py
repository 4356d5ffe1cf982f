"""The CRDs are generated from the models; crds/ must hold exactly that output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bertsweep.crd import custom_resource_definitions, render

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_committed_crds_match_the_models() -> None:
    committed = (REPO / "crds" / "bertsweep.yaml").read_text()
    assert committed == render(), "crds/ is stale: run `bertsweep crd > crds/bertsweep.yaml`"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _walk(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize(
    "crd", custom_resource_definitions(), ids=lambda c: c["spec"]["names"]["kind"]
)
def test_schema_is_structural_for_kubernetes_1_20(crd: dict[str, Any]) -> None:
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert not {"anyOf", "oneOf", "allOf", "$ref", "$defs", "title", "const"} & node.keys(), (
            path
        )
        if "properties" in node and path.split(".")[-1] != "properties":
            assert node.get("type") == "object", path
            assert "additionalProperties" not in node, path
        if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(
            node.get("exclusiveMinimum"), bool
        ):
            pytest.fail(f"{path}: numeric exclusiveMinimum is not OpenAPI v3.0")
        # no CEL: Kubernetes 1.20 rejects unknown extensions
        assert "x-kubernetes-validations" not in node, path
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"]


def test_sweep_crd_has_descriptions_and_printer_columns() -> None:
    sweep = custom_resource_definitions()[0]
    version = sweep["spec"]["versions"][0]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Done"] == ".status.done"
    assert columns["Best"] == ".status.bestObjective"
    assert columns["Age"] == ".metadata.creationTimestamp"
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert (
        "learning rates"
        in spec["properties"]["parameters"]["items"]["properties"]["scale"]["description"]
    )
    assert spec["properties"]["parallelism"]["minimum"] == 1
    assert set(spec["required"]) == {"model", "dataset", "parameters"}
    assert yaml.safe_load_all(render())
