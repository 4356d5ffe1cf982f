"""What a trial's model costs: its parameters, its weights' size, its inference latency.

Measured once, right after the model is built and before it trains, the same way in every
trial of a sweep, so that every evaluation report carries them (a multi-objective early-stopping
rule ranks trials by them while they run): the weights' values do not change what a forward
pass costs. The size is that of the weights as save_pretrained writes them (safetensors: the
tensors' bytes), whether or not the model is kept. The latency is the median of timed forward
passes over one fixed batch of `batch_size` validation examples (the first in file order, so
every trial times the same text), after warm-up, on the trial's device.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

WARMUP = 3
TIMED = 15


def model_costs(
    model: Any, batch: dict[str, torch.Tensor], device: torch.device
) -> dict[str, float]:
    """model_parameters, model_size_mb and inference_latency_ms of `model` on `batch`."""
    parameters = sum(p.numel() for p in model.parameters())
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    was_training = model.training
    model.eval()
    times: list[float] = []
    with torch.inference_mode():
        for i in range(WARMUP + TIMED):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            model(**inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= WARMUP:
                times.append(time.perf_counter() - started)
    model.train(was_training)
    return {
        "model_parameters": float(parameters),
        "model_size_mb": size / 1e6,
        "inference_latency_ms": statistics.median(times) * 1000,
    }


def latency_batch(features: Sequence[dict[str, Any]], collate: Any, batch_size: int) -> Any:
    """The fixed batch latency is timed on: the first `batch_size` examples, padded."""
    return collate(list(features[:batch_size]))
