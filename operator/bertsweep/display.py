"""What a person sees in the terminal: the live trial table, events, and the leaderboard."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bertsweep.api import SweepSpec, SweepStatus, Trial, TrialPhase
from bertsweep.contract import Observation

_PHASE_STYLE = {
    TrialPhase.pending: "dim",
    TrialPhase.running: "cyan",
    TrialPhase.succeeded: "green",
    TrialPhase.failed: "red",
    TrialPhase.pruned: "yellow",
}


# A model's costs as a person reads them, beside the objectives.
_COST_COLUMNS: dict[str, tuple[str, Callable[[float], str]]] = {
    "model_parameters": ("params", lambda v: f"{v / 1e6:.1f}M"),
    "model_size_mb": ("MB", lambda v: f"{v:.0f}"),
    "inference_latency_ms": ("latency ms", lambda v: f"{v:.2f}"),
    # A trial that trained a mostly fresh model (a changed width) must not pass for a
    # fine-tuned one.
    "pretrained_share": ("pretrained", lambda v: f"{v:.0%}" + (" (fresh)" if v < 0.5 else "")),
}


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value)
    return text if len(text) <= 28 else "…" + text[-27:]


def trial_table(
    spec: SweepSpec,
    trials: Sequence[Trial],
    observations: Mapping[str, Observation] | None = None,
    title: str | None = None,
    reasons: bool = False,
) -> Table:
    """One row per trial: parameters, phase, progress and the objective; with `reasons`, why
    each trial that did not succeed ended (Pruned, InvalidParameter, OOMKilled, ...)."""
    observations = observations or {}
    names = [p.name for p in spec.parameters]
    table = Table(title=title, header_style="bold", title_justify="left")
    table.add_column("trial")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("phase")
    table.add_column("epoch", justify="right")
    table.add_column("samples/s", justify="right")
    objectives = [o.metric for o in spec.all_objectives()]
    for metric in objectives:
        table.add_column(metric, justify="right")
    costs = [
        m for m in _COST_COLUMNS if m not in objectives and any(m in _latest(t) for t in trials)
    ]
    for metric in costs:
        table.add_column(_COST_COLUMNS[metric][0], justify="right")
    if reasons:
        table.add_column("reason")
    for trial in trials:
        seen = observations.get(trial.name)
        latest = _latest(trial)
        epoch = seen.epoch if seen and seen.epoch is not None else None
        if epoch is None and trial.reports:
            epoch = trial.reports[-1].epoch
        table.add_row(
            trial.name,
            *[_value(trial.parameters.get(n, "")) for n in names],
            Text(trial.phase.value, style=_PHASE_STYLE[trial.phase]),
            f"{epoch:.2f}" if epoch is not None else "",
            f"{seen.samples_per_second:.1f}" if seen and seen.samples_per_second else "",
            *[f"{latest[m]:.4g}" if m in latest else "" for m in objectives],
            *[_COST_COLUMNS[m][1](latest[m]) if m in latest else "" for m in costs],
            *([_reason(trial)] if reasons else []),
        )
    return table


def _latest(trial: Trial) -> Mapping[str, float]:
    """The trial's final metrics, else its latest report's."""
    if trial.metrics:
        return trial.metrics
    return trial.reports[-1].metrics if trial.reports else {}


def _reason(trial: Trial) -> Text:
    if trial.phase is TrialPhase.succeeded or trial.reason is None:
        return Text("")
    return Text(trial.reason, style=_PHASE_STYLE[trial.phase])


def failures(trials: Sequence[Trial]) -> Text | None:
    """One line per failed trial: its reason and the first line of its message (the whole
    message is in result.json and the HTML report)."""
    lines = []
    for t in trials:
        if t.phase is not TrialPhase.failed:
            continue
        message = (t.message or "").strip().splitlines()
        first = message[0] if message else ""
        if len(first) > 200:
            first = first[:199] + "…"
        lines.append(
            Text.assemble(
                (t.name, "bold"),
                " failed: ",
                (t.reason or "", "red"),
                f": {first}" if first else "",
            )
        )
    return Text("\n").join(lines) if lines else None


def trial_report(
    spec: SweepSpec, status: SweepStatus, trials: Sequence[Trial], title: str | None = None
) -> Group:
    """Every trial of a sweep with why each one that did not succeed ended, each failure's
    message, and the sweep's status line (`bertsweep report` without --html)."""
    parts: list[Any] = [trial_table(spec, trials, title=title, reasons=True)]
    failed = failures(trials)
    if failed is not None:
        parts.append(failed)
    parts.append(status_line(status, spec))
    return Group(*parts)


def status_line(status: SweepStatus, spec: SweepSpec) -> Text:
    counts = status.trials
    best = f"{status.best_objective:.4f}" if status.best_objective is not None else "-"
    return Text.assemble(
        (f"{status.phase.value}", "bold"),
        f"  done {status.done}  running {counts.running}  failed {counts.failed}  "
        f"pruned {counts.pruned}  best {spec.objective.metric} {best}",
    )


class Progress:
    """Live table on a terminal; one line per event elsewhere (CI logs, files)."""

    def __init__(self, spec: SweepSpec, console: Console | None = None) -> None:
        self.spec = spec
        self.console = console or Console()
        self.live: Live | None = None
        if self.console.is_terminal:
            self.live = Live(console=self.console, refresh_per_second=2, transient=False)

    def __enter__(self) -> Progress:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.__exit__(None, None, None)

    def update(
        self,
        status: SweepStatus,
        trials: list[Trial],
        observations: Mapping[str, Observation],
    ) -> None:
        if self.live:
            shown = trials[-20:]  # a long sweep scrolls; the leaderboard at the end has the rest
            self.live.update(
                Group(trial_table(self.spec, shown, observations), status_line(status, self.spec))
            )

    def event(self, message: str) -> None:
        self.console.log(message) if self.live else self.console.print(
            message, highlight=False, soft_wrap=True
        )


def leaderboard(spec: SweepSpec, status: SweepStatus, trials: Sequence[Trial]) -> Group:
    """The final report: the best trials, then the best configuration as a user would copy it."""
    by_name = {t.name: t for t in trials}
    ranked = [by_name[s.name] for s in status.leaderboard if s.name in by_name]
    parts: list[Any] = [trial_table(spec, ranked, title="Leaderboard"), status_line(status, spec)]
    if spec.objectives:
        front = [by_name[s.name] for s in status.pareto_front if s.name in by_name]
        shown = f"{len(front)} of {status.pareto_front_size}"
        title = f"Pareto front ({shown} trials no other beats on every objective)"
        parts.insert(1, trial_table(spec, front, title=title))
    condition = status.conditions[0] if status.conditions else None
    if condition is not None:
        parts.append(Text(f"{condition.reason}: {condition.message}"))
    if status.best_trial is not None:
        best = status.best_trial
        lines = [f"Best trial {best.name}:"]
        lines += [f"  {k}: {v}" for k, v in {**spec.fixed, **best.parameters}.items()]
        lines += [f"  -> {k} = {v:.4g}" for k, v in sorted(best.metrics.items())]
        lines += [f"  -> {k} = {v:.4g} (test data)" for k, v in sorted(best.test_metrics.items())]
        if best.model_path:
            lines.append(f"  model: {best.model_path}")
        parts.append(Text("\n".join(lines), style="bold green"))
    return Group(*parts)
