"""Fixtures for tests that run real trials on this machine: small datasets and free ports."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import socket
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from sweeps import MODEL, REVIEWS

Rows = Iterable[Mapping[str, Any]]


def write_table(path: Path, rows: Rows, columns: list[str] | None = None) -> Path:
    """Write rows as CSV, TSV or JSON Lines, chosen by suffix, gzip/bzip2 by a last .gz/.bz2."""
    rows = list(rows)
    columns = columns or (list(rows[0]) if rows else [])
    suffixes = path.suffixes
    compression = suffixes[-1] if suffixes and suffixes[-1] in (".gz", ".bz2") else None
    fmt = suffixes[-2] if compression else (suffixes[-1] if suffixes else "")
    buffer = io.StringIO(newline="")
    if fmt in (".csv", ".tsv"):
        writer = csv.writer(buffer, delimiter="\t" if fmt == ".tsv" else ",")
        if columns:
            writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    elif fmt in (".jsonl", ".json"):
        for row in rows:
            buffer.write(json.dumps(dict(row)) + "\n")
    else:
        raise ValueError(f"no writer for {path.name}")
    data = buffer.getvalue().encode("utf-8")
    if compression == ".gz":
        data = gzip.compress(data)
    elif compression == ".bz2":
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


@pytest.fixture
def table(tmp_path: Path) -> Callable[..., Path]:
    """`table("train.csv", rows)` writes a data file under tmp_path and returns its path."""

    def write(name: str, rows: Rows, columns: list[str] | None = None) -> Path:
        return write_table(tmp_path / name, rows, columns)

    return write


@pytest.fixture(scope="session")
def minilm_ref() -> str:
    """MiniLM-L6 (BERT, 6 layers, hidden 384) from its package, as a trial's model reference."""
    return MODEL


@pytest.fixture(scope="session")
def rotten_tomatoes_ref() -> str:
    """Rotten Tomatoes snippets (columns category: fresh/rotten/plot, text), bzip2 CSV."""
    return REVIEWS


@pytest.fixture
def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (another process could take it; rarely does)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
