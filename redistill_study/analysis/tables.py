"""Per-cell tables from evaluation records: test top-1 per noise × method × pair, with every
diverged or failed run counted (at chance) and its reason shown — never a silent gap."""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..study.arms import DEFAULT_FIXED, DEFAULT_REFERENCE, DEFAULT_SEARCHED
from ..study.phases import Phase, Status
from .records import accuracy, status_of
from .statistics import t_interval

SEVERITY_KEYS = ("ece", "kl_noisy_clean", "wrong_fraction")
CSV_FIELDS = [
    "recipe",
    "noise",
    "method",
    "pair",
    "n",
    "diverged",
    "failed",
    "first_reason",
    "test_top1_mean",
    "test_top1_std",
    "ci_low",
    "ci_high",
    "teacher_noisy_top1",
    "teacher_clean_top1",
    *(f"teacher_{k}" for k in SEVERITY_KEYS),
    "delta_vs_reference",
]


def method_label(record: Mapping[str, Any]) -> str:
    """A method's name, marked when its setting was tuned on the other pairs."""
    if record["phase"] == Phase.TRANSFER:
        return f"{record['method']} (transferred)"
    return str(record["method"])


def summary_rows(
    records: Iterable[Mapping[str, Any]], reference: str | None = DEFAULT_REFERENCE
) -> list[dict[str, Any]]:
    """Rows (noise, method, pair): seeds, diverged and failed counts with the first reason,
    mean ± std and a 95 % t interval of test top-1 (diverged runs read at chance; crashed runs
    are missing and left out), the teacher."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["noise"], method_label(r), r["pair"])].append(r)

    def scored(rs: list[Mapping[str, Any]]) -> list[float]:
        return [accuracy(r)[0] for r in rs if status_of(r) != Status.FAILED]

    means = {k: statistics.fmean(scored(v)) if scored(v) else math.nan for k, v in groups.items()}
    rows = []
    for (noise, method, pair), rs in groups.items():
        accs = scored(rs)
        bad = [r for r in rs if status_of(r) != Status.COMPLETE]
        _, low, high, _ = t_interval(accs)
        ref = means.get((noise, reference, pair)) if reference else None
        teacher = next((r for r in rs if r.get("teacher/noisy_top1") is not None), rs[0])
        rows.append(
            {
                "noise": noise,
                "method": method,
                "pair": pair,
                "n": len(rs),
                "diverged": sum(status_of(r) == Status.DIVERGED for r in rs),
                "failed": sum(status_of(r) == Status.FAILED for r in rs),
                "first_reason": next((r.get("reason", "") for r in bad if r.get("reason")), ""),
                "test_top1_mean": means[(noise, method, pair)],
                "test_top1_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "ci_low": low,
                "ci_high": high,
                "teacher_noisy_top1": teacher.get("teacher/noisy_top1"),
                "teacher_clean_top1": teacher.get("teacher/clean_top1"),
                **{f"teacher_{k}": teacher.get(f"teacher/{k}") for k in SEVERITY_KEYS},
                "delta_vs_reference": None
                if ref is None or math.isnan(ref)
                else means[(noise, method, pair)] - ref,
            }
        )
    rows.sort(key=lambda r: (r["noise"] != "none", r["noise"], r["method"], r["pair"]))
    return rows


def cell_text(row: Mapping[str, Any]) -> str:
    """``97.96 ± 0.16``, with ``(k of n diverged, at chance)`` when runs are read at chance and
    ``(k of n crashed, missing)`` when runs are left out."""
    if math.isnan(row["test_top1_mean"]):
        text = "—"
    else:
        text = f"{100 * row['test_top1_mean']:.2f} ± {100 * row['test_top1_std']:.2f}"
    notes = []
    if row["diverged"]:
        notes.append(f"{row['diverged']} of {row['n']} diverged, at chance")
    if row["failed"]:
        notes.append(f"{row['failed']} of {row['n']} crashed, missing")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def format_table(
    rows: Sequence[Mapping[str, Any]],
    noise_order: Sequence[str] | None = None,
    fixed: str | None = DEFAULT_FIXED[0],
    reference: str | None = DEFAULT_REFERENCE,
    markdown: bool = False,
) -> str:
    """Method × noise rows, one column per pair: mean ± std (%); then the noisy teacher and the
    fixed arm's difference to the reference. Markdown for the README, else aligned text."""
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    by_key = {(r["noise"], r["method"], r["pair"]): r for r in rows}
    present = list(dict.fromkeys(r["noise"] for r in rows))
    noises = [n for n in (noise_order or present) if n in present]
    methods = list(dict.fromkeys(r["method"] for r in sorted(rows, key=_method_order)))
    lines = [["noise", "method", *pairs]]
    for noise in noises:
        for method in methods:
            cells = [by_key.get((noise, method, p)) for p in pairs]
            if any(cells):
                lines.append([noise, method, *("—" if c is None else cell_text(c) for c in cells)])
        teacher = []
        for pair in pairs:
            row = next((r for (n, _, p), r in by_key.items() if n == noise and p == pair), None)
            t = row["teacher_noisy_top1"] if row else None
            teacher.append("—" if t is None else f"{100 * t:.2f}")
        lines.append([noise, "teacher", *teacher])
        if fixed and reference:
            delta = []
            for pair in pairs:
                claim = by_key.get((noise, fixed, pair))
                d = None if claim is None else claim["delta_vs_reference"]
                delta.append("—" if d is None else f"{100 * d:+.2f}")
            lines.append([noise, f"{fixed} − {reference}", *delta])
    if markdown:
        out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
        out += ["| " + " | ".join(line) + " |" for line in lines[1:]]
        return "\n".join(out)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _method_order(row: Mapping[str, Any]) -> tuple[int, str]:
    order = ["ce", DEFAULT_REFERENCE, *DEFAULT_FIXED, DEFAULT_SEARCHED]
    name = row["method"]
    base = name.removesuffix(" (transferred)")
    rank = order.index(base) if base in order else len(order)
    return (rank, name)


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_value(r.get(k)) for k in CSV_FIELDS})
    tmp.replace(path)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value
