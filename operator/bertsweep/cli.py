"""`bertsweep`: run a sweep locally, print the CRDs, run the operator, read results."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from rich.console import Console

from bertsweep import manifest as manifests
from bertsweep.api import BertSweepManifest, ManifestError, SweepPhase, Trial

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
    from bertsweep.local import LocalRunner, localize

    path = Path(args.manifest)
    manifest, which = _load_sweep(path, args.sweep)
    if which:
        print(which, file=sys.stderr)
    spec = localize(manifest.spec, path.resolve().parent)
    name = manifest.metadata.name
    output = Path(args.output) if args.output else Path("runs") / name
    console = _console()
    console.print(
        f"[bold]{name}[/]: {spec.algorithm.name.value} search, up to {spec.max_trials} trials, "
        f"{args.workers or spec.parallelism} at a time, results in {output}/",
        soft_wrap=True,
    )
    with Progress(spec, console) as progress:
        runner = LocalRunner(
            name,
            spec,
            output,
            workers=args.workers,
            on_update=progress.update,
            on_event=progress.event,
        )
        try:
            status = runner.run()
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: trials stopped, partial results written[/]")
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


def cmd_best(args: argparse.Namespace) -> int:
    result = _read_result(Path(args.result))
    best = result.get("bestTrial")
    if not best:
        print(f"{result.get('sweep')}: no trial succeeded", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(yaml.safe_dump(best, sort_keys=False))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bertsweep.display import trial_table

    result = _read_result(Path(args.result))
    prefer = result.get("sweep")
    manifest, _ = _load_sweep(
        Path(args.manifest), args.sweep, prefer if isinstance(prefer, str) else None
    )
    trials = [Trial.model_validate({**t, "index": i}) for i, t in enumerate(result["trials"])]
    title = f"{result.get('sweep')}: {result.get('phase')}"
    _console().print(trial_table(manifest.spec, trials, title=title))
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from bertsweep.handlers import run_operator

    return run_operator(namespaces=args.namespace, prometheus_url=args.prometheus_url)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="bertsweep", description="Hyperparameter sweeps for BERT fine-tuning."
    )
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a sweep on this machine, trials as local processes")
    run.add_argument("manifest", help="a BertSweep YAML manifest")
    run.add_argument("--workers", type=int, help="trials at once (default: spec.parallelism)")
    run.add_argument("--output", help="folder for result.json and trial logs (default: runs/NAME)")
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

    best = sub.add_parser("best", help="print the best trial of a local run (YAML)")
    best.add_argument("result", help="result.json, or the run's output folder")
    best.set_defaults(func=cmd_best)

    report = sub.add_parser("report", help="print every trial of a local run")
    report.add_argument("manifest")
    report.add_argument("result", help="result.json, or the run's output folder")
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
