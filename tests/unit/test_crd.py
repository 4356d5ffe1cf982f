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


def test_the_rendered_yaml_is_the_crds() -> None:
    documents = list(yaml.safe_load_all(render()))
    assert [d["spec"]["names"]["kind"] for d in documents] == ["BertSweep", "BertTrial"]
    assert documents == custom_resource_definitions()


def test_the_chart_ships_the_generated_crds() -> None:
    # Helm installs crds/ before the templates; they must be what `bertsweep crd` generates.
    shipped = (REPO / "charts" / "bertsweep" / "crds" / "bertsweep.yaml").read_bytes()
    assert shipped == (REPO / "crds" / "bertsweep.yaml").read_bytes(), (
        "charts/bertsweep/crds/bertsweep.yaml differs from crds/bertsweep.yaml: "
        "cp crds/bertsweep.yaml charts/bertsweep/crds/"
    )


def test_the_schema_refuses_what_it_can_express_about_the_template() -> None:
    spec = custom_resource_definitions()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    template = spec["properties"]["spec"]["properties"]["trialTemplate"]["properties"]
    assert template["env"]["items"]["required"] == ["name"]
    assert template["volumes"]["items"]["required"] == ["name"]
    quantity = template["resources"]["properties"]["limits"]["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True and "pattern" in quantity
    assert template["command"]["minItems"] == 1
