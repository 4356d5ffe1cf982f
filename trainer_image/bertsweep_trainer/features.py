"""Tokenized examples as a torch Dataset: tokenized once per trial, padded per batch.

No `datasets` library: a list of dicts is all `Trainer` and `DataCollatorWithPadding` need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bertsweep_trainer.data import Example

_CHUNK = 1024  # examples per tokenizer call: fast tokenizers batch well, memory stays bounded


class EncodedDataset(torch.utils.data.Dataset[dict[str, Any]]):
    def __init__(self, features: list[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.features[index]


def encode(
    tokenizer: Any, examples: Sequence[Example], max_length: int, *, by_length: bool = False
) -> EncodedDataset:
    """Tokenize with truncation at `max_length` and no padding (the collator pads each batch to
    its longest example). `by_length` orders examples by token count: for evaluation, whose
    scores do not depend on order, it cuts the padding, and so the time, of every batch."""
    features: list[dict[str, Any]] = []
    for start in range(0, len(examples), _CHUNK):
        chunk = examples[start : start + _CHUNK]
        pairs = [e.pair or "" for e in chunk] if any(e.pair is not None for e in chunk) else None
        encoded = tokenizer([e.text for e in chunk], pairs, truncation=True, max_length=max_length)
        keys = list(encoded.keys())
        for i, example in enumerate(chunk):
            item = {key: encoded[key][i] for key in keys}
            item["labels"] = example.label
            features.append(item)
    if by_length:
        features.sort(key=lambda item: len(item["input_ids"]))
    return EncodedDataset(features)
