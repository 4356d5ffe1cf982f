"""Reading a data file into rows of the columns a trial needs: CSV, TSV or JSON Lines, optionally
gzip- or bzip2-compressed, with the standard library only (the trainer image has no pandas).

Every problem becomes a TrialError(InvalidData) that names the file and, where it helps, the
row and the columns that do exist.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from bertsweep.contract import Reason
from bertsweep_trainer.errors import TrialError

FORMATS = (".csv", ".tsv", ".jsonl", ".json")
COMPRESSIONS = (".gz", ".bz2")

# Review corpora hold texts longer than the csv module's 128 KiB default field limit.
csv.field_size_limit(2**31 - 1)


def _fail(message: str) -> TrialError:
    return TrialError(Reason.invalid_data, message)


def file_format(path: Path) -> tuple[str, str | None]:
    """(format, compression or None) from the file name: data.csv.bz2 -> (.csv, .bz2)."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in COMPRESSIONS else None
    fmt = suffixes[-1] if suffixes else ""
    if fmt not in FORMATS:
        raise _fail(
            f"cannot read {path.name}: expected a {', '.join(FORMATS)} file "
            f"(optionally {' or '.join(COMPRESSIONS)})"
        )
    return fmt, compression


def _open(path: Path, compression: str | None) -> IO[str]:
    # newline="" lets the csv module see quoted newlines inside fields as part of the field.
    if compression == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    if compression == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # utf-8-sig: Excel writes a BOM


def read_columns(
    path: Path, columns: Sequence[str], role: str
) -> list[tuple[int, tuple[str, ...]]]:
    """Every row of `path` as (row number, the named columns' values as strings); rows are
    numbered from 1, header excluded, as messages name them.

    `role` (train, validation) only makes messages clearer. Fails on a missing column (naming
    those that exist), an empty file, a missing or null value, or an unreadable file.
    """
    fmt, compression = file_format(path)
    what = f"{role} file {path.name}"
    try:
        with _open(path, compression) as stream:
            if fmt in (".csv", ".tsv"):
                return list(_csv_rows(stream, fmt, columns, what))
            return list(_json_rows(stream, columns, what))
    except UnicodeDecodeError as error:
        raise _fail(f"{what} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except (OSError, EOFError) as error:  # bad gzip/bz2 data surfaces as OSError or EOFError
        raise _fail(f"cannot read {what}: {error}") from None


def _csv_rows(
    stream: IO[str], fmt: str, columns: Sequence[str], what: str
) -> Iterator[tuple[int, tuple[str, ...]]]:
    reader = csv.reader(stream, delimiter="\t" if fmt == ".tsv" else ",")
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise _fail(f"{what} is empty (no header row)")
        index = _column_indexes([h.strip() for h in header], columns, what)
        count = 0
        for count, row in enumerate(reader, start=1):
            if not row:  # a blank line
                continue
            values = []
            for name, i in zip(columns, index, strict=True):
                if i >= len(row):
                    raise _fail(f"row {count} of {what} has no value for column {name!r}")
                values.append(row[i])
            yield count, tuple(values)
        if count == 0:
            raise _fail(f"{what} has a header but no rows")
    except csv.Error as error:
        kind = fmt[1:].upper()
        raise _fail(f"{what} is not valid {kind} (line {reader.line_num}): {error}") from None


def _column_indexes(header: list[str], columns: Sequence[str], what: str) -> list[int]:
    missing = [c for c in columns if c not in header]
    if missing:
        raise _fail(
            f"{what} has no column {', '.join(map(repr, missing))} "
            f"(its columns: {', '.join(header)})"
        )
    return [header.index(c) for c in columns]


def _json_rows(
    stream: IO[str], columns: Sequence[str], what: str
) -> Iterator[tuple[int, tuple[str, ...]]]:
    # The rows are held in memory afterwards anyway, so reading the text at once costs nothing.
    text = stream.read()
    if not text.strip():
        raise _fail(f"{what} is empty")
    objects: Iterable[tuple[int, Any]]
    if text.lstrip().startswith("["):  # a whole-file JSON array: free to support
        try:
            objects = enumerate(json.loads(text), start=1)
        except json.JSONDecodeError as error:
            raise _fail(f"{what} is not valid JSON: {error}") from None
    else:
        objects = _json_lines(text, what)
    count = 0
    for count, obj in objects:
        if not isinstance(obj, dict):
            raise _fail(f"row {count} of {what} is not a JSON object")
        values = []
        for name in columns:
            if name not in obj:
                raise _fail(
                    f"row {count} of {what} has no field {name!r} (its fields: {', '.join(obj)})"
                )
            values.append(_as_text(obj[name], name, count, what))
        yield count, tuple(values)


def _json_lines(text: str, what: str) -> Iterator[tuple[int, Any]]:
    row = 0
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row += 1
        try:
            yield row, json.loads(line)
        except json.JSONDecodeError as error:
            raise _fail(f"{what} line {line_number} is not valid JSON: {error.msg}") from None


def _as_text(value: Any, name: str, row: int, what: str) -> str:
    """A JSON value as the string the trainer works with: labels 1 and true become "1", "true"."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, list | dict):
        raise _fail(f"row {row} of {what}: field {name!r} is {json.dumps(value)}, not a value")
    return json.dumps(value)
