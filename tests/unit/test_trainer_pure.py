"""The trainer's pure helpers: reading tables, splitting, labels, parameter routing, scores and
the result file. No torch, no processes."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bertsweep.api import Dataset
from bertsweep.contract import Reason
from bertsweep_trainer.config import parse_config
from bertsweep_trainer.data import load_task, stable_hash, stable_subset
from bertsweep_trainer.errors import TrialError
from bertsweep_trainer.params import (
    annotation_kinds,
    coerce,
    rejected_parameters,
    route_parameters,
)
from bertsweep_trainer.scores import classification_scores
from bertsweep_trainer.tables import read_columns

pytestmark = pytest.mark.unit

CSV = 'text,label\nhello there,pos\n"a, quoted\nline",neg\n'


# ---- tables -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz", "d.csv.bz2", "d.tsv", "d.jsonl", "d.json"])
def test_every_format_reads_the_same_rows(tmp_path: Path, name: str) -> None:
    rows = [{"text": "hello there", "label": "pos"}, {"text": "a, quoted\nline", "label": "neg"}]
    if ".tsv" in name:
        text = 'label\ttext\npos\thello there\nneg\t"a, quoted\nline"\n'
    elif ".json" in name:
        text = "".join(json.dumps(r) + "\n\n" for r in rows)  # blank lines are skipped
    else:
        text = CSV
    data = text.encode()
    data = gzip.compress(data) if name.endswith(".gz") else data
    data = bz2.compress(data) if name.endswith(".bz2") else data
    (tmp_path / name).write_bytes(data)
    got = read_columns(tmp_path / name, ["text", "label"], "train")
    assert got == [(1, ("hello there", "pos")), (2, ("a, quoted\nline", "neg"))]


def test_json_array_and_non_string_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "a", "label": 1}, {"text": "b", "label": True}]))
    assert read_columns(path, ["text", "label"], "train") == [(1, ("a", "1")), (2, ("b", "true"))]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("d.csv", "", "train file d.csv is empty"),
        ("d.csv", "text,label\n", "has a header but no rows"),
        ("d.csv", "txt,label\na,b\n", "no column 'text' (its columns: txt, label)"),
        ("d.jsonl", '{"text": "a"}\n', "row 1 of train file d.jsonl has no field 'label'"),
        ("d.jsonl", '{"text": "a", "label": "x"}\n{oops\n', "line 2 is not valid JSON"),
        ("d.jsonl", '{"text": null, "label": "x"}\n', "field 'text' is null"),
        ("d.parquet", "x", "expected a .csv, .tsv, .jsonl, .json file"),
        ("d.csv.gz", "not gzip", "cannot read train file d.csv.gz"),
    ],
)
def test_unreadable_tables_fail_clearly(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(TrialError) as raised:
        read_columns(tmp_path / name, ["text", "label"], "train")
    assert raised.value.reason is Reason.invalid_data
    assert message in raised.value.message


# ---- split, subsets, labels ---------------------------------------------------------------


def _write(path: Path, rows: list[tuple[str, str]]) -> str:
    lines = ["text,label", *(f"{text},{label}" for text, label in rows)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_stable_hash_is_a_fixed_function_of_the_text() -> None:
    # Golden values: every sweep's validation split and subsets hang on this function, so a
    # change to it (a salted hash(), another digest) changes them all, and must fail here.
    assert stable_hash("a fine film") == 0.25866183573553087
    assert stable_hash("") == 0.8931675160897388
    assert stable_hash("the worst movie of the year") == 0.12105351771143219
    assert stable_hash("é") == 0.7933768955844694


def test_held_out_split_is_by_text_and_keeps_duplicates_together(tmp_path: Path) -> None:
    rows = [(f"review {i}", "pos" if i % 2 else "neg") for i in range(400)]
    rows += [("review 7", "pos")] * 3  # copies of one text
    train = _write(tmp_path / "t.csv", rows)
    task = load_task(Dataset(train=train, validation_split=0.25))
    texts_val = {e.text for e in task.validation}
    texts_train = {e.text for e in task.train}
    assert not texts_val & texts_train
    assert 60 < len(task.validation) < 140  # about a quarter
    again = load_task(Dataset(train=train, validation_split=0.25))
    assert again == task


def test_subsets_are_fixed_and_in_file_order(tmp_path: Path) -> None:
    rows = [(f"review {i}", "pos" if i % 2 else "neg") for i in range(300)]
    train = _write(tmp_path / "t.csv", rows)
    small = load_task(Dataset(train=train, max_train_samples=50, max_eval_samples=10))
    assert len(small.train) == 50 and len(small.validation) == 10
    numbers = [int(e.text.split()[1]) for e in small.train]
    assert numbers == sorted(numbers)
    bigger = load_task(Dataset(train=train, max_train_samples=60))
    assert {e.text for e in small.train} <= {e.text for e in bigger.train}  # nested subsets
    assert stable_subset([], 5) == []


def test_labels_sorted_filtered_and_validated(tmp_path: Path) -> None:
    rows = [(f"t{i}", str(i % 11)) for i in range(110)]
    numeric = load_task(Dataset(train=_write(tmp_path / "n.csv", rows)))
    assert numeric.labels == tuple(str(i) for i in range(11))  # 2 before 10

    rows = [(f"t{i}", ["fresh", "rotten", "plot"][i % 3]) for i in range(90)]
    train = _write(tmp_path / "t.csv", rows)
    kept = load_task(Dataset(train=train, labels=["rotten", "fresh"]))
    assert kept.labels == ("rotten", "fresh")
    assert {e.label for e in kept.train} == {0, 1}
    assert len(kept.train) + len(kept.validation) == 60

    validation = _write(tmp_path / "v.csv", [("a", "fresh"), ("b", "meh")])
    with pytest.raises(TrialError) as raised:
        load_task(Dataset(train=train, validation=validation))
    assert "unknown label 'meh' in validation row 2" in raised.value.message

    single = _write(tmp_path / "s.csv", [(f"t{i}", "x") for i in range(20)])
    with pytest.raises(TrialError, match="at least two classes"):
        load_task(Dataset(train=single))


# ---- parameters ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fields() -> dict[str, Any]:
    """The real TrainingArguments' fields, as the trainer routes by them."""
    from transformers import TrainingArguments

    return {f.name: f.type for f in dataclasses.fields(TrainingArguments) if f.init}


@pytest.fixture(scope="module")
def config() -> Any:
    """A real BERT config, as the trainer loads one."""
    from transformers import BertConfig

    return BertConfig(num_hidden_layers=6, hidden_dropout_prob=0.1)


def test_parameters_are_routed_and_coerced(fields: dict[str, Any], config: Any) -> None:
    routed = route_parameters(
        {
            "model": "pkg:x/y",
            "learning_rate": 1,
            "per_device_train_batch_size": 32.0,
            "fp16": "true",
            "warmup_ratio": 0.1,  # the transformers 4 name
            "num_hidden_layers": 2.0,
            "hidden_dropout_prob": 0,
        },
        fields,
        config,
    )
    assert routed.model == "pkg:x/y"
    assert routed.training == {
        "learning_rate": 1.0,
        "per_device_train_batch_size": 32,
        "fp16": True,
        "warmup_steps": 0.1,
    }
    assert type(routed.training["learning_rate"]) is float
    assert routed.model_config == {"num_hidden_layers": 2, "hidden_dropout_prob": 0.0}


@pytest.mark.parametrize(
    ("parameters", "message", "faulty"),
    [
        # A name no trial can have: every trial of the sweep shares the failure.
        ({"learning_rat": 1e-4}, "did you mean 'learning_rate'?", []),
        ({"num_hiden_layers": 2}, "did you mean 'num_hidden_layers'?", []),
        ({"zzz": 1}, "unknown parameter 'zzz'", []),
        ({"to_dict": 1}, "unknown parameter 'to_dict'", []),  # a method is not a field
        ({"label_names": 1}, "not settable", []),
        ({"output_dir": "/tmp/x"}, "cannot be set", []),
        ({"num_labels": 3}, "cannot be set", []),
        # A value of the wrong kind: the parameter is to blame, other values may do.
        (
            {"per_device_train_batch_size": 8.5},
            "must be a whole number",
            ["per_device_train_batch_size"],
        ),
        ({"fp16": "maybe"}, "must be true or false", ["fp16"]),
        ({"num_hidden_layers": "two"}, "must be a whole number", ["num_hidden_layers"]),
        ({"model": 3}, "must be a model reference", ["model"]),
    ],
)
def test_bad_parameters_fail_with_a_reason(
    parameters: dict[str, Any], message: str, faulty: list[str], fields: dict[str, Any], config: Any
) -> None:
    with pytest.raises(TrialError) as raised:
        route_parameters(parameters, fields, config)
    assert raised.value.reason is Reason.invalid_parameter
    assert message in raised.value.message
    assert raised.value.faulty_parameters == faulty


def test_a_rejected_value_is_blamed_on_the_parameter_that_causes_it(tmp_path: Path) -> None:
    from transformers import TrainingArguments

    def build(given: dict[str, Any]) -> object:
        return TrainingArguments(output_dir=str(tmp_path), report_to="none", **given)

    given = {"learning_rate": 1e-4, "lr_scheduler_type": "bogus", "weight_decay": 0.01}
    with pytest.raises(ValueError):
        build(given)
    assert rejected_parameters(build, given) == ["lr_scheduler_type"]
    # Two bad values: leaving out either one does not help, so all are blamed.
    both = {"learning_rate": 1e-4, "lr_scheduler_type": "bogus", "optim": "bogus"}
    with pytest.raises(ValueError):
        build(both)
    assert rejected_parameters(build, both) == list(both)


def test_annotation_kinds() -> None:
    assert annotation_kinds(float | None) == {"float"}
    assert annotation_kinds("Union[IntervalStrategy, str]") == {"str"}
    assert annotation_kinds("Optional[int]") == {"int"}
    assert annotation_kinds("dict[str, Any] | str | None") == {"other", "str"}
    assert annotation_kinds("dict[str, Any] | None") == {"other"}
    assert coerce("eval_steps", 50, annotation_kinds(float | None)) == 50.0
    assert coerce("x", "1e-3", {"float"}) == 0.001


# ---- scores -------------------------------------------------------------------------------


def test_scores_match_hand_computed_macro_averages() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 2, 2])
    scores = classification_scores(predictions, labels)
    precision = [1.0, 0.5, 0.5]
    recall = [2 / 3, 0.5, 1.0]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall, strict=True)]
    assert scores == pytest.approx(
        {"accuracy": 4 / 6, "precision": 2 / 3, "recall": sum(recall) / 3, "f1": sum(f1) / 3}
    )
    logits = np.eye(3)[predictions]
    assert classification_scores(logits, labels) == scores


def test_scores_when_a_class_is_never_predicted() -> None:
    scores = classification_scores(np.array([0, 0, 0, 0]), np.array([0, 0, 1, 1]))
    assert scores["precision"] == pytest.approx(0.25)  # (0.5 + 0) / 2
    assert scores["recall"] == pytest.approx(0.5)


# ---- configuration and result file --------------------------------------------------------


def test_configuration_from_environment_and_arguments() -> None:
    env = {
        "BERTSWEEP_DATASET": '{"train": "t.csv", "textColumn": "review"}',
        "BERTSWEEP_PARAMETERS": '{"learning_rate": 0.001}',
        "BERTSWEEP_TRIAL": "s-1",
        "BERTSWEEP_SCRAPE_WAIT_SECONDS": "2",
    }
    config = parse_config(["--sweep", "s", "--metrics-port", "0"], env)
    assert (config.sweep, config.trial, config.metrics_port, config.scrape_wait) == (
        "s",
        "s-1",
        0,
        2.0,
    )
    assert config.dataset.text_column == "review" and config.parameters == {"learning_rate": 1e-3}
    with pytest.raises(TrialError, match=r"dataset\.maxLength"):
        parse_config([], {"BERTSWEEP_DATASET": '{"train": "t", "maxLength": 1}'})
    with pytest.raises(TrialError, match="no dataset"):
        parse_config([], {})
    with pytest.raises(TrialError, match="--nope needs a value"):
        parse_config(["--nope"], env)
    with pytest.raises(TrialError, match="unrecognized argument 'stray'"):
        parse_config(["stray"], env)


def test_hyperparameters_as_flags_as_bertsweep_best_prints_them() -> None:
    env = {"BERTSWEEP_DATASET": '{"train": "t.csv"}', "BERTSWEEP_PARAMETERS": '{"seed": 1}'}
    argv = [
        "--model", "pkg:x/y",
        "--learning_rate", "3e-05",
        "--per_device_train_batch_size=32",
        "--fp16", "true",
        "--lr_scheduler_type", "cosine",
        "--num-hidden-layers", "2",
        "--seed", "7",
    ]  # fmt: skip
    config = parse_config(argv, env)
    assert config.model == "pkg:x/y"
    assert config.parameters == {
        "seed": 7,  # the flag wins over --parameters
        "learning_rate": 3e-05,
        "per_device_train_batch_size": 32,
        "fp16": True,
        "lr_scheduler_type": "cosine",
        "num_hidden_layers": 2,
    }
    # An option of ours is never taken for an abbreviation of a hyperparameter, or back.
    assert parse_config(["--ind", "3"], env).parameters == {"seed": 1, "ind": 3}


def test_the_models_store_and_the_finalize_task_come_from_the_environment() -> None:
    env = {
        "BERTSWEEP_DATASET": '{"train": "t.csv", "test": "test.csv"}',
        "BERTSWEEP_TRIAL_INDEX": "4",
        "BERTSWEEP_MODELS": json.dumps(
            {"root": "/m", "keep": 2, "objective": {"metric": "eval_f1", "goal": "maximize"}}
        ),
        "BERTSWEEP_TASK": "finalize",
        "BERTSWEEP_KEPT": '["s-0004", "s-0001"]',
    }
    config = parse_config([], env)
    assert config.index == 4 and config.task == "finalize"
    assert config.models is not None and config.models.keep == 2
    assert config.models.objective.metric == "eval_f1"
    assert config.kept == ("s-0004", "s-0001")
    with pytest.raises(TrialError, match="unknown task"):
        parse_config([], {**env, "BERTSWEEP_TASK": "dance"})
    with pytest.raises(TrialError, match="models"):
        parse_config([], {**env, "BERTSWEEP_MODELS": '{"root": "/m"}'})


# ---- CPU threads ------------------------------------------------------------------------------


def test_thread_counts_follow_what_the_trial_was_given(tmp_path: Path) -> None:
    from bertsweep_trainer.threads import cgroup_cpus, choose_threads

    assert choose_threads({"OMP_NUM_THREADS": "3"}, quota=8, available=16) == 3
    assert choose_threads({}, quota=2, available=16) == 2, "the container's CPU quota"
    share = {"BERTSWEEP_NODE_CPUS": "16", "BERTSWEEP_PARALLELISM": "4"}
    assert choose_threads(share, quota=None, available=16) == 4, "a fair share of the node"
    crowded = {"BERTSWEEP_NODE_CPUS": "2", "BERTSWEEP_PARALLELISM": "50"}
    assert choose_threads(crowded, quota=None, available=2) == 1
    assert choose_threads({}, quota=None, available=6) == 6
    assert choose_threads({"BERTSWEEP_NODE_CPUS": "x"}, quota=None, available=6) == 6

    v2 = tmp_path / "cpu.max"
    v2.write_text("250000 100000\n")
    assert cgroup_cpus(v2, (tmp_path / "q", tmp_path / "p")) == 2
    v2.write_text("max 100000\n")
    assert cgroup_cpus(v2, (tmp_path / "q", tmp_path / "p")) is None
    quota, period = tmp_path / "q", tmp_path / "p"
    quota.write_text("50000\n")
    period.write_text("100000\n")
    assert cgroup_cpus(tmp_path / "missing", (quota, period)) == 1
    quota.write_text("-1\n")
    assert cgroup_cpus(tmp_path / "missing", (quota, period)) is None


# ---- what makes a GPU fast, and its fallback on the CPU ------------------------------------


def test_accelerator_defaults_choose_nothing_on_a_cpu() -> None:
    import torch

    from bertsweep_trainer.training import accelerator_defaults

    assert not torch.cuda.is_available(), "the unit tier runs on the CPU"
    assert accelerator_defaults({}) == {}
    assert accelerator_defaults({"bf16": True}) == {}


@pytest.mark.parametrize(
    ("bf16", "capability", "given", "expected"),
    [
        # An H100: bf16, fused AdamW and TF32, each unless the sweep chose otherwise.
        (True, (9, 0), {}, {"bf16": True, "optim": "adamw_torch_fused", "tf32": True}),
        (True, (9, 0), {"fp16": True}, {"optim": "adamw_torch_fused", "tf32": True}),
        (True, (9, 0), {"optim": "adamw_torch", "tf32": False}, {"bf16": True}),
        # A T4 (Turing): no bf16 and no TF32; fused AdamW still.
        (False, (7, 5), {}, {"optim": "adamw_torch_fused"}),
    ],
)
def test_accelerator_defaults_on_a_gpu_leave_the_sweeps_choices_alone(
    monkeypatch: pytest.MonkeyPatch,
    bf16: bool,
    capability: tuple[int, int],
    given: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    import torch

    from bertsweep_trainer.training import accelerator_defaults

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: capability)
    assert accelerator_defaults(given) == expected
