"""Small, dependency-free SVG charts for the self-contained dashboard (no network to view): a
line chart and a scatter chart, with the pieces every chart shares (ticks, axes, a
legend); the verdict's forest plot is :mod:`~redistill_study.analysis.forest_svg`'s."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

PALETTE = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
]
W, H = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 28, 48


def esc(text: object) -> str:
    return html.escape(str(text))


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


class _Frame:
    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1

    def x(self, v: float) -> float:
        return LEFT + (v - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return H - BOTTOM - (v - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)


def _axes(f: _Frame, title: str, x_label: str, y_label: str, x_ticks=None) -> list[str]:
    out = [
        f'<text x="{LEFT}" y="16" class="title">{esc(title)}</text>',
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" class="axis"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" class="axis"/>',
        f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" class="label" text-anchor="middle">'
        f"{esc(x_label)}</text>",
        f'<text x="14" y="{(TOP + H - BOTTOM) / 2}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2})">{esc(y_label)}</text>',
    ]
    for t in ticks(f.y0, f.y1):
        out.append(
            f'<text x="{LEFT - 6}" y="{f.y(t) + 4}" class="tick" text-anchor="end">{t:g}</text>'
        )
        out.append(f'<line x1="{LEFT}" y1="{f.y(t)}" x2="{W - RIGHT}" y2="{f.y(t)}" class="grid"/>')
    for value, text in x_ticks or [(t, f"{t:g}") for t in ticks(f.x0, f.x1)]:
        out.append(
            f'<text x="{f.x(value)}" y="{H - BOTTOM + 16}" class="tick" '
            f'text-anchor="middle">{esc(text)}</text>'
        )
    return out


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = TOP + 14 * i
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{W - RIGHT + 10}" y="{y}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{W - RIGHT + 24}" y="{y + 9}" class="tick">{esc(name)}</text>')
    return out


def _svg(view: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" data-figure="{esc(view)}" role="img">' + "".join(body) + "</svg>"
    )


def padded(values: Sequence[float], pad: float = 0.05) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = (hi - lo) or abs(hi) or 1.0
    return lo - pad * span, hi + pad * span


def line_chart(
    view: str,
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    y_label: str,
) -> str:
    values = [v for vs in series.values() for v in vs if v is not None]
    f = _Frame((0, max(len(categories) - 1, 1)), padded(values or [0.0, 1.0]))
    body = _axes(f, title, "teacher noise", y_label, list(enumerate(categories)))
    for i, (_name, vs) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        pts = [(f.x(j), f.y(v)) for j, v in enumerate(vs) if v is not None]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>' for x, y in pts]
    return _svg(view, body + _legend(list(series)))


def scatter_chart(
    view: str,
    title: str,
    groups: Mapping[str, Sequence[tuple[float, float]]],
    x_label: str,
    y_label: str,
    vline: float | None = None,
) -> str:
    xs = [x for pts in groups.values() for x, _ in pts] + ([vline] if vline is not None else [])
    ys = [y for pts in groups.values() for _, y in pts]
    f = _Frame(padded(xs or [0.0, 1.0]), padded(ys or [0.0, 1.0]))
    body = _axes(f, title, x_label, y_label)
    if vline is not None:
        body.append(
            f'<line x1="{f.x(vline):.1f}" y1="{TOP}" x2="{f.x(vline):.1f}" '
            f'y2="{H - BOTTOM}" class="ref"/>'
        )
        body.append(f'<text x="{f.x(vline) + 4:.1f}" y="{TOP + 10}" class="tick">λ = 2/3</text>')
    for i, (_name, pts) in enumerate(groups.items()):
        color = PALETTE[i % len(PALETTE)]
        ordered = sorted(pts)
        if len(ordered) > 1:
            path = " ".join(f"{f.x(x):.1f},{f.y(y):.1f}" for x, y in ordered)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-opacity="0.4"/>'
            )
        body += [
            f'<circle cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="3.5" fill="{color}"/>'
            for x, y in ordered
        ]
    return _svg(view, body + _legend(list(groups)))
