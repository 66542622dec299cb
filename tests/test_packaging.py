"""Installed as a user installs it (a wheel, not the source checkout), the package finds its
embedded studies and dashboards and works from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, tiny_study, write_yaml

from redistill_study.cli import main

pytestmark = pytest.mark.slow


def _installed(tmp_path: Path) -> Path:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("redistill_study-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return site


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "redistill_study", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_wheel_works_from_another_folder(tmp_path: Path, capsys) -> None:
    site = _installed(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [sys.executable, "-c", "import redistill_study; print(redistill_study.__file__)"],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(site))  # the wheel's copy, not the checkout
    # The embedded default study, shipped inside the package.
    validated = _run(site, elsewhere, "validate")
    assert validated.returncode == 0, validated.stderr
    assert str(site) in validated.stdout and "studies/default.yaml: ok" in validated.stdout
    # A finished study's report, drawn with the dashboards shipped inside the package.
    config = write_yaml(
        tmp_path / "tiny.yaml",
        tiny_study(
            seeds=1,
            train={"epochs": 1, "batch_size": 64, "lr": 0.05},
            methods=[{"name": "kd"}, {"name": "redistill"}],
        ),
    )
    out = tmp_path / "out"
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    reported = _run(site, elsewhere, "report", "--output", str(out))
    assert reported.returncode == 0, reported.stderr
    assert "verdict:" in reported.stdout
    page = (out / "dashboard" / "index.html").read_text()
    assert 'data-view="verdict"' in page
