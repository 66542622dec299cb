"""Leave-one-pair-out transfer: the setting that does best across the other pairs, from their
smoothed, per-pair standardised validation curves — not the single luckiest trial."""

from __future__ import annotations

import numpy as np

from redistill_study.losses import Choice, FloatRange, get_method
from redistill_study.study.transfer import transferred_setting

LAMBDA = {"lam": FloatRange(-2.0, 1.5)}


def _curve(peak: float, height: float, scale: float, lams, rng) -> list:
    return [
        ({"lam": float(x)}, height - scale * (x - peak) ** 2 + 0.002 * rng.standard_normal())
        for x in lams
    ]


def test_smoothing_ignores_one_lucky_trial() -> None:
    rng = np.random.default_rng(0)
    lams = np.linspace(-1.8, 1.4, 12)
    b = _curve(0.5, 0.90, 0.02, lams, rng)
    c = _curve(0.4, 0.80, 0.02, lams, rng)
    # One lucky outlier far from the common optimum: the best single trial of all sources.
    b.append(({"lam": -1.95}, 0.95))
    chosen = transferred_setting({"B": b, "C": c}, LAMBDA)["lam"]
    assert 0.0 < chosen < 0.9


def test_choice_is_invariant_to_each_pairs_level_and_scale() -> None:
    rng = np.random.default_rng(1)
    lams = np.linspace(-1.8, 1.4, 10)
    b = _curve(0.8, 0.90, 0.02, lams, rng)
    c = _curve(-0.6, 0.60, 0.02, lams, rng)
    base = transferred_setting({"B": b, "C": c}, LAMBDA)["lam"]
    # Pairs differ in how good they are, not in which λ is good: rescale one pair's accuracy.
    c_moved = [(s, 0.3 + 0.5 * v) for s, v in c]
    assert transferred_setting({"B": b, "C": c_moved}, LAMBDA)["lam"] == base
    assert -0.6 < base < 0.8  # between the two optima: neither pair decides alone


def test_multidimensional_and_categorical_spaces() -> None:
    rng = np.random.default_rng(2)
    dkd = get_method("dkd").search_space
    trials = {
        pair: [
            (
                {"alpha": a, "beta": b, "T": t},
                0.8 - 0.01 * (b - 6.0) ** 2 / 10 + 0.001 * rng.standard_normal(),
            )
            for a, b, t in rng.uniform([0.5, 0.5, 1.0], [2.0, 10.0, 8.0], size=(20, 3))
        ]
        for pair in ("B", "C", "D")
    }
    chosen = transferred_setting(trials, dkd)
    assert set(chosen) == {"alpha", "beta", "T"} and 3.5 < chosen["beta"] < 8.5
    space = {"variant": Choice(("shift", "smooth")), "smoothing": FloatRange(0.7, 0.99)}
    ka = {
        pair: [
            ({"variant": v, "smoothing": s}, (0.9 if v == "smooth" else 0.8) + 0.01 * s)
            for v in ("shift", "smooth")
            for s in (0.7, 0.8, 0.9, 0.99)
        ]
        for pair in ("B", "C")
    }
    assert transferred_setting(ka, space)["variant"] == "smooth"
    assert transferred_setting({"B": []}, LAMBDA) is None


def test_the_choice_stays_within_the_settings_tried() -> None:
    # Curves still rising at the last λ tried: the untried edge of the range must not win.
    rising = {p: [({"lam": x}, 0.8 + 0.01 * x) for x in (-1.0, -0.5, 0.0, 0.5)] for p in ("B", "C")}
    assert -1.0 <= transferred_setting(rising, LAMBDA)["lam"] <= 0.5


def test_leave_one_out_leaves_the_teacher_out() -> None:
    from helpers import tiny_study

    from redistill_study.config import StudyConfig
    from redistill_study.study import Phase, build_plan

    data = tiny_study()
    data["pairs"].append(
        {
            "name": "mlp-a2",
            "teacher": {"model": "digits_mlp"},
            "student": {"model": "digits_cnn_small"},
        }
    )  # shares mlp-a's teacher
    plan = build_plan(StudyConfig.model_validate(data))
    transfer = next(
        u
        for u in plan.dependent_units()
        if u.phase is Phase.TRANSFER and u.cell.pair.label == "mlp-a"
    )
    assert {u.cell.pair.label for u in plan.sources(transfer)} == {"mlp-b"}
