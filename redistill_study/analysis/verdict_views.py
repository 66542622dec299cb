"""The dashboard's views of the verdict: the forest plots (every pair's and the pooled regret
and deficit with the bounds the rule used), the estimates table and the recipes' verdicts."""

from __future__ import annotations

import html
from typing import Any

from . import forest_svg
from .dashboard_files import DashboardFiles, html_table, p_text, pts
from .estimates import Estimate, PairValue
from .explain import arm_reading
from .summary_text import outcomes_text


def _pair_csv(arm: str, noise: str, quantity: str, u: PairValue) -> dict[str, Any]:
    return {
        "arm": arm,
        "noise": noise,
        "quantity": quantity,
        "pair": u.pair,
        "teacher": u.teacher,
        "student": u.student,
        "mean": u.mean,
        "lower": u.lower,
        "upper": u.upper,
        "seeds": u.seeds,
        "diverged": u.diverged,
        "excluded": u.excluded,
        "at_chance": u.at_chance,
        "p_adjusted": u.p_adjusted,
        "failed": u.failed,
    }


def _pooled_csv(arm: str, noise: str, quantity: str, e: Estimate) -> dict[str, Any]:
    return {
        "arm": arm,
        "noise": noise,
        "quantity": quantity,
        "pair": "(pooled)",
        "teacher": "",
        "student": "",
        "mean": e.mean,
        "lower": e.lower,
        "upper": e.upper,
        "seeds": "",
        "diverged": "",
        "excluded": "",
        "at_chance": "",
        "p_adjusted": e.p_above_adjusted,
        "failed": "",
    }


def forest_rows(
    arm: str, noise: str, estimates: dict[str, Estimate]
) -> tuple[list[forest_svg.ForestRow], list[dict[str, Any]]]:
    """One forest plot's rows (each pair, then the pooled mean, per quantity) and its CSV rows."""
    rows: list[forest_svg.ForestRow] = []
    csv_rows = []
    for q, e in estimates.items():
        for u in e.per_pair:
            label = f"{q} · {u.pair[:24]}" + (" (diverged)" if u.diverged else "")
            rows.append((label, u.mean, u.lower, u.upper, False))
            csv_rows.append(_pair_csv(arm, noise, q, u))
        rows.append((f"{q}: mean over {e.pairs} pairs", e.mean, e.lower, e.upper, True))
        csv_rows.append(_pooled_csv(arm, noise, q, e))
    return rows, csv_rows


class VerdictViews(DashboardFiles):
    def forest(self, view: dict[str, Any]) -> str:
        """One forest plot per claim, fixed arm and noise setting."""
        parts, csv_rows = [], []
        for claim, d in self.r.shown_decisions():
            if not d.arms:
                parts.append(f'<p class="note">{html.escape(d.text)}</p>')
            for arm, decision in d.arms.items():
                for nd in decision.per_noise:
                    rows, csv_part = forest_rows(arm, nd.noise, nd.estimates)
                    csv_rows += [{"claim": claim, **c} if claim else c for c in csv_part]
                    name = "-".join(x for x in (view["id"], claim, arm, nd.noise) if x)
                    name = name.replace("=", "-").replace("/", "-")
                    title = f"{arm}, {nd.noise}: {nd.outcome}   [{arm_reading(arm)}]"
                    if claim:
                        title = f"claim {claim}: {title}"
                    plot = forest_svg.forest_plot(
                        name, title, rows, d.margin, d.thresholds.failure_margin
                    )
                    parts.append(self._svg(name, plot))
        self._csv(view["id"], csv_rows)
        return "".join(parts)

    def estimates(self, view: dict[str, Any]) -> str:
        rows, csv_rows = [], []
        estimates = [(claim, e) for claim, d in self.r.shown_decisions() for e in d.estimates]
        for claim, e in estimates:
            rows.append(
                [
                    *([claim] if self.r.several_claims else []),
                    e.arm,
                    e.noise,
                    f"{e.quantity} vs {e.against}",
                    f"{e.pairs} ({e.teachers} × {e.students})",
                    pts(e.mean),
                    f"[{pts(e.lower)}, {pts(e.upper)}]",
                    p_text(e.p_below),
                    p_text(e.p_above_adjusted),
                    f"[{pts(e.predict_low)}, {pts(e.predict_high)}]",
                ]
            )
            row = {k: v for k, v in e.__dict__.items() if k != "per_pair"}
            csv_rows.append({"claim": claim, **row} if claim else row)
        self._csv(view["id"], csv_rows)
        incomplete = [
            [
                c["arm"],
                c["noise"],
                c["pair"],
                c["quantity"],
                "; ".join(f"{a}: seeds {s}" for a, s in c["missing"].items()),
            ]
            for _, d in self.r.shown_decisions()
            for c in d.incomplete
        ]
        out = html_table(
            [
                *(["claim"] if self.r.several_claims else []),
                "arm",
                "noise",
                "quantity",
                "pairs (teachers × students)",
                "mean (points)",
                "bounds (lower: rejects; upper: holds)",
                "p (mean < δ)",
                "adjusted p (mean > δ)",
                "new pair, 95 %",
            ],
            rows,
            3 + self.r.several_claims,
        )
        if incomplete:
            out += "<p class='note'>Incomplete cells, kept out of the decision:</p>" + html_table(
                ["arm", "noise", "pair", "quantity", "missing"], incomplete, 5
            )
        return out

    def recipes(self, view: dict[str, Any]) -> str:
        """Each recipe's verdict, outcome per fixed arm, and the secondary recipes' forests."""
        reports = [self.r, *self.r.others]
        rows, csv_rows = [], []
        for r in reports:
            role = "primary" if r is self.r else "secondary"
            name = r.recipe_text or f"recipe {r.study.get('primary_recipe') or 'as declared'}"
            for claim, d in r.shown_decisions():
                outcomes = outcomes_text(d)
                shown = f"{name}, claim {claim}" if claim else name
                rows.append([shown, role, d.text, outcomes or "—"])
                row = {"recipe": r.recipe, "role": role, "verdict": d.text, "outcomes": outcomes}
                csv_rows.append({"claim": claim, **row} if claim else row)
        self._csv(view["id"], csv_rows)
        parts = [html_table(["recipe", "role", "verdict", "outcomes"], rows, 4)]
        agreement = self.r.agreement() or "one recipe: the verdict above is the only one"
        parts.append(f'<p class="note">{html.escape(agreement)}</p>')
        for other in self.r.others:
            inner = type(self)(other, self.out)
            parts.append(f"<h3>{html.escape(other.recipe_text)}</h3>")
            parts.append(inner.forest({"id": f"{view['id']}-{other.recipe}"}))
            self.files += inner.files
        return "".join(parts)
