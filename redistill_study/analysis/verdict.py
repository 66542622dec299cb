"""The verdict: does one fixed λ generalise? A three-way test with the pair as the unit.

For every fixed arm F (by default ``redistill``, D_{2/3}(p‖q), and ``redistill_student_first``,
D_{2/3}(q‖p)), every noise setting n and every unit u (a pair; the teacher when pairs share one),
with test top-1 paired by evaluation seed:

- regret  = per-pair-tuned λ (the searched arm's ``final`` phase) − F;
- deficit = reference (KD) − F.

Seeds are replicates inside a pair and are averaged first; the units carry the spread. Per noise
setting, one-sided Student-t bounds of the mean over units at level α/K (K fixed arms, so the
claims "F holds" are Bonferroni-corrected across arms):

- ``holds``         every noise setting has upper bounds of the regret and the deficit < δ
                    (intersection–union: no correction is needed for "every");
- ``does not hold`` some lower bound > δ, Holm-corrected over every (arm, noise, quantity);
- ``inconclusive``  otherwise, with the number of units that would decide it.

A diverged or failed evaluation run scores chance (1 / classes) and is counted, never dropped;
a cell without its full seed set is reported as incomplete and kept out of the decision.

>>> recs = [
...     {"pair": p, "teacher": p, "noise": "none", "method": m, "phase": ph, "seed": s,
...      "test/top1": acc + 0.001 * s, "status": "complete"}
...     for p in ("a", "b", "c", "d")
...     for m, ph, acc in (("redistill", "seeds", 0.90), ("kd", "seeds", 0.899),
...                        ("redistill_tuned", "final", 0.901))
...     for s in (0, 1, 2)
... ]
>>> decide(recs, margin=0.01).outcome
'holds'
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats

from .statistics import holm_adjusted, holm_reject, t_bounds, units_needed

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive"
DEFAULT_FIXED = ("redistill", "redistill_student_first")
DEFAULT_SEARCHED = "redistill_tuned"
DEFAULT_REFERENCE = "kd"
QUANTITIES = ("regret", "deficit")
ARM_READINGS = {
    "redistill": "λ = 2/3, teacher first: D_{2/3}(p‖q)",
    "redistill_student_first": "λ = 2/3, student first: D_{2/3}(q‖p) = D_{−5/3}(p‖q)",
}


@dataclass
class UnitValue:
    """One unit's mean difference (over its pairs and seeds) with its interval across seeds."""

    unit: str
    pairs: list[str]
    mean: float
    lower: float
    upper: float
    seeds: int
    diverged: int  # runs of either arm scored at chance


@dataclass
class Estimate:
    """Mean regret or deficit of one fixed arm in one noise setting, across units."""

    arm: str
    quantity: str  # "regret" | "deficit"
    against: str  # the other arm: the searched one (regret) or the reference (deficit)
    noise: str
    units: int
    pairs: int
    mean: float
    lower: float  # one-sided (1 − α/K) bounds
    upper: float
    p_below: float  # H1: mean < δ
    p_above: float  # H1: mean > δ
    p_above_holm: float = math.nan
    per_unit: list[UnitValue] = field(default_factory=list)


@dataclass
class NoiseDecision:
    noise: str
    outcome: str
    estimates: dict[str, Estimate]


@dataclass
class ArmDecision:
    arm: str
    outcome: str
    level: float  # α/K, the level of each bound
    per_noise: list[NoiseDecision]
    summary: str  # one line: what decided it
    units_needed: int | None = None
    would_change: str = ""


@dataclass
class Decision:
    outcome: str  # the primary arm's
    outcomes: dict[str, str]
    arms: dict[str, ArmDecision]
    primary: str | None
    margin: float
    alpha: float
    fixed: tuple[str, ...]
    searched: str | None
    reference: str | None
    seeds: list[int]
    unit_kind: str  # "pairs" or "teachers"
    criterion: str
    text: str
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def estimates(self) -> list[Estimate]:
        return [e for a in self.arms.values() for nd in a.per_noise for e in nd.estimates.values()]


# --- the rule, on arrays: shared with the power calculator ----------------------------------


def apply_rule(
    p_below: np.ndarray, p_above: np.ndarray, alpha: float, arms: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three-way rule on p-values of shape (sims, arms, noise settings, 2 quantities);
    NaN marks a quantity that cannot be estimated. Returns per (sims, arms) and per
    (sims, arms, noise) outcome codes (0 inconclusive, 1 holds, 2 does not hold) and the
    Holm-rejection mask of the lower bounds. ``arms`` is the number of *declared* fixed arms
    (default: the arms axis), over which α is split."""
    p_below = np.asarray(p_below, dtype=float)
    p_above = np.asarray(p_above, dtype=float)
    sims = p_above.shape[0]
    level = alpha / max(arms or p_above.shape[1], 1)
    upper_ok = np.where(np.isnan(p_below), False, p_below < level)
    reject = holm_reject(p_above.reshape(sims, -1), alpha).reshape(p_above.shape)
    noise_holds = upper_ok.all(-1)
    noise_fails = reject.any(-1)
    per_noise = np.where(noise_fails, 2, np.where(noise_holds, 1, 0))
    has_noise = p_above.shape[2] > 0
    arm_fails = noise_fails.any(-1)
    arm_holds = noise_holds.all(-1) & has_noise
    overall = np.where(arm_fails, 2, np.where(arm_holds, 1, 0))
    return overall, per_noise, reject


CODES = {0: OPEN, 1: HOLDS, 2: FAILS}


# --- from records to unit values -------------------------------------------------------------


def accuracy(record: Mapping[str, Any]) -> tuple[float, bool]:
    """(test top-1, counted at chance?) of an evaluation record."""
    if record.get("status", "complete") == "complete":
        value = record.get("test/top1")
        if value is not None and math.isfinite(float(value)):
            return float(value), False
        # A complete run without a finite score cannot be told apart from a broken one.
    if record.get("chance") is not None:
        return float(record["chance"]), True
    if record.get("classes"):
        return 1.0 / float(record["classes"]), True
    value = record.get("test/top1") if record.get("status") != "complete" else None
    if value is None or not math.isfinite(float(value)):
        raise ValueError(
            f"a {record.get('status')} record of {record.get('method')!r} on pair "
            f"{record.get('pair')!r} needs 'chance' or 'classes' to be scored at chance"
        )
    return float(value), True


class _Index:
    """Evaluation records by (noise, pair, method, phase) → {seed: (accuracy, at chance)}."""

    def __init__(
        self,
        evaluations: Iterable[Mapping[str, Any]],
        noises: Sequence[str] = (),
        teachers: Mapping[str, str] | None = None,
    ) -> None:
        self.runs: dict[tuple[str, str, str, str], dict[int, tuple[float, bool]]] = defaultdict(
            dict
        )
        # Declared noise settings and pairs are part of the design whether or not they have
        # results yet: a setting without runs cannot be said to hold.
        self.teacher: dict[str, str] = dict(teachers or {})
        self.noises: list[str] = list(noises)
        self.pairs_in: dict[str, list[str]] = defaultdict(list)
        for noise in self.noises:
            self.pairs_in[noise] = list(self.teacher)
        self.seen_seeds: set[int] = set()
        self.methods: set[str] = set()
        self.failed = 0
        for r in evaluations:
            if r["phase"] not in ("seeds", "final", "transfer"):
                continue
            key = (r["noise"], r["pair"], r["method"], r["phase"])
            seed = int(r["seed"])
            if seed in self.runs[key]:
                raise ValueError(f"two evaluation records for {key} seed {seed}")
            self.runs[key][seed] = accuracy(r)
            self.failed += r.get("status") == "failed"
            self.teacher.setdefault(r["pair"], str(r.get("teacher") or r["pair"]))
            if r["noise"] not in self.noises:
                self.noises.append(r["noise"])
            if r["pair"] not in self.pairs_in[r["noise"]]:
                self.pairs_in[r["noise"]].append(r["pair"])
            if r["phase"] != "transfer":
                self.seen_seeds.add(seed)
            self.methods.add(r["method"])

    def arm(self, noise: str, pair: str, method: str, phases: Sequence[str]):
        for phase in phases:
            found = self.runs.get((noise, pair, method, phase))
            if found:
                return found
        return {}


def _unit_values(
    index: _Index,
    noise: str,
    fixed: str,
    other: str,
    other_phases: Sequence[str],
    seeds: list[int],
    level: float,
    incomplete: list[dict[str, Any]],
    quantity: str,
) -> list[UnitValue]:
    """Per unit: the mean over its pairs and seeds of (other − fixed), paired by seed."""
    if not seeds:
        return []
    by_unit: dict[str, list[tuple[str, np.ndarray, int]]] = defaultdict(list)
    for pair in index.pairs_in[noise]:
        f = index.arm(noise, pair, fixed, ("seeds", "final"))
        o = index.arm(noise, pair, other, other_phases)
        missing = {
            arm: [s for s in seeds if s not in runs] for arm, runs in ((fixed, f), (other, o))
        }
        missing = {arm: m for arm, m in missing.items() if m}
        if missing:
            incomplete.append(
                {
                    "arm": fixed,
                    "quantity": quantity,
                    "noise": noise,
                    "pair": pair,
                    "missing": missing,
                }
            )
            continue
        diffs = np.array([o[s][0] - f[s][0] for s in seeds])
        diverged = sum(int(f[s][1]) + int(o[s][1]) for s in seeds)
        by_unit[index.teacher[pair]].append((pair, diffs, diverged))
    out = []
    for unit in sorted(by_unit):
        rows = by_unit[unit]
        per_seed = np.mean([d for _, d, _ in rows], axis=0)  # pairs of one unit averaged
        b = t_bounds(per_seed, margin=0.0, alpha=level)
        out.append(
            UnitValue(
                unit=unit,
                pairs=[p for p, _, _ in rows],
                mean=float(per_seed.mean()),
                lower=float(b.lower),
                upper=float(b.upper),
                seeds=len(seeds),
                diverged=sum(d for _, _, d in rows),
            )
        )
    return out


# --- the decision --------------------------------------------------------------------------


def decide(
    evaluations: Iterable[Mapping[str, Any]],
    searches: Iterable[Mapping[str, Any]] = (),
    *,
    margin: float,
    alpha: float = 0.05,
    fixed: Sequence[str] = DEFAULT_FIXED,
    searched: str | None = DEFAULT_SEARCHED,
    reference: str | None = DEFAULT_REFERENCE,
    seeds: Sequence[int] | None = None,
    noises: Sequence[str] = (),
    teachers: Mapping[str, str] | None = None,
) -> Decision:
    """Decide, for each fixed arm present in ``evaluations``, whether it holds.

    ``evaluations`` are plain dicts with ``pair``, ``teacher``, ``noise``, ``method``,
    ``phase`` (``seeds``, ``final`` or ``transfer``), ``seed``, ``test/top1`` (a fraction) and
    ``status`` (``complete``, ``diverged`` or ``failed``; the last two score ``chance``, or
    1 / ``classes``). ``margin`` δ and ``alpha`` are declared before the data. ``seeds`` are
    the evaluation seeds every arm must have (default: every seed seen); ``noises`` the
    declared noise settings and ``teachers`` the declared pairs (pair → teacher): a declared
    setting or pair without runs keeps the claim from holding and is listed as incomplete.
    α is split over the *declared* fixed arms, whether or not each has runs yet. ``searches``
    are not used by the decision; they are accepted so every caller passes the same records.
    """
    if not 0 < margin < 1:
        raise ValueError(f"margin is a fraction of accuracy in (0, 1), got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    del searches  # the decision reads evaluation runs only
    index = _Index(evaluations, noises, teachers)
    seed_list = sorted(int(s) for s in seeds) if seeds is not None else sorted(index.seen_seeds)
    declared = list(dict.fromkeys(fixed))
    arms_present = [a for a in declared if a in index.methods]
    has_searched = searched is not None and searched in index.methods
    has_reference = reference is not None and reference in index.methods
    shared = len(set(index.teacher.values())) < len(index.teacher)
    unit_kind = "teachers" if shared else "pairs"
    k = max(len(declared), 1)
    level = alpha / k
    incomplete: list[dict[str, Any]] = []
    notes: list[str] = []
    if not has_searched:
        notes.append(
            "no tuning verdict: the study has no searched λ arm"
            + (f" ({searched!r} has no evaluation runs)" if searched else "")
        )
    if not has_reference:
        notes.append(f"no deficit: the reference arm {reference!r} has no evaluation runs")
    if index.failed:
        notes.append(
            f"{index.failed} evaluation run(s) failed (crashed, not diverged) and count at chance"
        )

    estimates: dict[tuple[str, str, str], Estimate] = {}
    for arm in arms_present:
        for noise in index.noises:
            for quantity, other, phases, ok in (
                ("regret", searched, ("final",), has_searched),
                ("deficit", reference, ("seeds", "final"), has_reference),
            ):
                if not ok or other is None:
                    continue
                units = _unit_values(
                    index, noise, arm, other, phases, seed_list, level, incomplete, quantity
                )
                values = np.array([u.mean for u in units], dtype=float)
                b = t_bounds(values, margin, level)
                estimates[(arm, noise, quantity)] = Estimate(
                    arm=arm,
                    quantity=quantity,
                    against=other,
                    noise=noise,
                    units=int(b.n),
                    pairs=sum(len(u.pairs) for u in units),
                    mean=float(b.mean),
                    lower=float(b.lower),
                    upper=float(b.upper),
                    p_below=float(b.p_below),
                    p_above=float(b.p_above),
                    per_unit=units,
                )
    shape = (1, len(arms_present), len(index.noises), len(QUANTITIES))
    p_below, p_above = np.full(shape, np.nan), np.full(shape, np.nan)
    for (arm, noise, quantity), e in estimates.items():
        at = (0, arms_present.index(arm), index.noises.index(noise), QUANTITIES.index(quantity))
        p_below[at], p_above[at] = e.p_below, e.p_above
    overall, per_noise, _ = apply_rule(p_below, p_above, alpha, arms=k)
    adjusted = holm_adjusted(p_above[0].ravel()).reshape(p_above.shape[1:])
    for (arm, noise, quantity), e in estimates.items():
        e.p_above_holm = float(
            adjusted[arms_present.index(arm), index.noises.index(noise), QUANTITIES.index(quantity)]
        )

    arm_decisions: dict[str, ArmDecision] = {}
    for a, arm in enumerate(arms_present):
        noise_decisions = [
            NoiseDecision(
                noise,
                CODES[int(per_noise[0, a, n])],
                {q: estimates[(arm, noise, q)] for q in QUANTITIES if (arm, noise, q) in estimates},
            )
            for n, noise in enumerate(index.noises)
        ]
        outcome = CODES[int(overall[0, a])]
        arm_decisions[arm] = _explain(
            arm,
            outcome,
            level,
            noise_decisions,
            margin,
            alpha,
            has_searched,
            has_reference,
            family=len(estimates),
        )
    primary = declared[0] if declared else None
    outcomes = {arm: d.outcome for arm, d in arm_decisions.items()}
    criterion = _criterion(margin, alpha, declared, searched, reference, unit_kind)
    if primary is None or primary not in arm_decisions:
        text = f"No verdict yet: {primary or 'no fixed arm'} has no evaluation runs."
    else:
        parts = [
            f"{arm_decisions[primary].outcome.upper()} for {primary}: "
            f"{arm_decisions[primary].summary}"
        ]
        parts += [
            f"{arm}: {d.outcome} ({d.summary})"
            for arm, d in arm_decisions.items()
            if arm != primary
        ]
        text = "; ".join(parts)
        if incomplete:
            text += f" [{len(incomplete)} incomplete cell(s) kept out]"
    return Decision(
        outcome=outcomes.get(primary, OPEN) if primary else OPEN,
        outcomes=outcomes,
        arms=arm_decisions,
        primary=primary,
        margin=margin,
        alpha=alpha,
        fixed=tuple(fixed),
        searched=searched if has_searched else None,
        reference=reference if has_reference else None,
        seeds=seed_list,
        unit_kind=unit_kind,
        criterion=criterion,
        text=text,
        incomplete=incomplete,
        notes=notes,
    )


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}" if math.isfinite(x) else ("+∞" if x > 0 else "−∞")


def _explain(
    arm: str,
    outcome: str,
    level: float,
    per_noise: list[NoiseDecision],
    margin: float,
    alpha: float,
    has_searched: bool,
    has_reference: bool,
    family: int,
) -> ArmDecision:
    estimates = [e for nd in per_noise for e in nd.estimates.values()]
    delta = f"δ = {100 * margin:.2f} points"
    if not estimates:
        return ArmDecision(arm, outcome, level, per_noise, "nothing to estimate yet")
    if outcome == FAILS:
        worst = min((e for e in estimates if e.p_above_holm <= alpha), key=lambda e: e.p_above_holm)
        summary = (
            f"{worst.quantity} against {worst.against} under {worst.noise} is "
            f"{_pts(worst.mean)} points, lower bound {_pts(worst.lower)} > {delta} "
            f"(Holm p = {worst.p_above_holm:.3g}, {worst.units} units)"
        )
        change = "only a study whose lower bounds all fall back below δ"
        return ArmDecision(arm, outcome, level, per_noise, summary, None, change)
    worst = max(estimates, key=lambda e: e.upper)
    units = min(e.units for e in estimates)
    if outcome == HOLDS:
        summary = (
            f"every upper bound is below {delta} (largest {_pts(worst.upper)}: "
            f"{worst.quantity} under {worst.noise}; {units} units)"
        )
        change = (
            f"an upper bound reaching δ: e.g. the {worst.quantity} under {worst.noise} "
            f"rising by {100 * (margin - worst.upper):.2f} points"
        )
        return ArmDecision(arm, outcome, level, per_noise, summary, None, change)
    missing = []
    if not has_searched:
        missing.append("no searched λ arm, so no tuning verdict")
    if not has_reference:
        missing.append("no reference arm")
    needed = _units_needed(estimates, margin, level, alpha / max(family, 1))
    if units < 2:
        why = f"{units} unit(s): at least 2 are needed to estimate the spread across units"
    else:
        why = (
            f"largest upper bound {_pts(worst.upper)} points ({worst.quantity} under "
            f"{worst.noise}) is not below {delta}, and no lower bound exceeds it after Holm's "
            f"correction; {units} units"
        )
    if missing:
        why = "; ".join(missing) + "; " + why
    toward = "holds" if all(e.mean < margin for e in estimates) else "does not hold"
    change = (
        f"about {needed} units at the observed means and spreads (toward {toward!r})"
        if needed is not None
        else "more units (the spread is not yet estimable)"
    )
    return ArmDecision(arm, outcome, level, per_noise, why, needed, change)


def _units_needed(
    estimates: list[Estimate], margin: float, level: float, fail_level: float
) -> int | None:
    """Units that would decide, from the observed means and spreads (statsmodels' t power)."""
    spreads = [(e, e.upper - e.mean) for e in estimates if e.units >= 2]
    if not spreads or len(spreads) < len(estimates):
        return None
    if all(e.mean < margin for e, _ in spreads):
        counts = []
        for e, half in spreads:
            sd = _sd(e, half, level)
            counts.append(units_needed(margin - e.mean, sd, level))
        return max((c for c in counts if c is not None), default=None)
    counts = []
    for e, half in spreads:
        if e.mean > margin:
            counts.append(units_needed(e.mean - margin, _sd(e, half, level), fail_level))
    return min((c for c in counts if c is not None), default=None)


def _sd(e: Estimate, half_width: float, level: float) -> float:
    q = scipy.stats.t.ppf(1 - level, max(e.units - 1, 1))
    return float(half_width / q * math.sqrt(e.units)) if q > 0 else math.nan


def _criterion(
    margin: float,
    alpha: float,
    arms: Sequence[str],
    searched: str | None,
    reference: str | None,
    unit_kind: str,
) -> str:
    k = max(len(arms), 1)
    level = alpha / k
    return (
        f"A fixed arm ({', '.join(arms)}) holds if, in every noise setting, the one-sided "
        f"{100 * (1 - level):g} % upper bounds of its mean regret ({searched or 'no searched arm'}"
        f" tuned per pair − fixed) and of its mean deficit ({reference or 'no reference'} − "
        f"fixed), in test top-1 across {unit_kind} with seeds as paired replicates, are both below"
        f" the margin δ = {100 * margin:.2f} points (intersection–union; α = {alpha:g} split "
        f"over {k} fixed arm(s)); it does not hold if a one-sided lower bound exceeds δ after "
        f"Holm's correction over every arm, noise setting and quantity; otherwise the study is "
        f"inconclusive."
    )
