"""``design``: the power calculator. The study's design through the verdict's own rule, by
simulation, in an assumed world or one estimated from a finished study."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import UserError
from ._common import Command, study_parent, study_path
from ._types import at_least, fraction, non_negative_float

if TYPE_CHECKING:
    from ..analysis.design import Design, World
    from ..analysis.layout_search import PairLayout
    from ..analysis.rule import Thresholds
    from ..config import StudyConfig
    from ..study import Plan
    from ..study.arms import Claim

# The spreads of the world, each a fraction: --flag, what it is.
_SPREADS = (
    ("--seed-sd", "run-to-run sd of test top-1"),
    ("--pair-sd", "between-pair sd of the regret and deficit"),
    ("--teacher-sd", "sd of a teacher's effect on them"),
    ("--student-sd", "sd of a student's effect on them"),
    ("--failure-size", "how much worse a failing pair is ('inf': it diverges)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, what in _SPREADS:
        parser.add_argument(flag, type=non_negative_float, help=f"{what} (a fraction)")
    parser.add_argument(
        "--failure-share", type=fraction, help="share of pairs that fail (π), for the world"
    )
    parser.add_argument(
        "--correlation", type=fraction, help="correlation of a pair's regret and deficit"
    )
    parser.add_argument(
        "--noise-correlation",
        type=fraction,
        help="correlation of a pair's effects between teacher conditions (assumed: 0.5)",
    )
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        "--find-layout",
        action="store_true",
        help="search teachers, students, pairing and seeds for the cheapest layout (student "
        "trainings the verdict needs) with P(holds | true) ≥ 0.8, size ≤ α and P(does not hold "
        "| 1/8 of pairs fail) ≥ 0.9 for every claim",
    )
    layout.add_argument(
        "--layout",
        type=_layout,
        help="simulate this layout instead of the study's pairs: disjoint:N, crossed:T:S or "
        "per_student:N:K, optionally @seeds (e.g. disjoint:12@3)",
    )
    parser.add_argument("--from-output", help="estimate the world from a finished study")
    parser.add_argument("--storage", help="that study's Optuna storage URL, if not SQLite")
    parser.add_argument(
        "--sims", type=at_least(10), default=2000, help="simulated studies per figure"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def _layout(text: str) -> PairLayout:
    from ..analysis.layout_search import PairLayout

    try:
        return PairLayout.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    from ..analysis.design import power_report
    from ..config import load_study
    from ..study import build_plan

    path = study_path(args.study)
    config = load_study(path, check_files=False)
    plan = build_plan(config)
    claims = plan.claims
    thresholds = _thresholds(config, plan)
    if len(claims) > 1:  # Bonferroni across claims: each is decided at α/K
        thresholds = replace(thresholds, alpha=thresholds.alpha / len(claims))
    design = _design(config, plan, thresholds)
    shown = args.study or f"{path.name} (embedded)"
    finished = _finished_study(args, plan) if args.from_output else None  # read once
    if args.find_layout:
        from ._layout import find_layout_command

        worlds = [_world(args, plan, design.thresholds, c, finished) for c in claims]
        return find_layout_command(args, shown, design, plan, claims, worlds)
    if args.layout:
        design = args.layout.design(design.noises, thresholds)
        shown = f"{shown}, laid out as {args.layout.text()}"
    texts, figures = [], {}
    assumed: tuple[Design, World, str, dict[str, Any]] | None = None
    for claim in claims:
        # A claim scoped to some teacher conditions is simulated over those alone.
        claimed = replace(design, noises=claim.noises) if claim.noises else design
        if assumed is None or finished is not None or assumed[0] != claimed:
            world, source = _world(args, plan, thresholds, claim, finished)
            assumed = (claimed, world, source, power_report(claimed, world, sims=args.sims))
        _, world, source, report = assumed
        figures[claim.name] = {**report, "spreads": source}
        texts.append(_figures_text(shown, claimed, plan, world, source, report))
    if args.json:
        out = figures[claims[0].name]  # the headline claim's, and every claim's by name
        if len(claims) > 1:
            out = {**out, "claims": figures}
        print(json.dumps(out, sort_keys=True, default=str))
    elif len(claims) == 1:
        print(texts[0])
    else:
        print(
            f"{len(claims)} claims, Bonferroni across them: each is simulated at "
            f"α/{len(claims)} = {thresholds.alpha:.4g}, the level it is decided at"
        )
        for claim, text in zip(claims, texts):
            arms = claim.arms
            print(f"\nclaim {claim.name} ({', '.join(arms.fixed)} vs {arms.searched}):\n{text}")
    return 0


def _thresholds(config: StudyConfig, plan: Plan) -> Thresholds:
    from ..analysis.verdict import thresholds_for

    v = config.verdict
    return thresholds_for(
        plan.margin, v.alpha, plan.failure_margin, v.min_pairs, v.min_students, v.min_teachers
    )


def _design(config: StudyConfig, plan: Plan, thresholds: Thresholds) -> Design:
    """Who is in each pair (as indices), the noise settings, the seeds, the question."""
    from ..analysis.design import Design
    from ..analysis.evidence import Layout

    layout = Layout(
        tuple(p.label for p in config.pairs),
        tuple(plan.teacher_label(p) for p in config.pairs),
        tuple(plan.student_label(p) for p in config.pairs),
    )
    teacher_of, student_of = layout.indices()
    return Design(
        tuple(int(t) for t in teacher_of),
        tuple(int(s) for s in student_of),
        tuple(plan.noise_labels),
        len(plan.seeds),
        thresholds,
    )


def _world(
    args: argparse.Namespace,
    plan: Plan,
    thresholds: Thresholds,
    claim: Claim,
    finished: _Finished | None,
) -> tuple[World, str]:
    """The world the studies are simulated in and where its spreads come from: estimated from
    the ``finished`` study (``--from-output``) or assumed from the margin, then any spread given
    on the command line."""
    from ..analysis.design import World, from_mapping

    if finished is not None:
        world = _estimated_world(finished, plan, thresholds, claim)
        source = f"estimated from {finished.output}"
    else:
        world = World(
            seed_sd=plan.margin,
            pair_sd=plan.margin / 2,
            failure_size=2 * thresholds.failure_margin,
        )
        source = "assumed"
    given = {
        "seed_sd": args.seed_sd,
        "pair_sd": args.pair_sd,
        "teacher_sd": args.teacher_sd,
        "student_sd": args.student_sd,
        "failure_share": args.failure_share,
        "failure_size": args.failure_size,
        "quantity_correlation": args.correlation,
        "noise_correlation": args.noise_correlation,
    }
    return from_mapping(given, world), source


class _Finished(NamedTuple):
    """A finished study's primary-recipe evaluation runs (each recipe is decided alone)."""

    output: Path
    evaluations: list[dict[str, Any]]
    study: dict[str, Any]


def _finished_study(args: argparse.Namespace, plan: Plan) -> _Finished:
    from ..study import read_results
    from ..study.storage import open_storage_readonly, sqlite_url

    output = Path(args.from_output)
    if not (output / "optuna.db").is_file() and not args.storage:
        raise UserError(f"{output}: no study results here (no optuna.db)")
    storage = open_storage_readonly(args.storage or sqlite_url(output / "optuna.db"))
    results = read_results(storage, plan)
    primary = [r for r in results.evaluations if r["recipe"] == plan.primary_recipe]
    return _Finished(output, primary, dict(results.study))


def _estimated_world(
    finished: _Finished, plan: Plan, thresholds: Thresholds, claim: Claim
) -> World:
    """The world a finished study shows for one claim's arms (its first fixed arm), in the
    teacher conditions the claim covers."""
    from ..analysis.design import estimate_world
    from ..analysis.verdict import Declared, estimate

    study, arms = finished.study, claim.arms
    noises = [n for n in plan.noise_labels if claim.covers(n)]
    evidence, result = estimate(
        [r for r in finished.evaluations if claim.covers(r["noise"])],
        thresholds,
        replace(arms, fixed=arms.fixed[:1]),
        Declared(plan.seeds, noises, study["teachers"], study["students"]),
    )
    found = estimate_world(evidence, result, len(plan.seeds)) if arms.fixed else None
    if found is None:
        raise UserError(
            f"{finished.output}: not enough finished evaluation runs to estimate spreads"
        )
    return found


def _figures_text(
    shown: str, design: Design, plan: Plan, world: World, source: str, report: dict[str, Any]
) -> str:
    from ..analysis.design import world_text

    th, grid = design.thresholds, report["grid_for_80"]
    return (
        f"{shown}: {design.pairs} pairs ({design.teachers} teachers × {design.students} "
        f"students), {len(design.noises)} noise setting(s), {len(plan.seeds)} seeds, "
        f"δ = {100 * th.margin:.2f} points, δ_f = {100 * th.failure_margin:.2f} points, "
        f"α = {th.alpha:g}; holds needs ≥ {th.min_pairs} pairs, ≥ {th.min_students} students, "
        f"≥ {th.min_teachers} teachers\n"
        f"world ({source}): {world_text(world)}\n"
        f"P(holds) when the claim is exactly true: {report['power']:.3f}\n"
        f"P(holds) with the mean regret at the margin (size, ≤ α): {report['size']:.3f}\n"
        f"P(does not hold) when {_failing(report['failing_at_eighth'], design.pairs)} "
        f"(π = 1/8): {report['fails_at_eighth']:.3f}\n"
        f"P(does not hold) when {_failing(report['failing_at_half'], design.pairs)} "
        f"(π = 1/2): {report['fails_at_half']:.3f}\n"
        "for 80 % power when the claim is true: "
        + (
            f"{grid[0]} teachers × {grid[1]} students ({grid[0] * grid[1]} pairs)"
            if grid
            else "more than 32 teachers × 32 students"
        )
        + f"\n({report['sims']} simulated studies per figure, through the verdict's own rule)"
    )


def _failing(failing: int, pairs: int) -> str:
    return f"{failing} of {pairs} pairs {'fails' if failing == 1 else 'fail'}"


COMMAND = Command(
    "design",
    "power calculator: the study's design through the verdict's rule, by simulation",
    add_arguments,
    run,
    parents=(study_parent,),
)
