"""Render the self-contained HTML dashboard from the verdict and `dashboards/`' template and views.

Output: ``<output>/dashboard/index.html`` plus each figure as SVG and each table as CSV.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import svg
from .verdict import FIXED_LAMBDA, Verdict

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"


def _fmt(v: float, scale: float = 100.0, sign: bool = False) -> str:
    return f"{scale * v:{'+' if sign else ''}.2f}"


def _table(headers: list[str], rows: list[list[Any]], text_cols: int = 1) -> str:
    head = "".join(
        f'<th class="{"text" if i < text_cols else ""}">{html.escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"text" if i < text_cols else ""}">{html.escape(str(c))}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Renderer:
    def __init__(self, verdict: Verdict, noise_order: list[str], out: Path) -> None:
        self.v, self.noise_order, self.out = verdict, noise_order, out
        self.figures: list[Path] = []
        self.tables: list[Path] = []

    def _save_svg(self, name: str, content: str) -> str:
        path = self.out / f"{name}.svg"
        path.write_text(content)
        self.figures.append(path)
        return content

    def _save_csv(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        path = self.out / f"{name}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        self.tables.append(path)

    def accuracy_vs_noise(self, view: dict[str, Any]) -> str:
        means: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for row in self.v.cells:
            means[row["pair"]][row["method"]][row["noise"]] = row["mean"]
        parts = []
        for pair, methods in sorted(means.items()):
            noises = [n for n in self.noise_order if any(n in m for m in methods.values())]
            series = {
                m: [100 * vals.get(n) if n in vals else None for n in noises]
                for m, vals in sorted(methods.items())
            }
            name = f"{view['id']}-{pair}"
            parts.append(
                self._save_svg(
                    name, svg.line_chart(name, f"{pair}", noises, series, "test top-1 (%)")
                )
            )
        return "".join(parts)

    def lambda_curves(self, view: dict[str, Any]) -> str:
        groups = {
            k: [(lam, 100 * acc) for lam, acc in pts] for k, pts in self.v.lambda_curves.items()
        }
        return self._save_svg(
            view["id"],
            svg.scatter_chart(
                view["id"],
                "validation top-1 vs λ",
                groups,
                "λ",
                "val top-1 (%)",
                vline=FIXED_LAMBDA,
            ),
        )

    def optimal_lambda(self, view: dict[str, Any]) -> str:
        groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for row in self.v.optimal_lambdas:
            groups[row["noise"]].append((row["lam"], 100 * row["val_top1"]))
        self._save_csv(view["id"], self.v.optimal_lambdas)
        return self._save_svg(
            view["id"],
            svg.scatter_chart(
                view["id"],
                "best λ per cell",
                groups,
                "optimal λ",
                "its val top-1 (%)",
                vline=FIXED_LAMBDA,
            ),
        )

    def transfer_regret(self, view: dict[str, Any]) -> str:
        by_cell: dict[tuple[str, str], list[float]] = defaultdict(list)
        for row in self.v.transfer:
            by_cell[(row["method"], row["pair"])].append(row["regret"])
        values = {k: statistics.fmean(v) for k, v in by_cell.items()}
        rows = sorted({k[0] for k in values})
        cols = sorted({k[1] for k in values})
        self._save_csv(view["id"], self.v.transfer)
        if not values:
            return '<p class="note">No transfer results (the study needs two or more pairs).</p>'
        return self._save_svg(
            view["id"],
            svg.heatmap(view["id"], "per-pair-tuned − transferred (points)", rows, cols, values),
        )

    def regret_table(self, view: dict[str, Any]) -> str:
        self._save_csv(view["id"], self.v.regrets)
        rows = [
            [
                r["pair"],
                r["noise"],
                _fmt(r["regret"], sign=True),
                _fmt(r["seed_std"]),
                "yes" if r["within_one_std"] else "no",
            ]
            for r in self.v.regrets
        ]
        by_noise = [
            [r["noise"], f"{r['within']} of {r['cells']}", _fmt(r["median_regret"], sign=True)]
            for r in self.v.by_noise
        ]
        return _table(
            ["pair", "noise", "regret (points)", "seed std", "within one std"], rows, 2
        ) + _table(["noise", "cells within one std", "median regret"], by_noise)

    def tests_table(self, view: dict[str, Any]) -> str:
        self._save_csv(view["id"], self.v.tests)
        rows = [
            [t["against"], t["n"], _fmt(t["median_diff"], sign=True), f"{t['p']:.3g}"]
            for t in self.v.tests
        ]
        return _table(["REDistill (λ = 2/3) vs", "pairs", "median difference (points)", "p"], rows)

    def cell_table(self, view: dict[str, Any]) -> str:
        self._save_csv(view["id"], self.v.cells)
        rows = [
            [
                c["pair"],
                c["noise"],
                c["method"],
                c["n"],
                f"{_fmt(c['mean'])} ± {_fmt(c['std'])}",
                f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]",
            ]
            for c in self.v.cells
        ]
        return _table(["pair", "noise", "method", "seeds", "test top-1", "95 % CI"], rows, 3)


def render_dashboard(
    verdict: Verdict,
    out_dir: Path,
    title: str,
    noise_order: list[str],
    meta: str = "",
    dashboards: Path = DASHBOARDS,
) -> tuple[Path, list[Path]]:
    """Write the dashboard; return its index.html and every file written beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    template = (dashboards / "template.html").read_text()
    views = yaml.safe_load((dashboards / "views.yaml").read_text())
    renderer = Renderer(verdict, noise_order, out_dir)
    sections = []
    for view in views:
        draw: Callable[[dict[str, Any]], str] = getattr(renderer, view["kind"])
        sections.append(
            f'<section id="{html.escape(view["id"])}"><h2>{html.escape(view["title"])}</h2>'
            f'<p class="note">{html.escape(view.get("note", ""))}</p>'
            f'<figure data-view="{html.escape(view["id"])}">{draw(view)}</figure></section>'
        )
    verdict_class = "open" if verdict.holds is None else ("holds" if verdict.holds else "fails")
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (
        template.replace("{{title}}", html.escape(title))
        .replace("{{meta}}", html.escape(f"{meta} · rendered {stamp}"))
        .replace("{{verdict_class}}", verdict_class)
        .replace("{{verdict}}", html.escape(verdict.text))
        .replace("{{criterion}}", html.escape(verdict.criterion))
        .replace("{{views}}", "\n".join(sections))
    )
    index = out_dir / "index.html"
    index.write_text(page)
    return index, [index, *renderer.figures, *renderer.tables]
