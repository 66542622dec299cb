"""Command line: ``redistill-study run|validate|methods|models|bench``.

Bad input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import UserError, redact_url


def _study_path(value: str | None) -> Path:
    from .config import default_study_path

    return Path(value) if value else default_study_path()


def _options(args: argparse.Namespace, path: Path, output: Path, **extra: object):
    """RunOptions from the flags every store-opening command shares (--storage, --tracking-uri)."""
    from .study import RunOptions

    cache_dir = getattr(args, "cache_dir", None)
    return RunOptions(
        output=output,
        config_path=path.resolve(),
        storage_url=args.storage,
        tracking_uri=args.tracking_uri,
        cache_dir=Path(cache_dir) if cache_dir else None,
        **extra,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_study
    from .study import Interrupted, StudyRunner

    path = _study_path(args.study)
    config = load_study(path)
    output = Path(args.output) if args.output else Path.cwd() / config.name
    if args.workers > 1:
        return _run_workers(args, config, path, output)
    options = _options(
        args,
        path,
        output,
        cohort_size=args.cohort_size,
        device=args.device,
        quiet=args.quiet,
        worker_label=args.worker_label or "",
        summary=not args.no_summary,
    )
    runner = StudyRunner(config, options)
    if not args.quiet:
        print(f"study {config.name!r} from {path} → {output}")
    try:
        runner.run()
    except (KeyboardInterrupt, Interrupted):
        print(
            "interrupted: in-flight trials were re-queued; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return 0


def _run_workers(args: argparse.Namespace, config, path: Path, output: Path) -> int:
    from .study import StudyRunner
    from .study.workers import launch_workers

    # Create the stores once, before the workers race to.
    options = _options(args, path, output, quiet=True)
    StudyRunner(config, options).open_stores()
    forwarded = ["--output", str(output)]
    for flag, value in (
        ("--storage", args.storage),
        ("--tracking-uri", args.tracking_uri),
        ("--cache-dir", args.cache_dir),
        ("--cohort-size", args.cohort_size),
        ("--device", args.device),
    ):
        if value is not None:
            forwarded += [flag, str(value)]
    if args.quiet:
        forwarded.append("--quiet")
    print(f"study {config.name!r}: {args.workers} workers → {output}")
    code = launch_workers(args.workers, path, forwarded, args.device)
    if code != 0:
        print(
            f"a worker exited with code {code}; rerun the same command to resume", file=sys.stderr
        )
        return code
    # Every trial is done: this pass trains nothing and prints the summary.
    final = _options(args, path, output, quiet=True, device=args.device)
    StudyRunner(config, final).run()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .analysis.summary import write_dashboard
    from .config import load_study
    from .study import StudyRunner

    if args.study:
        path = Path(args.study)
    elif args.output:
        path = Path(args.output) / "study.yaml"
    else:
        path = _study_path(None)
    config = load_study(path, check_files=False)
    output = Path(args.output) if args.output else Path.cwd() / config.name
    if not (args.storage or (output / "optuna.db").is_file()):
        raise UserError(f"{output}: no study results here (no optuna.db); run the study first")
    options = _options(args, path, output, quiet=True)
    runner = StudyRunner(config, options)
    runner.open_stores()
    index, verdict = write_dashboard(runner)
    print(f"verdict: {verdict.text}")
    print(f"dashboard: {index}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .config import load_study
    from .study import StudyRunner

    path = _study_path(args.study)
    config = load_study(path, check_files=False)
    output = Path(args.output) if args.output else Path.cwd() / config.name
    options = _options(args, path, output, quiet=True)
    runner = StudyRunner(config, options)
    runner.open_stores()
    for unit in runner.plan.first_units():
        runner.ensure_planned(unit)
    print(
        f"stores ready for study {config.name!r}: {redact_url(options.resolved_storage())}, "
        f"{redact_url(options.resolved_tracking())}"
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .config import load_study
    from .study import build_plan

    path = _study_path(args.study)
    config = load_study(path, check_files=not args.skip_files)
    plan = build_plan(config)
    slots = sum(len(plan.slots(u)) for u in plan.all_units())
    print(
        f"{path}: ok — {len(config.pairs)} pair(s), {len(plan.cells)} cell(s), "
        f"{len(config.methods)} method(s), up to {slots} trials"
    )
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .losses import get_method, list_methods

    for name in list_methods(args.pattern):
        cls = get_method(name)
        mode = "tuned" if cls.tuned_by_default else "fixed"
        print(f"{name:<16} [{mode}] {cls.summary}")
        defaults = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in cls.defaults.items()
        )
        print(f"    defaults: {defaults or '—'}")
        space = ", ".join(f"{k} ∈ {dim}" for k, dim in cls.search_space.items())
        print(f"    search:   {space or '—'}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import count_parameters, create_model, list_models, model_family

    names = list_models(args.pattern)
    if not names:
        raise UserError(f"no built-in model matches {args.pattern!r}")
    for name in names:
        classes = 10 if model_family(name) == "digits" else 100
        params = count_parameters(create_model(name, num_classes=classes))
        print(f"{name:<20} {params / 1e6:8.3f} M params  ({model_family(name)}, {classes} classes)")
    print("also: timm:<name> and torchvision:<name> for any model of those libraries")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_benchmark

    return run_benchmark(args.what, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redistill-study",
        description="Does one fixed power-divergence λ generalise across distillation pairs?",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a study (default: the embedded CPU-quick study)")
    run.add_argument("study", nargs="?", help="study YAML (default: studies/default.yaml)")
    run.add_argument("--output", help="output folder (default: ./<study name>)")
    run.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<output>/optuna.db)")
    run.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: sqlite:///<output>/mlflow.db)"
    )
    run.add_argument("--cache-dir", help="teacher cache folder (default: <output>/cache)")
    run.add_argument("--cohort-size", type=int, help="students trained together per teacher pass")
    run.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the config)")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local worker processes sharing the study (one per GPU when present)",
    )
    run.add_argument("--worker-label", help=argparse.SUPPRESS)
    run.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="render the verdict dashboard of a study")
    report.add_argument("study", nargs="?", help="study YAML (or give --output)")
    report.add_argument("--output", help="the study's output folder")
    report.add_argument("--storage")
    report.add_argument("--tracking-uri")
    report.set_defaults(func=cmd_report)

    init = sub.add_parser(
        "init", help="create a study's stores and queue its trials once, before many workers start"
    )
    init.add_argument("study", nargs="?")
    init.add_argument("--output")
    init.add_argument("--storage")
    init.add_argument("--tracking-uri")
    init.set_defaults(func=cmd_init)

    validate = sub.add_parser("validate", help="check a study config without running it")
    validate.add_argument("study", nargs="?")
    validate.add_argument(
        "--skip-files",
        action="store_true",
        help="do not check that data folders and checkpoints exist (e.g. on a laptop)",
    )
    validate.set_defaults(func=cmd_validate)

    methods = sub.add_parser("methods", help="list the distillation methods")
    methods.add_argument("pattern", nargs="?")
    methods.set_defaults(func=cmd_methods)

    models = sub.add_parser("models", help="list the built-in models with parameter counts")
    models.add_argument("pattern", nargs="?")
    models.set_defaults(func=cmd_models)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench.add_argument("what", choices=["losses", "throughput"])
    bench.add_argument("--repeats", type=int, default=20)
    bench.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `redistill-study methods | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
