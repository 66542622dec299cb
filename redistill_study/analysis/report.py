"""Render the self-contained HTML dashboard from a study report and `dashboards/`' template and
views. Output: ``<dir>/index.html`` plus each figure as SVG and each table as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import html
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import svg
from .stability import table_cells
from .summary import StudyReport, arm_reading
from .tables import cell_text, write_csv

FIXED_LAMBDA = 2.0 / 3.0


def dashboards_dir() -> Path:
    """The page template and views shipped with the package."""
    from importlib.resources import files

    return Path(str(files("redistill_study") / "dashboards"))


def _pts(v: float, sign: bool = True) -> str:
    if not math.isfinite(v):
        return "—" if math.isnan(v) else ("+∞" if v > 0 else "−∞")
    return f"{100 * v:{'+' if sign else ''}.2f}"


def _p(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.3g}"


def _table(headers: list[str], rows: list[list[Any]], text_cols: int = 1) -> str:
    def cls(i: int) -> str:
        return ' class="text"' if i < text_cols else ""

    head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f"<td{cls(i)}>{html.escape(str(c))}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Renderer:
    def __init__(self, report: StudyReport, out: Path) -> None:
        self.r, self.out = report, out
        self.files: list[Path] = []

    def _svg(self, name: str, content: str) -> str:
        path = self.out / f"{name}.svg"
        path.write_text(content)
        self.files.append(path)
        return content

    def _csv(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        path = self.out / f"{name}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        self.files.append(path)

    # --- views -----------------------------------------------------------------------------

    def forest(self, view: dict[str, Any]) -> str:
        d = self.r.decision
        if not d.arms:
            return f'<p class="note">{html.escape(d.text)}</p>'
        parts, csv_rows = [], []
        for arm, decision in d.arms.items():
            for nd in decision.per_noise:
                rows: list[tuple[str, float, float, float, bool]] = []
                for q, e in nd.estimates.items():
                    for u in e.per_pair:
                        label = f"{q} · {u.pair[:24]}" + (" (diverged)" if u.diverged else "")
                        rows.append((label, u.mean, u.lower, u.upper, False))
                        csv_rows.append(
                            {
                                "arm": arm,
                                "noise": nd.noise,
                                "quantity": q,
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
                        )
                    rows.append((f"{q}: mean over {e.pairs} pairs", e.mean, e.lower, e.upper, True))
                    csv_rows.append(
                        {
                            "arm": arm,
                            "noise": nd.noise,
                            "quantity": q,
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
                    )
                name = f"{view['id']}-{arm}-{nd.noise}".replace("=", "-").replace("/", "-")
                title = f"{arm}, {nd.noise}: {nd.outcome}   [{arm_reading(arm)}]"
                parts.append(
                    self._svg(
                        name,
                        svg.forest_plot(name, title, rows, d.margin, d.thresholds.failure_margin),
                    )
                )
        self._csv(view["id"], csv_rows)
        return "".join(parts)

    def estimates(self, view: dict[str, Any]) -> str:
        rows, csv_rows = [], []
        for e in self.r.decision.estimates:
            rows.append(
                [
                    e.arm,
                    e.noise,
                    f"{e.quantity} vs {e.against}",
                    f"{e.pairs} ({e.teachers} × {e.students})",
                    _pts(e.mean),
                    f"[{_pts(e.lower)}, {_pts(e.upper)}]",
                    _p(e.p_below),
                    _p(e.p_above_adjusted),
                    f"[{_pts(e.predict_low)}, {_pts(e.predict_high)}]",
                ]
            )
            csv_rows.append({k: v for k, v in e.__dict__.items() if k != "per_pair"})
        self._csv(view["id"], csv_rows)
        incomplete = [
            [
                c["arm"],
                c["noise"],
                c["pair"],
                c["quantity"],
                "; ".join(f"{a}: seeds {s}" for a, s in c["missing"].items()),
            ]
            for c in self.r.decision.incomplete
        ]
        out = _table(
            [
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
            3,
        )
        if incomplete:
            out += "<p class='note'>Incomplete cells, kept out of the decision:</p>" + _table(
                ["arm", "noise", "pair", "quantity", "missing"], incomplete, 5
            )
        return out

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
            return '<p class="note">Nothing to compare in this study.</p>'
        rows = [
            [
                c.label,
                c.noise,
                c.units,
                _pts(c.mean),
                f"[{_pts(c.low)}, {_pts(c.high)}]",
                _p(c.p),
                _p(c.p_holm),
            ]
            for c in chosen
        ]
        unit = "points" if family != "noise slope" else "points per unit of level"
        return _table(
            ["comparison", "noise", "units", f"mean ({unit})", "95 % interval", "p", "Holm p"],
            rows,
            2,
        )

    def recipes(self, view: dict[str, Any]) -> str:
        """Each recipe's verdict, outcome per fixed arm, and the secondary recipes' forests."""
        reports = [self.r, *self.r.others]
        rows, csv_rows = [], []
        for r in reports:
            outcomes = " · ".join(f"{arm} {a.outcome}" for arm, a in r.decision.arms.items())
            role = "primary" if r is self.r else "secondary"
            name = r.recipe_text or f"recipe {r.study.get('primary_recipe') or 'as declared'}"
            rows.append([name, role, r.decision.text, outcomes or "—"])
            csv_rows.append(
                {"recipe": r.recipe, "role": role, "verdict": r.decision.text, "outcomes": outcomes}
            )
        self._csv(view["id"], csv_rows)
        parts = [_table(["recipe", "role", "verdict", "outcomes"], rows, 4)]
        agreement = self.r.agreement() or "one recipe: the verdict above is the only one"
        parts.append(f'<p class="note">{html.escape(agreement)}</p>')
        for other in self.r.others:
            inner = Renderer(other, self.out)
            parts.append(f"<h3>{html.escape(other.recipe_text)}</h3>")
            parts.append(inner.forest({"id": f"{view['id']}-{other.recipe}"}))
            self.files += inner.files
        return "".join(parts)

    def stability(self, view: dict[str, Any]) -> str:
        self._csv(view["id"], self.r.stability)
        headers, cells = table_cells(self.r.stability)
        return _table(headers, cells, len(headers) - 4)

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
                f"[{_pts(r['ci_low'], False)}, {_pts(r['ci_high'], False)}]",
                r["first_reason"] or "",
            ]
            for r in all_rows
        ]
        headers = [*(["recipe"] if recipes else []), "pair", "noise", "method"]
        return _table(
            [*headers, "seeds", "test top-1", "95 % interval", "first failure"],
            rows,
            len(headers),
        )


def render_dashboard(
    report: StudyReport,
    out_dir: Path,
    title: str,
    meta: str = "",
    dashboards: Path | None = None,
) -> tuple[Path, list[Path]]:
    """Write the dashboard; return its index.html and every file written beside it."""
    dashboards = dashboards or dashboards_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    template = (dashboards / "template.html").read_text()
    views = yaml.safe_load((dashboards / "views.yaml").read_text())
    renderer = Renderer(report, out_dir)
    sections = []
    for view in views:
        draw: Callable[[dict[str, Any]], str] = getattr(renderer, view["kind"])
        sections.append(
            f'<section id="{html.escape(view["id"])}"><h2>{html.escape(view["title"])}</h2>'
            f'<p class="note">{html.escape(view.get("note", ""))}</p>'
            f'<figure data-view="{html.escape(view["id"])}">{draw(view)}</figure></section>'
        )
    d = report.decision
    verdict_class = {"holds": "holds", "does not hold": "fails"}.get(d.outcome, "open")
    changes = [f"{arm}: {a.would_change}" for arm, a in d.arms.items() if a.would_change]
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (
        template.replace("{{title}}", html.escape(title))
        .replace("{{meta}}", html.escape(f"{meta} · rendered {stamp}"))
        .replace("{{verdict_class}}", verdict_class)
        .replace("{{verdict}}", html.escape(d.text))
        .replace("{{criterion}}", html.escape(d.criterion))
        .replace("{{change}}", html.escape(" · ".join(changes) or "—"))
        .replace("{{views}}", "\n".join(sections))
    )
    index = out_dir / "index.html"
    index.write_text(page)
    return index, [index, *renderer.files]


def write_outputs(report: StudyReport, output: Path, meta: str = "") -> dict[str, Any]:
    """``summary.csv`` and the dashboard in ``output``; returns their paths."""
    output.mkdir(parents=True, exist_ok=True)
    csv_path = output / "summary.csv"
    write_csv(report.all_rows(), csv_path)
    index, files = render_dashboard(
        report,
        output / "dashboard",
        f"Does one fixed λ generalise? — {report.study.get('name')}",
        meta,
    )
    return {"csv": csv_path, "dashboard": index, "files": files}
