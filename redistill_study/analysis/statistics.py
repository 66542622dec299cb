"""The statistics the verdict is built from: the mean over crossed teachers × students, per-pair
t tests with a pooled spread, one-sided t tests against a margin, Holm's step-down correction,
an exact binomial bound and a sample-size estimate. Array-valued where it matters, so the power
calculator pushes thousands of simulated studies through the very same functions as one study.

>>> import numpy as np
>>> m = crossed_mean(np.array([0.002, 0.004, -0.001, 0.003]), np.arange(4), np.arange(4))
>>> below, above = t_tests(m.mean, m.se, m.df, margin=0.01)
>>> bool(below < 0.05), float(m.df)
(True, 3.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.stats
from statsmodels.stats.power import TTestPower


def holm_adjusted(pvalues: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values over the last axis (each row one family): the running maximum of
    (m − i)·p_(i) in sorted order, capped at 1. Vectorised, so thousands of simulated studies
    cost one sort; NaN p-values are not in the family and stay NaN. The test suite checks it
    against statsmodels' ``multipletests`` (one family per call, too slow for simulation)."""
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return p.copy()
    flat = p.reshape(-1, p.shape[-1]) if p.ndim else p.reshape(1, 1)
    missing = np.isnan(flat)
    m = (~missing).sum(-1, keepdims=True)
    order = np.argsort(np.where(missing, np.inf, flat), axis=-1, kind="stable")
    ranked = np.take_along_axis(flat, order, -1)
    step = np.arange(flat.shape[-1])[None, :]
    scaled = np.minimum(1.0, (m - step) * ranked)
    scaled = np.where(step < m, scaled, -np.inf)  # NaNs sort last: keep them out of the max
    adjusted = np.maximum.accumulate(scaled, axis=-1)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, -1)
    out[missing] = np.nan
    return out.reshape(p.shape)


def t_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, two-sided ``level`` t interval and the two-sided p-value of "mean = 0" (scipy);
    NaN where fewer than two values."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    if np.all(x == x[0]):
        return mean, mean, mean, (1.0 if mean == 0 else 0.0)
    with warnings.catch_warnings():  # nearly equal values: the t statistic is still right
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        result = scipy.stats.ttest_1samp(x, 0.0)
        ci = result.confidence_interval(level)
    return mean, float(ci.low), float(ci.high), float(result.pvalue)


def units_needed(
    distance: float, sd: float, alpha: float, power: float = 0.8, cap: int = 10_000
) -> int | None:
    """Units for a one-sided one-sample t test to reach ``power`` when the true mean lies
    ``distance`` beyond the margin on the side the test looks for (statsmodels' power of the
    t test, searched over whole numbers). ``None`` when the distance is not positive (no number
    of units decides it); at most ``cap``."""
    if not distance > 0 or math.isnan(sd):
        return None
    if not sd > 0:
        return 2
    effect = distance / sd
    analysis = TTestPower()

    def enough(n: int) -> bool:
        return analysis.power(effect, nobs=n, alpha=alpha, alternative="larger") >= power

    low, high = 1, 2
    while not enough(high):
        low, high = high, high * 2
        if high >= cap:
            return cap
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


# --- crossed teachers × students -------------------------------------------------------------


@dataclass(frozen=True)
class CrossedMean:
    """The mean over pairs (last axis) with the uncertainty of a crossed random-effects model:
    pair i of teacher t and student s is μ + a_t + b_s + e_i. ``var`` estimates
    Var(mean) = σ_a²·Σn_t²/n² + σ_b²·Σn_s²/n² + σ_e²/n from method-of-moments estimates of the
    three components (clipped at zero); ``df`` is the smaller of (effective levels − 1) over
    the sides that are sampled (more than one level, fewer levels than pairs), else pairs − 1;
    a side's effective levels are n² / Σ n_t² (its levels when every level has as many pairs)."""

    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    df: np.ndarray
    spread: np.ndarray  # sd of the pair values themselves (for a new pair's prediction)
    teachers: np.ndarray
    students: np.ndarray
    components: np.ndarray  # (..., 3) variance estimates: pair, teacher, student (≥ 0)
    unbiased_var: np.ndarray  # Var(mean) from the components before clipping (may be < 0)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(self.var)


def one_hot(labels: np.ndarray) -> np.ndarray:
    """(pairs,) integer labels → (pairs, levels) indicator matrix."""
    labels = np.asarray(labels, dtype=int)
    levels = int(labels.max()) + 1 if labels.size else 0
    return (labels[:, None] == np.arange(levels)[None, :]).astype(float)


def crossed_mean(values: np.ndarray, teacher_of: np.ndarray, student_of: np.ndarray) -> CrossedMean:
    """Mean of ``values`` over its last axis (pairs; NaN: absent) and its crossed variance.

    The three quadratic forms — total, between teachers, between students — have expectations
    linear in (σ_e², σ_a², σ_b²) with coefficients that depend only on which pairs are present
    (``H`` below); solving gives unbiased estimates on any layout, balanced or not. A side whose
    effect cannot be told from another (each pair its own teacher) is split by the
    pseudo-inverse, which leaves Var(mean) unchanged; a side with one level is not a sample and
    contributes nothing. For a balanced crossed layout these are the ANOVA estimates, which
    restricted maximum likelihood also gives when they are positive (the test suite checks it
    against statsmodels' ``MixedLM``)."""
    y = np.asarray(values, dtype=float)
    w = (~np.isnan(y)).astype(float)
    y0 = np.where(w > 0, y, 0.0)
    zt, zs = one_hot(teacher_of), one_hot(student_of)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = w.sum(-1)
        mean = np.where(n > 0, y0.sum(-1) / np.maximum(n, 1), np.nan)
        resid = np.where(w > 0, y0 - mean[..., None], 0.0)
        nt, ns = w @ zt, w @ zs
        cells = np.einsum("...p,pt,ps->...ts", w, zt, zs)
        qp = (resid**2).sum(-1)
        qt = ((resid @ zt) ** 2 / np.where(nt > 0, nt, np.inf)).sum(-1)
        qs = ((resid @ zs) ** 2 / np.where(ns > 0, ns, np.inf)).sum(-1)
        levels_t, levels_s = (nt > 0).sum(-1), (ns > 0).sum(-1)
        st, ss = (nt**2).sum(-1) / np.maximum(n, 1), (ns**2).sum(-1) / np.maximum(n, 1)
        ts = ((cells**2).sum(-1) / np.where(nt > 0, nt, np.inf)).sum(-1)
        st_ = ((cells**2).sum(-2) / np.where(ns > 0, ns, np.inf)).sum(-1)
        h = np.stack(
            [
                np.stack([n - 1, n - st, n - ss], -1),
                np.stack([levels_t - 1, n - st, ts - ss], -1),
                np.stack([levels_s - 1, st_ - st, n - ss], -1),
            ],
            -2,
        )
        raw = np.einsum("...ij,...j->...i", np.linalg.pinv(h), np.stack([qp, qt, qs], -1))
        theta = np.maximum(raw, 0.0)  # a variance below zero is zero: conservative
        coef = np.stack([1 / np.maximum(n, 1), st / np.maximum(n, 1), ss / np.maximum(n, 1)], -1)
        var = np.where(n >= 2, (coef * theta).sum(-1), np.inf)
        unbiased = np.where(n >= 2, (coef * raw).sum(-1), np.inf)
        sampled_t = (levels_t > 1) & (levels_t < n)
        sampled_s = (levels_s > 1) & (levels_s < n)
        # A side's effective number of levels, n² / Σ n_t²: a teacher shared by most pairs
        # makes the mean rest on few draws of its effect however many other teachers there are.
        effective_t = n**2 / np.maximum((nt**2).sum(-1), 1)
        effective_s = n**2 / np.maximum((ns**2).sum(-1), 1)
        big = np.full(np.shape(n), np.inf)
        df = np.minimum(
            np.where(sampled_t, effective_t - 1, big), np.where(sampled_s, effective_s - 1, big)
        )
        df = np.where(np.isfinite(df), df, n - 1).astype(float)
        spread = np.sqrt(qp / np.maximum(n - 1, 1))
    return CrossedMean(n, mean, var, df, spread, levels_t, levels_s, theta, unbiased)


def t_tests(
    mean: np.ndarray, se: np.ndarray, df: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values of a t statistic against ``margin``: (H1 mean < δ, H1 mean > δ).
    Fewer than one degree of freedom gives 1 for both; a zero standard error decides by the
    sign of mean − δ alone."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (mean - margin) / se
        z = np.where(se > 0, z, np.sign(mean - margin) * np.inf)
        ok = (df >= 1) & np.isfinite(se) & ~np.isnan(mean)
        safe = np.maximum(df, 1)
        below = np.where(ok, scipy.stats.t.cdf(z, safe), 1.0)
        above = np.where(ok, scipy.stats.t.sf(z, safe), 1.0)
        tie = ok & (se == 0) & (mean == margin)
    return np.where(tie, 1.0, below), np.where(tie, 1.0, above)


def t_quantile(level: float, df: np.ndarray) -> np.ndarray:
    """The one-sided (1 − level) quantile of Student's t; infinite below one degree of freedom."""
    df = np.asarray(df, dtype=float)
    return np.where(df >= 1, scipy.stats.t.ppf(1 - level, np.maximum(df, 1)), np.inf)


@dataclass(frozen=True)
class PairTests:
    """Per pair (second-last axis of ``diffs``): the seed-paired mean, its seeds, the pooled
    within-pair sd (one per family, over every pair's seeds) and the one-sided p-value of
    "the pair's mean > ``margin``"."""

    n: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    df: np.ndarray
    p_above: np.ndarray


def pair_tests(diffs: np.ndarray, margin: float) -> PairTests:
    """``diffs``: (..., pairs, seeds), NaN where a seed is not compared. The pooled sd takes
    every pair's deviations from its own mean (Σ(n_i − 1) degrees of freedom), so a pair with
    three seeds is tested with the precision the whole study has about run-to-run noise."""
    d = np.asarray(diffs, dtype=float)
    valid = ~np.isnan(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = valid.sum(-1)
        mean = np.where(n > 0, np.where(valid, d, 0.0).sum(-1) / np.maximum(n, 1), np.nan)
        dev = np.where(valid, d - mean[..., None], 0.0)
        df = np.maximum(n - 1, 0).sum(-1)
        sd = np.sqrt((dev**2).sum((-1, -2)) / np.maximum(df, 1))
        se = sd[..., None] / np.sqrt(np.maximum(n, 1))
        _, above = t_tests(mean, se, np.broadcast_to(df[..., None], mean.shape), margin)
        above = np.where(n > 0, above, np.nan)
    return PairTests(n, mean, sd, df.astype(float), above)


def clopper_pearson_upper(failures: int, trials: int, level: float) -> float:
    """Exact one-sided (1 − level) upper bound on a binomial share (scipy's beta quantile)."""
    if trials <= 0:
        return 1.0
    if failures >= trials:
        return 1.0
    return float(scipy.stats.beta.ppf(1 - level, failures + 1, trials - failures))
