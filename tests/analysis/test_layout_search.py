"""`design --find-layout`: layouts pair as declared, cost what the verdict trains, and the layout
found meets its targets when `design` is rerun on it with other random numbers."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from redistill_study.analysis.design import World, power_report
from redistill_study.analysis.layout_search import (
    ClaimNeed,
    Need,
    PairLayout,
    Targets,
    find_layout,
)
from redistill_study.analysis.rule import Thresholds
from redistill_study.cli import main

# The world the issue names: student sd 0.7, teacher sd 0.5, run-to-run 0.27 points, regret
# and deficit nearly one quantity.
WORLD = World(
    seed_sd=0.0027,
    pair_sd=0.0,
    teacher_sd=0.005,
    student_sd=0.007,
    quantity_correlation=0.98,
    failure_size=0.06,
)
TH = Thresholds(margin=0.01, failure_margin=0.03, alpha=0.05)


@pytest.mark.parametrize(
    ("layout", "pairs", "per_teacher"),
    [
        (PairLayout(6, 6, 1, 3), 6, 1),
        (PairLayout(5, 5, 2, 3), 10, 2),
        (PairLayout(4, 3, 4, 3), 12, 3),
    ],
    ids=["disjoint", "per-student", "crossed"],
)
def test_layouts_pair_every_student_with_distinct_teachers(layout, pairs, per_teacher) -> None:
    cells = layout.cells()
    assert len(cells) == len(set(cells)) == layout.pairs == pairs
    by_student = Counter(s for _, s in cells)
    assert set(by_student.values()) == {layout.per_student}
    assert set(Counter(t for t, _ in cells).values()) == {per_teacher}


def test_layouts_parse_from_their_text_and_write_it_back() -> None:
    assert PairLayout.parse("disjoint:12") == PairLayout(12, 12, 1, 3)
    assert PairLayout.parse("crossed:4:3@5") == PairLayout(4, 3, 4, 5)
    assert PairLayout.parse("per_student:8:2@2").pairing == "per_student"
    for layout in (PairLayout(12, 12, 1, 2), PairLayout(4, 3, 4, 5), PairLayout(8, 8, 2, 3)):
        assert PairLayout.parse(layout.spec()) == layout
    with pytest.raises(ValueError, match="expected disjoint:N"):
        PairLayout.parse("grid:4")


def test_the_cost_counts_seeds_and_search_trials_per_covered_condition() -> None:
    need = Need((), per_seed={"none": 4, "wrong": 2}, fixed={"none": 6})
    # 12 pairs × ((4 arms × 3 seeds + 6 trials) + 2 arms × 3 seeds)
    assert need.cost(PairLayout(12, 12, 1, 3)) == 12 * (4 * 3 + 6 + 2 * 3)


def test_the_layout_found_meets_its_targets_when_design_is_rerun_on_it() -> None:
    # Three claims, one condition each, Bonferroni: each at α/3.
    th = Thresholds(margin=0.01, failure_margin=0.03, alpha=0.05 / 3)
    claims = tuple(ClaimNeed(n, (n,), th) for n in ("clean", "label", "wrong"))
    need = Need(
        claims,
        per_seed=dict.fromkeys(("clean", "label", "wrong"), 4),
        fixed=dict.fromkeys(("clean", "label", "wrong"), 4),
    )
    found = find_layout(need, WORLD, sims=600, seeds=(3,), per_student=(1, 2))
    assert found.meets
    layout = found.layout
    assert layout.pairs >= th.min_pairs and layout.students >= th.min_students
    targets = Targets()
    for claim in claims:  # other random numbers than the search's
        design = layout.design(claim.noises, claim.thresholds)
        report = power_report(design, WORLD, sims=1500, seed=7, grid=False)
        mc = 3 * math.sqrt(0.8 * 0.2 / 1500)
        assert report["power"] >= targets.power - mc
        assert report["size"] <= th.alpha + targets.slack(th.alpha, 1500)
        assert report["fails_at_eighth"] >= targets.fails_at_eighth - mc
    # Nothing cheaper in the same family: one student and teacher fewer falls short.
    smaller = PairLayout(layout.teachers - 1, layout.students - 1, layout.per_student, 3)
    if smaller.pairs >= th.min_pairs and smaller.per_student <= smaller.teachers:
        report = power_report(smaller.design(("clean",), th), WORLD, sims=600, grid=False)
        assert report["power"] < targets.power + 3 * math.sqrt(0.8 * 0.2 / 600)


def test_a_world_no_layout_can_decide_says_so() -> None:
    th = Thresholds(margin=0.01, failure_margin=0.03, alpha=0.05)
    need = Need((ClaimNeed("c", ("none",), th),), {"none": 3}, {"none": 0})
    noisy = World(seed_sd=0.05, pair_sd=0.05, teacher_sd=0.05, student_sd=0.05)
    found = find_layout(need, noisy, sims=100, seeds=(2,), per_student=(1,), largest=12)
    assert not found.meets


def test_find_layout_from_the_command_line(capsys) -> None:
    args = ["design", "--sims", "100", "--student-sd", "0.004", "--teacher-sd", "0.003"]
    code = main(
        [*args, "--seed-sd", "0.002", "--noise-correlation", "0.2", "--find-layout", "--json"]
    )
    found = json.loads(capsys.readouterr().out)
    assert code == 0 and found["meets_targets"]
    layout = found["layout"]
    spec = PairLayout(
        layout["teachers"], layout["students"], layout["per_student"], layout["seeds"]
    ).spec()
    assert (
        main(
            [*args, "--seed-sd", "0.002", "--noise-correlation", "0.2", "--layout", spec, "--json"]
        )
        == 0
    )
    rerun = json.loads(capsys.readouterr().out)
    assert rerun["pairs"] == layout["pairs"] and rerun["seeds"] == layout["seeds"]
    assert rerun["world"]["noise_correlation"] == 0.2
    assert found["student_trainings"] > 0


def test_a_bad_layout_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["design", "--layout", "grid:4"])
    assert exit_.value.code == 2
    assert "expected disjoint:N" in capsys.readouterr().err
