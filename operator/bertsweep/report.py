"""The sweep report: one self-contained HTML page of what a sweep did.

`html_report(sweep, spec, status, trials)` builds the page from the records the terminal table
reads (a local run's result.json through `run_records`; a cluster's BertSweep and BertTrial
objects give the same four things). The page opens offline and fetches nothing: plotly.js is
inlined once, each figure's data beside it, the styles use the reader's own fonts, and a
Content-Security-Policy tells the browser to refuse any request the page might still make.

The figures are Optuna's (`optuna.visualization`), drawn from an in-memory study rebuilt from
the trial records, and one plotly figure of ours: the learning curves, where a pruned trial is
cut where it was stopped (Optuna's intermediate-values plot keys by step and does not mark how
a trial ended). Everything a user wrote (names, values, messages) is HTML-escaped before it
reaches the page or a figure: plotly reads tags such as <b> and <a> in labels.

Pure: this module builds a string; the CLI writes it.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import optuna
import plotly.graph_objects as go
import plotly.io as pio
import yaml
from optuna.distributions import BaseDistribution
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial
from optuna.visualization import (
    plot_optimization_history,
    plot_parallel_coordinate,
    plot_param_importances,
)
from plotly.colors import sample_colorscale
from plotly.offline import get_plotlyjs
from pydantic import ValidationError

from bertsweep.api import (
    MINIMIZED_METRICS,
    Goal,
    ManifestError,
    Parameter,
    ParameterType,
    Scalar,
    SweepSpec,
    SweepStatus,
    Trial,
    TrialPhase,
    describe_validation_error,
    value_key,
)
from bertsweep.report_front import front_figures
from bertsweep.search.bayesian import distribution
from bertsweep.search.space import coerce, fits

# PED-ANOVA (the importance evaluator that needs no scikit-learn) compares the best trials
# with all of them; with fewer finished trials than this its numbers are noise.
MIN_IMPORTANCE_TRIALS = 5
# Messages longer than this, or of several lines (tracebacks), fold away behind their start.
SHORT_MESSAGE = 400
# A pruned trial's curve is dashed and ends in a cross where it was stopped; a failed one's
# is dotted and ends in an open cross; a running one's ends in an open circle.
_CURVE_DASH = {TrialPhase.pruned: "dash", TrialPhase.failed: "dot"}
_CURVE_END = {
    TrialPhase.pruned: "x",
    TrialPhase.failed: "x-open",
    TrialPhase.running: "circle-open",
}
# Optuna's blues without their palest third, which vanishes on a white page.
_LINE_SCALE = [[0.0, "rgb(158,202,225)"], [0.5, "rgb(33,113,181)"], [1.0, "rgb(8,48,107)"]]
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
# Nothing but the page's own inline scripts and styles (and plotly's data: images) may load.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)


def html_report(sweep: str, spec: SweepSpec, status: SweepStatus, trials: Sequence[Trial]) -> str:
    """The whole report of sweep `sweep` as one HTML document (about 5 MB, most of it
    plotly.js): summary, settings, leaderboard, every trial, the optimization history,
    parallel coordinates, learning curves and parameter importance, each a <section> with an
    id (figures in div#figure-KEY). A figure that needs finished trials the sweep does not
    have is a line saying so instead."""
    ordered = sorted(trials, key=lambda t: t.index)
    study, left_out = report_study(spec, ordered)
    sections = [
        ("summary", "Summary", _summary(spec, status, ordered)),
        ("settings", "Settings", _settings(spec)),
        ("leaderboard", "Leaderboard", _leaderboard(spec, status)),
        ("trials", "Trials", _trial_table(spec, ordered, left_out)),
        ("history", "Optimization history", _history(spec, study)),
        ("parallel", "Parallel coordinates", _parallel(spec, study)),
        ("curves", "Learning curves", _figure_html(learning_curves(spec, ordered), "curves")),
        ("importance", "Parameter importance", _importance(spec, study)),
    ]
    if spec.objectives:
        front = "".join(_figure_html(f, key) for key, f in front_figures(spec, status, ordered))
        note = _note(
            f"{status.pareto_front_size} trials no other beats on every objective, among those "
            "that meet every constraint; the selected trial is the best of them on "
            f"{_e(spec.objective.metric)}."
        )
        sections.insert(3, ("front", "Pareto front", note + front))
    nav = " ".join(f'<a href="#{key}">{title}</a>' for key, title, _ in sections)
    body = "\n".join(f'<section id="{k}"><h2>{t}</h2>\n{c}</section>' for k, t, c in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>BertSweep report: {_e(sweep)}</title>\n<style>{_STYLE}</style>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n</head><body>\n'
        f"<header><h1>BertSweep report: {_e(sweep)}</h1><nav>{nav}</nav></header>\n"
        f"{body}\n</body></html>\n"
    )


def run_records(
    result: Mapping[str, Any], spec: SweepSpec | None = None, where: str = "result.json"
) -> tuple[str, SweepSpec, SweepStatus, list[Trial]]:
    """What `html_report` takes, from a local run's result.json (parsed): the sweep's name,
    its spec (the one the result recorded, unless `spec` is given), status and trials.
    ManifestError, naming `where`, for a result it cannot read, or one without a spec (an
    older bertsweep wrote it) when none is given."""
    try:
        if spec is None:
            if not isinstance(result.get("spec"), Mapping):
                raise ManifestError(
                    f"{where} holds no spec (written by an older bertsweep): give the "
                    "manifest it ran too (bertsweep report MANIFEST RUN)"
                )
            spec = SweepSpec.model_validate(result["spec"])
        # A result without a status (hand-written, or cut short) still has its phase.
        phase = {"phase": result["phase"]} if "phase" in result else {}
        status = SweepStatus.model_validate(result.get("status") or phase)
        # Older results did not record the index: it is the trial's position.
        trials = [
            Trial.model_validate({"index": i, **t})
            for i, t in enumerate(result.get("trials") or [])
        ]
    except ValidationError as error:
        raise ManifestError(f"{where}: {describe_validation_error(error)}") from None
    except TypeError:  # a trial that is not a mapping
        raise ManifestError(f"{where}: not the result of a bertsweep run") from None
    return str(result.get("sweep") or "sweep"), spec, status, trials


# ---- the study -------------------------------------------------------------------------------


def report_study(spec: SweepSpec, trials: Sequence[Trial]) -> tuple[optuna.Study, int]:
    """An in-memory Optuna study of the trials in the order they ended (running ones last),
    and how many it leaves out (values outside the spec's search space: the spec was edited).

    Succeeded trials are COMPLETE with their final objective (FAIL without one), Pruned ones
    PRUNED, Failed ones FAIL, Pending and Running ones RUNNING; every trial's reports are its
    intermediate values, keyed by step, and its name is its user attribute `trial` (Optuna's
    hover text shows it). Categorical values are HTML-escaped: the study exists to be drawn."""
    maximize = spec.objective.goal is Goal.maximize
    study = optuna.create_study(
        direction=StudyDirection.MAXIMIZE if maximize else StudyDirection.MINIMIZE
    )
    distributions = {
        p.name: distribution(
            p.model_copy(update={"values": [_shown(v) for v in p.values]}) if p.values else p
        )
        for p in spec.parameters
    }
    # Running trials last; ended ones by when they ended.
    ended = sorted(
        trials, key=lambda t: (t.completion_time is None, t.completion_time or 0, t.index)
    )
    frozen = [_frozen(spec, t, distributions) for t in ended]
    study.add_trials(f for f in frozen if f is not None)
    return study, sum(f is None for f in frozen)


def _shown(value: Scalar) -> Scalar:
    return html.escape(value) if isinstance(value, str) else value


def _frozen(
    spec: SweepSpec, trial: Trial, distributions: Mapping[str, BaseDistribution]
) -> FrozenTrial | None:
    params: dict[str, Any] = {}
    for p in spec.parameters:
        value = trial.parameters.get(p.name)
        if value is None or not fits(p, value):
            return None
        if p.type is ParameterType.categorical:
            # The spec's own spelling of the value (16, not 16.0 read back from JSON).
            value = next(v for v in p.values or [] if value_key(v) == value_key(value))
        params[p.name] = _shown(coerce(p, value))
    objective = trial.objective(spec.objective)
    if trial.phase.active:
        state = TrialState.RUNNING
    elif trial.phase is TrialPhase.succeeded and objective is not None and math.isfinite(objective):
        state = TrialState.COMPLETE
    else:
        state = TrialState.PRUNED if trial.phase is TrialPhase.pruned else TrialState.FAIL
    metric = spec.objective.metric
    curve = {r.step: r.metrics[metric] for r in trial.reports if metric in r.metrics}
    return create_trial(
        state=state,
        value=objective if state is TrialState.COMPLETE else None,
        params=params,
        distributions=dict(distributions),
        user_attrs={"trial": html.escape(trial.name)},
        intermediate_values={k: v for k, v in curve.items() if math.isfinite(v)},
    )


# ---- figures -------------------------------------------------------------------------------


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _objective_label(spec: SweepSpec) -> str:
    better = "higher" if spec.objective.goal is Goal.maximize else "lower"
    return f"{spec.objective.metric} ({better} is better)"


def _plot(plot: Callable[..., go.Figure], study: optuna.Study, **options: Any) -> go.Figure:
    with warnings.catch_warnings():
        # Optuna warns of small studies and experimental options; the page says it in words.
        warnings.simplefilter("ignore")
        return plot(study, **options)


def _history(spec: SweepSpec, study: optuna.Study) -> str:
    if not _finished(study):
        return _note("No trial has finished yet: the history shows finished trials.")
    figure = _plot(plot_optimization_history, study, target_name=spec.objective.metric)
    figure.update_layout(
        xaxis_title="trial, in the order trials ended (hover a point for its name)",
        yaxis_title=_objective_label(spec),
    )
    # Optuna's points say nothing on hover: name each trial (x is its place in the study).
    names = [t.user_attrs["trial"] for t in study.trials]
    template = f"%{{text}}<br>{_e(spec.objective.metric)} %{{y:.4g}}<extra></extra>"
    for trace in figure.select_traces(selector={"mode": "markers"}):
        trace.update(text=[names[x] for x in trace.x], hovertemplate=template, marker_size=9)
    return (
        "<p>Each finished trial's objective in the order trials ended, and the best so far. "
        "Pruned and failed trials take their place in that order but have no final value.</p>"
    ) + _figure_html(figure, "history")


def _parallel(spec: SweepSpec, study: optuna.Study) -> str:
    finished = _finished(study)
    if not finished:
        return _note("No trial has finished yet: parallel coordinates show finished trials.")
    figure = _plot(plot_parallel_coordinate, study, target_name=spec.objective.metric)
    # Room above the axes for their top tick labels, and beside them for long names.
    figure.update_layout(margin={"l": 80, "r": 80, "t": 50, "b": 40})
    values = [t.value for t in finished if t.value is not None]
    _restyle_parallel(figure, values, spec.objective.goal is Goal.maximize)
    # Optuna cuts names of 20 characters or more ("per_device_train_..."): the whole name,
    # broken at an underscore, fits under its axis as well. Its axes: objective, then sorted.
    names = [spec.objective.metric, *sorted(p.name for p in spec.parameters)]
    figure.update_xaxes(ticktext=[_wrapped(n) for n in names])
    figure.update_traces(opacity=0.9, line_width=2, selector={"mode": "lines"})
    return (
        f"<p>One line per finished trial, from its {_e(spec.objective.metric)} (left axis, "
        "and the colour) through its parameters. Log-scale parameters have log axes; "
        "categorical ones one tick per value.</p>"
    ) + _figure_html(figure, "parallel")


def _restyle_parallel(figure: go.Figure, values: Sequence[float], maximize: bool) -> None:
    """Optuna labels the objective's axis, and each line's hover, with 3 significant digits
    (the trials of a narrow range, 0.683 to 0.6855, then read alike), and colours the worst
    lines white on white. Relabel with as many digits as tell the axis ticks apart (one more
    on hover) and recolour from pale to dark blue, the best darkest. The objective is
    Optuna's first axis (x = 0), its values mapped onto [0, 1] between least and greatest."""
    low, high = min(values, default=0.0), max(values, default=0.0)
    ticks = [a for a in figure.layout.annotations if a.x == 0]
    lines = [t for t in figure.data if t.mode == "lines" and t.y and t.customdata is not None]
    spread = high - low or 1.0
    if high > low and ticks:
        numbers = [low + float(a.y) * spread for a in ticks]
        digits = next(d for d in range(3, 17) if len({f"{v:.{d}g}" for v in numbers}) == len(ticks))
        for a, v in zip(ticks, numbers, strict=True):
            a.text = f"{v:.{digits}g}"
    for trace in lines:
        value = low + float(trace.y[0]) * spread
        shade = (value - low) / spread if maximize else (high - value) / spread
        first = [trace.customdata[0][0], f"{value:.5g}"]
        trace.update(customdata=[first, *trace.customdata[1:]])
        trace.update(line_color=sample_colorscale(_LINE_SCALE, shade if high > low else 1.0)[0])
    figure.update_traces(marker_colorscale=_LINE_SCALE, selector={"mode": "markers"})


def _wrapped(name: str) -> str:
    if len(name) < 20 or "_" not in name:
        return name
    cut = min((i for i, c in enumerate(name) if c == "_"), key=lambda i: abs(2 * i - len(name)))
    return f"{name[: cut + 1]}<br>{name[cut + 1 :]}"


def _importance(spec: SweepSpec, study: optuna.Study) -> str:
    finished = len(_finished(study))
    if len(spec.parameters) < 2:
        return _note("One parameter is searched: importance compares parameters.")
    if finished < MIN_IMPORTANCE_TRIALS:
        return _note(
            f"Parameter importance needs at least {MIN_IMPORTANCE_TRIALS} finished trials; "
            f"this sweep has {finished}."
        )
    # Two of the best trials at least, a tenth of them once there are enough.
    quantile = min(0.5, max(0.1, 2 / finished))
    evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
    metric = spec.objective.metric
    figure = _plot(plot_param_importances, study, evaluator=evaluator, target_name=metric)
    figure.update_layout(
        height=120 + 36 * len(spec.parameters),
        xaxis_title="importance (the parameters' shares sum to 1)",
        yaxis_title=None,
    )
    return (
        f"<p>How much each parameter's value tells apart the best {quantile:.0%} of the "
        f"{finished} finished trials from the rest (PED-ANOVA), normalized to sum to 1.</p>"
    ) + _figure_html(figure, "importance")


def learning_curves(spec: SweepSpec, trials: Sequence[Trial]) -> go.Figure:
    """Every trial's objective at each report against the epoch, one line per trial. A pruned
    trial's line is dashed, ends in a cross where it was stopped, and its legend entry says
    "pruned at epoch E"; a failed one's is dotted. A loss spanning more than a factor of 5
    (a wrecked trial beside good ones) gets a log axis."""
    metric = spec.objective.metric
    figure = go.Figure()
    for trial in trials:
        points = [r for r in trial.reports if metric in r.metrics]
        if not points:
            continue
        phase, name = trial.phase.value.lower(), html.escape(trial.name)
        pruned = trial.phase is TrialPhase.pruned
        label = (
            f"{name} (pruned at epoch {points[-1].epoch:.2f})" if pruned else f"{name} ({phase})"
        )
        end = _CURVE_END.get(trial.phase, "circle")
        texts = [
            f"{name} ({phase})<br>epoch {r.epoch:.2f}, step {r.step}<br>"
            f"{html.escape(metric)} {r.metrics[metric]:.4f}"
            for r in points
        ]
        if pruned:
            texts[-1] += "<br><b>stopped here (pruned)</b>"
        rest = len(points) - 1
        figure.add_trace(
            go.Scatter(
                x=[r.epoch for r in points],
                y=[r.metrics[metric] for r in points],
                mode="lines+markers",
                name=label,
                line={"dash": _CURVE_DASH.get(trial.phase, "solid"), "width": 2},
                marker={
                    "symbol": ["circle"] * rest + [end],
                    "size": [6] * rest + [6 if end == "circle" else 13],
                    "line": {"width": 2},
                },
                text=texts,
                hovertemplate="%{text}<extra></extra>",
            )
        )
    values = [v for trace in figure.data for v in trace.y]
    # A wrecked trial's loss (8.5 against 0.69) would flatten every other curve; losses are
    # positive, and a log axis keeps both in view.
    spread = bool(values) and min(values) > 0 and max(values) / min(values) > 5
    figure.update_layout(
        xaxis_title="epoch",
        yaxis_title=_objective_label(spec),
        yaxis_type="log" if spread and metric in MINIMIZED_METRICS else "linear",
        legend={"title": {"text": "trial"}},
        hovermode="closest",
    )
    if not figure.data:
        text = "no trial has reported an evaluation yet"
        figure.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def _figure_html(figure: go.Figure, key: str) -> str:
    """The figure's div (id figure-KEY) and its script; plotly.js is in the page's head."""
    height = figure.layout.height or 460
    # No figure has a title (the section heading is one), so no room is kept for it.
    top = figure.layout.margin.t
    figure.update_layout(
        title=None, height=height, template="plotly_white", margin={"t": top or 20, "b": 50}
    )
    drawn: str = pio.to_html(
        figure,
        include_plotlyjs=False,
        full_html=False,
        div_id=f"figure-{key}",
        config=_PLOT_CONFIG,
        default_height=f"{height}px",
    )
    return f'<div class="figure">{drawn}</div>'


# ---- tables --------------------------------------------------------------------------------


def _summary(spec: SweepSpec, status: SweepStatus, trials: Sequence[Trial]) -> str:
    counts = status.trials.model_dump()
    first = ("succeeded", "pruned", "failed", "running", "pending")
    words = [*first, *(k for k in counts if k not in first and k != "total")]
    rows = [
        ("phase", _phase(status.phase.value)),
        ("trials", f"{len(trials)} of at most {spec.max_trials} (done {_e(status.done)})"),
        ("by phase", ", ".join(f"{counts[w]} {w}" for w in words if counts[w]) or "none yet"),
        ("objective", _e(f"{spec.objective.goal.value} {spec.objective.metric}")),
    ]
    best = status.best_trial
    if best is None:
        rows.append(("best trial", "none yet: no trial has succeeded"))
    else:
        value = status.best_objective
        shown = f" = <b>{_fmt(value)}</b>" if value is not None else ""
        rows.append(("best trial", f"<b>{_e(best.name)}</b>: {_e(spec.objective.metric)}{shown}"))
        rows.append(("its parameters", _e(_pairs({**spec.fixed, **best.parameters}))))
        if best.test_metrics:
            rows.append(("its test metrics", _e(_pairs(best.test_metrics))))
    if status.start_time is not None:
        took = _duration(status.start_time, status.completion_time)
        ran = f"from {status.start_time:%Y-%m-%d %H:%M:%S %Z}".strip()
        rows.append(("ran", _e(f"{ran} for {took}" if took else ran)))
    for c in status.conditions:
        rows.append((f"condition {_e(c.type)}", _e(f"{c.status}, {c.reason}: {c.message}")))
    return _key_values(rows)


def _settings(spec: SweepSpec) -> str:
    wire = spec.wire()
    skipped = ("parameters", "fixed", "trialTemplate", "metrics")  # below, or in the YAML
    general = [(_e(k), _e(_compact(v))) for k, v in wire.items() if k not in skipped]
    parameters = _table(
        ["parameter", "type", "searched over"],
        [([_e(p.name), _e(p.type.value), _e(_domain(p))], "") for p in spec.parameters],
    )
    fixed = _table(["fixed", "value"], [([_e(k), _e(_fmt(v))], "") for k, v in spec.fixed.items()])
    whole = _e(yaml.safe_dump(wire, sort_keys=False))
    return (
        f'{_key_values(general)}<div class="side-by-side">{parameters}'
        f"{fixed if spec.fixed else ''}</div><details><summary>The whole spec, as run (YAML)"
        f"</summary><pre>{whole}</pre></details>"
    )


def _leaderboard(spec: SweepSpec, status: SweepStatus) -> str:
    """The best trials, best first; where a trial's model is kept, its path on a row beneath
    (a path is too long for a column among the metrics)."""
    board = status.leaderboard
    if not board:
        return _note("No trial has succeeded yet.")
    names = [p.name for p in spec.parameters]
    metrics = sorted(_keys(s.metrics for s in board), key=lambda m: m != spec.objective.metric)
    tests = _keys(s.test_metrics for s in board)
    header = ["#", "trial", *names, *metrics, *(f"test {m}" for m in tests)]
    rows = []
    for rank, s in enumerate(board, 1):
        cells = [str(rank), _e(s.name), *(_e(_fmt(s.parameters.get(n, ""))) for n in names)]
        cells += [_metric(s.metrics.get(m), m == spec.objective.metric) for m in metrics]
        cells += [_metric(s.test_metrics.get(m), m == spec.objective.metric) for m in tests]
        rows.append((cells, f"model <code>{_e(s.model_path)}</code>" if s.model_path else ""))
    return _table([_e(h) for h in header], rows)


def _trial_table(spec: SweepSpec, trials: Sequence[Trial], left_out: int) -> str:
    """One row per trial; a trial that did not succeed has its message on a row of its own
    beneath, across the table (messages are long: TrainingArguments lists every choice)."""
    if not trials:
        return _note("No trial has been created yet.")
    names = [p.name for p in spec.parameters]
    header = ["trial", "phase", *names, spec.objective.metric, "epoch", "took", "reason"]
    rows = []
    for t in trials:
        cells = [_e(t.name), _phase(t.phase.value)]
        for n in names:
            value = _e(_fmt(t.parameters.get(n, "")))
            faulty = f'<span class="faulty" title="this value caused the failure">{value}</span>'
            cells.append(faulty if n in t.faulty_parameters else value)
        cells.append(_metric(t.objective(spec.objective)))
        cells.append(f"{t.reports[-1].epoch:.2f}" if t.reports else "")
        cells += [_e(_duration(t.start_time, t.completion_time)), _e(t.reason or "")]
        rows.append((cells, _message(t)))
    note = _note(
        f"{left_out} trial(s) are left out of the figures: their values lie outside the "
        "spec's search space (the spec was edited since they ran)."
    )
    return _table([_e(h) for h in header], rows) + (note if left_out else "")


def _message(trial: Trial) -> str:
    """The message of a trial that did not succeed, folded behind its start when long."""
    message = (trial.message or "").strip()
    if not message or trial.phase is TrialPhase.succeeded:
        return ""
    if len(message) <= SHORT_MESSAGE and "\n" not in message:
        return _e(message)
    first = message.splitlines()[0][: SHORT_MESSAGE // 2]
    return f"<details><summary>{_e(first)}…</summary><pre>{_e(message)}</pre></details>"


# ---- HTML and text helpers -------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _phase(phase: str) -> str:
    return f'<span class="phase phase-{_e(phase.lower())}">{_e(phase)}</span>'


def _table(header: Sequence[str], rows: Iterable[tuple[Sequence[str], str]]) -> str:
    """A table of (cells, detail) rows: a detail (a message, a path) is a row of its own
    beneath, across every column but the first. Header, cells and details are HTML already
    (escaped by the caller)."""
    body = []
    for cells, detail in rows:
        row = "".join(f"<td>{c}</td>" for c in cells)
        if detail:
            row = f'<tr class="told">{row}</tr><tr class="detail"><td></td>'
            row += f'<td colspan="{len(header) - 1}">{detail}</td>'
        body.append(f"<tr>{row}</tr>" if not detail else f"{row}</tr>")
    head = "".join(f"<th>{h}</th>" for h in header)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="table">{table}</div>'


def _key_values(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="pairs"><tbody>{body}</tbody></table>'


def _metric(value: float | None, bold: bool = False) -> str:
    if value is None:
        return ""
    return f"<b>{_fmt(value)}</b>" if bold else _fmt(value)


def _keys(dicts: Iterable[Mapping[str, float]]) -> list[str]:
    return sorted({k for d in dicts for k in d})


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())


def _compact(value: Any) -> str:
    """A spec field on one line: nested mappings as `key: value, ...`."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_compact(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    return _fmt(value)


def _domain(p: Parameter) -> str:
    if p.type is ParameterType.categorical:
        return "one of " + ", ".join(_fmt(v) for v in p.values or [])
    scale = " (log scale)" if p.scale.value == "log" else ""
    grid = f", {p.grid_points} grid points" if p.grid_points else ""
    return f"{_fmt(p.min)} to {_fmt(p.max)}{scale}{grid}"


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    minutes, seconds = divmod(max(0, round((end - start).total_seconds())), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


_STYLE = """
body { font: 14px system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  margin: 0 auto; max-width: 1400px; padding: 0 24px 48px; color: #1f2937; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #e5e7eb;
  padding: 12px 0 8px; z-index: 10; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }
nav a { margin-right: 14px; color: #1d4ed8; text-decoration: none; }
.table { overflow-x: auto; margin: 8px 0; }
table { border-collapse: collapse; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: left;
  vertical-align: top; white-space: nowrap; }
thead th { background: #f3f4f6; }
tr.told td { border-bottom: none; }
tr.detail td { padding-top: 0; white-space: normal; color: #4b5563; }
table.pairs th { width: 180px; color: #4b5563; } table.pairs td { white-space: normal; }
.side-by-side { display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }
.phase { font-weight: 600; } .phase-succeeded { color: #15803d; }
.phase-failed { color: #b91c1c; } .phase-pruned { color: #b45309; }
.phase-running { color: #0e7490; } .phase-pending { color: #6b7280; }
.faulty { color: #b91c1c; font-weight: 600; text-decoration: underline dotted; }
pre { background: #f9fafb; border: 1px solid #e5e7eb; padding: 8px; white-space: pre-wrap; }
details summary { cursor: pointer; } .note { color: #4b5563; font-style: italic; }
.figure { border: 1px solid #e5e7eb; border-radius: 4px; }
code { font-size: 12px; white-space: normal; }
"""
