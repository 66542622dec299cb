"""Render the self-contained HTML dashboard from a study report and `dashboards/`' template and
views. Output: ``<dir>/index.html`` plus each figure as SVG and each table as CSV. The views are
:mod:`~redistill_study.analysis.verdict_views`' and
:mod:`~redistill_study.analysis.record_views`'; `dashboards/views.yaml` picks them by ``kind``."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from ..study.arms import DEFAULT_CLAIM
from .claims import by_condition, controls_line
from .record_views import RecordViews
from .rule import FAILS, HOLDS, OUTCOMES
from .summary import StudyReport
from .tables import write_csv
from .verdict_views import VerdictViews


def dashboards_dir() -> Path:
    """The page template and views shipped with the package."""
    return Path(str(files("redistill_study") / "dashboards"))


class Renderer(VerdictViews, RecordViews):
    """Every view of the dashboard, by the name `views.yaml` gives its ``kind``."""


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
        body = draw(view)
        if not body and view.get("optional"):
            continue  # a view this study has nothing for (e.g. claims, with one claim)
        sections.append(
            f'<section id="{html.escape(view["id"])}"><h2>{html.escape(view["title"])}</h2>'
            f'<p class="note">{html.escape(view.get("note", ""))}</p>'
            f'<figure data-view="{html.escape(view["id"])}">{body}</figure></section>'
        )
    d = report.decision
    verdict_class = {OUTCOMES[HOLDS]: "holds", OUTCOMES[FAILS]: "fails"}.get(d.outcome, "open")
    shown = report.shown_decisions()
    changes = [
        f"{arm}: {a.would_change}" for _, x in shown for arm, a in x.arms.items() if a.would_change
    ]
    text = " · ".join(f"claim {c}: {x.text}" if c else x.text for c, x in shown)
    if report.several_claims:
        controls = controls_line(report.claims)
        text = " · ".join([*by_condition(report.claims), *([controls] if controls else []), text])
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (
        template.replace("{{title}}", html.escape(title))
        .replace("{{meta}}", html.escape(f"{meta} · rendered {stamp}"))
        .replace("{{verdict_class}}", verdict_class)
        .replace("{{verdict}}", html.escape(text))
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
        f"{_question(report)} — {report.study.get('name')}",
        meta,
    )
    return {"csv": csv_path, "dashboard": index, "files": files}


def _question(report: StudyReport) -> str:
    if report.several_claims:
        return "Do fixed settings generalise? (" + ", ".join(c.name for c in report.claims) + ")"
    if not report.claims or report.claims[0].name == DEFAULT_CLAIM:
        return "Does one fixed λ generalise?"
    (claim,) = report.claims
    return f"Does {', '.join(claim.claim.arms.fixed)} need no tuning? (claim {claim.name})"
