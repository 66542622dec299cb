"""The dashboard's views of the records: accuracy against noise per pair, the λ searches, the
exploratory comparisons, the stability table and every cell."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from . import svg
from .dashboard_files import DashboardFiles, html_table, p_text, pts
from .stability import table_cells
from .tables import cell_text

FIXED_LAMBDA = 2.0 / 3.0


class RecordViews(DashboardFiles):
    def accuracy_vs_noise(self, view: dict[str, Any]) -> str:
        means: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for row in self.r.rows:
            means[row["pair"]][row["method"]][row["noise"]] = row["test_top1_mean"]
        order = self.r.study.get("noise_order") or []
        parts = []
        for pair, methods in means.items():
            noises = [n for n in order if any(n in m for m in methods.values())] or sorted(
                {n for m in methods.values() for n in m}
            )
            series = {
                m: [100 * vals[n] if n in vals else None for n in noises]
                for m, vals in sorted(methods.items())
            }
            name = f"{view['id']}-{pair}"
            parts.append(
                self._svg(name, svg.line_chart(name, pair, noises, series, "test top-1 (%)"))
            )
        return "".join(parts)

    def _lambda_chart(self, view_id: str, title: str, groups: dict, x: str, y: str) -> str:
        if not groups:
            return '<p class="note">No λ search in this study.</p>'
        chart = svg.scatter_chart(view_id, title, groups, x, y, vline=FIXED_LAMBDA)
        return self._svg(view_id, chart)

    def lambda_curves(self, view: dict[str, Any]) -> str:
        groups = {k: [(lam, 100 * a) for lam, a in pts] for k, pts in self.r.lambda_curves.items()}
        return self._lambda_chart(view["id"], "validation top-1 vs λ", groups, "λ", "val top-1 (%)")

    def optimal_lambda(self, view: dict[str, Any]) -> str:
        groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for row in self.r.optimal_lambdas:
            groups[row["noise"]].append((row["lam"], 100 * row["val_top1"]))
        self._csv(view["id"], self.r.optimal_lambdas)
        return self._lambda_chart(
            view["id"], "best λ per cell", groups, "optimal λ", "its val top-1 (%)"
        )

    def comparisons(self, view: dict[str, Any]) -> str:
        family = view.get("family")
        chosen = [c for c in self.r.comparisons if family is None or c.family == family]
        self._csv(view["id"], [c.as_row() for c in chosen])
        if not chosen:
            if view.get("optional"):
                return ""
            return '<p class="note">Nothing to compare in this study.</p>'
        rows = [
            [
                c.label,
                c.noise,
                c.units,
                pts(c.mean),
                f"[{pts(c.low)}, {pts(c.high)}]",
                p_text(c.p),
                p_text(c.p_holm),
            ]
            for c in chosen
        ]
        unit = "points" if family != "noise slope" else "points per unit of level"
        return html_table(
            ["comparison", "noise", "units", f"mean ({unit})", "95 % interval", "p", "Holm p"],
            rows,
            2,
        )

    def stability(self, view: dict[str, Any]) -> str:
        self._csv(view["id"], self.r.stability)
        headers, cells = table_cells(self.r.stability)
        return html_table(headers, cells, len(headers) - 4)

    def cells(self, view: dict[str, Any]) -> str:
        all_rows = self.r.all_rows()
        self._csv(view["id"], all_rows)
        recipes = bool(self.r.others)
        rows = [
            [
                *([r["recipe"]] if recipes else []),
                r["pair"],
                r["noise"],
                r["method"],
                r["n"],
                cell_text(r),
                f"[{pts(r['ci_low'], False)}, {pts(r['ci_high'], False)}]",
                r["first_reason"] or "",
            ]
            for r in all_rows
        ]
        headers = [*(["recipe"] if recipes else []), "pair", "noise", "method"]
        return html_table(
            [*headers, "seeds", "test top-1", "95 % interval", "first failure"],
            rows,
            len(headers),
        )
