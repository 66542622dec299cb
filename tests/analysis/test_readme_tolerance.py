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
    study = {
        "margin": 0.01,
        "alpha": 0.05,
        "fixed": ["redistill"],
        "searched": "redistill_tuned",
        "reference": "kd",
        "seeds": [0, 1, 2],
        "noise_order": ["none", "noisy"],
    }
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
    cells[2] = f"{value + 1.5:.2f} ± 0.00"
    lines[row] = " | ".join(cells)
    moved = "\n".join(lines)
    assert compare_study_block(moved, block, seeds=3)  # as a fixed arm: beyond 1 point
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
    changed = block.replace("outcomes: redistill inconclusive", "outcomes: redistill holds")
    assert changed != block
    assert any("outcomes" in p for p in compare_study_block(changed, block, seeds=3))


def test_the_design_block_tolerates_simulation_noise_but_not_a_new_shape() -> None:
    old = "P(holds) when the claim is exactly true: 0.812\nfor 80 % power: 5 teachers × 5 students"
    assert compare_design_block(old.replace("0.812", "0.75"), old) == []
    assert compare_design_block(old.replace("0.812", "0.30"), old)
    assert compare_design_block(old.replace("0.812", "0.812\nP(x): 0.1"), old)  # a new line
    # The grid search's answer is not compared: it can leave the searched range.
    wider = old.replace("5 teachers × 5 students", "more than 32 teachers × 32 students")
    assert compare_design_block(wider, old) == []
    assert compare_design_block(old + "\nextra line", old)
