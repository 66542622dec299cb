"""The study report: from plain results to the verdict, the tables, the exploratory families,
the terminal text, ``summary.csv`` and the dashboard. Takes records, never the runner.

``results`` is anything with ``evaluations``, ``searches``, ``pending`` and ``study`` (the
study's summary: name, data set, seeds, margin, α, arms, noise order…), as
:func:`redistill_study.study.read_results` returns.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .exploratory import Comparison, against_fixed, noise_slopes, transfer_regrets
from .tables import format_table, summary_rows
from .verdict import ARM_READINGS, Decision, decide


@dataclass
class StudyReport:
    study: dict[str, Any]
    decision: Decision
    rows: list[dict[str, Any]]
    comparisons: list[Comparison]
    lambda_curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    optimal_lambdas: list[dict[str, Any]] = field(default_factory=list)
    pending: int = 0
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fixed(self) -> str | None:
        return self.decision.primary

    def table(self, markdown: bool = False) -> str:
        if not self.rows:
            return "(no finished evaluation runs yet)"
        return format_table(
            self.rows,
            self.study.get("noise_order"),
            fixed=self.fixed,
            reference=self.decision.reference,
            markdown=markdown,
        )

    def verdict_lines(self) -> list[str]:
        d = self.decision
        lines = [f"verdict: {d.text}"]
        for note in d.notes:
            lines.append(f"note: {note}")
        for arm, a in d.arms.items():
            if a.outcome != "inconclusive" or a.units_needed is None:
                continue
            lines.append(f"to decide {arm}: {a.would_change}")
        if self.pending:
            lines.append(f"note: {self.pending} evaluation run(s) not finished yet")
        return lines


def build_report(results: Any) -> StudyReport:
    study = dict(results.study)
    evaluations = list(results.evaluations)
    fixed = tuple(study.get("fixed") or ())
    decision = decide(
        evaluations,
        results.searches,
        margin=float(study["margin"]),
        alpha=float(study.get("alpha", 0.05)),
        fixed=fixed,
        searched=study.get("searched"),
        reference=study.get("reference"),
        seeds=study.get("seeds"),
        noises=study.get("noise_order") or (),
        teachers=study.get("teachers"),
    )
    noise_order = study.get("noise_order") or []
    comparisons: list[Comparison] = []
    if decision.primary:
        comparisons += against_fixed(evaluations, decision.primary, noise_order)
    comparisons += transfer_regrets(evaluations, noise_order)
    comparisons += noise_slopes(evaluations)
    curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for s in results.searches:
        if s["method"] != study.get("searched") or s.get("lam") is None or s["value"] is None:
            continue
        curves[f"{s['pair']} / {s['noise']}"].append((s["lam"], s["value"]))
        key = (s["pair"], s["noise"])
        if key not in best or s["value"] > best[key][1]:
            best[key] = (s["lam"], s["value"])
    return StudyReport(
        study=study,
        decision=decision,
        rows=summary_rows(evaluations, decision.reference),
        comparisons=comparisons,
        lambda_curves={k: sorted(v) for k, v in sorted(curves.items())},
        optimal_lambdas=[
            {"pair": k[0], "noise": k[1], "lam": lam, "val_top1": val}
            for k, (lam, val) in sorted(best.items())
        ],
        pending=int(results.pending),
        evaluations=evaluations,
    )


def report_text(report: StudyReport) -> str:
    s = report.study
    lines = [
        f"Test top-1 (%), mean ± std over seeds — study {s.get('name')!r}",
        report.table(),
        "",
        *report.verdict_lines(),
        f"criterion: {report.decision.criterion}",
    ]
    return "\n".join(lines)


def markdown_summary(report: StudyReport) -> str:
    """The README's block for a study: the table, the verdict, its estimates."""
    d = report.decision
    out = [
        report.table(markdown=True),
        "",
        "(test top-1 %, mean ± std over seeds; a run that "
        "diverged is scored at chance and counted.)",
        "",
    ]
    out += [f"> {line}" for line in report.verdict_lines()]
    level = next(iter(d.arms.values())).level if d.arms else d.alpha  # α/K, as every arm's
    out += [
        "",
        f"| arm | noise | quantity | mean (points) | one-sided {100 * (1 - level):g} % bounds "
        "| p (mean < δ) | Holm p (mean > δ) | units |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in d.estimates:
        out.append(
            f"| {e.arm} | {e.noise} | {e.quantity} vs {e.against} | {100 * e.mean:+.2f} | "
            f"[{_pts(e.lower)}, {_pts(e.upper)}] | {_p(e.p_below)} | {_p(e.p_above_holm)} | "
            f"{e.units} |"
        )
    out += [
        "",
        "(each bound at level α/K, K the declared fixed arms: `holds` needs every upper bound "
        "of an arm below δ; `does not hold` needs a Holm-adjusted p ≤ α, Holm over every arm, "
        "noise setting and quantity, so a lone bound above δ is not yet a rejection.)",
    ]
    return "\n".join(out)


def _p(p: float) -> str:
    return f"{p:.3g}" if math.isfinite(p) else "—"


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}" if math.isfinite(x) else ("+∞" if x > 0 else "−∞")


def arm_reading(arm: str) -> str:
    return ARM_READINGS.get(arm, arm)
