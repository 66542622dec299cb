"""The cross-processor README check can fail: it accepts a rerun's seed noise and rejects a
changed structure, a moved cell, a changed outcome or a far-off estimate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from helpers import study_records
from readme_tolerance import cell_multiplier, compare_design_block, compare_study_block

from redistill_study.analysis.summary import build_report, markdown_summary


def _block(seed: int) -> str:
    records = study_records(np.random.default_rng(seed), teachers=4, students=2, pair_sd=0.01)
    return _study_block(records)


def _study_block(records: list, margin: float = 0.01, failure: float | None = None) -> str:
    study = {
        "margin": margin,
        "alpha": 0.05,
        "fixed": ["redistill"],
        "searched": "redistill_tuned",
        "reference": "kd",
        "seeds": [0, 1, 2],
        "noise_order": ["none", "noisy"],
    }
    if failure is not None:
        study["failure_margin"] = failure
    results = SimpleNamespace(evaluations=records, searches=[], pending=0, study=study)
    return markdown_summary(build_report(results))


def _replace_first_cell(block: str, new: str) -> str:
    lines = block.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("| none | kd |"))
    cells = lines[row].split(" | ")
    cells[2] = new
    lines[row] = " | ".join(cells)
    return "\n".join(lines)


def test_the_same_block_passes_and_the_multiplier_is_stated() -> None:
    block = _block(0)
    assert compare_study_block(block, block, seeds=3) == []
    assert 3.5 < cell_multiplier(100, 3) < 3.7  # z ≈ 4.4 for 100 cells, × √(2/3)


def test_a_cell_within_its_tolerance_passes_and_one_beyond_fails() -> None:
    block = _block(0)
    original = next(line for line in block.splitlines() if line.startswith("| none | kd |"))
    value = float(original.split(" | ")[2].split(" ± ")[0])
    near = _replace_first_cell(block, f"{value + 0.9:.2f} ± 0.10")
    far = _replace_first_cell(block, f"{value + 5:.2f} ± 0.10")
    assert compare_study_block(near, block, seeds=3) == []
    assert any("none / kd" in p for p in compare_study_block(far, block, seeds=3))


def test_a_searched_arm_may_move_further() -> None:
    block = _block(0)
    lines = block.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("| none | redistill_tuned |"))
    cells = lines[row].split(" | ")
    value = float(cells[2].split(" ± ")[0])
    cells[2] = f"{value + 5:.2f} ± 0.00"
    lines[row] = " | ".join(cells)
    moved = "\n".join(lines)
    assert compare_study_block(moved, block, seeds=3)  # as a fixed arm: beyond its tolerance
    searched = frozenset({"redistill_tuned"})
    assert compare_study_block(moved, block, seeds=3, searched=searched) == []
    # Its structure still counts: a cell that is missing in the rerun fails.
    cells[2] = "—"
    lines[row] = " | ".join(cells)
    assert compare_study_block("\n".join(lines), block, seeds=3, searched=searched)


def test_a_changed_structure_or_outcome_fails() -> None:
    block = _block(0)
    fewer = "\n".join(line for line in block.splitlines() if not line.startswith("| noisy | kd |"))
    assert compare_study_block(fewer, block, seeds=3)
    changed = block.replace("outcomes: redistill inconclusive (", "outcomes: redistill holds (")
    assert changed != block
    assert any("outcome of redistill" in p for p in compare_study_block(changed, block, seeds=3))


def test_the_design_block_tolerates_simulation_noise_but_not_a_new_shape() -> None:
    old = "P(holds) when the claim is exactly true: 0.812\nfor 80 % power: 5 teachers × 5 students"
    assert compare_design_block(old.replace("0.812", "0.75"), old) == []
    assert compare_design_block(old.replace("0.812", "0.30"), old)
    assert compare_design_block(old.replace("0.812", "0.812\nP(x): 0.1"), old)  # a new line
    # The grid search's answer is not compared: it can leave the searched range.
    wider = old.replace("5 teachers × 5 students", "more than 32 teachers × 32 students")
    assert compare_design_block(wider, old) == []
    assert compare_design_block(old + "\nextra line", old)


def test_a_stale_block_fails_a_changed_margin_or_rule() -> None:
    """A block the code would no longer write: the same records decided under another δ, or
    another δ_f (a changed rule), is refused, though every cell is the same."""
    records = study_records(np.random.default_rng(0), teachers=4, students=2, pair_sd=0.01)
    current = _study_block(records)
    assert compare_study_block(current, current, seeds=3) == []
    for stale in (_study_block(records, margin=0.02), _study_block(records, failure=0.05)):
        problems = compare_study_block(current, stale, seeds=3)
        assert any("declared margins" in p for p in problems), problems


def test_a_cell_whose_own_spread_is_small_by_chance_may_move_with_its_row() -> None:
    # The AVX2 rerun's case: 98.15 ± 0.32 against 96.57 ± 0.32 in a row whose pooled spread is
    # larger; a tolerance from the cell's own 3-seed sd (1.15) refused it.
    old = (
        "| noise | method | a | b | c | d |\n|---|---|---|---|---|---|\n"
        "| none | kd | 96.57 ± 0.32 | 96.39 ± 0.83 | 95.46 ± 0.85 | 96.02 ± 0.58 |"
    )
    new = old.replace("96.57 ± 0.32", "98.15 ± 0.32")
    assert compare_study_block(new, old, seeds=3) == []
    assert compare_study_block(old.replace("96.57 ± 0.32", "99.57 ± 0.32"), old, seeds=3)


def test_a_marginal_decision_may_move_and_a_clear_one_may_not() -> None:
    line = "> outcomes: redistill does not hold ({}) · redistill_student_first inconclusive (clear)"
    for label, allowed in (("marginal", True), ("clear", False)):
        old = line.format(label)
        new = old.replace(f"redistill does not hold ({label})", "redistill inconclusive (clear)")
        assert (compare_study_block(new, old, seeds=3) == []) is allowed
    # The rerun's own label counts too: a decision it finds marginal may differ.
    old = line.format("clear")
    new = old.replace("redistill does not hold (clear)", "redistill inconclusive (marginal)")
    assert compare_study_block(new, old, seeds=3) == []
    # An arm that disappears is a changed structure.
    assert compare_study_block(old.split(" · ")[0], old, seeds=3)


def test_the_design_block_holds_its_declared_study_and_loosens_only_what_few_levels_estimate():
    old = (
        "default.yaml (embedded): 6 pairs (3 teachers × 2 students), 2 noise setting(s), "
        "3 seeds, δ = 1.00 points\n"
        "world (estimated from default): run-to-run sd 3.33 points; between pairs 0.00, "
        "teachers 2.14, students 3.52 points; correlation regret–deficit 0.50, between settings "
        "0.00; failing pairs: 33 % of pairs, +46.9 points in 1 setting(s)\n"
        "P(holds) when the claim is exactly true: 0.000"
    )
    # Seen on the scalar kernel path: two students' spread estimated at zero.
    rerun = old.replace("students 3.52", "students 0.00").replace("33 % of", "17 % of")
    assert compare_design_block(rerun, old) == []
    assert compare_design_block(old.replace("3 seeds", "4 seeds"), old)  # declared: exact
    assert compare_design_block(old.replace("sd 3.33", "sd 9.33"), old)  # well estimated
    # With four or more teachers and students their spreads are compared again.
    wide = old.replace("(3 teachers × 2 students)", "(6 teachers × 6 students)")
    assert compare_design_block(wide.replace("students 3.52", "students 0.00"), wide)
