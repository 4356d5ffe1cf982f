"""From an `api.Dataset` to labelled train and validation examples (standard library only).

Two properties matter to a sweep, more than to a single run:
- Every trial must be judged on the same examples. The held-out split and the `max*Samples`
  subsets therefore depend on a hash of each text (blake2b, not Python's salted `hash()`), never
  on the seed or on file order: trials with different seeds, and runs on different days, see the
  same split, and copies of one text always fall on the same side (no train/validation leak).
- Bad data is found before torch is even imported, so a typo in a column name fails in well
  under a second instead of after model loading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bertsweep.api import Dataset
from bertsweep.contract import Reason
from bertsweep_trainer.errors import TrialError
from bertsweep_trainer.refs import resolve_data_file
from bertsweep_trainer.tables import read_columns


@dataclass(frozen=True)
class Example:
    text: str
    pair: str | None
    label: int  # index into TaskData.labels


@dataclass(frozen=True)
class TaskData:
    labels: tuple[str, ...]
    train: list[Example]
    validation: list[Example]


@dataclass(frozen=True)
class _Row:
    number: int  # 1-based data row in its file, for messages
    text: str
    pair: str | None
    label: str


def _fail(message: str) -> TrialError:
    return TrialError(Reason.invalid_data, message)


def stable_hash(text: str) -> float:
    """A uniform number in [0, 1) that depends on the text alone, the same in every process."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def load_task(dataset: Dataset) -> TaskData:
    """Read, filter, split and subset the data as `dataset` describes; raises TrialError."""
    train_rows = _read(dataset, dataset.train, "train")
    if dataset.labels is not None:
        labels = _declared_labels(dataset.labels)
        found = sorted({r.label for r in train_rows})
        train_rows = [r for r in train_rows if r.label in labels]
        if not train_rows:
            raise _fail(
                f"no train row has one of the labels {list(labels)} "
                f"(labels found: {', '.join(found[:20])})"
            )
    else:
        # Labels come from the whole train file, before any split or subset, so that every
        # trial of a sweep has the same classes in the same order.
        labels = sort_labels({r.label for r in train_rows})

    if dataset.validation is not None:
        validation_rows = _read(dataset, dataset.validation, "validation")
        if dataset.labels is not None:
            validation_rows = [r for r in validation_rows if r.label in labels]
        else:
            for row in validation_rows:
                if row.label not in labels:
                    raise _fail(
                        f"unknown label {row.label!r} in validation row {row.number} "
                        f"(train labels: {', '.join(labels)})"
                    )
    else:
        held_out = [stable_hash(r.text) < dataset.validation_split for r in train_rows]
        validation_rows = [r for r, out in zip(train_rows, held_out, strict=True) if out]
        train_rows = [r for r, out in zip(train_rows, held_out, strict=True) if not out]

    if len(labels) < 2:
        raise _fail(f"a classifier needs at least two classes; the train data has only {labels}")
    train_rows = stable_subset(train_rows, dataset.max_train_samples)
    validation_rows = stable_subset(validation_rows, dataset.max_eval_samples)
    if not train_rows:
        raise _fail("no train rows left after the validation split")
    if not validation_rows:
        source = (
            f"validation file {dataset.validation}"
            if dataset.validation
            else f"the held-out validationSplit {dataset.validation_split:g} of the train rows"
        )
        raise _fail(f"no validation rows: {source} is empty")
    trained = {r.label for r in train_rows}
    if len(trained) < 2:
        raise _fail(f"the train rows left hold a single class, {trained.pop()!r}")

    index = {label: i for i, label in enumerate(labels)}
    return TaskData(
        labels=labels,
        train=[Example(r.text, r.pair, index[r.label]) for r in train_rows],
        validation=[Example(r.text, r.pair, index[r.label]) for r in validation_rows],
    )


def load_split(dataset: Dataset, ref: str, role: str, labels: Sequence[str]) -> list[Example]:
    """Another file of the task (the test data), labelled with a trained model's classes in
    id order. Rows of other labels are dropped when `dataset.labels` says which to keep, as
    for training; otherwise they fail, since the model cannot predict them."""
    index = {label: i for i, label in enumerate(labels)}
    examples = []
    for row in _read(dataset, ref, role):
        if row.label not in index:
            if dataset.labels is not None:
                continue
            raise _fail(
                f"unknown label {row.label!r} in {role} row {row.number} "
                f"(the model's labels: {', '.join(labels)})"
            )
        examples.append(Example(row.text, row.pair, index[row.label]))
    if not examples:
        raise _fail(f"no {role} rows with one of the labels {list(labels)}")
    return examples


def stable_subset(rows: list[_Row], limit: int | None) -> list[_Row]:
    """At most `limit` rows chosen by text hash (seed-independent), kept in file order."""
    if limit is None or len(rows) <= limit:
        return rows
    ranked = sorted(range(len(rows)), key=lambda i: (stable_hash(rows[i].text), i))
    return [rows[i] for i in sorted(ranked[:limit])]


def sort_labels(labels: set[str]) -> tuple[str, ...]:
    """Sorted labels; numerically when all are integers, so labels 0..10 get ids 0..10."""
    try:
        return tuple(sorted(labels, key=int))
    except ValueError:
        return tuple(sorted(labels))


def _declared_labels(labels: list[str]) -> tuple[str, ...]:
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise TrialError(Reason.invalid_config, f"dataset.labels repeats {', '.join(repeated)}")
    return tuple(labels)


def _read(dataset: Dataset, ref: str, role: str) -> list[_Row]:
    path: Path = resolve_data_file(ref, role)
    columns = [dataset.text_column, dataset.label_column]
    if dataset.text_pair_column:
        columns.append(dataset.text_pair_column)
    rows = []
    for number, values in read_columns(path, columns, role):
        label = values[1].strip()  # " fresh" and "fresh" are one class
        # An empty label is a class nobody meant, unless `labels` says which rows to keep.
        if not label and dataset.labels is None:
            raise _fail(f"{role} row {number} has an empty {dataset.label_column!r}")
        pair = values[2] if dataset.text_pair_column else None
        rows.append(_Row(number, values[0], pair, label))
    return rows
