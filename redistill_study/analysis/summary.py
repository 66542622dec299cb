"""The study report: from plain results to the verdict, the tables, the exploratory families,
the terminal text, ``summary.csv`` and the dashboard. Takes records, never the runner.

``results`` is anything with ``evaluations``, ``searches``, ``pending`` and ``study`` (the
study's summary: name, data set, seeds, margin, α, arms, noise order, recipes…), as
:func:`redistill_study.study.read_results` returns.

A study with several recipes gets one verdict per recipe, each from that recipe's records only:
the primary recipe's is the headline, and the report says whether the others agree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .explain import pts as _pts
from .exploratory import Comparison, against_fixed, noise_slopes, transfer_regrets
from .rule import PAIR_SHARE, Thresholds
from .stability import stability_markdown, stability_rows, stability_text
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
    stability: list[dict[str, Any]] = field(default_factory=list)
    recipe: str | None = None  # the recipe this report decides (None: the study has one)
    others: list[StudyReport] = field(default_factory=list)  # the secondary recipes' reports

    @property
    def recipe_text(self) -> str:
        """``recipe clip5 (grad_clip 5)``, or "" for a study with one recipe."""
        if self.recipe is None:
            return ""
        changes = (self.study.get("recipes") or {}).get(self.recipe, "")
        return f"recipe {self.recipe}" + (f" ({changes})" if changes else "")

    def all_rows(self) -> list[dict[str, Any]]:
        """Every recipe's table rows, each naming its recipe."""
        return [{**row, "recipe": r.recipe or ""} for r in (self, *self.others) for row in r.rows]

    def agreement(self) -> str:
        """Whether each fixed arm's outcome is the same under every recipe ("" with one)."""
        if not self.others:
            return ""
        split = []
        for arm, a in self.decision.arms.items():
            outcomes = {self.recipe: a.outcome}
            for other in self.others:
                if arm in other.decision.arms:
                    outcomes[other.recipe] = other.decision.arms[arm].outcome
            if len(set(outcomes.values())) > 1:
                split.append(f"{arm}: " + ", ".join(f"{o} under {r}" for r, o in outcomes.items()))
        if split:
            return (
                "the recipes disagree — " + "; ".join(split) + ": the outcome depends on the "
                "optimiser recipe, so it is not a property of the loss alone"
            )
        return "every recipe reaches the same outcome for every fixed arm"

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
        under = f" ({self.recipe_text}, primary)" if self.recipe and self.others else ""
        lines = [f"verdict{under}: {d.text}"]
        if d.arms:
            lines.append(
                "outcomes: " + " · ".join(f"{arm} {a.outcome}" for arm, a in d.arms.items())
            )
        for note in d.notes:
            lines.append(f"note: {note}")
        for arm, a in d.arms.items():
            if a.outcome == "inconclusive":
                lines.append(f"to decide {arm}: {a.would_change}")
        if self.pending:
            lines.append(f"note: {self.pending} evaluation run(s) not finished yet")
        for other in self.others:
            lines.append(f"under {other.recipe_text}: {other.decision.text}")
            if other.decision.arms:
                lines.append(
                    "  outcomes: "
                    + " · ".join(f"{arm} {a.outcome}" for arm, a in other.decision.arms.items())
                )
        if self.others:
            lines.append(f"recipes: {self.agreement()}")
        return lines


def build_report(results: Any) -> StudyReport:
    """The report of the primary recipe, with the other recipes' reports in ``others``."""
    study = dict(results.study)
    recipes = list(study.get("recipes") or {})
    if len(recipes) <= 1:
        return _recipe_report(study, results.evaluations, results.searches, results.pending)
    primary = study.get("primary_recipe") or recipes[0]
    methods = study.get("recipe_methods") or {}
    pending = getattr(results, "pending_by_recipe", None) or {primary: results.pending}
    reports = {}
    for name in recipes:
        trained = set(methods[name] if name in methods else study.get("methods") or ())
        sub = {
            **study,
            "fixed": [a for a in study.get("fixed") or () if a in trained],
            "searched": study.get("searched") if study.get("searched") in trained else None,
        }
        report = _recipe_report(
            sub,
            [r for r in results.evaluations if r.get("recipe") == name],
            [s for s in results.searches if s.get("recipe") == name],
            pending.get(name, 0),
        )
        report.recipe = name
        reports[name] = report
    main = reports[primary]
    main.others = [reports[n] for n in recipes if n != primary]
    main.stability = stability_rows(results.evaluations)  # every recipe, side by side
    return main


def _recipe_report(
    study: dict[str, Any], evaluations: Any, searches: Any, pending: int
) -> StudyReport:
    evaluations = list(evaluations)
    fixed = tuple(study.get("fixed") or ())
    decision = decide(
        evaluations,
        searches,
        margin=float(study["margin"]),
        alpha=float(study.get("alpha", 0.05)),
        failure_margin=study.get("failure_margin"),
        min_pairs=int(study.get("min_pairs", Thresholds.min_pairs)),
        min_students=int(study.get("min_students", Thresholds.min_students)),
        min_teachers=int(study.get("min_teachers", Thresholds.min_teachers)),
        fixed=fixed,
        searched=study.get("searched"),
        reference=study.get("reference"),
        seeds=study.get("seeds"),
        noises=study.get("noise_order") or (),
        teachers=study.get("teachers"),
        students=study.get("students"),
    )
    noise_order = study.get("noise_order") or []
    comparisons: list[Comparison] = []
    if decision.primary:
        comparisons += against_fixed(evaluations, decision.primary, noise_order)
    comparisons += transfer_regrets(evaluations, noise_order)
    comparisons += noise_slopes(evaluations)
    curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for s in searches:
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
        pending=int(pending),
        evaluations=evaluations,
        stability=stability_rows(evaluations),
    )


OUTCOME_CODES = {"inconclusive": 0, "holds": 1, "does not hold": 2}


def verdict_metrics(report: StudyReport) -> dict[str, float]:
    """The verdict as MLflow metrics of the invocation's run: per fixed arm its outcome
    (0 inconclusive, 1 holds, 2 does not hold), its failing pairs and its largest upper bound."""
    out: dict[str, float] = {}
    for r in (report, *report.others):
        # The primary recipe's under verdict/<arm>/…, a secondary one's under verdict.<recipe>/.
        prefix = "verdict" if r is report else f"verdict.{r.recipe}"
        for arm, a in r.decision.arms.items():
            out[f"{prefix}/{arm}/outcome"] = OUTCOME_CODES[a.outcome]
            out[f"{prefix}/{arm}/failing_pairs"] = len(a.failing_pairs)
            uppers = [e.upper for nd in a.per_noise for e in nd.estimates.values()]
            finite = [u for u in uppers if math.isfinite(u)]
            if finite:
                out[f"{prefix}/{arm}/largest_upper"] = max(finite)
    return out


def report_text(report: StudyReport) -> str:
    s = report.study
    lines = []
    for r in (report, *report.others):
        under = f", {r.recipe_text}" if r.recipe else ""
        lines += [f"Test top-1 (%), mean ± std over seeds — study {s.get('name')!r}{under}"]
        lines += [r.table(), ""]
    lines += [
        *report.verdict_lines(),
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
    out += [f"> {line}" for line in report.verdict_lines()]
    out += _evidence_markdown(report.decision)
    for other in report.others:
        out += ["", f"**Under {other.recipe_text}**", "", other.table(markdown=True)]
        out += _evidence_markdown(other.decision)
    stability = stability_markdown(report.stability, report.decision.reference)
    if stability:
        out += ["", "Stability, where runs diverged (gradient norms before any clipping):", ""]
        out += [stability]
    out += [
        "",
        f"(mean over pairs with teachers and students as crossed random effects; `lower` at the "
        f"level that rejects on its own (α·{1 - PAIR_SHARE:g} over the arm's means, Bonferroni), "
        "so "
        f"a lower bound above δ = {100 * th.margin:.2f} is a rejection; `adjusted p`: Holm within "
        f"that share, on the α scale; `holds` needs every upper bound below δ. A pair fails when "
        f"the arm diverges in it or its mean is shown above δ_f = {100 * th.failure_margin:.2f} "
        f"points (pooled within-pair t, Holm within α·{PAIR_SHARE:g}).)",
    ]
    return "\n".join(out)


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


def arm_reading(arm: str) -> str:
    return ARM_READINGS.get(arm, arm)
