"""`bertsweep`: run a sweep locally, print the CRDs, run the operator, read results."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from rich.console import Console

from bertsweep import manifest as manifests
from bertsweep.api import BertSweepManifest, ManifestError, SweepPhase, TrialPhase

if TYPE_CHECKING:  # the cluster commands import it (and the kubernetes client) when run
    from bertsweep import remote

EXIT_FAILED = 1
EXIT_USAGE = 2


T = TypeVar("T")


def _reading(path: Path, step: Callable[[], T]) -> T:
    """`step` (reading or validating the manifest at `path`), with any failure a ManifestError.

    The reader and the API's validators raise ManifestError for every manifest they refuse;
    anything else they raise is a bug in them, which must still end as a one-line error and
    exit 2, never a traceback."""
    try:
        return step()
    except ManifestError:
        raise
    except Exception as error:
        detail = " ".join(str(error).split())[:300]
        raise ManifestError(
            f"{path}: unexpected {type(error).__name__} while reading the manifest"
            f"{': ' + detail if detail else ''} (a bug in bertsweep: please report it)"
        ) from None


def _load_sweep(
    path: Path, name: str | None, prefer: str | None = None
) -> tuple[BertSweepManifest, str | None]:
    """The BertSweep of `path` a command works on (see manifest.select), and a line saying
    which one it is when the file holds several objects."""

    def load() -> tuple[BertSweepManifest, str | None]:
        contents = manifests.read(path)
        document = manifests.select(contents, name, prefer)
        sweep = manifests.check(contents, document)
        if len(contents.documents) == 1:
            return sweep, None
        return sweep, f"{path}: {document.title()} from {document.where()}"

    return _reading(path, load)


def cmd_run(args: argparse.Namespace) -> int:
    from bertsweep.display import Progress, leaderboard
    from bertsweep.local import LocalRunner, local_warm_history, localize, read_recorded_run
    from bertsweep.runs import resumable, resumed_trials

    path = Path(args.manifest)
    manifest, which = _load_sweep(path, args.sweep)
    if which:
        print(which, file=sys.stderr)
    spec = localize(manifest.spec, path.resolve().parent)
    name = manifest.metadata.name
    output = Path(args.resume or args.output or Path("runs") / name)
    if args.workers is not None:
        spec = spec.model_copy(update={"parallelism": args.workers})
    runner = LocalRunner(name, spec, output)
    if args.resume:
        run = read_recorded_run(output)
        resumable(name, spec, run, str(output))
        runner.trials = {t.name: t for t in resumed_trials(run.trials)}
        runner.status = run.status
    runner.warm = local_warm_history(name, spec, output)
    console = _console()
    console.print(
        f"[bold]{name}[/]: {spec.algorithm.name.value} search, up to {spec.max_trials} trials, "
        f"{spec.parallelism} at a time, results in {output}/",
        soft_wrap=True,
    )
    if args.resume:
        restarted = [t.name for t in runner.trials.values() if t.phase is TrialPhase.pending]
        console.print(
            f"resuming: {len(runner.trials) - len(restarted)} finished trials kept"
            + (f", {', '.join(restarted)} started again" if restarted else ""),
            soft_wrap=True,
            highlight=False,
        )
    if runner.warm.condition is not None:
        message = runner.warm.condition.message
        console.print(f"warm start: {message}", soft_wrap=True, highlight=False)
    with Progress(spec, console) as progress:
        runner.on_update = progress.update
        runner.on_event = progress.event
        try:
            status = runner.run()
        except KeyboardInterrupt:
            console.print(
                "[yellow]interrupted: trials stopped, partial results written; go on with "
                f"bertsweep run {args.manifest} --resume {output}[/]",
                soft_wrap=True,
            )
            return 130
    console.print(leaderboard(spec, status, list(runner.trials.values())))
    console.print(f"result: {output / 'result.json'}")
    return EXIT_FAILED if status.phase is SweepPhase.failed else 0


def _console() -> Console:
    """A terminal's own width; elsewhere (CI logs, files) wide enough for the trial table."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def cmd_validate(args: argparse.Namespace) -> int:
    path = Path(args.manifest)
    outcomes = _reading(path, lambda: manifests.validate(manifests.read(path)))
    several = len(outcomes) > 1
    failed = False
    for outcome in outcomes:
        where = f" ({outcome.document.where()})" if several else ""
        if outcome.manifest is not None:
            print(f"{outcome.manifest.metadata.name}: valid{where}")
        elif outcome.error is not None:
            print(f"error: {outcome.error}", file=sys.stderr)
            failed = True
        else:
            print(
                f"{outcome.document.where()}: {outcome.document.title()} skipped (not a BertSweep)"
            )
    return EXIT_USAGE if failed else 0


def cmd_crd(args: argparse.Namespace) -> int:
    from bertsweep.crd import render

    sys.stdout.write(render())
    return 0


def _read_result(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "result.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ManifestError(f"cannot read a result from {path}: {error}") from None
    return data


def _cluster_command(command: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """A command that may read a cluster: its RemoteError (and a result it cannot read) as
    one line and the error's exit code; anything unexpected as one line and exit 2."""

    def run(args: argparse.Namespace) -> int:
        from bertsweep import remote
        from bertsweep.best import ResultError

        try:
            return command(args)
        except remote.RemoteError as error:
            print(f"error: {error.message}", file=sys.stderr)
            return error.code
        except (ResultError, ManifestError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            return remote.EXIT_INTERRUPTED
        except Exception as error:
            detail = " ".join(str(error).split())[:300]
            print(
                f"error: unexpected {type(error).__name__}{': ' + detail if detail else ''} "
                "(a bug in bertsweep: please report it)",
                file=sys.stderr,
            )
            return EXIT_USAGE

    run.__doc__ = command.__doc__
    return run


@_cluster_command
def cmd_best(args: argparse.Namespace) -> int:
    from bertsweep import best as bests
    from bertsweep import remote

    preference = bests.Preference(args.prefer, args.tolerance) if args.prefer is not None else None
    path = bests.target(args.result)
    if path is not None:
        result = _read_result(path)
        config = bests.from_result(result, str(path), preference)
        sweep, running = result.get("sweep"), False
    else:
        try:
            config, status = remote.best_of(_target(args), args.result, preference)
        except remote.RemoteError as error:
            # TARGET may have been meant as a path that is not there: say both.
            hint = f"{error.message}; no file or folder {args.result} here either"
            raise remote.RemoteError(hint, error.code) from None
        sweep, running = args.result, not status.phase.finished
    if config is None:
        print(f"{sweep}: no trial succeeded{' yet' if running else ''}", file=sys.stderr)
        return EXIT_FAILED
    if not config.spec_known:
        print(
            f"{args.result}: the result holds no spec (written by an older bertsweep): "
            "the fixed values and the model are missing",
            file=sys.stderr,
        )
    elif running:
        print(f"{sweep}: still running, the best trial so far", file=sys.stderr)
    sys.stdout.write(bests.render(config, bests.Format(args.format)))
    return 0


def _target(args: argparse.Namespace) -> remote.Target:
    """The cluster and namespace of a command's --kubeconfig, --context, -n (as kubectl)."""
    from bertsweep import remote

    return remote.connect(args.kubeconfig, args.context, args.namespace)


def _dump(data: Any, output: str) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


@_cluster_command
def cmd_list(args: argparse.Namespace) -> int:
    from bertsweep import remote

    target = _target(args)
    rows = remote.list_sweeps(target, args.all_namespaces)
    if args.output:
        _dump([row.wire() for row in rows], args.output)
    elif not rows:
        where = "any namespace" if args.all_namespaces else f"namespace {target.namespace}"
        print(f"No BertSweeps in {where}.", file=sys.stderr)
    else:
        sys.stdout.write(remote.list_table(rows, remote.now(), args.all_namespaces))
    return 0


@_cluster_command
def cmd_get(args: argparse.Namespace) -> int:
    from bertsweep import remote

    view = remote.fetch(_target(args), args.name)
    if args.output:
        _dump(remote.sweep_document(view), args.output)
    else:
        _console().print(remote.show(view))
    return 0


@_cluster_command
def cmd_watch(args: argparse.Namespace) -> int:
    from bertsweep import remote

    return remote.watch(_target(args), args.name, _console(), interval=args.interval)


@_cluster_command
def cmd_report(args: argparse.Namespace) -> int:
    """Every trial of a local run or a cluster sweep: a table with each failure's reason on
    the terminal, or, with --html FILE, the whole report as one page that opens offline
    (bertsweep.report). TARGET is a local run when a file or folder of that name exists, else
    the BertSweep of that name, as for `best`."""
    from bertsweep import best as bests
    from bertsweep import remote
    from bertsweep.display import trial_report
    from bertsweep.report import html_report, run_records

    path = bests.target(args.run)
    if path is None and args.manifest is None:
        try:
            sweep, spec, status, trials = remote.load_sweep(_target(args), args.run)
        except remote.RemoteError as error:
            hint = f"{error.message}; no file or folder {args.run} here either"
            raise remote.RemoteError(hint, error.code) from None
    else:
        result = _read_result(Path(args.run))
        given = None
        if args.manifest is not None:
            # A result written before result.json recorded the spec needs the manifest it ran.
            prefer = result.get("sweep")
            manifest, _ = _load_sweep(
                Path(args.manifest), args.sweep, prefer if isinstance(prefer, str) else None
            )
            given = manifest.spec
        sweep, spec, status, trials = run_records(result, given, where=args.run)
    if args.html is None:
        title = f"{sweep}: {status.phase.value}"
        _console().print(trial_report(spec, status, trials, title=title))
        return 0
    try:
        Path(args.html).write_text(html_report(sweep, spec, status, trials), encoding="utf-8")
    except OSError as error:
        raise ManifestError(f"cannot write the report to {args.html}: {error}") from None
    print(f"report: {args.html}")
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from bertsweep.handlers import run_operator

    return run_operator(namespaces=args.namespace, prometheus_url=args.prometheus_url)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="bertsweep", description="Hyperparameter sweeps for BERT fine-tuning."
    )
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run a sweep on this machine, trials as local processes",
        description="Run a sweep on this machine, each trial a local process. result.json "
        "in the output folder is rewritten whenever a trial starts or ends, so a run that was "
        "interrupted (Ctrl-C, a kill, a reboot) goes on with --resume. spec.warmStart.sweeps "
        "names earlier runs' output folders (relative to the manifest's folder): their "
        "finished trials feed the search and the stopping rule, without counting as this "
        "run's trials.",
    )
    run.add_argument("manifest", help="a BertSweep YAML manifest")
    run.add_argument(
        "--workers",
        type=int,
        help="trials at once (default: spec.parallelism; may change on --resume)",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--output", help="folder for result.json and trial logs (default: runs/NAME)"
    )
    where.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted run whose output folder is DIR: its finished trials "
        "are kept, the ones that were running start again; the manifest may change only "
        "maxTrials, parallelism, maxFailedTrials, maxRetries, trialTemplate and metrics",
    )
    run.add_argument(
        "--sweep", metavar="NAME", help="the BertSweep to run when the file holds several"
    )
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser(
        "validate", help="check every BertSweep of a manifest without running it"
    )
    validate.add_argument("manifest")
    validate.set_defaults(func=cmd_validate)

    crd = sub.add_parser("crd", help="print the CustomResourceDefinitions (YAML)")
    crd.set_defaults(func=cmd_crd)

    # What every command reading a cluster takes, as kubectl has it.
    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument(
        "--kubeconfig", metavar="FILE", help="default: $KUBECONFIG, ~/.kube/config"
    )
    cluster.add_argument("--context", help="the kubeconfig context (default: its current one)")
    cluster.add_argument(
        "-n", "--namespace", help="default: the context's namespace, else 'default'"
    )

    best = sub.add_parser(
        "best",
        parents=[cluster],
        help="print the best trial's whole configuration, of a local run or a cluster sweep",
        description="TARGET is a local result when a file or folder of that name exists "
        "(result.json or the run's output folder), else the BertSweep of that name in the "
        "cluster.",
    )
    best.add_argument("result", metavar="TARGET", help="result.json, a run's folder, or NAME")
    best.add_argument(
        "--format",
        choices=["yaml", "json", "args"],
        default="yaml",
        help="args: flags for bertsweep-trainer (--model REF --NAME VALUE ...)",
    )
    best.add_argument(
        "--prefer",
        metavar="METRIC",
        help="of the Pareto front (else the leaderboard), the trial best on METRIC (the "
        "cheapest, for a cost such as inference_latency_ms) among those within --tolerance of "
        "the best value of the primary objective",
    )
    best.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="how far below the primary objective's best a preferred trial may be (0.01)",
    )
    best.set_defaults(func=cmd_best)

    listing = sub.add_parser(
        "list", parents=[cluster], help="the BertSweeps of a namespace (kubectl get bertsweeps)"
    )
    listing.add_argument(
        "-A", "--all-namespaces", action="store_true", help="the sweeps of every namespace"
    )
    listing.add_argument("-o", "--output", choices=["json", "yaml"], help="data, not a table")
    listing.set_defaults(func=cmd_list)

    get = sub.add_parser(
        "get", parents=[cluster], help="a cluster sweep's leaderboard: every trial, best first"
    )
    get.add_argument("name", metavar="NAME")
    get.add_argument("-o", "--output", choices=["json", "yaml"], help="data, not a table")
    get.set_defaults(func=cmd_get)

    watch = sub.add_parser(
        "watch",
        parents=[cluster],
        help="a cluster sweep's live trial table until it ends (exit 1 if it Failed)",
    )
    watch.add_argument("name", metavar="NAME")
    watch.add_argument(
        "--interval", type=float, default=2.0, help="seconds between looks (default: 2)"
    )
    watch.set_defaults(func=cmd_watch)

    report = sub.add_parser(
        "report",
        parents=[cluster],
        help="every trial of a local run or a cluster sweep: a table, or an HTML page (--html)",
        description="TARGET is a local run when a file or folder of that name exists "
        "(result.json or the run's output folder), else the BertSweep of that name.",
    )
    report.add_argument(
        "manifest",
        nargs="?",
        help="only for a result.json without the spec (an older run): the manifest it ran",
    )
    report.add_argument(
        "run", metavar="TARGET", help="the run's output folder, its result.json, or NAME"
    )
    report.add_argument(
        "--html", metavar="FILE", help="write the report as one self-contained HTML page"
    )
    report.add_argument(
        "--sweep",
        metavar="NAME",
        help="the BertSweep of the manifest (default: the only one, or the run's)",
    )
    report.set_defaults(func=cmd_report)

    operator = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    operator.add_argument(
        "--namespace", "-n", action="append", help="watch only these (default: all namespaces)"
    )
    operator.add_argument(
        "--prometheus-url", help="default Prometheus for sweeps that name none ($PROMETHEUS_URL)"
    )
    operator.set_defaults(func=cmd_operator)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ManifestError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
