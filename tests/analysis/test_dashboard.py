"""The dashboard, opened in a real headless Chromium: no console errors, every figure drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import CHROMIUM_FLAGS, REPO

from redistill_study.analysis.report import render_dashboard
from redistill_study.analysis.summary import build_report, markdown_summary
from redistill_study.study import Evaluation, Phase, Search, Status

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = CHROMIUM_FLAGS


def _results() -> SimpleNamespace:
    evaluations, searches = [], []
    for pair, base in (("A", 0.80), ("B", 0.70), ("C", 0.75), ("D", 0.78)):
        for noise, kind, level, drop in (
            ("none", "none", 0.0, 0.0),
            ("confident_wrong=0.3", "confident_wrong", 0.3, 0.05),
        ):
            for seed in range(3):
                for method, phase, delta in (
                    ("kd", "seeds", 0.0),
                    ("redistill", "seeds", 0.004),
                    ("redistill_student_first", "seeds", 0.001),
                    ("redistill_tuned", "final", 0.006),
                    ("redistill_tuned", "transfer", 0.002),
                    ("ce", "seeds", -0.02),
                ):
                    diverged = pair == "D" and method == "redistill" and seed == 2
                    evaluations.append(
                        Evaluation(
                            pair=pair,
                            teacher=f"t-{pair}",
                            student=pair,  # each pair its own student
                            noise=noise,
                            noise_kind=kind,
                            noise_level=level,
                            method=method,
                            phase=Phase(phase),
                            seed=seed,
                            status=Status.DIVERGED if diverged else Status.COMPLETE,
                            reason="epoch 1: non-finite loss" if diverged else "",
                            classes=10,
                            test_top1=base - drop + delta + 0.003 * seed,
                            metrics={"teacher/noisy_top1": 0.9 - drop},
                        ).row()
                    )
            for trial, lam in enumerate((-1.5, -0.5, 0.3, 0.9, 1.3)):
                searches.append(
                    Search(
                        pair=pair,
                        teacher=f"t-{pair}",
                        student=pair,
                        noise=noise,
                        noise_kind=kind,
                        noise_level=level,
                        method="redistill_tuned",
                        trial=trial,
                        params={"lam": lam},
                        value=base - drop - 0.01 * (lam - 0.4) ** 2,
                        status=Status.COMPLETE,
                    ).row()
                )
    study = {
        "name": "dashboard-test",
        "noise_order": ["none", "confident_wrong=0.3"],
        "margin": 0.01,
        "alpha": 0.05,
        "fixed": ["redistill", "redistill_student_first"],
        "searched": "redistill_tuned",
        "reference": "kd",
        "seeds": [0, 1, 2],
    }
    return SimpleNamespace(evaluations=evaluations, searches=searches, pending=0, study=study)


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_dashboard_in_headless_chromium(tmp_path: Path) -> None:
    report = build_report(_results())
    index, files = render_dashboard(
        report, tmp_path / "dashboard", "Dashboard test", "constructed data"
    )
    assert any(f.suffix == ".svg" for f in files) and any(f.suffix == ".csv" for f in files)
    page = index.read_text()
    # Self-contained: nothing is fetched (the only URL is the SVG namespace name).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(|@import""", page)
    url = index.resolve().as_uri()
    dom = _chromium("--virtual-time-budget=3000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console_errors = [
        line
        for line in dom.stderr.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)
    ]
    assert not console_errors, console_errors
    assert 'data-figures="ok"' in dom.stdout
    views = re.findall(r'<figure data-view="([^"]+)" data-elements="(\d+)"', dom.stdout)
    expected = {
        "verdict",
        "recipes",
        "stability",
        "estimates",
        "accuracy-vs-noise",
        "lambda-curves",
        "optimal-lambda",
        "vs-fixed",
        "transfer-regret",
        "claim-transfer",
        "noise-slopes",
        "cells",
    }
    assert {v for v, _ in views} == expected
    assert all(int(n) > 0 for _, n in views)
    # The forest plot: one per fixed arm and noise setting, with the margin and pooled rows.
    forests = re.findall(r'data-figure="(verdict-[^"]+)"', dom.stdout)
    assert len(forests) == 4
    assert "δ = 1.00" in dom.stdout and "mean over 4 pairs" in dom.stdout
    assert "δ_f = 3.00" in dom.stdout and "(diverged)" in dom.stdout  # pair D's failure
    # A diverged run is shown with its count and reason, never as a bare gap.
    assert "1 of 3 diverged, at chance" in dom.stdout and "non-finite loss" in dom.stdout
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    result = _chromium("--window-size=1280,4000", "--hide-scrollbars", f"--screenshot={shot}", url)
    assert result.returncode == 0 and shot.is_file() and shot.stat().st_size > 10_000


def test_the_readme_block_carries_every_estimate_and_the_failing_pairs() -> None:
    report = build_report(_results())
    block = markdown_summary(report)
    rows = [line for line in block.splitlines() if line.startswith("| redistill")]
    estimates = report.decision.estimates
    head = [r for r in rows if "vs" in r.split("|")[3]]
    assert len(head) == len(estimates) == 2 * 2 * 2  # arms × noise settings × quantities
    assert "upper (95 %)" in block  # fixed sequence: each arm at α
    for row, e in zip(head, estimates):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:2] == [e.arm, e.noise] and float(cells[3]) == round(100 * e.mean, 2)
        assert float(cells[6]) == pytest.approx(e.p_above_adjusted, rel=1e-2)
    # Pair D's diverged seed refutes redistill: it is named, with how it failed.
    stability = [r for r in rows if " of " in r.split("|")[3]]
    failing = [r for r in rows if r not in head and r not in stability]
    # ... and the stability table counts its divergences (one seed per noise setting).
    assert "Stability, where runs diverged" in block
    assert stability == ["| redistill | D | 2 of 6 | — | — | — |"]
    assert failing == [
        "| redistill | D | t-D | D | none, confident_wrong=0.3 | diverged in 1 of 3 seeds under "
        "none; diverged in 1 of 3 seeds under confident_wrong=0.3 |"
    ]
    assert report.decision.outcome == "does not hold"
    assert "so a lower bound above δ = 1.00 is a rejection" in block


def _claims_results() -> SimpleNamespace:
    """The same study with a second claim: KD's T fixed against T searched, reference ce."""
    results = _results()
    extra = []
    for row in results.evaluations:
        if row["method"] == "redistill_tuned":  # kd_tuned: final and transferred, near kd
            extra.append({**row, "method": "kd_tuned", "test/top1": row["test/top1"] - 0.004})
    results.evaluations += extra
    results.study["claims"] = [
        {
            "name": "lambda",
            "fixed": ["redistill", "redistill_student_first"],
            "searched": "redistill_tuned",
            "reference": "kd",
        },
        {"name": "kd_T4", "fixed": ["kd"], "searched": "kd_tuned", "reference": "ce"},
    ]
    return results


def test_every_claim_has_its_forest_plots_estimates_and_transfer(tmp_path: Path) -> None:
    report = build_report(_claims_results())
    assert [c.name for c in report.claims] == ["lambda", "kd_T4"]
    index, files = render_dashboard(report, tmp_path / "dashboard", "Claims", "constructed data")
    names = {f.name for f in files}
    # One forest plot per claim × fixed arm × noise setting.
    forests = sorted(n for n in names if n.startswith("verdict-") and n.endswith(".svg"))
    assert len(forests) == (2 + 1) * 2 and "verdict-kd_T4-kd-none.svg" in forests
    page = index.read_text()
    assert "claim kd_T4: " in page and "claim lambda: " in page  # the headline names both
    assert 'id="claim-transfer"' in page and "kd_tuned (transferred) − kd" in page
    block = markdown_summary(report)
    assert "*Claim kd_T4: kd vs kd_tuned, reference ce" in block
    assert "claims: 2, Bonferroni across them" in block
    assert "| kd_tuned (transferred) − kd | none | 4 |" in block  # each claim's transfer
    if CHROMIUM is not None:  # and it draws every figure in a real browser
        dom = _chromium("--virtual-time-budget=3000", "--dump-dom", index.resolve().as_uri())
        assert dom.returncode == 0 and 'data-figures="ok"' in dom.stdout


def test_a_study_with_one_claim_is_shown_as_before(tmp_path: Path) -> None:
    report = build_report(_results())
    index, _ = render_dashboard(report, tmp_path / "d", "One", "")
    page = index.read_text()
    assert "claim lambda" not in page and "Bonferroni" not in report.decision.criterion
    # Its transferred setting against the fixed arms is shown, without a claim's name.
    assert "redistill_tuned (transferred) − redistill_student_first" in page
    assert not any(n.startswith("verdict-lambda") for n in (p.name for p in index.parent.iterdir()))


def test_a_recipe_that_asks_some_claims_decides_them_at_the_studys_level() -> None:
    results = _claims_results()
    clipped = ("ce", "kd", "kd_tuned")  # kd_T4's arms only: lambda is not asked under clip1
    for row in results.evaluations:
        row["recipe"] = "plain"
    results.evaluations += [
        {**row, "recipe": "clip1"} for row in results.evaluations if row["method"] in clipped
    ]
    methods = sorted({row["method"] for row in results.evaluations})
    results.study.update(
        recipes={"plain": "", "clip1": "grad_clip 1"},
        primary_recipe="plain",
        recipe_methods={"plain": methods, "clip1": list(clipped)},
        methods=methods,
    )
    report = build_report(results)
    (clip1,) = report.others
    assert [c.name for c in clip1.claims] == ["kd_T4"]
    # One claim asked, but of a study of two: decided at α/2, and shown by claim.
    assert clip1.claims[0].level == 0.05 / 2 and clip1.several_claims
    assert all(c.level == 0.05 / 2 for c in report.claims)
    block = markdown_summary(report)
    assert "under recipe clip1 (grad_clip 1), claim kd_T4 (α = 0.025): " in block
