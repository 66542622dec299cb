"""The study report: from plain results to the verdict, the tables, the exploratory families,
the stability table and the λ searches, one report per recipe. Takes records, never the runner.
The words are :mod:`~redistill_study.analysis.summary_text`'s (the terminal text and the README
block) and the dashboard is :mod:`~redistill_study.analysis.report`'s.

``results`` is anything with ``evaluations``, ``searches``, ``pending`` and ``study`` (the
study's summary: name, data set, seeds, margin, α, arms, noise order, recipes…), as
:func:`redistill_study.study.read_results` returns.

A study with several recipes gets one verdict per recipe, each from that recipe's records only:
the primary recipe's is the headline, and the report says whether the others agree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..study.arms import Arms, claims_of
from .claims import ClaimDecision, decide_claims
from .exploratory import (
    Comparison,
    against_fixed,
    claim_transfer_regrets,
    noise_slopes,
    transfer_regrets,
)
from .rule import OUTCOMES, Thresholds
from .stability import stability_rows
from .summary_text import markdown_summary, report_text
from .tables import format_table, summary_rows
from .verdict import Decision, Declared, decide, thresholds_for

__all__ = [
    "StudyReport",
    "build_report",
    "markdown_summary",
    "question_of",
    "report_text",
    "verdict_metrics",
]


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
    claims: list[ClaimDecision] = field(default_factory=list)  # every claim's; the first's is
    # ``decision``
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
        """Whether each fixed arm's outcome is the same under every recipe ("" with one). A
        difference where some recipe's decision is marginal (a rerun could move it) is said as
        such, not as a finding about the recipe."""
        if not self.others:
            return ""
        found, marginal = [], []
        for claim, decision in self.decisions().items():
            for arm, a in decision.arms.items():
                decided = {self.recipe: a}
                for other in self.others:
                    theirs = other.decisions().get(claim)
                    if theirs is not None and arm in theirs.arms:
                        decided[other.recipe] = theirs.arms[arm]
                if len({d.outcome for d in decided.values()}) == 1:
                    continue
                named = f"{arm} ({claim})" if self.several_claims else arm
                each = ", ".join(f"{d.outcome} under {r}" for r, d in decided.items())
                text = f"{named}: {each}"
                shaky = [str(r) for r, d in decided.items() if d.marginal]
                if shaky:
                    marginal.append(f"{text} (marginal under {', '.join(shaky)})")
                else:
                    found.append(text)
        said = []
        if found:
            said.append(
                "the recipes disagree — " + "; ".join(found) + ": the outcome depends on the "
                "optimiser recipe, so it is not a property of the loss alone"
            )
        if marginal:
            said.append(
                "the recipes reach different outcomes where a decision is marginal — "
                + "; ".join(marginal)
                + ": a rerun could move a marginal decision, so this is no evidence that the "
                "outcome depends on the recipe"
            )
        return "; ".join(said) or "every recipe reaches the same outcome for every fixed arm"

    @property
    def several_claims(self) -> bool:
        """The study declares more than one claim (shown, and keyed, by claim)."""
        return int(self.study.get("claim_family") or len(self.claims)) > 1

    def decisions(self) -> dict[str, Decision]:
        """Each claim's decision by name (the one decision, under "", without claims)."""
        return {c.name: c.decision for c in self.claims} or {"": self.decision}

    def shown_decisions(self) -> list[tuple[str, Decision]]:
        """(claim, decision) as the report shows them: per claim where the study declares
        several, else the one decision under the name ""."""
        if self.several_claims:
            return [(c.name, c.decision) for c in self.claims]
        return [("", self.decision)]

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
            "claims": _trained_claims(study, trained),
            "claim_family": len(claims_of(study)),  # each recipe decides at the study's α/K
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


def _trained_claims(study: Mapping[str, Any], trained: set[str]) -> list[dict[str, Any]]:
    """The claims a recipe can decide: each with the fixed arms it trains (a claim without one
    is not asked under the recipe), its searched arm where trained."""
    out = []
    for claim in claims_of(study):
        fixed = [a for a in claim.arms.fixed if a in trained]
        if fixed:
            searched = claim.arms.searched if claim.arms.searched in trained else None
            arms = Arms(tuple(fixed), searched, claim.arms.reference)
            out.append(replace(claim, arms=arms))  # its scope and role kept
    return [c.as_dict() for c in out]


def question_of(study: Mapping[str, Any]) -> tuple[Thresholds, Arms, Declared]:
    """The question a study's summary declares: its thresholds, arms and design."""
    thresholds = thresholds_for(
        float(study["margin"]),
        float(study.get("alpha", 0.05)),
        study.get("failure_margin"),
        int(study.get("min_pairs", Thresholds.min_pairs)),
        int(study.get("min_students", Thresholds.min_students)),
        int(study.get("min_teachers", Thresholds.min_teachers)),
    )
    arms = Arms.from_dict(study)
    declared = Declared(
        study.get("seeds"),
        study.get("noise_order") or (),
        study.get("teachers"),
        study.get("students"),
    )
    return thresholds, arms, declared


def _lambda_searches(
    searches: Iterable[Mapping[str, Any]], searched: str | None
) -> tuple[dict[str, list[tuple[float, float]]], list[dict[str, Any]]]:
    """The searched arm's validation top-1 against λ per pair and setting, and each one's best."""
    curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for s in searches:
        if s["method"] != searched or s.get("lam") is None or s["value"] is None:
            continue
        curves[f"{s['pair']} / {s['noise']}"].append((s["lam"], s["value"]))
        key = (s["pair"], s["noise"])
        if key not in best or s["value"] > best[key][1]:
            best[key] = (s["lam"], s["value"])
    return (
        {k: sorted(v) for k, v in sorted(curves.items())},
        [
            {"pair": k[0], "noise": k[1], "lam": lam, "val_top1": val}
            for k, (lam, val) in sorted(best.items())
        ],
    )


def _recipe_report(
    study: dict[str, Any], evaluations: Any, searches: Any, pending: int
) -> StudyReport:
    evaluations = list(evaluations)
    thresholds, arms, declared = question_of(study)
    claims = claims_of(study)
    family = study.get("claim_family")
    decided = decide_claims(evaluations, thresholds, claims, declared, family) if claims else []
    decision = decided[0].decision if decided else decide(evaluations, thresholds, arms, declared)
    noise_order = study.get("noise_order") or []
    comparisons: list[Comparison] = []
    if decision.primary:
        comparisons += against_fixed(evaluations, decision.primary, noise_order)
    comparisons += transfer_regrets(evaluations, noise_order)
    if decided:
        comparisons += claim_transfer_regrets(
            evaluations, [c.claim.arms for c in decided], noise_order
        )
    comparisons += noise_slopes(evaluations)
    curves, best = _lambda_searches(searches, study.get("searched"))
    return StudyReport(
        study=study,
        decision=decision,
        claims=decided,
        rows=summary_rows(evaluations, decision.reference),
        comparisons=comparisons,
        lambda_curves=curves,
        optimal_lambdas=best,
        pending=int(pending),
        evaluations=evaluations,
        stability=stability_rows(evaluations),
    )


OUTCOME_CODES = {name: code for code, name in OUTCOMES.items()}


def verdict_metrics(report: StudyReport) -> dict[str, float]:
    """The verdict as MLflow metrics of the invocation's run: per fixed arm its outcome
    (0 inconclusive, 1 holds, 2 does not hold), its failing pairs, its largest upper bound and
    the share of simulated reruns that reach the same outcome (below 0.99: marginal)."""
    out: dict[str, float] = {}
    for r in (report, *report.others):
        # The primary recipe's under verdict/<arm>/…, a secondary one's under verdict.<recipe>/;
        # with several claims, each claim's under …/<claim>/<arm>/.
        prefix = "verdict" if r is report else f"verdict.{r.recipe}"
        if r.several_claims:
            for c in r.claims:
                out.update(_arm_metrics(f"{prefix}/{c.name}", c.decision))
        else:
            out.update(_arm_metrics(prefix, r.decision))
    return out


def _arm_metrics(prefix: str, decision: Decision) -> dict[str, float]:
    out: dict[str, float] = {}
    for arm, a in decision.arms.items():
        out[f"{prefix}/{arm}/outcome"] = OUTCOME_CODES[a.outcome]
        out[f"{prefix}/{arm}/failing_pairs"] = len(a.failing_pairs)
        if not math.isnan(a.rerun_agreement):
            out[f"{prefix}/{arm}/rerun_agreement"] = a.rerun_agreement
        uppers = [e.upper for nd in a.per_noise for e in nd.estimates.values()]
        finite = [u for u in uppers if math.isfinite(u)]
        if finite:
            out[f"{prefix}/{arm}/largest_upper"] = max(finite)
    return out
