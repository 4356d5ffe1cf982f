"""One fine-tuning run with Hugging Face's Trainer: model, arguments, data, callbacks.

Imported only once the data has been read and checked, because importing torch and
transformers takes seconds and a trial with bad data should fail at once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)

from bertsweep.contract import Reason
from bertsweep_trainer.callbacks import EvaluationAborted, Progress, ReportingCallback
from bertsweep_trainer.config import TrialConfig
from bertsweep_trainer.costs import latency_batch, model_costs
from bertsweep_trainer.data import TaskData
from bertsweep_trainer.errors import TrialError, one_line
from bertsweep_trainer.features import encode
from bertsweep_trainer.metrics import TrialMetrics
from bertsweep_trainer.params import RoutedParameters, rejected_parameters, route_parameters
from bertsweep_trainer.refs import ModelRef
from bertsweep_trainer.scores import compute_metrics
from bertsweep_trainer.signals import StopRequest

log = logging.getLogger(__name__)


class Diverged(Exception):
    """The training loss is no longer a number: whatever follows would be trained on garbage."""


class DivergenceCheckingTrainer(Trainer):
    """Hugging Face's Trainer, stopping at the first step whose loss is NaN or infinite.

    Fine-tuning runs diverge often (Dodge et al. 2020), more so in mixed precision; one that
    trains on to the end is a GPU spent on nothing. Checking every step costs one device
    synchronisation a step, small beside the step itself."""

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        loss = super().training_step(*args, **kwargs)
        if not bool(torch.isfinite(loss).all()):
            raise Diverged(
                f"the training loss became {float(loss)} at step {self.state.global_step + 1}"
            )
        return loss


@dataclass
class TrainingResult:
    progress: Progress
    stopped: bool
    save: Callable[[Path], None]
    """Writes the trained model, its config (with the label names) and its tokenizer to a
    folder in save_pretrained's layout (weights as safetensors)."""
    diverged: str | None = None
    """Why training stopped at a step whose loss was not a number."""


def run_training(
    config: TrialConfig,
    task: TaskData,
    metrics: TrialMetrics,
    stop: StopRequest,
    model: ModelRef,
) -> TrainingResult:
    """Train and evaluate `model` (from `refs.trial_model`)."""
    # The trainer's own log lines say what matters; transformers' progress bars and load
    # reports would bury them in `kubectl logs`.
    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    model_config = _load(AutoConfig.from_pretrained, model, "config")
    training_fields = {f.name: f.type for f in dataclasses.fields(TrainingArguments) if f.init}
    routed = route_parameters(config.parameters, training_fields, model_config)
    _configure_model(model_config, routed, task.labels)

    with tempfile.TemporaryDirectory(prefix="bertsweep-trial-") as output_dir:
        args = _training_arguments(routed, output_dir, len(task.train))
        # Seeded before the model is built: the new classifier head's initial weights then
        # depend on the trial's seed and nothing else.
        transformers.set_seed(args.seed)
        tokenizer = _load(AutoTokenizer.from_pretrained, model, "tokenizer")
        max_length = config.dataset.max_length
        train_set = encode(tokenizer, task.train, max_length)
        eval_set = encode(tokenizer, task.validation, max_length, by_length=True)
        network = _load_model(model, model_config, routed)
        log.info(
            "model %s: %d layers, hidden %d, %.1fM parameters; %d train / %d validation "
            "examples; classes %s; %d CPU threads; device %s",
            model.reference,
            model_config.num_hidden_layers,
            model_config.hidden_size,
            sum(p.numel() for p in network.parameters()) / 1e6,
            len(train_set),
            len(eval_set),
            ", ".join(task.labels),
            torch.get_num_threads(),
            args.device,
        )
        reporting = ReportingCallback(metrics, stop, len(train_set))
        trainer = DivergenceCheckingTrainer(
            model=network,
            args=args,
            # Pads each batch to its longest example; multiples of 8 suit GPU tensor cores.
            data_collator=DataCollatorWithPadding(
                tokenizer, pad_to_multiple_of=8 if (args.fp16 or args.bf16) else None
            ),
            train_dataset=train_set,
            eval_dataset=eval_set,
            compute_metrics=compute_metrics,
            callbacks=[reporting],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log dict; we print evals
        # The Trainer has put the model on its device: what it costs is measured there.
        first = task.validation[: config.inference.batch_size]  # in file order: the same text
        latency = latency_batch(
            encode(tokenizer, first, max_length).features,
            trainer.data_collator,
            config.inference.batch_size,
        )
        reporting.costs = {
            **model_costs(trainer.model, latency, args.device),
            "pretrained_share": float(getattr(network, "pretrained_share", 1.0)),
        }
        log.info(
            "costs: %.1fM parameters, %.1f MB of weights, %.2f ms a forward pass of %d",
            reporting.costs["model_parameters"] / 1e6,
            reporting.costs["model_size_mb"],
            reporting.costs["inference_latency_ms"],
            config.inference.batch_size,
        )

        def save(folder: Path) -> None:
            network.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)

        if stop:
            return TrainingResult(reporting.progress, stopped=True, save=save)
        try:
            trainer.train()
            evaluated = [e.step for e in reporting.progress.evaluations]
            # Final metrics must describe the final model: evaluate unless the last
            # evaluation was at the last step (eval_strategy "no", or steps that miss the end).
            if evaluated[-1:] != [trainer.state.global_step]:
                if stop:  # no time for it: the last metrics are an earlier evaluation's
                    reporting.progress.cut_short = True
                else:
                    trainer.evaluate()
        except EvaluationAborted:
            pass
        except Diverged as error:
            return TrainingResult(reporting.progress, stopped=True, save=save, diverged=str(error))
        return TrainingResult(reporting.progress, stopped=reporting.progress.cut_short, save=save)


def _load(loader: Any, model: ModelRef, what: str) -> Any:
    try:
        return loader(model.path)
    except (OSError, ValueError) as error:
        raise model.error(
            f"cannot load the {what} of model {model.reference!r}: {_first_line(error)}"
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return one_line(text.splitlines()[0] if text else type(error).__name__)[:400]


def _configure_model(config: Any, routed: RoutedParameters, labels: tuple[str, ...]) -> None:
    for name, value in routed.model_config.items():
        setattr(config, name, value)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}


def _training_arguments(routed: RoutedParameters, output_dir: str, train_size: int) -> Any:
    given = routed.training
    defaults_of = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
    batch = int(
        given.get("per_device_train_batch_size", defaults_of["per_device_train_batch_size"])
    )
    accumulation = int(
        given.get("gradient_accumulation_steps", defaults_of["gradient_accumulation_steps"])
    )
    steps_per_epoch = math.ceil(train_size / (batch * accumulation))
    defaults: dict[str, Any] = {
        "output_dir": output_dir,
        # Evaluations are the sweep's reports; the early-stopping rules compare them by epoch.
        # eval_steps alone means evaluating every eval_steps.
        "eval_strategy": "steps" if "eval_steps" in given else "epoch",
        "save_strategy": "no",  # checkpoints would only be thrown away with the trial
        "report_to": "none",
        "disable_tqdm": True,
        # About ten loss updates per epoch keep the train_loss gauge live without slowing down.
        "logging_strategy": "steps",
        "logging_steps": max(1, min(50, steps_per_epoch // 10)),
        "logging_first_step": True,
        # Evaluation needs no gradients, so twice the batch fits in the same memory.
        "per_device_eval_batch_size": 2 * batch,
        # Worker processes would each take CPU threads from the training itself.
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": torch.cuda.is_available(),  # pinning means nothing on CPU
        # Batches of examples of about the same length: the padding, and so the time, a
        # batch wastes shrinks (text lengths vary a lot: 5 to 60 tokens in a review corpus).
        "train_sampling_strategy": "group_by_length",
        **accelerator_defaults(given),
    }
    try:
        return TrainingArguments(**{**defaults, **given})
    except (ValueError, TypeError) as error:
        raise TrialError(
            Reason.invalid_parameter,
            f"TrainingArguments rejected the parameters: {_first_line(error)}",
            routed.sweep_names(
                rejected_parameters(lambda kept: TrainingArguments(**{**defaults, **kept}), given)
            ),
        ) from None


def accelerator_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """What makes a GPU fast, chosen unless the sweep chose: bfloat16 where the GPU has it
    (float16 needs loss scaling and diverges more), fused AdamW, TF32 matmuls. Nothing on a
    CPU, where they do not help or do not exist."""
    if not torch.cuda.is_available():
        return {}
    chosen: dict[str, Any] = {}
    if not (given.get("fp16") or given.get("bf16")) and torch.cuda.is_bf16_supported():
        chosen["bf16"] = True
    if "optim" not in given:
        chosen["optim"] = "adamw_torch_fused"
    if "tf32" not in given and torch.cuda.get_device_capability()[0] >= 8:
        chosen["tf32"] = True
    return chosen


def _load_model(model: ModelRef, config: Any, routed: RoutedParameters) -> Any:
    try:
        network, info = AutoModelForSequenceClassification.from_pretrained(
            model.path,
            config=config,
            # A changed width (hidden_size, intermediate_size) no longer fits the checkpoint's
            # tensors: those are initialised afresh instead of failing the trial.
            ignore_mismatched_sizes=True,
            output_loading_info=True,
            # Full-precision master weights; fp16/bf16 training is the parameters' choice.
            dtype=torch.float32,
        )
    except ValueError as error:
        if routed.model_config:
            raise TrialError(
                Reason.invalid_parameter,
                f"the model config rejects {sorted(routed.model_config)}: {_first_line(error)}",
                routed.model_config,
            ) from None
        raise model.error(f"cannot load model {model.reference!r}: {_first_line(error)}") from None
    except OSError as error:
        raise model.error(f"cannot load model {model.reference!r}: {_first_line(error)}") from None
    fresh = _report_fresh_weights(info, routed)
    state = network.state_dict()
    body = [k for k in state if not k.startswith(_HEADS)]
    total = sum(state[k].numel() for k in body) or 1
    # How much of the model the checkpoint gave it: a changed width leaves little.
    network.pretrained_share = 1 - sum(state[k].numel() for k in body if k in fresh) / total
    return network


_HEADS = ("classifier.", "score.", "pre_classifier.")  # new in every fine-tuning run


def _report_fresh_weights(info: dict[str, Any], routed: RoutedParameters) -> set[str]:
    """Say which pretrained weights could not be used: a trial that trains a mostly random
    model should not look like a fine-tuning run in the logs. The names of those tensors."""

    def body(name: str) -> bool:
        return not name.startswith(_HEADS)

    mismatched = [m[0] for m in info.get("mismatched_keys", ()) if body(str(m[0]))]
    missing = sorted(k for k in info.get("missing_keys", ()) if body(k))
    changed = ", ".join(f"{k}={v}" for k, v in routed.model_config.items()) or "none"
    if mismatched:
        log.warning(
            "%d pretrained tensors do not fit the changed model config (%s) and were freshly "
            "initialised, e.g. %s",
            len(mismatched),
            changed,
            ", ".join(sorted(mismatched)[:3]),
        )
    if missing:
        log.warning(
            "%d tensors are not in the checkpoint and were freshly initialised (%s), e.g. %s",
            len(missing),
            changed,
            ", ".join(missing[:3]),
        )
    return set(mismatched) | set(missing)
