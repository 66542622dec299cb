"""``design --find-layout``: the cheapest layout for a study's claims, printed with each
claim's figures, its cost and the command that checks it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..analysis.design import Design, World
    from ..analysis.layout_search import Need
    from ..study import Plan
    from ..study.arms import Claim


def find_layout_command(
    args: argparse.Namespace,
    shown: str,
    design: Design,
    plan: Plan,
    claims: tuple[Claim, ...],
    worlds: list[tuple[World, str]],
) -> int:
    """Search, print (or ``--json``) and exit 0 where a layout meets the targets, 1 where none
    up to 32 × 32 does."""
    from ..analysis.design import world_text
    from ..analysis.layout_search import ClaimNeed, Targets, find_layout

    needs = tuple(
        ClaimNeed(c.name, c.noises or design.noises, design.thresholds, world)
        for c, (world, _) in zip(claims, worlds)
    )
    need = _need(plan, claims, needs)
    found = find_layout(need, worlds[0][0], sims=args.sims)
    declared = need.trainings(design.pairs, design.seeds)
    if args.json:
        print(
            json.dumps(
                {**found.as_dict(), "declared_student_trainings": declared},
                sort_keys=True,
                default=str,
            )
        )
        return 0
    targets = Targets()
    print(
        f"{shown}: the cheapest layout with, for each of {len(claims)} claim(s) at α = "
        f"{design.thresholds.alpha:.4g}, P(holds | true) ≥ {targets.power}, size ≤ α and "
        f"P(does not hold | 1/8 of pairs fail) ≥ {targets.fails_at_eighth}"
    )
    sources = sorted({source for _, source in worlds})
    for world_source in sources:
        first = next(w for w, s in worlds if s == world_source)
        print(f"world ({world_source}): {world_text(first)}")
    verb = "meets them" if found.meets else "is the largest tried, and does NOT meet them"
    print(
        f"{found.layout.text()} {verb}: {found.cost:,} student trainings "
        f"(the study as declared: {design.pairs} pairs, {declared:,})"
    )
    for name, r in found.claims.items():
        print(
            f"  {name}: P(holds | true) {r['power']:.3f}, size {r['size']:.3f}, "
            f"P(does not hold | 1/8 fail) {r['fails_at_eighth']:.3f}"
        )
    print(
        f"check it: design {args.study or ''} --layout {found.layout.spec()}".replace("  ", " ")
        + f"\n({found.tried} layouts tried, {args.sims} simulated studies per figure, through "
        "the verdict's own rule)"
    )
    return 0 if found.meets else 1


def _need(plan: Plan, claims: tuple[Claim, ...], needs: tuple[Any, ...]) -> Need:
    """The trainings the verdict needs per pair and covered condition: every arm a claim uses
    once per seed, and each searched arm's search trials (the ``transfer`` phase is not
    counted: no claim is decided on it)."""
    from ..analysis.layout_search import Need

    per_seed: dict[str, int] = {}
    fixed: dict[str, int] = {}
    for noise in plan.noise_labels:
        arms: set[str] = set()
        for claim in claims:
            if claim.covers(noise):
                a = claim.arms
                arms |= {
                    *a.fixed,
                    *([a.searched] if a.searched else []),
                    *([a.reference] if a.reference else []),
                }
        if arms:
            per_seed[noise] = len(arms)
            fixed[noise] = sum(plan.method(m).trials for m in arms if plan.method(m).tune)
    return Need(needs, per_seed, fixed)
