"""Stability, measured rather than inferred: per method × student × recipe, the runs that
diverged out of those that ended, the median optimiser step at which they blew up, the median
last finite gradient norm before it, and the median largest gradient norm of the runs that did
not diverge.

A divergence is a property of the optimiser recipe as much as of the loss; this table puts it
beside the verdict so the two are not confused. Crashed runs are missing data, not outcomes, and
are left out; a teacher-free method's copies across noise settings count once.

>>> rows = stability_rows([
...     {"method": "redistill", "phase": "seeds", "student": "mlp", "status": "diverged",
...      "divergence_step": 8, "divergence_grad_norm": 546.0},
...     {"method": "redistill", "phase": "seeds", "student": "mlp", "test/top1": 0.9,
...      "train/grad_norm_peak": 10.8},
...     {"method": "kd", "phase": "seeds", "student": "mlp", "test/top1": 0.9,
...      "train/grad_norm_peak": 15.0},
... ])
>>> [(r["method"], r["diverged"], r["runs"], r["median_step"], r["peak_norm"]) for r in rows]
[('kd', 0, 1, None, 15.0), ('redistill', 1, 2, 8.0, 10.8)]
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..study.arms import DEFAULT_REFERENCE
from ..study.phases import Status
from .records import status_of
from .tables import method_label

HEADERS = (
    "diverged",
    "median step",
    "last finite grad norm",
    "peak grad norm (not diverged)",
)


def _median(values: Iterable[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.median(finite) if finite else None


def stability_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows (method, student, recipe): runs that ended, diverged, the median step of
    divergence and the median last finite gradient norm before it (None without any, or where
    not recorded), and the median largest gradient norm of the runs that completed."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("shared_from") or status_of(r) == Status.FAILED:
            continue
        student = str(r.get("student") or r.get("pair"))
        groups[(method_label(r), student, str(r.get("recipe") or ""))].append(r)
    rows = []
    for (method, student, recipe), rs in sorted(groups.items()):
        blown = [r for r in rs if status_of(r) == Status.DIVERGED]
        ended = [r for r in rs if status_of(r) == Status.COMPLETE]
        rows.append(
            {
                "method": method,
                "student": student,
                "recipe": recipe,
                "runs": len(rs),
                "diverged": len(blown),
                "median_step": _median(r.get("divergence_step") for r in blown),
                "last_finite_norm": _median(r.get("divergence_grad_norm") for r in blown),
                "peak_norm": _median(r.get("train/grad_norm_peak") for r in ended),
            }
        )
    return rows


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.2g}"


def shown_rows(
    rows: Sequence[Mapping[str, Any]], reference: str | None = DEFAULT_REFERENCE
) -> list[Mapping[str, Any]]:
    """The rows worth reading: for every student with a run that diverged, each method that
    diverged with it under any recipe, and the reference, under every recipe — so a recipe
    where the same method did not diverge stands beside the one where it did."""
    blown = {(r["method"], r["student"]) for r in rows if r["diverged"]}
    students = {student for _, student in blown}
    return [
        r
        for r in rows
        if r["student"] in students
        and ((r["method"], r["student"]) in blown or r["method"] == reference)
    ]


def has_recipes(rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the rows come from more than one recipe (and so need the column)."""
    return len({r.get("recipe") for r in rows}) > 1


def table_cells(
    rows: Sequence[Mapping[str, Any]], recipes: bool | None = None
) -> tuple[list[str], list[list[str]]]:
    """Headers and cells, with a recipe column where the rows (or ``recipes``) say so."""
    recipes = has_recipes(rows) if recipes is None else recipes
    headers = ["method", "student", *(["recipe"] if recipes else []), *HEADERS]
    cells = [
        [
            r["method"],
            r["student"],
            *([r["recipe"]] if recipes else []),
            f"{r['diverged']} of {r['runs']}",
            _number(r["median_step"]),
            _number(r["last_finite_norm"], 1),
            _number(r["peak_norm"], 1),
        ]
        for r in rows
    ]
    return headers, cells


def stability_text(
    rows: Sequence[Mapping[str, Any]], reference: str | None = DEFAULT_REFERENCE
) -> list[str]:
    """The table's lines for the terminal: where a run diverged (one line says so when none
    did), with the reference beside it."""
    shown = shown_rows(rows, reference)
    if not shown:
        return ["stability: no evaluation run diverged"]
    headers, cells = table_cells(shown, has_recipes(rows))
    table = [headers, *cells]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = ["stability: where runs diverged, with the reference beside them (the rest: none)"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    return lines


def stability_markdown(
    rows: Sequence[Mapping[str, Any]], reference: str | None = DEFAULT_REFERENCE
) -> str:
    """The same rows as a markdown table ("" when no run diverged)."""
    shown = shown_rows(rows, reference)
    if not shown:
        return ""
    headers, cells = table_cells(shown, has_recipes(rows))
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(out)
