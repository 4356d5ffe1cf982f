"""The CLI against a cluster, in kubectl's spirit: `bertsweep list`, `get`, `watch` and
`best NAME`, and `load_sweep` for commands that read a whole sweep (`report`).

The kubeconfig is read as kubectl reads it (`Kube.from_kubeconfig`: --kubeconfig, $KUBECONFIG,
~/.kube/config; the current context or --context; the context's namespace or "default",
unless -n). Every reason a command cannot do what it was asked is a `RemoteError`: one line
for the user and an exit code, never a traceback:

- EXIT_NOT_FOUND (1): no BertSweep of that name in the namespace (also when it is deleted
  while watched); 1 is also `watch`'s code for a sweep that ended Failed, as `bertsweep run`;
- EXIT_USAGE (2): no usable kubeconfig or context, the API server unreachable, the CRDs not
  installed, credentials refused or forbidden, any other error the API server answers.

The pure parts (rows of `list`, the leaderboard's order, what changed between two looks at a
sweep) take plain data and are unit tested; the rest reads through `kube.py`, the one module
that talks to the API.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.text import Text

from bertsweep import best as bests
from bertsweep import observe, planner
from bertsweep.api import (
    SWEEP_KIND,
    ManifestError,
    Objective,
    SweepPhase,
    SweepSpec,
    SweepStatus,
    Trial,
    parse_spec,
)
from bertsweep.display import Progress, leaderboard, status_line, trial_table
from bertsweep.kube import ApiError, Kube, KubeconfigError, Unreachable
from bertsweep.observe import Unreadable
from bertsweep.outcomes import parse_time

EXIT_OK = 0
EXIT_FAILED = 1
"""`watch`: the sweep ended Failed (as `bertsweep run`)."""
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

WATCH_INTERVAL = 2.0  # seconds between two looks at a watched sweep
WATCH_PATIENCE = 60.0  # how long `watch` keeps trying an API server that stopped answering


class RemoteError(Exception):
    """Why a command cannot do what it was asked: a one-line message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class NotFound(RemoteError):
    """No BertSweep of that name in the namespace (exit 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_NOT_FOUND)


@dataclass(frozen=True)
class Target:
    """Where a command looks: the API, and the namespace (-n, else the context's)."""

    kube: Kube
    namespace: str


def connect(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Target:
    """The cluster and namespace of a command's flags, found as kubectl finds them."""
    try:
        kube = Kube.from_kubeconfig(kubeconfig, context)
    except KubeconfigError as error:
        raise RemoteError(str(error)) from None
    return Target(kube, namespace or kube.namespace)


@contextlib.contextmanager
def _answering(kube: Kube) -> Iterator[None]:
    """What goes wrong between us and the API server, as RemoteError."""
    try:
        with kube.reaching():
            yield
    except Unreachable as error:
        raise RemoteError(str(error)) from None
    except ApiError as error:
        if error.status == 401:
            message = f"the Kubernetes API at {kube.server} refused the kubeconfig's credentials"
        elif error.status == 403:
            message = f"forbidden: {error.message}"
        else:
            message = f"the Kubernetes API at {kube.server} answered {error}"
        raise RemoteError(" ".join(message.split())[:400]) from None


def _not_installed(kube: Kube) -> RemoteError:
    return RemoteError(
        f"the Kubernetes API at {kube.server} has no {SWEEP_KIND} kind: the CRDs are not "
        "installed (kubectl apply -f crds/, or helm install the chart)"
    )


# ---- list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepRow:
    """One line of `bertsweep list`: what `kubectl get bertsweeps` shows."""

    name: str
    namespace: str
    phase: str
    done: str
    objective: str
    best: float | None
    best_trial: str
    created: datetime | None

    def wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "phase": self.phase,
            "done": self.done,
            "objective": self.objective,
            "bestObjective": self.best,
            "bestTrial": self.best_trial or None,
            "created": self.created.strftime("%Y-%m-%dT%H:%M:%SZ") if self.created else None,
        }


def sweep_row(obj: Mapping[str, Any]) -> SweepRow:
    """A BertSweep object as a row, read as leniently as kubectl's printer columns read it:
    whatever is missing or unreadable stays blank."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = observe.read_status(obj)
    objective = (spec.get("objective") or {}).get("metric") if isinstance(spec, dict) else None
    has_status = bool(obj.get("status"))
    return SweepRow(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        phase=status.phase.value if has_status else "",
        done=status.done if has_status else "",
        # The API's default when the manifest names none: what the sweep optimizes.
        objective=str(objective or Objective().metric),
        best=status.best_objective,
        best_trial=status.best_trial.name if status.best_trial else "",
        created=parse_time(meta.get("creationTimestamp")),
    )


def age(created: datetime | None, now: datetime) -> str:
    """A duration as kubectl prints an AGE (its HumanDuration): 45s, 3m20s, 12m, 5h30m,
    2d3h, 40d, 2y10d."""
    if created is None:
        return "<unknown>"
    seconds = int((now - created).total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // (24 * 365), (hours // 24) % 365
    if years < 8:
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


def list_table(rows: Sequence[SweepRow], now: datetime, all_namespaces: bool) -> str:
    """`kubectl get`'s layout: upper-case headers, columns three spaces apart."""
    header = ["NAME", "PHASE", "DONE", "OBJECTIVE", "BEST", "BEST-TRIAL", "AGE"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    lines = [header]
    for row in rows:
        cells = [
            row.name,
            row.phase,
            row.done,
            row.objective,
            f"{row.best:.4f}" if row.best is not None else "",
            row.best_trial,
            age(row.created, now),
        ]
        if all_namespaces:
            cells.insert(0, row.namespace)
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )


def list_sweeps(target: Target, all_namespaces: bool = False) -> list[SweepRow]:
    """The sweeps of the target's namespace, or of every namespace."""
    kube = target.kube
    with _answering(kube):
        if not kube.serves_sweeps():
            raise _not_installed(kube)
        objs = kube.list_sweeps(None if all_namespaces else target.namespace)
    return [sweep_row(obj) for obj in objs]


# ---- one sweep -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepView:
    """A sweep and its trial records, read once."""

    name: str
    namespace: str
    obj: Mapping[str, Any]
    spec: SweepSpec | None
    """None when the spec cannot be read (`spec_problem` says why)."""
    spec_problem: str | None
    status: SweepStatus
    trials: list[Trial]
    """Its BertTrial records, in index order."""
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """The sweep has ended and nothing of it runs any more: its current spec was seen
        and it ended Succeeded or Failed (or was refused), and no trial record is active."""
        return observe.is_settled(self.obj) and not any(t.phase.active for t in self.trials)

    def ranked(self) -> list[Trial]:
        """Every trial, the sweep's ranking first (succeeded trials by the objective, ties to
        the earlier trial, as the sweep's own leaderboard), then the others in index order."""
        if self.spec is None:
            return list(self.trials)
        first = [t for _, t in planner.rank(self.spec, self.trials)]
        chosen = {t.name for t in first}
        return first + [t for t in self.trials if t.name not in chosen]


def view_of(obj: Mapping[str, Any], trial_objs: Sequence[Mapping[str, Any]]) -> SweepView:
    """A sweep and the BertTrial objects labelled with its name, read leniently: records of
    an earlier sweep of the same name are left out, unreadable ones set aside."""
    meta = obj.get("metadata") or {}
    spec: SweepSpec | None = None
    problem: str | None = None
    try:
        spec = parse_spec(obj.get("spec"))
    except ManifestError as error:
        problem = str(error)
    records = observe.owned_records(obj, trial_objs)
    return SweepView(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        obj=obj,
        spec=spec,
        spec_problem=problem,
        status=observe.read_status(obj),
        trials=[r.trial for r in records.readable],
        unreadable=list(records.unreadable),
    )


def fetch(target: Target, name: str) -> SweepView:
    """The sweep `name` of the target's namespace and its trials; NotFound if it is not
    there."""
    obj = _get(target, name)
    with _answering(target.kube):
        trial_objs = list(target.kube.list_trials(target.namespace, name))
    return view_of(obj, trial_objs)


def _get(target: Target, name: str) -> Mapping[str, Any]:
    kube = target.kube
    with _answering(kube):
        obj = kube.get_sweep(target.namespace, name)
        if obj is None:
            if not kube.serves_sweeps():
                raise _not_installed(kube)
            raise NotFound(f"no {SWEEP_KIND} {name} in namespace {target.namespace}")
    return obj


def load_sweep(target: Target, name: str) -> tuple[str, SweepSpec, SweepStatus, list[Trial]]:
    """A cluster sweep as a local run's result gives it: (name, spec, status, its trials from
    the BertTrial records in index order). RemoteError when it is not there, or its spec
    cannot be read."""
    view = fetch(target, name)
    if view.spec is None:
        raise RemoteError(f"{SWEEP_KIND} {name}: cannot read its spec: {view.spec_problem}")
    return view.name, view.spec, view.status, view.trials


def trial_rows(view: SweepView) -> list[dict[str, Any]]:
    """The leaderboard of `get -o json|yaml`: every trial, in `ranked` order."""
    objective = view.spec.objective if view.spec is not None else None
    return [
        {
            "name": t.name,
            "index": t.index,
            "parameters": t.parameters,
            "phase": t.phase.value,
            "objective": t.objective(objective) if objective is not None else None,
            "reason": t.reason,
            "message": t.message,
        }
        for t in view.ranked()
    ]


def sweep_document(view: SweepView) -> dict[str, Any]:
    """`get -o json|yaml`: the sweep's name, namespace, status and leaderboard."""
    return {
        "name": view.name,
        "namespace": view.namespace,
        "phase": view.status.phase.value,
        "status": view.status.wire(),
        "trials": trial_rows(view),
        "unreadable": [{"name": u.name, "problem": u.problem} for u in view.unreadable],
    }


def conditions_text(status: SweepStatus) -> list[str]:
    return [
        f"  {c.type}={c.status} {c.reason}" + (f": {c.message}" if c.message else "")
        for c in status.conditions
    ]


def show(view: SweepView) -> Group:
    """`bertsweep get`: the leaderboard of every trial, the status line, the conditions, and
    why trials that did not complete ended."""
    parts: list[Any] = []
    title = f"{view.name} ({view.namespace}): {len(view.trials)} trials"
    if view.spec is None:
        parts.append(Text(f"{title}; its spec cannot be read: {view.spec_problem}", style="red"))
    else:
        parts.append(trial_table(view.spec, view.ranked(), title=title))
        parts.append(status_line(view.status, view.spec))
    if view.status.conditions:
        parts.append(Text("\n".join(["Conditions:", *conditions_text(view.status)])))
    ended = [t for t in view.ranked() if t.reason and t.reason != "Completed"]
    if ended:
        lines = [f"  {t.name}: {t.reason}" + (f": {t.message}" if t.message else "") for t in ended]
        parts.append(Text("\n".join(["Reasons:", *lines])))
    if view.unreadable:
        lines = [f"  {u.name}: {u.problem}" for u in view.unreadable]
        parts.append(Text("\n".join(["Unreadable trial records:", *lines]), style="yellow"))
    return Group(*parts)


# ---- watch ---------------------------------------------------------------------------------


def changes(before: SweepView | None, after: SweepView) -> list[str]:
    """What happened between two looks at a sweep, one line each: the sweep's phase, each
    trial that appeared or changed phase (with its objective and reason once it ended)."""
    lines: list[str] = []
    if before is None or before.status.phase is not after.status.phase:
        lines.append(f"{after.name}: {after.status.phase.value}  done {after.status.done}")
    old = {t.name: t.phase for t in before.trials} if before else {}
    objective = after.spec.objective if after.spec is not None else None
    for trial in after.trials:
        if old.get(trial.name) is trial.phase:
            continue
        line = f"{trial.name}: {trial.phase.value}"
        if not trial.phase.active:
            value = trial.objective(objective) if objective is not None else None
            if value is not None and objective is not None:
                line += f"  {objective.metric} {value:.4f}"
            if trial.reason and trial.reason != "Completed":
                line += f"  ({trial.reason}" + (f": {trial.message})" if trial.message else ")")
        lines.append(line)
    return lines


def watch(
    target: Target,
    name: str,
    console: Console,
    interval: float = WATCH_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """The live table of a local run (display.Progress) for sweep `name`, refreshed every
    `interval` until the sweep ends (`SweepView.finished`), then its final leaderboard.
    EXIT_FAILED when it ended Failed, else EXIT_OK. A sweep deleted meanwhile is NotFound;
    an API server that stops answering is tried again for WATCH_PATIENCE seconds."""
    view = fetch(target, name)
    if view.spec is None:
        console.print(show(view))
        if view.finished:
            return EXIT_FAILED if view.status.phase is SweepPhase.failed else EXIT_OK
        raise RemoteError(f"{SWEEP_KIND} {name}: cannot read its spec: {view.spec_problem}")
    spec = view.spec
    before: SweepView | None = None
    with Progress(spec, console) as progress:
        while True:
            for line in changes(before, view):
                progress.event(line)
            progress.update(view.status, view.trials, {})
            if view.finished:
                break
            before = view
            view = _look_again(target, name, progress, interval, sleep, clock)
    # The spec the table was drawn with, should the last look find it unreadable (edited).
    console.print(leaderboard(view.spec or spec, view.status, view.trials))
    return EXIT_FAILED if view.status.phase is SweepPhase.failed else EXIT_OK


def _look_again(
    target: Target,
    name: str,
    progress: Progress,
    interval: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> SweepView:
    """The next look at a watched sweep, after `interval`; a failing API server is retried
    for WATCH_PATIENCE seconds, then its error ends the watch."""
    failing_since: float | None = None
    while True:
        sleep(interval)
        try:
            return fetch(target, name)
        except NotFound:
            raise NotFound(
                f"{SWEEP_KIND} {name} in namespace {target.namespace} was deleted"
            ) from None
        except RemoteError as error:
            now = clock()
            if failing_since is None:
                failing_since = now
                progress.event(f"{error.message}; trying again")
            elif now - failing_since > WATCH_PATIENCE:
                raise


# ---- best ----------------------------------------------------------------------------------


def best_of(
    target: Target, name: str, preference: bests.Preference | None = None
) -> tuple[bests.BestConfiguration | None, SweepStatus]:
    """The best trial of sweep `name` in the cluster (status.bestTrial completed by its
    spec), or the one `preference` picks from its Pareto front; None when no trial has
    succeeded yet; and its status (still running, or not)."""
    obj = _get(target, name)
    status = observe.read_status(obj)
    raw = (obj.get("status") or {}).get("bestTrial")
    if not raw:
        return None, status
    spec = obj.get("spec")
    where = f"{SWEEP_KIND} {name}"
    try:
        summary = bests.summary(raw, where)
        if preference is not None:
            picked = bests.preferred(
                obj.get("status") or {},
                spec if isinstance(spec, Mapping) else None,
                preference,
                where,
            )
            if picked is None:
                raise bests.ResultError(
                    f"{where}: no trial of the front reports {preference.metric}"
                )
            summary = picked
    except bests.ResultError as error:
        raise RemoteError(str(error)) from None
    return bests.configuration(name, spec if isinstance(spec, Mapping) else None, summary), status


def now() -> datetime:
    """The moment ages are counted to (this machine's clock, as kubectl's)."""
    return datetime.now(UTC)
