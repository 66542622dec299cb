"""The verdict's forest plot as SVG: every pair's and the pooled regret or deficit with the
bounds the rule used, the band where a bound must lie for the claim to hold, δ and δ_f."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .svg import esc, padded, ticks

ForestRow = tuple[str, float, float, float, bool]  # label, mean, low, high, pooled?
FOREST_ROW_H, FOREST_LEFT, FOREST_RIGHT, FOREST_TOP = 18, 230, 40, 40


class _ForestFrame:
    """The forest plot's horizontal scale. It follows the pairs and the pooled means; a pooled
    bound beyond them (one degree of freedom makes them vast) runs to the edge, as an infinite
    one does."""

    def __init__(self, title: str, rows: Sequence[ForestRow], marks: list[float]) -> None:
        finite = [
            v
            for _, m, lo, hi, pooled in rows
            for v in ((m,) if pooled else (m, lo, hi))
            if math.isfinite(v)
        ]
        self.lo, self.hi = padded([*finite, *marks])
        self.width = max(640, 7 * len(title) + 16)
        self.span = (self.hi - self.lo) or 1.0
        self.bottom = FOREST_TOP + FOREST_ROW_H * len(rows)  # below the last row

    def x(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)  # infinite bounds run to the edge
        return FOREST_LEFT + (v - self.lo) / self.span * (self.width - FOREST_LEFT - FOREST_RIGHT)


def _forest_marks(f: _ForestFrame, margin: float, failure_margin: float | None) -> list[str]:
    """The band where a bound must lie for the claim to hold, zero, δ and δ_f."""
    x, top, bottom = f.x, FOREST_TOP, f.bottom
    body = [
        f'<rect x="{x(f.lo):.1f}" y="{top - 6}" width="{x(margin) - x(f.lo):.1f}" '
        f'height="{bottom - top + 6}" fill="#2ca02c" fill-opacity="0.08"/>',
        f'<line x1="{x(0):.1f}" y1="{top - 6}" x2="{x(0):.1f}" y2="{bottom}" class="axis"/>',
        f'<line x1="{x(margin):.1f}" y1="{top - 6}" x2="{x(margin):.1f}" y2="{bottom}" '
        'class="ref"/>',
        f'<text x="{x(margin) + 3:.1f}" y="{top - 9}" class="tick">δ = {100 * margin:.2f}</text>',
    ]
    if failure_margin:
        body += [
            f'<line x1="{x(failure_margin):.1f}" y1="{top - 6}" x2="{x(failure_margin):.1f}" '
            f'y2="{bottom}" class="ref" stroke-dasharray="2 3"/>',
            f'<text x="{x(failure_margin) + 3:.1f}" y="{top - 20}" class="tick">'
            f"δ_f = {100 * failure_margin:.2f}</text>",
        ]
    return body


def _forest_row(f: _ForestFrame, i: int, row: ForestRow) -> list[str]:
    """One row: its label, and its interval with a dot (a pair) or a diamond (a pooled mean)."""
    label, mean, low, high, pooled = row
    x, y = f.x, FOREST_TOP + FOREST_ROW_H * i + FOREST_ROW_H / 2
    weight = 'font-weight="600"' if pooled else ""
    body = [
        f'<text x="{FOREST_LEFT - 8}" y="{y + 4:.1f}" class="tick" text-anchor="end" {weight}>'
        f"{esc(label)}</text>"
    ]
    if not math.isfinite(mean):
        return body
    color = "#d62728" if pooled else "#1f77b4"
    body.append(
        f'<line x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" '
        f'stroke="{color}" stroke-width="{3 if pooled else 1.5}"/>'
    )
    if pooled:
        body.append(
            f'<rect x="{x(mean) - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" '
            f'fill="{color}" transform="rotate(45 {x(mean):.1f} {y:.1f})"/>'
        )
    else:
        body.append(f'<circle cx="{x(mean):.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>')
    return body


def _forest_axis(f: _ForestFrame) -> list[str]:
    axis_y = f.bottom + 8
    body = [
        f'<text x="{f.x(t):.1f}" y="{axis_y + 10}" class="tick" text-anchor="middle">'
        f"{round(100 * t, 6):g}</text>"
        for t in ticks(f.lo, f.hi)
    ]
    body.append(
        f'<text x="{(FOREST_LEFT + f.width - FOREST_RIGHT) / 2:.1f}" y="{axis_y + 24}" '
        'class="label" text-anchor="middle">test top-1 difference (points)</text>'
    )
    return body


def forest_plot(
    view: str,
    title: str,
    rows: Sequence[ForestRow],
    margin: float,
    failure_margin: float | None = None,
) -> str:
    """Estimates with intervals, one row each (label, mean, low, high, pooled?), in points; the
    shaded band is where a bound must lie for the claim to hold (below the margin δ); a second
    line marks the failure margin δ_f that a pair's lower bound must not cross."""
    f = _ForestFrame(
        title, rows, [0.0, margin, -margin, *([failure_margin] if failure_margin else [])]
    )
    body = [f'<text x="8" y="16" class="title">{esc(title)}</text>']
    body += _forest_marks(f, margin, failure_margin)
    for i, row in enumerate(rows):
        body += _forest_row(f, i, row)
    body += _forest_axis(f)
    width, height = f.width, f.bottom + 36
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" data-figure="{esc(view)}" role="img">' + "".join(body) + "</svg>"
    )
