"""The dashboard, opened in a real headless Chromium: no console errors, every figure drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from redistill_study.analysis.report import render_dashboard
from redistill_study.analysis.verdict import build_verdict

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def _records() -> tuple[list[dict], list[dict]]:
    evaluations, searches = [], []
    for pair, base in (("A", 0.80), ("B", 0.70)):
        for noise, drop in (("none", 0.0), ("cw=0.3", 0.05)):
            for seed in range(3):
                for method, phase, delta in (
                    ("kd", "seeds", 0.0),
                    ("redistill", "seeds", 0.004),
                    ("redistill_tuned", "final", 0.006),
                    ("redistill_tuned", "transfer", 0.002),
                    ("ce", "seeds", -0.02),
                ):
                    evaluations.append(
                        {
                            "pair": pair,
                            "noise": noise,
                            "method": method,
                            "phase": phase,
                            "seed": seed,
                            "test/top1": base - drop + delta + 0.003 * seed,
                        }
                    )
            for lam in (-1.5, -0.5, 0.3, 0.9, 1.3):
                searches.append(
                    {
                        "pair": pair,
                        "noise": noise,
                        "method": "redistill_tuned",
                        "lam": lam,
                        "val_top1": base - drop - 0.01 * (lam - 0.4) ** 2,
                    }
                )
    return evaluations, searches


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
    evaluations, searches = _records()
    index, files = render_dashboard(
        build_verdict(evaluations, searches),
        tmp_path / "dashboard",
        "Dashboard test",
        ["none", "cw=0.3"],
        "constructed data",
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
        "accuracy-vs-noise",
        "lambda-curves",
        "optimal-lambda",
        "transfer-regret",
        "fixed-lambda-regret",
        "tests",
        "cells",
    }
    assert {v for v, _ in views} == expected
    assert all(int(n) > 0 for _, n in views)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    result = _chromium("--window-size=1280,4000", "--hide-scrollbars", f"--screenshot={shot}", url)
    assert result.returncode == 0 and shot.is_file() and shot.stat().st_size > 10_000
