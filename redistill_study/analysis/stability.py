"""Stability, measured rather than inferred: per method × student × recipe, the runs that
diverged out of those that ended, and the median optimiser step at which they blew up.

A divergence is a property of the optimiser recipe as much as of the loss; this table puts it
beside the verdict so the two are not confused. Crashed runs are missing data, not outcomes, and
are left out; a teacher-free method's copies across noise settings count once.

>>> rows = stability_rows([
...     {"method": "redistill", "phase": "seeds", "student": "mlp", "status": "diverged",
...      "divergence_step": 8},
...     {"method": "redistill", "phase": "seeds", "student": "mlp", "test/top1": 0.9},
...     {"method": "kd", "phase": "seeds", "student": "mlp", "test/top1": 0.9},
... ])
>>> [(r["method"], r["recipe"], r["diverged"], r["runs"], r["median_step"]) for r in rows]
[('kd', '', 0, 1, None), ('redistill', '', 1, 2, 8.0)]
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .records import DIVERGED, FAILED, status_of
from .tables import method_label


def stability_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows (method, student, recipe): runs that ended, diverged, the median step of divergence
    (None without any, or where the step was not recorded)."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("shared_from") or status_of(r) == FAILED:
            continue
        student = str(r.get("student") or r.get("pair"))
        groups[(method_label(r), student, str(r.get("recipe") or ""))].append(r)
    rows = []
    for (method, student, recipe), rs in sorted(groups.items()):
        blown = [r for r in rs if status_of(r) == DIVERGED]
        steps = [float(r["divergence_step"]) for r in blown if r.get("divergence_step")]
        rows.append(
            {
                "method": method,
                "student": student,
                "recipe": recipe,
                "runs": len(rs),
                "diverged": len(blown),
                "median_step": statistics.median(steps) if steps else None,
            }
        )
    return rows


def stability_text(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The table's lines for the terminal: only the methods and students where a run
    diverged (one line says so when none did)."""
    shown = [r for r in rows if r["diverged"]]
    if not shown:
        return ["stability: no evaluation run diverged"]
    recipes = any(r.get("recipe") for r in rows)
    table = [["method", "student", *(["recipe"] if recipes else []), "diverged", "median step"]]
    for r in shown:
        step = "—" if r["median_step"] is None else f"{r['median_step']:.0f}"
        where = [r["recipe"]] if recipes else []
        table.append([r["method"], r["student"], *where, f"{r['diverged']} of {r['runs']}", step])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["stability: runs that diverged (the rest of the table: none)"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    return lines
