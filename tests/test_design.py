"""The power calculator: the same rule as the verdict, its figures consistent with decisions
made on records, and the `design` command on every shipped study."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, study_records, tiny_study, write_yaml

from redistill_study.analysis.design import Design, power_report, simulate
from redistill_study.analysis.verdict import HOLDS, decide
from redistill_study.cli import main

MARGIN = 0.01


def test_simulation_agrees_with_decisions_on_records() -> None:
    # The vectorised simulation and decide() on generated records: same truth, same shares.
    truth = dict(regret=0.4 * MARGIN, deficit=0.0)
    spread = dict(run_sd=0.006, pair_sd=0.004)
    rng = np.random.default_rng(0)
    sims = 300
    on_records = np.mean(
        [
            decide(
                study_records(rng, pairs=6, **truth, **spread), margin=MARGIN, fixed=("redistill",)
            ).outcome
            == HOLDS
            for _ in range(sims)
        ]
    )
    design = Design(units=6, noises=("none", "noisy"), seeds=3, fixed_arms=1, margin=MARGIN)
    simulated = simulate(
        design, **truth, seed_sd=spread["run_sd"], pair_sd=spread["pair_sd"], sims=4000
    )[HOLDS]
    se = math.sqrt(simulated * (1 - simulated) / sims)
    assert abs(on_records - simulated) < 3.5 * se + 0.01


def test_size_power_and_units_needed() -> None:
    design = Design(units=10, noises=("none", "noisy"), seeds=3, fixed_arms=2, margin=MARGIN)
    report = power_report(design, seed_sd=0.005, pair_sd=0.005, sims=3000)
    assert report["size"] <= 0.05 / 2 + 3 * math.sqrt(0.025 * 0.975 / 3000)
    assert report["power"] > 0.8 and report["fails_at_3x"] > 0.8
    assert report["pairs_for_80"] is not None and report["pairs_for_80"] <= 10
    noisier = power_report(design, seed_sd=0.02, pair_sd=0.01, sims=3000)
    assert noisier["pairs_for_80"] > report["pairs_for_80"]


@pytest.mark.parametrize("study", sorted(p.name for p in (REPO / "studies").glob("*.yaml")))
def test_design_runs_on_every_shipped_study(study: str, capsys) -> None:
    assert main(["design", str(REPO / "studies" / study), "--json", "--sims", "300"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert {"power", "size", "pairs_for_80"} <= set(figures)
    assert 0.0 <= figures["size"] <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)


@pytest.mark.slow
def test_design_from_a_finished_study(tmp_path: Path, capsys) -> None:
    data = tiny_study(seeds=3, train={"epochs": 2, "batch_size": 64, "lr": 0.05})
    config = write_yaml(tmp_path / "t.yaml", data)
    out = tmp_path / "out"
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["design", str(config), "--from-output", str(out), "--sims", "200"]) == 0
    text = capsys.readouterr().out
    assert f"estimated from {out}" in text and "units for 80 % power" in text
