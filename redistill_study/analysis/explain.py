"""The verdict in words: the criterion, and for each arm the evidence that decided it or what
would decide it. Reads a decision; decides nothing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import rule
from .evidence import Layout
from .rule import MEAN_SHARE, PAIR_SHARE, per_test
from .statistics import units_needed

if TYPE_CHECKING:
    from ..study.arms import Arms
    from .estimates import ArmDecision, Estimate, PairValue
    from .verdict import Decision

HOLDS, FAILS, OPEN = (rule.OUTCOMES[c] for c in (rule.HOLDS, rule.FAILS, rule.OPEN))
ARM_READINGS = {
    "redistill": "λ = 2/3, teacher first: D_{2/3}(p‖q)",
    "redistill_student_first": "λ = 2/3, student first: D_{2/3}(q‖p) = D_{−5/3}(p‖q)",
}


def arm_reading(arm: str) -> str:
    """What a fixed arm's loss is, for a figure's title (its name where there is no reading)."""
    return ARM_READINGS.get(arm, arm)


def pts(x: float) -> str:
    """A fraction of accuracy as signed points."""
    if math.isnan(x):
        return "—"
    return f"{100 * x:+.2f}" if math.isfinite(x) else ("+∞" if x > 0 else "−∞")


def unit_kind(layout: Layout) -> str:
    t, s = len(set(layout.teachers)), len(set(layout.students))
    return f"{len(layout.pairs)} pairs ({t} teachers × {s} students)"


def criterion(decision: Decision) -> str:
    th = decision.thresholds
    arms = ", then ".join(decision.fixed) or "no fixed arm"
    return (
        f"Each fixed arm ({arms}: fixed-sequence, each at α = {th.alpha:g}) is compared with "
        f"{decision.searched or 'no searched arm'} tuned per pair (regret) and "
        f"{decision.reference or 'no reference'} (deficit), in test top-1 with seeds as paired "
        f"replicates (a divergence refutes an arm outside the sequence). "
        f"It does not hold if it diverges in a pair where the comparator trained, if "
        f"a pair's mean regret or deficit exceeds δ_f = {100 * th.failure_margin:.2f} points "
        f"(pooled within-pair t tests, Holm within α·{PAIR_SHARE:g}), or if a mean over pairs "
        f"exceeds δ = {100 * th.margin:.2f} points (Holm within α·{MEAN_SHARE:g}); the mean's "
        f"uncertainty treats teachers and students as crossed random effects. It holds only if "
        f"none of that happens, it never diverged, no cell is incomplete, every one-sided "
        f"{100 * (1 - th.alpha):g} % upper bound of a mean is below δ, and the study has at "
        f"least {th.min_pairs} pairs, {th.min_students} students and {th.min_teachers} "
        f"teachers; otherwise it is inconclusive."
    )


def listed(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c`` (each once, in order)."""
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _diverged(decision: Decision, a: ArmDecision, seeds: int) -> str | None:
    rows = [(nd.noise, e) for nd in a.per_noise for e in nd.estimates.values()]
    hit = [(noise, e, p) for noise, e in rows for p in e.per_pair if p.diverged]
    if not hit:
        return None
    pairs = sorted({p.pair for _, _, p in hit})
    every = all(p.diverged == seeds for _, _, p in hit)
    worst = max(hit, key=lambda h: h[2].at_chance if not math.isnan(h[2].at_chance) else -1)
    return (
        f"diverged in {len(pairs)} of {a.pairs} pairs ({'all seeds' if every else 'some seeds'}) "
        f"under {listed([n for n, _, _ in hit])}; per-pair {worst[1].quantity} read at chance "
        f"{pts(worst[2].at_chance)} points"
    )


def _pair_failures(decision: Decision, a: ArmDecision) -> str | None:
    th = decision.thresholds
    hit: list[tuple[str, Estimate, PairValue]] = [
        (nd.noise, e, p)
        for nd in a.per_noise
        for e in nd.estimates.values()
        for p in e.per_pair
        if p.failed and not p.diverged
    ]
    if not hit:
        return None
    noise, e, p = max(hit, key=lambda h: h[2].mean)
    pairs = sorted({h[2].pair for h in hit})
    return (
        f"{len(pairs)} pair(s) above δ_f = {100 * th.failure_margin:.2f} points (e.g. {p.pair}: "
        f"{e.quantity} {pts(p.mean)} points under {noise}, adjusted p {p.p_adjusted:.3g})"
    )


def _mean_failure(decision: Decision, a: ArmDecision) -> str | None:
    hit = [
        e
        for nd in a.per_noise
        for e in nd.estimates.values()
        if e.p_above_adjusted <= decision.thresholds.alpha
    ]
    if not hit:
        return None
    e = min(hit, key=lambda e: e.p_above_adjusted)
    return (
        f"mean {e.quantity} under {e.noise} {pts(e.mean)} points, lower bound {pts(e.lower)} > "
        f"δ (adjusted p {e.p_above_adjusted:.3g}, {e.pairs} pairs)"
    )


def _holds(decision: Decision, a: ArmDecision) -> str:
    estimates = [e for nd in a.per_noise for e in nd.estimates.values()]
    worst = max(estimates, key=lambda e: e.upper)
    regrets = [e for e in estimates if e.quantity == "regret"] or estimates
    widest = max(regrets, key=lambda e: e.predict_high)
    return (
        f"every upper bound is below δ = {100 * decision.margin:.2f} points (largest "
        f"{pts(worst.upper)}: {worst.quantity} under {worst.noise}); 0 of {a.pairs} pairs failed "
        f"(share of pairs the rule would flag ≤ {100 * a.failing_share_upper:.0f} %, "
        f"Clopper–Pearson); a new "
        f"pair's {widest.quantity} under {widest.noise}: [{pts(widest.predict_low)}, "
        f"{pts(widest.predict_high)}] points (95 % prediction); {unit_kind(decision.layout)}"
    )


def _open(decision: Decision, a: ArmDecision) -> tuple[str, str, int | None]:
    """Why it is open, and what would decide it (toward each side)."""
    th = decision.thresholds
    estimates = [e for nd in a.per_noise for e in nd.estimates.values()]
    if a.own != OPEN:
        earlier = decision.fixed[: decision.fixed.index(a.arm)]
        gate = next((arm for arm in earlier if decision.outcomes.get(arm) != a.own), earlier[0])
        return (
            f"not decided: {gate} was not found to {'hold' if a.own == HOLDS else 'fail'} "
            f"first (fixed-sequence); on its own evidence this arm {a.own}",
            f"{gate} being decided the same way",
            None,
        )
    blockers = []
    if decision.searched is None:
        blockers.append("no searched arm, so no tuning verdict")
    if decision.reference is None:
        blockers.append("no reference arm")
    if estimates:
        has = [min(getattr(e, k) for e in estimates) for k in ("pairs", "students", "teachers")]
        if has[0] < th.min_pairs or has[1] < th.min_students or has[2] < th.min_teachers:
            blockers.append(
                f"needs ≥ {th.min_pairs} pairs, ≥ {th.min_students} students and ≥ "
                f"{th.min_teachers} teachers (has {has[0]}, {has[1]}, {has[2]})"
            )
        worst = max(estimates, key=lambda e: e.upper)
        if not worst.upper < th.margin:
            blockers.append(
                f"largest upper bound {pts(worst.upper)} points ({worst.quantity} under "
                f"{worst.noise}) is not below δ = {100 * th.margin:.2f}"
            )
    if a.diverged_anywhere and not any(p.diverged for e in estimates for p in e.per_pair):
        blockers.append("it diverged in seeds where the comparator diverged too")
    incomplete = [c for c in decision.incomplete if c["arm"] == a.arm]
    if incomplete:
        blockers.append(f"{len(incomplete)} incomplete cell(s)")
    pairs = [(e, p) for e in estimates for p in e.per_pair if not math.isnan(p.mean)]
    toward_fail = ""
    needed = None
    if pairs:
        e, p = max(pairs, key=lambda ep: ep[1].mean)
        toward_fail = (
            f"a pair shown above δ_f = {100 * th.failure_margin:.2f} (largest: {p.pair}, "
            f"{e.quantity} {pts(p.mean)} under {e.noise}, adjusted p {p.p_adjusted:.3g})"
        )
        above = [e for e in estimates if e.mean > th.margin and e.pairs >= 2]
        if above:
            e = max(above, key=lambda e: e.mean - th.margin)
            level = per_test(th.mean_alpha, len(estimates))
            needed = units_needed(e.mean - th.margin, e.se * math.sqrt(e.pairs), level)
            if needed is not None:
                toward_fail += f", or about {needed} pairs at the observed mean {e.quantity}"
    why = "; ".join(blockers) or "no decisive evidence either way"
    change = f"toward 'holds': {why}"
    if toward_fail:
        change += f"; toward 'does not hold': {toward_fail}"

    return why, change, needed


def _smallest_p(a: ArmDecision) -> float:
    """The strongest evidence toward "does not hold": the smallest adjusted p of a pair or a
    mean test (on the α scale)."""
    estimates = [e for nd in a.per_noise for e in nd.estimates.values()]
    ps = [e.p_above_adjusted for e in estimates]
    ps += [p.p_adjusted for e in estimates for p in e.per_pair]
    finite = [p for p in ps if not math.isnan(p)]
    return min(finite) if finite else math.nan


def _deciding(decision: Decision, a: ArmDecision) -> str:
    """The evidence nearest its threshold, for the reader to judge how close the decision is:
    toward "does not hold" the smallest adjusted p against α, toward "holds" the largest upper
    bound against δ (where the study could hold at all)."""
    th = decision.thresholds
    estimates = [e for nd in a.per_noise for e in nd.estimates.values()]
    if a.own == FAILS and any(p.diverged for e in estimates for p in e.per_pair):
        return "a divergence, as observed"
    smallest = _smallest_p(a)
    words = [f"adjusted p {smallest:.3g}, α {th.alpha:g}"] if not math.isnan(smallest) else []
    could_hold = a.own == HOLDS or (
        a.own == OPEN
        and estimates
        and min(e.pairs for e in estimates) >= th.min_pairs
        and min(e.students for e in estimates) >= th.min_students
        and min(e.teachers for e in estimates) >= th.min_teachers
    )
    if could_hold and estimates:
        worst = max(estimates, key=lambda e: e.upper)
        words.append(f"largest upper bound {pts(worst.upper)} points, δ {100 * th.margin:.2f}")
    return "; ".join(words)


def _arm_words(decision: Decision, a: ArmDecision) -> None:
    """One arm's summary, what would change it and (when open) the units that would decide it."""
    a.deciding = _deciding(decision, a)
    if a.outcome == FAILS:
        evidence = [
            _diverged(decision, a, len(decision.seeds)),
            _pair_failures(decision, a),
            _mean_failure(decision, a),
        ]
        a.summary = "; ".join(x for x in evidence if x)
        a.would_change = (
            "not more runs under this recipe (its failing pairs are observed); where it "
            "diverged, the same arms under a stabilised recipe (declare one in `recipes:`) "
            "tell the loss from the recipe"
        )
    elif a.outcome == HOLDS:
        a.summary = _holds(decision, a)
        a.would_change = "a pair above δ_f, a divergence, or an upper bound reaching δ"
    else:
        a.summary, a.would_change, a.units_needed = _open(decision, a)


def _text(decision: Decision) -> str:
    """The verdict in one line: the primary arm's outcome and evidence, then the others'."""
    primary = decision.primary
    if primary is None or primary not in decision.arms:
        return f"No verdict yet: {primary or 'no fixed arm'} has no evaluation runs."
    first = decision.arms[primary]
    parts = [f"{first.outcome.upper()} for {primary} ({first.closeness}): {first.summary}"]
    parts += [
        f"{arm}: {d.outcome} ({d.closeness}): {d.summary}"
        for arm, d in decision.arms.items()
        if arm != primary
    ]
    text = "; ".join(parts)
    if decision.incomplete:
        text += f" [{len(decision.incomplete)} incomplete cell(s)]"
    return text


def _notes(decision: Decision, declared: Arms, failed_runs: int) -> list[str]:
    """What the reader should know beside the verdict: arms declared without runs, crashes and
    seeds left out."""
    notes = []
    if declared.searched is not None and decision.searched is None:
        notes.append(f"no tuning verdict: {declared.searched!r} has no evaluation runs")
    elif declared.searched is None:
        notes.append("no tuning verdict: the study has no searched arm")
    if declared.reference is not None and decision.reference is None:
        notes.append(f"no deficit: the reference arm {declared.reference!r} has no evaluation runs")
    if failed_runs:
        notes.append(
            f"{failed_runs} evaluation run(s) crashed: missing data, their cells incomplete"
        )
    if decision.excluded:
        seeds_out = sum(len(x["seeds"]) for x in decision.excluded)
        notes.append(f"{seeds_out} seed(s) left out of comparisons because the comparator diverged")
    return notes


def explain(decision: Decision, declared: Arms, failed_runs: int) -> None:
    """Fill in the decision's words: each arm's summary, the text, the notes and the criterion.
    ``declared``: the arms as the study declared them (the decision holds those with runs)."""
    for a in decision.arms.values():
        _arm_words(decision, a)
    decision.text = _text(decision)
    decision.notes += _notes(decision, declared, failed_runs)
    decision.criterion = criterion(decision)
