"""The end-of-run summary: test top-1 per method × noise setting × pair, from the Optuna store.

Only evaluation trials (phases ``seeds`` and ``final``) carry test metrics; the store, not this
process's memory, is the source, so the summary covers every worker's trials.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from ..study.plan import EVALUATION_PHASES
from .verdict import method_label

if TYPE_CHECKING:
    from ..study.runner import StudyRunner

REFERENCE_METHOD = "kd"
SEVERITY_KEYS = ("ece", "kl_noisy_clean", "wrong_fraction")
CLAIM_METHOD = "redistill"


def _completed(runner: StudyRunner, phases: tuple[str, ...]):
    """(unit, trial) for every COMPLETE trial of the plan's units in ``phases``."""
    for unit in runner.plan.all_units():
        if unit.phase not in phases:
            continue
        study = runner.study_for(unit)
        if study is None:
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            yield unit, t


def collect_records(runner: StudyRunner) -> list[dict[str, Any]]:
    """One record per completed evaluation trial."""
    return [
        {
            "pair": unit.cell.pair.label,
            "noise": unit.cell.noise.label,
            "method": unit.method.name,
            "phase": unit.phase,
            "seed": t.user_attrs.get("seed"),
            **{k: v for k, v in t.user_attrs.items() if "/" in k},
        }
        for unit, t in _completed(runner, EVALUATION_PHASES)
    ]


def collect_searches(runner: StudyRunner) -> list[dict[str, Any]]:
    """One record per completed tuning trial: its setting and validation top-1."""
    return [
        {
            "pair": unit.cell.pair.label,
            "noise": unit.cell.noise.label,
            "method": unit.method.name,
            "lam": t.params.get("lam"),
            "val_top1": t.value,
            "params": dict(t.params),
        }
        for unit, t in _completed(runner, ("search",))
    ]


def summary_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (noise, method, pair): n, mean ± std test top-1, noisy teacher top-1, Δ vs KD."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["noise"], method_label(r), r["pair"])].append(r)
    means = {k: statistics.fmean(r["test/top1"] for r in v) for k, v in groups.items()}
    rows = []
    for (noise, method, pair), rs in groups.items():
        accs = [r["test/top1"] for r in rs]
        kd = means.get((noise, REFERENCE_METHOD, pair))
        rows.append(
            {
                "noise": noise,
                "method": method,
                "pair": pair,
                "n": len(accs),
                "test_top1_mean": means[(noise, method, pair)],
                "test_top1_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "teacher_noisy_top1": rs[0].get("teacher/noisy_top1"),
                "teacher_clean_top1": rs[0].get("teacher/clean_top1"),
                **{f"teacher_{k}": rs[0].get(f"teacher/{k}") for k in SEVERITY_KEYS},
                "delta_vs_kd": None if kd is None else means[(noise, method, pair)] - kd,
            }
        )
    rows.sort(key=lambda r: (r["noise"] != "none", r["noise"], r["method"], r["pair"]))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows method × noise; per pair: mean ± std (%); then the teacher and REDistill − KD."""
    pairs = sorted({r["pair"] for r in rows})
    by_key = {(r["noise"], r["method"], r["pair"]): r for r in rows}
    noises = list(dict.fromkeys(r["noise"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    header = ["noise", "method", *pairs]
    lines = [header]
    for noise in noises:
        for method in methods:
            cells = []
            for pair in pairs:
                r = by_key.get((noise, method, pair))
                cells.append(
                    "—"
                    if r is None
                    else f"{100 * r['test_top1_mean']:.2f} ± {100 * r['test_top1_std']:.2f}"
                )
            if any(c != "—" for c in cells):
                lines.append([noise, method, *cells])
        teacher, delta = [], []
        for pair in pairs:
            any_row = next((r for (n, _, p), r in by_key.items() if n == noise and p == pair), None)
            t = any_row and any_row["teacher_noisy_top1"]
            teacher.append("—" if t is None else f"{100 * t:.2f}")
            claim = by_key.get((noise, CLAIM_METHOD, pair))
            delta.append(
                "—"
                if claim is None or claim["delta_vs_kd"] is None
                else f"{100 * claim['delta_vs_kd']:+.2f}"
            )
        lines.append([noise, "teacher (noisy)", *teacher])
        lines.append([noise, "redistill − kd", *delta])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for i, row in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    fields = [
        "noise",
        "method",
        "pair",
        "n",
        "test_top1_mean",
        "test_top1_std",
        "teacher_noisy_top1",
        "teacher_clean_top1",
        *(f"teacher_{k}" for k in SEVERITY_KEYS),
        "delta_vs_kd",
    ]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k) for k in fields})
    tmp.replace(path)


def summarize(runner: StudyRunner, elapsed: float) -> dict[str, Any]:
    records = collect_records(runner)
    rows = summary_rows(records)
    output = runner.options.output
    csv_path = output / "summary.csv"
    write_csv(rows, csv_path)
    assert runner.tracker is not None and runner.parent_run_id is not None
    runner.tracker.log_artifact(runner.parent_run_id, csv_path)
    runner.tracker.log_metrics(
        runner.parent_run_id, {"elapsed_seconds": elapsed, "trials_trained": runner.trained}
    )
    index, verdict = write_dashboard(runner, records)
    runner.tracker.log_artifacts(runner.parent_run_id, index.parent, "dashboard")
    table = format_table(rows) if rows else "(no completed evaluation trials yet)"
    runner.echo(f"\nTest top-1 (%), mean ± std over seeds — study {runner.config.name!r}\n{table}")
    runner.echo(f"\nverdict: {verdict.text}")
    runner.echo(f"\nsummary: {csv_path}")
    runner.echo(f"dashboard: {index}")
    runner.echo(f"trained {runner.trained} trial(s) in {elapsed:.1f} s")
    runner.echo(f"open the runs: {runner.tracker.ui_command()}")
    return {
        "rows": rows,
        "csv": csv_path,
        "elapsed": elapsed,
        "trained": runner.trained,
        "dashboard": index,
        "verdict": verdict,
    }


def write_dashboard(runner: StudyRunner, records: list[dict[str, Any]] | None = None):
    """Compute the verdict from the store and render ``<output>/dashboard/index.html``."""
    from .report import render_dashboard
    from .verdict import build_verdict

    if records is None:
        records = collect_records(runner)
    verdict = build_verdict(records, collect_searches(runner))
    noise_order = list(dict.fromkeys(cell.noise.label for cell in runner.plan.cells))
    meta = (
        f"study {runner.config.name} · {runner.config.dataset.name} · "
        f"{len(runner.config.pairs)} pairs · {runner.config.seeds} seeds"
    )
    index, _ = render_dashboard(
        verdict,
        runner.options.output / "dashboard",
        f"Does one fixed λ generalise? — {runner.config.name}",
        noise_order,
        meta,
    )
    return index, verdict
