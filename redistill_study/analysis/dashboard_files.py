"""What every dashboard view shares: the files it writes beside the page (each figure as SVG,
each table as CSV) and the small HTML pieces (a table, points, a p-value)."""

from __future__ import annotations

import csv
import html
import math
from pathlib import Path
from typing import Any

from .summary import StudyReport


def pts(v: float, sign: bool = True) -> str:
    if not math.isfinite(v):
        return "—" if math.isnan(v) else ("+∞" if v > 0 else "−∞")
    return f"{100 * v:{'+' if sign else ''}.2f}"


def p_text(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.3g}"


def html_table(headers: list[str], rows: list[list[Any]], text_cols: int = 1) -> str:
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


class DashboardFiles:
    """A report's dashboard views write their figures and tables through this."""

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
