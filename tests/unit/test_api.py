"""The manifest contract: what parses, what is rejected, and how the rejection reads."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from bertsweep.api import ManifestError, SweepSpec, parse_manifest, parse_spec

pytestmark = pytest.mark.unit

# The manifest of ARCHITECTURE.md's contract, verbatim.
CONTRACT = """
apiVersion: tuning.bertsweep.io/v1alpha1
kind: BertSweep
metadata: {name: rt-sentiment}
spec:
  model: bert-base-uncased
  dataset:
    train: /data/rt/train.csv
    validation: /data/rt/dev.csv
    textColumn: text
    textPairColumn: null
    labelColumn: label
    maxLength: 128
  objective: {metric: eval_accuracy, goal: maximize, target: null}
  algorithm: {name: bayesian, seed: 0}
  earlyStopping: {name: none}
  parameters:
    - {name: learning_rate, type: float, min: 1.0e-5, max: 1.0e-4, scale: log}
    - {name: per_device_train_batch_size, type: categorical, values: [16, 32]}
    - {name: num_train_epochs, type: int, min: 1, max: 4}
    - {name: num_hidden_layers, type: int, min: 2, max: 6}
  fixed: {weight_decay: 0.01}
  maxTrials: 12
  parallelism: 2
  maxFailedTrials: 3
  trialTemplate:
    image: registry.example.com/bertsweep-trainer:0.1.0
    resources: {limits: {nvidia.com/gpu: 1}}
  metrics: {prometheusURL: null}
"""


def contract() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(CONTRACT))


def test_contract_manifest_parses_with_its_values() -> None:
    manifest = parse_manifest(contract())
    spec = manifest.spec
    assert manifest.metadata.name == "rt-sentiment"
    assert spec.parallelism == 2 and spec.max_trials == 12 and spec.max_failed_trials == 3
    assert spec.parameters[0].scale.value == "log"
    assert spec.parameters[1].values == [16, 32]
    assert all(isinstance(v, int) for v in spec.parameters[1].values or [])
    assert spec.fixed == {"weight_decay": 0.01}
    assert spec.trial_template.resources.limits == {"nvidia.com/gpu": 1}
    assert spec.max_epochs() == 4


def test_wire_form_round_trips() -> None:
    spec = parse_manifest(contract()).spec
    assert SweepSpec.model_validate(spec.wire()) == spec
    assert "maxTrials" in spec.wire() and "max_trials" not in spec.wire()


def _error(mutate: Any) -> str:
    doc = contract()
    mutate(doc["spec"])
    with pytest.raises(ManifestError) as info:
        parse_spec(doc["spec"])
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda s: s["parameters"][0].update(min=1e-3),
            "spec.parameters[0]: `min` (0.001) must be less than `max` (0.0001)",
        ),
        (lambda s: s["parameters"][0].update(type="double"), "spec.parameters[0].type"),
        (
            lambda s: s["parameters"][1].update(values=[]),
            "spec.parameters[1]: a categorical parameter needs a non-empty `values` list",
        ),
        (lambda s: s.update(parallelism=0), "spec.parallelism: Input should be greater than"),
        (lambda s: s.update(parallelism=-2), "spec.parallelism"),
        (
            lambda s: s["objective"].update(metric="eval_acc"),
            "metric 'eval_acc' is not reported by the trainer",
        ),
        (
            lambda s: s["objective"].update(metric="eval_loss"),
            "eval_loss is a loss: set `goal: minimize`",
        ),
        (lambda s: s["parameters"][2].update(min=0.5), "an int parameter needs whole bounds"),
        (
            lambda s: s["parameters"][0].update(min=0, scale="log"),
            "`scale: log` needs min > 0",
        ),
        (lambda s: s.pop("dataset"), "spec.dataset: Field required"),
        (lambda s: s.update(maxTrials="many"), "spec.maxTrials"),
        (lambda s: s.update(fixed={"learning_rate": 1e-5}), "learning_rate is both searched"),
        (
            lambda s: s["parameters"].append(
                {"name": "learning_rate", "type": "int", "min": 1, "max": 2}
            ),
            "repeated: learning_rate",
        ),
        (lambda s: s.update(parameters=[]), "spec.parameters"),
        (lambda s: s.update(maxTrail=3), "spec.maxTrail: Extra inputs are not permitted"),
        (
            lambda s: s["algorithm"].update(name="grid"),
            "a grid over a float range needs `gridPoints`",
        ),
        (
            lambda s: s["earlyStopping"].update(name="asha", minResource=4, maxResource=2),
            "`maxResource` (2) must exceed `minResource` (4)",
        ),
        (
            lambda s: s["parameters"].append({"name": "model", "type": "int", "min": 1, "max": 2}),
            "`model` must be categorical",
        ),
    ],
)
def test_bad_specs_get_a_message_naming_the_field(mutate: Any, expected: str) -> None:
    assert expected in _error(mutate)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        # What every trial would fail on, refused before any pod starts.
        (lambda s: s["fixed"].update(output_dir="/tmp/x"), "'output_dir' cannot be set"),
        (
            lambda s: s["parameters"].append(
                {"name": "num_labels", "type": "int", "min": 2, "max": 3}
            ),
            "cannot be searched: the classes come from the dataset",
        ),
        (
            lambda s: s["parameters"].append(
                {"name": "report_to", "type": "categorical", "values": ["none", "mlflow"]}
            ),
            "put it in `fixed`",
        ),
        (lambda s: s["fixed"].update(seed=1.5), "`seed` must be an integer"),
        (lambda s: s["fixed"].update(seed="7"), "`seed` must be an integer"),
        (
            lambda s: s["parameters"].append({"name": "seed", "type": "float", "min": 1, "max": 9}),
            "a seed is an integer",
        ),
        (lambda s: s["dataset"].update(labels=[]), "at least two classes"),
        (lambda s: s["dataset"].update(labels=["pos"]), "at least two classes"),
        (lambda s: s["dataset"].update(labels=["pos", "neg", "pos"]), "repeats 'pos'"),
        (lambda s: s["dataset"].update(labels=["pos", " "]), "empty label"),
        (lambda s: s.update(model="   "), "spec.model: a model reference cannot be blank"),
        (lambda s: s.update(model=7), "spec.model"),
        (
            lambda s: s["parameters"].append(
                {"name": "model", "type": "categorical", "values": ["bert-base-uncased", ""]}
            ),
            "'' is not a model reference",
        ),
        (
            lambda s: s["earlyStopping"].update(name="asha", minResource=4),
            "is not before the longest training (4 epochs)",
        ),
        (
            lambda s: s["objective"].update(target=90),
            "`target` 90 lies outside [0, 1]",
        ),
        (
            lambda s: s.update(objective={"metric": "eval_loss", "goal": "minimize", "target": -1}),
            "a loss or a cost is never negative",
        ),
        (
            lambda s: s["parameters"][1].update(values=[16, 16.0]),
            "holds 16.0 twice",
        ),
        (lambda s: s["trialTemplate"].update(command=[]), "spec.trialTemplate.command"),
        (lambda s: s["trialTemplate"].update(command=[""]), "spec.trialTemplate.command[0]"),
        # What the schema says about the template, said the same way here.
        (
            lambda s: s["trialTemplate"].update(env=[{"value": "1"}]),
            "spec.trialTemplate.env[0].name: Field required",
        ),
        (
            lambda s: s["trialTemplate"].update(resources={"limits": {"cpu": "lots"}}),
            "spec.trialTemplate.resources.limits.cpu: 'lots' is not a Kubernetes quantity",
        ),
        (
            lambda s: s["trialTemplate"].update(volumes=[{"persistentVolumeClaim": {}}]),
            "spec.trialTemplate.volumes[0].name: Field required",
        ),
        (
            lambda s: s["trialTemplate"].update(volumes=[{"name": "data"}]),
            "volume 'data' has no source",
        ),
        (
            lambda s: s["trialTemplate"].update(
                volumes=[{"name": "data", "emptyDir": {}, "configMap": {"name": "c"}}]
            ),
            "has several sources: configMap, emptyDir",
        ),
        # No escalation through the template.
        (
            lambda s: s["trialTemplate"].update(securityContext={"privileged": True}),
            "spec.trialTemplate: `securityContext` is not allowed",
        ),
        (
            lambda s: s["trialTemplate"].update(hostNetwork=True),
            "spec.trialTemplate: `hostNetwork` is not allowed",
        ),
        (
            lambda s: s["trialTemplate"].update(
                volumes=[{"name": "d", "emptyDir": {}}],
                volumeMounts=[
                    {"name": "d", "mountPath": "/d", "mountPropagation": "Bidirectional"}
                ],
            ),
            "needs a privileged container",
        ),
        # Types as strict as the API server's.
        (lambda s: s.update(maxTrials=True), "spec.maxTrials: Input should be a valid integer"),
        (lambda s: s.update(parallelism="2"), "spec.parallelism: Input should be a valid integer"),
    ],
)
def test_what_every_trial_would_fail_on_is_refused_at_validation(
    mutate: Any, expected: str
) -> None:
    assert expected in _error(mutate)


def test_host_path_volumes_are_found_for_the_operators_policy() -> None:
    doc = contract()
    doc["spec"]["trialTemplate"]["volumes"] = [
        {"name": "cache", "emptyDir": {}},
        {"name": "data", "hostPath": {"path": "/srv/data"}},
    ]
    spec = parse_spec(doc["spec"])
    assert spec.trial_template.host_path_volumes() == ["volumes[1] (data)"]


def test_a_sweep_name_is_any_dns_subdomain() -> None:
    doc = contract()
    doc["metadata"]["name"] = "team.rt-sentiment." + "a" * 200
    assert parse_manifest(doc).metadata.name.startswith("team.")


def test_manifest_level_errors() -> None:
    doc = contract()
    doc["apiVersion"] = "tuning.bertsweep.io/v1"
    doc["metadata"]["name"] = "Not_A_DNS_Name"
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    message = str(info.value)
    assert "apiVersion" in message and "metadata.name" in message
    with pytest.raises(ManifestError, match="must be a YAML mapping"):
        parse_manifest(["not", "a", "mapping"])


def test_model_parameter_and_seed_are_searchable() -> None:
    doc = contract()
    doc["spec"]["parameters"] += [
        {"name": "model", "type": "categorical", "values": ["bert-base-uncased", "/models/tiny"]},
        {"name": "seed", "type": "categorical", "values": [1, 2, 3]},
    ]
    spec = parse_spec(doc["spec"])
    assert spec.parameter("model") is not None and spec.parameter("seed") is not None
