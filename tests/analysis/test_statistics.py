"""The verdict's statistics against independent references: statsmodels' t tests, Holm,
mixed models, least squares and exact binomial bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

from redistill_study.analysis.statistics import (
    clopper_pearson_upper,
    crossed_mean,
    holm_adjusted,
    pair_tests,
    t_quantile,
    t_tests,
)

ALPHA = 0.05


def test_t_tests_match_statsmodels_and_holm_matches_multipletests() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.004, 0.006, size=9)
    # Nine distinct pairs: the crossed mean is the plain one, with its t test.
    m = crossed_mean(values, np.arange(9), np.arange(9))
    below, above = t_tests(m.mean, m.se, m.df, 0.01)
    stats = DescrStatsW(values)
    low, high = stats.tconfint_mean(alpha=2 * ALPHA)  # its ends are the one-sided bounds
    q = float(t_quantile(ALPHA, m.df))
    assert float(m.mean - q * m.se) == pytest.approx(low)
    assert float(m.mean + q * m.se) == pytest.approx(high)
    _, p_smaller = stats.ttest_mean(0.01, alternative="smaller")[:2]
    _, p_larger = stats.ttest_mean(0.01, alternative="larger")[:2]
    assert float(below) == pytest.approx(p_smaller) and float(above) == pytest.approx(p_larger)
    family = rng.random((12, 6)) ** 3
    family[rng.random(family.shape) < 0.2] = np.nan
    for row, adjusted in zip(family, holm_adjusted(family)):
        keep = ~np.isnan(row)
        if keep.any():
            reject_ref, adjusted_ref = multipletests(row[keep], alpha=ALPHA, method="holm")[:2]
            assert np.array_equal(adjusted[keep] <= ALPHA, reject_ref)
            np.testing.assert_allclose(adjusted[keep], adjusted_ref)
        assert np.isnan(adjusted[~keep]).all()


def _mixed_model_se(frame: pd.DataFrame, vc: dict[str, str]) -> float:
    fit = smf.mixedlm("y ~ 1", frame, groups=np.ones(len(frame)), vc_formula=vc).fit(reml=True)
    return float(fit.bse["Intercept"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crossed_variance_matches_a_crossed_mixed_model(seed: int) -> None:
    # Balanced 6 teachers × 5 students with clearly positive components: REML is the ANOVA
    # solution, which the moment estimator reproduces (in points: well-scaled for the optimiser).
    rng = np.random.default_rng(seed)
    t, s = np.repeat(np.arange(6), 5), np.tile(np.arange(5), 6)
    y = 0.3 + 1.0 * rng.standard_normal(6)[t] + 0.8 * rng.standard_normal(5)[s]
    y = y + 0.5 * rng.standard_normal(30)
    ours = crossed_mean(y, t, s)
    frame = pd.DataFrame({"y": y, "t": t, "s": s})
    reference = _mixed_model_se(frame, {"t": "0 + C(t)", "s": "0 + C(s)"})
    assert float(ours.mean) == pytest.approx(y.mean())
    assert float(ours.se) == pytest.approx(reference, rel=2e-3)
    assert float(ours.df) == 4  # the smaller side: 5 students − 1


def test_crossed_variance_on_a_nested_layout_matches_a_student_random_intercept() -> None:
    # Each pair its own teacher, three students with four pairs each: the teacher is the pair.
    rng = np.random.default_rng(7)
    s = np.repeat(np.arange(3), 4)
    y = 1.0 * rng.standard_normal(3)[s] + 0.4 * rng.standard_normal(12)
    ours = crossed_mean(y, np.arange(12), s)
    frame = pd.DataFrame({"y": y, "s": s})
    reference = _mixed_model_se(frame, {"s": "0 + C(s)"})
    assert float(ours.se) == pytest.approx(reference, rel=2e-3)
    assert float(ours.df) == 2


def test_crossed_variance_without_shared_units_is_the_t_test() -> None:
    rng = np.random.default_rng(8)
    y = rng.standard_normal(7)
    ours = crossed_mean(y, np.arange(7), np.arange(7))
    assert float(ours.se) == pytest.approx(y.std(ddof=1) / np.sqrt(7))
    assert float(ours.df) == 6
    # One student for every pair: that student is not a sample, the teachers are.
    one = crossed_mean(y, np.arange(7), np.zeros(7, dtype=int))
    assert float(one.se) == pytest.approx(y.std(ddof=1) / np.sqrt(7))


def test_crossed_variance_is_unbiased_on_an_unbalanced_layout() -> None:
    # Monte Carlo, from the model itself: the mean of the variance estimates against the
    # variance of the mean over many draws, on a layout with unequal teachers and students.
    rng = np.random.default_rng(11)
    cells = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 3), (2, 1), (2, 2), (3, 3), (3, 0), (4, 2)]
    t = np.array([c[0] for c in cells])
    s = np.array([c[1] for c in cells])
    sims = 20000
    y = (
        2.0 * rng.standard_normal((sims, 5))[:, t]
        + 1.5 * rng.standard_normal((sims, 4))[:, s]
        + 1.0 * rng.standard_normal((sims, len(cells)))
    )
    fit = crossed_mean(y, t, s)
    truth = 4.0 * (np.bincount(t) ** 2).sum() / 100 + 2.25 * (np.bincount(s) ** 2).sum() / 100
    truth += 1.0 / 10
    assert float(np.var(fit.mean)) == pytest.approx(truth, rel=0.03)
    # The moment algebra is unbiased; clipping negative components at zero only adds.
    assert float(np.mean(fit.unbiased_var)) == pytest.approx(truth, rel=0.03)
    assert float(np.mean(fit.var)) >= float(np.mean(fit.unbiased_var))


def test_the_degrees_of_freedom_follow_the_effective_levels() -> None:
    # One teacher in half the pairs: 8 teachers, but about 3 effective ones.
    cells = [(0, s) for s in range(8)] + [(t, 0) for t in range(1, 8)]
    t = np.array([c[0] for c in cells])
    s = np.array([c[1] for c in cells])
    fit = crossed_mean(np.random.default_rng(0).standard_normal(15), t, s)
    assert float(fit.df) == pytest.approx(15**2 / (8**2 + 7) - 1)


def test_crossed_variance_is_vectorised_and_skips_absent_pairs() -> None:
    rng = np.random.default_rng(9)
    t, s = np.repeat(np.arange(4), 4), np.tile(np.arange(4), 4)
    batch = rng.standard_normal((5, 16))
    batch[2, [0, 5]] = np.nan
    together = crossed_mean(batch, t, s)
    for i in range(5):
        keep = ~np.isnan(batch[i])
        alone = crossed_mean(batch[i][keep], t[keep], s[keep])
        assert float(together.se[i]) == pytest.approx(float(alone.se))
        assert float(together.mean[i]) == pytest.approx(float(alone.mean))


def test_pair_tests_match_least_squares_with_a_coefficient_per_pair() -> None:
    rng = np.random.default_rng(10)
    diffs = 0.02 * rng.standard_normal((6, 3)) + np.linspace(0, 0.05, 6)[:, None]
    diffs[2, 1] = np.nan  # a seed left out
    ours = pair_tests(diffs, margin=0.03)
    rows = [(f"p{i}", d) for i, row in enumerate(diffs) for d in row if not np.isnan(d)]
    frame = pd.DataFrame(rows, columns=["pair", "d"])
    fit = smf.ols("d ~ 0 + C(pair)", frame).fit()
    for i in range(6):
        test = fit.t_test(f"C(pair)[p{i}] = 0.03")
        t_value, p_two = float(np.squeeze(test.tvalue)), float(np.squeeze(test.pvalue))
        one_sided = p_two / 2 if t_value > 0 else 1 - p_two / 2
        assert float(ours.p_above[i]) == pytest.approx(one_sided, rel=1e-6)
    assert float(ours.df) == fit.df_resid


def test_clopper_pearson_upper_bound_matches_statsmodels() -> None:
    for failures, trials in ((0, 12), (1, 10), (3, 8)):
        _, upper = proportion_confint(failures, trials, alpha=2 * ALPHA, method="beta")
        assert clopper_pearson_upper(failures, trials, ALPHA) == pytest.approx(upper)
    assert clopper_pearson_upper(0, 12, ALPHA) == pytest.approx(1 - ALPHA ** (1 / 12))
