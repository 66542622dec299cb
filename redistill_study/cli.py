"""Command line: ``redistill-study run|init|report|design|validate|methods|models|bench``.

Bad input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import StoreUnreachable, UserError, redact_url


def _study_path(value: str | None) -> Path:
    from .config import default_study_path

    return Path(value) if value else default_study_path()


def _output(args: argparse.Namespace, config: Any) -> Path:
    return Path(args.output) if args.output else Path.cwd() / config.name


def _options(args: argparse.Namespace, path: Path, output: Path, **extra: Any):
    """RunOptions from the options every store-opening command shares."""
    from .study import RunOptions

    cache_dir = getattr(args, "cache_dir", None)
    return RunOptions(
        output=output,
        config_path=path.resolve(),
        storage_url=args.storage,
        tracking_uri=args.tracking_uri,
        cache_dir=Path(cache_dir) if cache_dir else None,
        **({"patience": args.store_patience} if getattr(args, "store_patience", None) else {}),
        **extra,
    )


def _summarise(results: Any, output: Path, config: Any) -> tuple[Any, dict[str, Any]]:
    from .analysis.report import write_outputs
    from .analysis.summary import build_report

    report = build_report(results)
    meta = (
        f"study {config.name} · {config.dataset.name} · {report.decision.unit_kind} · "
        f"{config.seeds} seeds"
    )
    from ._patience import Patience

    # A full disk is waited for (one line each way) rather than lose the summary of a study.
    return report, Patience(f"output folder {output}").call(
        lambda: write_outputs(report, output, meta)
    )


def cmd_run(args: argparse.Namespace) -> int:
    from .analysis.summary import report_text, verdict_metrics
    from .config import load_study
    from .study import Interrupted, StudyRunner

    path = _study_path(args.study)
    config = load_study(path)
    output = _output(args, config)
    if args.workers > 1:
        return _run_workers(args, config, path, output)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options = _options(
        args,
        path,
        output,
        cohort_size=args.cohort_size,
        device=args.device,
        quiet=args.quiet,
        worker_label=args.worker_label or "",
    )
    runner = StudyRunner(config, options)
    if not args.quiet:
        print(f"study {config.name!r} from {path} → {output}")
    runner.bundle  # noqa: B018  (load the data first: a study that cannot read it creates no stores)
    try:
        with runner.session():
            runner.work()
            if args.no_summary:
                return 0
            elapsed = _elapsed(runner)
            report, written = _summarise(runner.results(), output, config)
            runner.attach(
                {
                    "elapsed_seconds": elapsed,
                    "trials_trained": runner.trained,
                    **verdict_metrics(report),
                },
                [written["csv"]],
                written["dashboard"].parent,
            )
    except (KeyboardInterrupt, Interrupted):
        print(
            "interrupted: in-flight trials were re-queued; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(f"\n{report_text(report)}")
    print(f"\nsummary: {written['csv']}")
    print(f"dashboard: {written['dashboard']}")
    print(f"trained {runner.trained} trial(s) in {elapsed:.1f} s")
    assert runner.tracker is not None
    print(_open_the_runs(runner.tracker.open_lines()))
    return 0


def _open_the_runs(lines: list[str]) -> str:
    return "open the runs: " + "\n               ".join(lines)


def _elapsed(runner: Any) -> float:
    import time

    return time.perf_counter() - runner.started


def _run_workers(args: argparse.Namespace, config: Any, path: Path, output: Path) -> int:
    from .study import StudyRunner
    from .study.workers import launch_workers

    # Create the stores once, before the workers race to.
    StudyRunner(config, _options(args, path, output, quiet=True)).init()
    forwarded = _without_workers(args.argv)
    if "--output" not in forwarded:
        forwarded += ["--output", str(output)]
    print(f"study {config.name!r}: {args.workers} workers → {output}")
    code = launch_workers(args.workers, forwarded, args.device)
    if code != 0:
        print(
            f"a worker exited with code {code}; rerun the same command to resume", file=sys.stderr
        )
        return code
    return _report(args, config, path, output)


def _without_workers(argv: list[str]) -> list[str]:
    """The user's own ``run`` arguments, minus ``--workers N``."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--workers":
            skip = True
            continue
        if item.startswith("--workers="):
            continue
        out.append(item)
    return out


def _report(args: argparse.Namespace, config: Any, path: Path, output: Path) -> int:
    from .analysis.summary import markdown_summary, report_text
    from .study import build_plan, read_results
    from .study.storage import open_storage_readonly, sqlite_url

    url = args.storage or sqlite_url(output / "optuna.db")
    storage = open_storage_readonly(url)
    results = read_results(storage, build_plan(config))
    if os.access(output if output.exists() else output.parent, os.W_OK):
        report, written = _summarise(results, output, config)
    else:  # results copied somewhere read-only: report them, write nothing
        from .analysis.summary import build_report

        report, written = build_report(results), None
    if getattr(args, "markdown", False):
        print(markdown_summary(report))
        return 0
    print(report_text(report))
    if written is None:
        print(f"\n{output} is not writable: summary and dashboard not written")
        return 0
    print(f"\nsummary: {written['csv']}")
    print(f"dashboard: {written['dashboard']}")
    from .tracking import experiment_id, open_lines

    tracking = args.tracking_uri or sqlite_url(output / "mlflow.db")
    print(_open_the_runs(open_lines(tracking, experiment_id(tracking, config.name))))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .config import load_study

    if args.study:
        path = Path(args.study)
    elif args.output:
        path = Path(args.output) / "study.yaml"
    else:
        path = _study_path(None)
    config = load_study(path, check_files=False)
    output = _output(args, config)
    if not (args.storage or (output / "optuna.db").is_file()):
        raise UserError(f"{output}: no study results here (no optuna.db); run the study first")
    return _report(args, config, path, output)


def cmd_init(args: argparse.Namespace) -> int:
    from .config import load_study
    from .study import StudyRunner

    path = _study_path(args.study)
    config = load_study(path, check_files=False)
    options = _options(args, path, _output(args, config), quiet=True)
    StudyRunner(config, options).init()
    print(
        f"stores ready for study {config.name!r}: {redact_url(options.resolved_storage())}, "
        f"{redact_url(options.resolved_tracking())}"
    )
    return 0


def cmd_design(args: argparse.Namespace) -> int:
    from .analysis.design import (
        Design,
        World,
        estimate_world,
        from_mapping,
        power_report,
        world_text,
    )
    from .analysis.evidence import Layout
    from .analysis.verdict import estimate, thresholds_for
    from .config import load_study
    from .study import build_plan, read_results
    from .study.storage import open_storage_readonly, sqlite_url

    path = _study_path(args.study)
    config = load_study(path, check_files=False)
    plan = build_plan(config)
    v = config.verdict
    th = thresholds_for(
        plan.margin, v.alpha, plan.failure_margin, v.min_pairs, v.min_students, v.min_teachers
    )
    layout = Layout(
        tuple(p.label for p in config.pairs),
        tuple(plan.teacher_label(p) for p in config.pairs),
        tuple(plan.student_label(p) for p in config.pairs),
    )
    teacher_of, student_of = layout.indices()
    design = Design(
        tuple(int(t) for t in teacher_of),
        tuple(int(s) for s in student_of),
        tuple(plan.noise_labels),
        len(plan.seeds),
        th,
    )
    world, source = (
        World(seed_sd=plan.margin, pair_sd=plan.margin / 2, failure_size=2 * th.failure_margin),
        "assumed",
    )
    if args.from_output:
        output = Path(args.from_output)
        if not (output / "optuna.db").is_file() and not args.storage:
            raise UserError(f"{output}: no study results here (no optuna.db)")
        storage = open_storage_readonly(args.storage or sqlite_url(output / "optuna.db"))
        results = read_results(storage, plan)
        s = results.study
        evidence, result = estimate(  # the primary recipe's runs: each recipe is decided alone
            [r for r in results.evaluations if r["recipe"] == plan.primary_recipe],
            th,
            fixed=plan.arms.fixed[:1],
            searched=plan.arms.searched,
            reference=plan.arms.reference,
            seeds=plan.seeds,
            noises=plan.noise_labels,
            teachers=s["teachers"],
            students=s["students"],
        )
        found = estimate_world(evidence, result, len(plan.seeds)) if plan.arms.fixed else None
        if found is None:
            raise UserError(f"{output}: not enough finished evaluation runs to estimate spreads")
        world, source = found, f"estimated from {output}"
    given = {
        "seed_sd": args.seed_sd,
        "pair_sd": args.pair_sd,
        "teacher_sd": args.teacher_sd,
        "student_sd": args.student_sd,
        "failure_share": args.failure_share,
        "failure_size": args.failure_size,
        "quantity_correlation": args.correlation,
    }
    world = from_mapping(given, world)
    report = power_report(design, world, sims=args.sims)
    if args.json:
        print(json.dumps({**report, "spreads": source}, sort_keys=True, default=str))
        return 0
    grid = report["grid_for_80"]
    shown = args.study or f"{path.name} (embedded)"
    print(
        f"{shown}: {design.pairs} pairs ({design.teachers} teachers × {design.students} "
        f"students), {len(plan.noise_labels)} noise setting(s), {len(plan.seeds)} seeds, "
        f"δ = {100 * th.margin:.2f} points, δ_f = {100 * th.failure_margin:.2f} points, "
        f"α = {th.alpha:g}; holds needs ≥ {th.min_pairs} pairs, ≥ {th.min_students} students, "
        f"≥ {th.min_teachers} teachers\n"
        f"world ({source}): {world_text(world)}\n"
        f"P(holds) when the claim is exactly true: {report['power']:.3f}\n"
        f"P(holds) with the mean regret at the margin (size, ≤ α): {report['size']:.3f}\n"
        f"P(does not hold) when {_of(report['failing_at_eighth'], design.pairs)} "
        f"(π = 1/8): {report['fails_at_eighth']:.3f}\n"
        f"P(does not hold) when {_of(report['failing_at_half'], design.pairs)} "
        f"(π = 1/2): {report['fails_at_half']:.3f}\n"
        "for 80 % power when the claim is true: "
        + (
            f"{grid[0]} teachers × {grid[1]} students ({grid[0] * grid[1]} pairs)"
            if grid
            else "more than 32 teachers × 32 students"
        )
        + f"\n({report['sims']} simulated studies per figure, through the verdict's own rule)"
    )
    return 0


def _of(failing: int, pairs: int) -> str:
    return f"{failing} of {pairs} pairs {'fails' if failing == 1 else 'fail'}"


def cmd_validate(args: argparse.Namespace) -> int:
    from .config import load_study
    from .study import build_plan

    path = _study_path(args.study)
    config = load_study(path, check_files=not args.skip_files, read_data=not args.skip_files)
    plan = build_plan(config)
    slots = sum(len(plan.slots(u)) for u in plan.all_units())
    print(
        f"{path}: ok — {len(config.pairs)} pair(s) ({plan.units_of_generalisation()} "
        f"teachers × {plan.distinct_students()} students), {len(plan.cells)} cell(s), "
        f"{len(config.methods)} method(s), {len(plan.recipes)} recipe(s), up to {slots} trials"
    )
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .losses import get_method, list_methods

    names = list_methods(args.pattern)
    if not names:
        raise UserError(f"no method matches {args.pattern!r} (see `redistill-study methods`)")
    for name in names:
        cls = get_method(name)
        mode = "tuned" if cls.tuned_by_default else "fixed"
        print(f"{name:<24} [{mode}] {cls.summary}")
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
        raise UserError(f"no model matches {args.pattern!r} (try 'timm:*' or 'torchvision:*')")
    if ":" in (args.pattern or ""):  # timm / torchvision: names only (building each is slow)
        print("\n".join(names))
        return 0
    for name in names:
        classes = 100 if model_family(name) == "cifar" else 10
        params = count_parameters(create_model(name, num_classes=classes))
        print(f"{name:<22} {params / 1e6:8.3f} M params  ({model_family(name)}, {classes} classes)")
    print("also: timm:<name> and torchvision:<name> for any model of those libraries")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_benchmark

    return run_benchmark(args.what, args)


class _Parser(argparse.ArgumentParser):
    """Bad arguments end in one line naming the command and what was expected, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a whole number ≥ {low}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def _counts(text: str) -> list[int]:
    try:
        values = [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers separated by commas, e.g. 1,8,32; got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected counts ≥ 1, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="redistill-study",
        description="Does one fixed power-divergence λ generalise across distillation pairs?",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    stores = _Parser(add_help=False)
    stores.add_argument("--output", help="the study's output folder (default: ./<study name>)")
    stores.add_argument(
        "--storage", help="Optuna storage URL (default: sqlite:///<output>/optuna.db)"
    )
    stores.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: sqlite:///<output>/mlflow.db)"
    )
    study_arg = _Parser(add_help=False)
    study_arg.add_argument(
        "study", nargs="?", help="study YAML (default: the embedded studies/default.yaml)"
    )

    run = sub.add_parser(
        "run",
        parents=[study_arg, stores],
        help="run a study (default: the embedded CPU-quick study)",
    )
    run.add_argument("--cache-dir", help="teacher cache folder (default: <output>/cache)")
    run.add_argument(
        "--cohort-size", type=_at_least(1), help="students trained together per teacher pass"
    )
    run.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the config)")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    run.add_argument(
        "--threads",
        type=_at_least(1),
        help="CPU threads for torch (results reproduce per thread count)",
    )
    run.add_argument(
        "--workers",
        type=_at_least(1),
        default=1,
        help="local worker processes sharing the study (one per GPU when present)",
    )
    run.add_argument("--worker-label", help=argparse.SUPPRESS)
    run.add_argument(
        "--store-patience",
        type=_at_least(1),
        help="seconds an unreachable database or tracking server is waited for before the "
        "worker stops with exit code 75 (default 300, or $REDISTILL_STORE_PATIENCE)",
    )
    run.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    report = sub.add_parser(
        "report",
        parents=[study_arg, stores],
        help="the verdict, table and dashboard of a study, read from its stores (read-only)",
    )
    report.add_argument(
        "--markdown", action="store_true", help="print the README block (table and verdict)"
    )
    report.set_defaults(func=cmd_report)

    init = sub.add_parser(
        "init",
        parents=[study_arg, stores],
        help="create a study's stores and queue its trials once, before many workers start",
    )
    init.set_defaults(func=cmd_init)

    design = sub.add_parser(
        "design",
        parents=[study_arg],
        help="power calculator: the study's design through the verdict's rule, by simulation",
    )
    for flag, what in (
        ("--seed-sd", "run-to-run sd of test top-1"),
        ("--pair-sd", "between-pair sd of the regret and deficit"),
        ("--teacher-sd", "sd of a teacher's effect on them"),
        ("--student-sd", "sd of a student's effect on them"),
        ("--failure-size", "how much worse a failing pair is ('inf': it diverges)"),
    ):
        design.add_argument(flag, type=_non_negative_float, help=f"{what} (a fraction)")
    design.add_argument(
        "--failure-share", type=_fraction, help="share of pairs that fail (π), for the world"
    )
    design.add_argument(
        "--correlation", type=_fraction, help="correlation of a pair's regret and deficit"
    )
    design.add_argument("--from-output", help="estimate the world from a finished study")
    design.add_argument("--storage", help="that study's Optuna storage URL, if not SQLite")
    design.add_argument(
        "--sims", type=_at_least(10), default=2000, help="simulated studies per figure"
    )
    design.add_argument("--json", action="store_true", help="print the figures as JSON")
    design.set_defaults(func=cmd_design)

    validate = sub.add_parser(
        "validate", parents=[study_arg], help="check a study config without running it"
    )
    validate.add_argument(
        "--skip-files",
        action="store_true",
        help="do not check that data folders and checkpoints exist (e.g. on a laptop)",
    )
    validate.set_defaults(func=cmd_validate)

    methods = sub.add_parser("methods", help="list the distillation methods")
    methods.add_argument("pattern", nargs="?", help="shell-style filter, e.g. '*kd*'")
    methods.set_defaults(func=cmd_methods)

    models = sub.add_parser("models", help="list the built-in models with parameter counts")
    models.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'fmnist_*'")
    models.set_defaults(func=cmd_models)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench.add_argument(
        "what", choices=["losses", "throughput", "study", "claims"], help="what to measure"
    )
    bench.add_argument(
        "study",
        nargs="?",
        help="for `bench study` and `bench claims`: the study YAML (default: the embedded "
        "default study; cifar100_classic for claims)",
    )
    bench.add_argument(
        "--workers-list",
        type=_counts,
        help="for `bench claims`: simulated worker counts (default 1,8,32)",
    )
    bench.add_argument(
        "--seconds", type=_positive_float, help="for `bench claims`: seconds per figure"
    )
    bench.add_argument(
        "--postgres",
        action="store_true",
        help="for `bench claims`: also on a throwaway local PostgreSQL server",
    )
    bench.add_argument(
        "--epochs",
        type=_at_least(1),
        help="for `bench study`: train this many epochs (default: the recipe's)",
    )
    bench.add_argument(
        "--rounds",
        type=_at_least(1),
        default=3,
        help="for `bench study`: interleaved rounds per engine, the best one reported (default 3)",
    )
    bench.add_argument("--repeats", type=_at_least(1), default=20, help="timed rounds per figure")
    bench.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv[1:] if argv and argv[0] == args.command else argv
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except StoreUnreachable as exc:
        print(
            f"error: {exc}; this worker stopped, its trials are retried by any worker "
            "(rerun the same command to resume)",
            file=sys.stderr,
        )
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `redistill-study methods | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
