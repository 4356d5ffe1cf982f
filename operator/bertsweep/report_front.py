"""The report's Pareto front: what accuracy each cost buys, for a sweep with several objectives.

One scatter per pair of the primary objective with another: every finished trial, those that
break a constraint greyed out (they can never be selected), the front joined by a step line,
each constraint on a plotted metric drawn as the line it may not cross, and the selected trial
(`bestTrial`) marked. Plotly builds it; `report.py` puts it on the page.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from bertsweep.api import Goal, SweepSpec, SweepStatus, Trial, TrialPhase


def front_figures(
    spec: SweepSpec, status: SweepStatus, trials: Sequence[Trial]
) -> list[tuple[str, go.Figure]]:
    """(key, figure) per plotted pair: the primary objective (y) against each other one (x)."""
    objectives = spec.all_objectives()
    primary = objectives[0]
    on_front = {s.name for s in status.pareto_front}
    best = status.best_trial.name if status.best_trial else None
    finished = [t for t in trials if t.phase is TrialPhase.succeeded]
    figures = []
    for k, other in enumerate(objectives[1:], start=1):
        x, y = other.metric, primary.metric
        figure = go.Figure()
        groups = (
            (
                "breaks a constraint",
                [t for t in finished if not spec.eligible(t.metrics)],
                "#bbbbbb",
            ),
            (
                "may be selected",
                [t for t in finished if spec.eligible(t.metrics) and t.name not in on_front],
                "#7aa6d8",
            ),
        )
        for label, group, colour in groups:
            shown = [t for t in group if x in t.metrics and y in t.metrics]
            if shown:
                figure.add_trace(_points(shown, x, y, label, colour, "circle", 8))
        front = sorted(
            (t for t in finished if t.name in on_front and x in t.metrics and y in t.metrics),
            key=lambda t: t.metrics[x],
        )
        if front:
            figure.add_trace(_points(front, x, y, "Pareto front", "#d62728", "diamond", 11))
            figure.data[-1].update(
                mode="lines+markers", line={"shape": _shape(other.goal, primary.goal)}
            )
        chosen = [t for t in finished if t.name == best and x in t.metrics and y in t.metrics]
        if chosen:
            figure.add_trace(_points(chosen, x, y, "selected (bestTrial)", "#2ca02c", "star", 20))
        for constraint in spec.constraints:
            for bound in (constraint.min, constraint.max):
                if bound is None:
                    continue
                text = (
                    f"{'min' if bound == constraint.min else 'max'} {constraint.metric} {bound:g}"
                )
                if constraint.metric == x:
                    figure.add_vline(x=bound, line_dash="dash", annotation_text=html.escape(text))
                elif constraint.metric == y:
                    figure.add_hline(y=bound, line_dash="dash", annotation_text=html.escape(text))
        figure.update_layout(
            xaxis_title=f"{other.metric} ({_better(other.goal)} is better)",
            yaxis_title=f"{primary.metric} ({_better(primary.goal)} is better)",
            hovermode="closest",
            legend={"title": {"text": "finished trials"}},
        )
        if not figure.data:
            figure.add_annotation(
                text="no finished trial reports both metrics yet",
                showarrow=False,
                x=0.5,
                y=0.5,
                xref="paper",
                yref="paper",
            )
        figures.append((f"front-{k}", figure))
    return figures


def _points(
    trials: Sequence[Trial], x: str, y: str, label: str, colour: str, symbol: str, size: int
) -> go.Scatter:
    return go.Scatter(
        x=[t.metrics[x] for t in trials],
        y=[t.metrics[y] for t in trials],
        mode="markers",
        name=label,
        marker={"color": colour, "symbol": symbol, "size": size, "line": {"width": 1}},
        text=[
            f"{html.escape(t.name)}<br>{html.escape(x)} {t.metrics[x]:.4g}"
            f"<br>{html.escape(y)} {t.metrics[y]:.4g}"
            for t in trials
        ],
        hovertemplate="%{text}<extra></extra>",
    )


def _better(goal: Goal) -> str:
    return "higher" if goal is Goal.maximize else "lower"


def _shape(x_goal: Goal, y_goal: Goal) -> str:
    # The front steps from one trial to the next: what is dominated lies behind the step.
    return "hv" if (x_goal is Goal.minimize) == (y_goal is Goal.maximize) else "vh"
