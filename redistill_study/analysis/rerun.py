"""How close each decision lies to its threshold: the share of simulated reruns of the same
study that reach the same outcome.

A rerun of a study — on another processor, with other CPU kernels or another thread count —
sums in another order; SGD amplifies that round-off over the epochs, so every run moves like a
fresh draw of its seed noise. What a rerun would decide is therefore simulated from the
run-to-run spread the study itself shows, and pushed through the verdict's own rule
(:func:`~redistill_study.analysis.rule.apply_rule`), Holm, gatekeeping and all:

- per noise setting, the seed-level residuals of every (fixed arm, quantity) comparison around
  their pair means give a pooled covariance Σ (the comparisons share runs: the regret and the
  deficit of one arm share its fixed run, two arms share their comparator's);
- a rerun's pair means are the observed ones moved by N(0, Σ/n) (the observed mean is itself
  one draw: a rerun differs from it by √2 seed noises, the predictive distribution under a
  flat prior), its seeds add N(0, Σ) each, and Σ is scaled by ν/χ²_ν for the uncertainty of a
  spread estimated with ν degrees of freedom;
- what is observed stays: which seeds diverged, which are missing, which pairs exist. A decision
  that rests on a divergence is as reproducible as the divergence, which this does not model.

A decision is **clear** when at least :data:`CLEAR` of :data:`RERUNS` simulated reruns reach it,
**marginal** otherwise: another machine or seed could move it.

>>> import numpy as np
>>> from redistill_study.analysis.rule import Observed, Thresholds, apply_rule
>>> rng = np.random.default_rng(1)
>>> diffs = 0.002 * rng.standard_normal((1, 1, 1, 1, 12, 3))
>>> diffs[..., 0, :] += 0.2  # one pair far above δ_f: clearly does not hold
>>> observed = Observed(diffs, np.zeros(diffs.shape, bool), np.arange(12), np.arange(12))
>>> th = Thresholds(margin=0.01, failure_margin=0.03)
>>> result = apply_rule(observed, th)
>>> float(agreement(observed, result, th)[0])
1.0
"""

from __future__ import annotations

import numpy as np

from .rule import Observed, RuleResult, Thresholds, apply_rule

RERUNS = 2000
CLEAR = 0.99  # the share of simulated reruns a clear decision reaches
SEED = 20260204  # fixed: the same records give the same figures


def agreement(
    observed: Observed,
    result: RuleResult,
    thresholds: Thresholds,
    reruns: int = RERUNS,
    seed: int = SEED,
) -> np.ndarray:
    """Per fixed arm (A,), the share of ``reruns`` simulated reruns whose outcome (after
    gatekeeping) equals the observed one; NaN where the run-to-run spread cannot be estimated
    (one seed per pair) and where ``reruns`` is 0. ``observed`` and ``result`` are a batch of
    one."""
    diffs = np.asarray(observed.diffs, dtype=float)[0]  # (A, N, Q, P, S)
    if reruns <= 0:
        return np.full(diffs.shape[0], np.nan)
    rng = np.random.default_rng(seed)
    simulated, estimable = _simulate(diffs, rng, reruns)
    batch = (reruns, *diffs.shape)

    def widen(x: np.ndarray | None) -> np.ndarray | None:
        return None if x is None else np.broadcast_to(np.asarray(x)[:1], (reruns, diffs.shape[0]))

    again = apply_rule(
        Observed(
            simulated,
            np.broadcast_to(np.asarray(observed.fixed_diverged, dtype=bool)[:1], batch),
            observed.teacher_of,
            observed.student_of,
            diverged_anywhere=widen(observed.diverged_anywhere),
            incomplete=widen(observed.incomplete),
        ),
        thresholds,
    )
    share = (again.outcome == result.outcome[:1]).mean(0)
    return np.where(estimable, share, np.nan)


def _simulate(
    diffs: np.ndarray, rng: np.random.Generator, reruns: int
) -> tuple[np.ndarray, np.ndarray]:
    """``reruns`` draws of ``diffs`` (A, N, Q, P, S) as a rerun would give them, and per arm
    whether every comparison it has could estimate its spread."""
    arms, noises, quantities, pairs, seeds = diffs.shape
    out = np.full((reruns, *diffs.shape), np.nan)
    estimable = np.ones(arms, dtype=bool)
    for n in range(noises):
        x = diffs[:, n].reshape(arms * quantities, pairs, seeds)  # families k = (arm, quantity)
        valid = ~np.isnan(x)
        counts = valid.sum(-1)  # (K, P)
        means = np.where(counts > 0, np.nansum(x, -1) / np.maximum(counts, 1), 0.0)
        resid = np.where(valid, x - means[..., None], 0.0)
        df = np.maximum(counts - 1, 0).sum(-1)  # (K,)
        present = counts.sum(-1) > 0
        lacking = (present & (df < 1)).reshape(arms, quantities).any(-1)
        estimable &= ~lacking
        cov = _pooled_covariance(resid, valid)
        nu = int(df[df >= 1].min()) if (df >= 1).any() else 1
        scale = np.sqrt(nu / rng.chisquare(nu, size=reruns))  # (B,)
        root = _root(cov)  # (K, K): root @ root.T = cov
        shift = rng.standard_normal((reruns, pairs, len(root))) @ root.T  # (B, P, K)
        shift = np.moveaxis(shift, -1, 1) / np.sqrt(np.maximum(counts, 1))  # (B, K, P)
        noise = rng.standard_normal((reruns, pairs, seeds, len(root))) @ root.T
        noise = np.moveaxis(noise, -1, 1)  # (B, K, P, S)
        drawn = means[None, ..., None] + scale[:, None, None, None] * (shift[..., None] + noise)
        drawn = np.where(valid[None], drawn, np.nan)
        out[:, :, n] = drawn.reshape(reruns, arms, quantities, pairs, seeds)
    return out, estimable


def _pooled_covariance(resid: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(K, P, S) residuals around pair means → (K, K) covariance, each entry over the seeds
    both families have (degrees of freedom: seeds − 1 per pair)."""
    both = valid[:, None] & valid[None, :]  # (K, K, P, S)
    products = np.einsum("ips,jps->ij", resid, resid)
    df = np.maximum(both.sum(-1) - 1, 0).sum(-1)
    return np.where(df > 0, products / np.maximum(df, 1), 0.0)


def _root(cov: np.ndarray) -> np.ndarray:
    """A square root of the nearest positive semi-definite matrix (pairwise estimates need not
    be jointly consistent)."""
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    return np.asarray(vectors * np.sqrt(np.clip(values, 0.0, None)))


def is_clear(share: float) -> bool:
    """Whether a decision with this rerun agreement is clear (NaN: not known, so not clear)."""
    return bool(share >= CLEAR)
