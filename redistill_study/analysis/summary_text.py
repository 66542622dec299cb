"""The report in words: the terminal text (:func:`report_text`) and the README's block for a
study (:func:`markdown_summary`), with the verdict's lines, its estimates and its failing pairs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .claims import by_condition, controls_line
from .explain import pts as _pts
from .rule import MEAN_SHARE, OPEN, OUTCOMES, PAIR_SHARE
from .stability import stability_markdown, stability_text
from .verdict import Decision

if TYPE_CHECKING:
    from .summary import StudyReport


def outcomes_text(d: Decision) -> str:
    """``redistill holds (clear) · redistill_student_first inconclusive (marginal)``: marginal
    where fewer than 99 % of simulated reruns reach the outcome (another machine or seed could
    move it)."""
    return " · ".join(
        f"{arm} {a.outcome} ({'marginal' if a.marginal else 'clear'})" for arm, a in d.arms.items()
    )


def _decision_lines(d: Decision, head: str) -> list[str]:
    lines = [f"{head}: {d.text}"]
    if d.arms:
        lines.append(f"outcomes: {outcomes_text(d)}")
    lines += [f"note: {note}" for note in d.notes]
    for arm, a in d.arms.items():
        if a.outcome == OUTCOMES[OPEN]:
            lines.append(f"to decide {arm}: {a.would_change}")
    return lines


def verdict_lines(report: StudyReport) -> list[str]:
    """The verdict's lines: the outcome, the notes, what would decide an open arm (per claim,
    where the study declares several), and each secondary recipe's verdict."""
    under = f" ({report.recipe_text}, primary)" if report.recipe and report.others else ""
    if report.several_claims:
        lines = [f"claims{under}: {len(report.claims)}, Bonferroni across them"]
        for c in report.claims:
            lines += _decision_lines(
                c.decision, f"claim {c.name} ({c.arms_text}; α = {c.level:.4g})"
            )
        lines += [f"by teacher condition: {line}" for line in by_condition(report.claims)]
        if (controls := controls_line(report.claims)) is not None:
            lines.append(f"controls: {controls}")
    else:
        lines = _decision_lines(report.decision, f"verdict{under}")
    if report.pending:
        lines.append(f"note: {report.pending} evaluation run(s) not finished yet")
    for other in report.others:
        decided = other.claims if other.several_claims else ()
        if not decided:
            lines.append(f"under {other.recipe_text}: {other.decision.text}")
            if other.decision.arms:
                lines.append(f"  outcomes: {outcomes_text(other.decision)}")
        for c in decided:
            lines.append(
                f"under {other.recipe_text}, claim {c.name} (α = {c.level:.4g}): {c.decision.text}"
            )
            if c.decision.arms:
                lines.append(f"  outcomes: {outcomes_text(c.decision)}")
    if report.others:
        lines.append(f"recipes: {report.agreement()}")
    return lines


def report_text(report: StudyReport) -> str:
    s = report.study
    lines = []
    for r in (report, *report.others):
        under = f", {r.recipe_text}" if r.recipe else ""
        lines += [f"Test top-1 (%), mean ± std over seeds — study {s.get('name')!r}{under}"]
        lines += [r.table(), ""]
    lines += [
        *verdict_lines(report),
        f"criterion: {report.decision.criterion}",
        "",
        *stability_text(report.stability, report.decision.reference),
    ]
    return "\n".join(lines)


def markdown_summary(report: StudyReport) -> str:
    """The README's block for a study: the table, the verdict, its estimates, failing pairs;
    then each secondary recipe's table, estimates and failing pairs."""
    th = report.decision.thresholds
    out = []
    if report.others:
        out += [f"**Under {report.recipe_text} — the primary recipe**", ""]
    out += [
        report.table(markdown=True),
        "",
        "(test top-1 %, mean ± std over seeds; a diverged run is shown at chance for reading — the "
        "verdict counts it as a failure of its pair, never as an accuracy; a crashed run is "
        "missing.)",
        "",
    ]
    out += [f"> {line}" for line in verdict_lines(report)]
    out += _claims_markdown(report)
    for other in report.others:
        out += ["", f"**Under {other.recipe_text}**", "", other.table(markdown=True)]
        out += _claims_markdown(other)
    stability = stability_markdown(report.stability, report.decision.reference)
    if stability:
        out += ["", "Stability, where runs diverged (gradient norms before any clipping):", ""]
        out += [stability]
    out += [
        "",
        f"(mean over pairs with teachers and students as crossed random effects; `lower` at the "
        f"level that rejects on its own (α·{MEAN_SHARE:g} over the arm's means, Bonferroni), "
        "so "
        f"a lower bound above δ = {100 * th.margin:.2f} is a rejection; `adjusted p`: Holm within "
        f"that share, on the α scale; `holds` needs every upper bound below δ. A pair fails when "
        f"the arm diverges in it or its mean is shown above δ_f = {100 * th.failure_margin:.2f} "
        f"points (pooled within-pair t, Holm within α·{PAIR_SHARE:g}).)",
    ]
    return "\n".join(out)


def _claims_markdown(report: StudyReport) -> list[str]:
    """The evidence of each claim (of the one decision, for a study with one claim)."""
    if not report.several_claims:
        return _evidence_markdown(report.decision)
    out = []
    for c in report.claims:
        out += ["", f"*Claim {c.name}: {c.arms_text} (decided at α = {c.level:.4g})*"]
        out += _evidence_markdown(c.decision)
    moved = [c for c in report.comparisons if c.family == "claim transfer"]
    if moved:
        out += [
            "",
            "*Each claim's searched arm at the setting transferred from the other pairs − its "
            "fixed arm (exploratory: units as observations, 95 % t intervals, Holm within the "
            "family)*",
            "",
            "| comparison | noise | units | mean (points) | 95 % interval | Holm p |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {m.label} | {m.noise} | {m.units} | {_pts(m.mean)} | "
            f"[{_pts(m.low)}, {_pts(m.high)}] | {_p(m.p_holm)} |"
            for m in moved
        ]
    return out


def _evidence_markdown(d: Decision) -> list[str]:
    """A decision's estimates and failing pairs as markdown tables."""
    th = d.thresholds
    out = [
        "",
        f"| arm | noise | quantity | mean (points) | lower | upper ({100 * (1 - th.alpha):g} %) "
        "| adjusted p (mean > δ) | p (mean < δ) | pairs | new pair, 95 % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in d.estimates:
        out.append(
            f"| {e.arm} | {e.noise} | {e.quantity} vs {e.against} | {_pts(e.mean)} | "
            f"{_pts(e.lower)} | {_pts(e.upper)} | {_p(e.p_above_adjusted)} | {_p(e.p_below)} | "
            f"{e.pairs} | [{_pts(e.predict_low)}, {_pts(e.predict_high)}] |"
        )
    failing = failing_pair_rows(d)
    if failing:
        out += [
            "",
            "| arm | pair | teacher | student | failed under | evidence |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['arm']} | {r['pair']} | {r['teacher']} | {r['student']} | "
            f"{', '.join(r['noises'])} | {r['evidence']} |"
            for r in failing
        ]
    return out


def failing_pair_rows(d: Decision) -> list[dict[str, Any]]:
    """One row per arm and failing pair: where it failed and how."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for arm, a in d.arms.items():
        for nd in a.per_noise:
            for e in nd.estimates.values():
                for p in e.per_pair:
                    if not p.failed:
                        continue
                    row = rows.setdefault(
                        (arm, p.pair),
                        {
                            "arm": arm,
                            "pair": p.pair,
                            "teacher": p.teacher,
                            "student": p.student,
                            "noises": [],
                            "evidence": [],
                        },
                    )
                    if nd.noise not in row["noises"]:
                        row["noises"].append(nd.noise)
                    if p.diverged:
                        what = f"diverged in {p.diverged} of {p.diverged + p.seeds} seeds"
                    else:
                        what = f"{e.quantity} {_pts(p.mean)} (adjusted p {_p(p.p_adjusted)})"
                    what += f" under {nd.noise}"
                    if not any(w.endswith(f"under {nd.noise}") for w in row["evidence"]):
                        row["evidence"].append(what)  # the first evidence of each setting
    for row in rows.values():
        row["evidence"] = "; ".join(row["evidence"])
    return list(rows.values())


def _p(p: float) -> str:
    return f"{p:.3g}" if math.isfinite(p) else "—"
