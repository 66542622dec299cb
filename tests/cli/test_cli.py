"""What a user discovers from the command line: listings, exit codes, help on every option."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from helpers import tiny_study, write_yaml

from redistill_study.cli import build_parser, main


def test_models_lists_timm_and_torchvision_names(capsys) -> None:
    assert main(["models", "timm:mobilenetv3_small*"]) == 0
    assert "timm:mobilenetv3_small_100" in capsys.readouterr().out.split()
    assert main(["models", "torchvision:resnet1*"]) == 0
    assert "torchvision:resnet18" in capsys.readouterr().out.split()
    assert main(["models", "fm_*"]) == 0
    out = capsys.readouterr().out
    assert "fm_cnn_xs" in out and "M params" in out


@pytest.mark.parametrize("command", ["models", "methods"])
def test_nothing_matches_is_exit_2_for_every_listing(command: str, capsys) -> None:
    assert main([command, "zzz*"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_every_option_of_every_command_is_described() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, command in sub.choices.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            if not action.help:
                missing.append(f"{name} {action.option_strings or action.dest}")
    assert not missing, missing


def test_did_you_mean_inside_a_pairs_train(tmp_path: Path, capsys) -> None:
    data = tiny_study()
    data["pairs"][0]["train"] = {"eopchs": 3}
    path = write_yaml(tmp_path / "typo.yaml", data)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "pairs[0].train.eopchs" in err and "did you mean 'epochs'" in err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["design", "--sims", "0"], "--sims: expected a whole number ≥ 10, got 0"),
        (["design", "--seed-sd", "-1"], "--seed-sd: expected a number ≥ 0"),
        (["bench", "claims", "--workers-list", "abc"], "--workers-list: expected whole numbers"),
        (["bench", "losses", "--repeats", "0"], "--repeats: expected a whole number ≥ 1"),
        (["run", "--threads", "-3"], "--threads: expected a whole number ≥ 1, got -3"),
        (["run", "--cohort-size", "0"], "--cohort-size: expected a whole number ≥ 1, got 0"),
        (["run", "--workers", "two"], "--workers: expected a whole number, got 'two'"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], expected: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: redistill-study") and err.count("\n") == 1, err
    assert expected in err and "Traceback" not in err


def test_bench_study_prints_both_engines_and_their_ratio(tmp_path: Path, capsys) -> None:
    study = write_yaml(tmp_path / "tiny.yaml", tiny_study())
    assert main(["bench", "study", str(study), "--epochs", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "cohorts of K = 4" in out[0] and "best of 1 interleaved rounds" in out[0]
    rows = [line.split() for line in out[2:]]
    # One row per student architecture; model arguments tell two of one model apart.
    assert [r[0] for r in rows] == ["digits_mlp_small", "digits_mlp_small(hidden=8)"]
    seq, vec, ratio = float(rows[0][1]), float(rows[0][3]), float(rows[0][5].lstrip("×"))
    assert seq > 0 and vec > 0 and ratio == pytest.approx(vec / seq, rel=0.02, abs=0.02)
    # Beside it, the distance to the limit: FLOPs per sample (FlopCounterMode) of the MLP,
    # 64 → 10 → 10, counted by hand (forward 2·mn per layer, weight gradients 2·mn, the input
    # gradient 2·mn for the second layer only), and the achieved share of the matmul peak.
    peak = float(out[0].split("matmul peak ")[1].split()[0])
    assert peak > 0
    mflop, achieved = float(rows[0][6]), float(rows[0][7])
    by_hand = 2 * 64 * 10 * 2 + 2 * 10 * 10 * 3
    assert mflop == pytest.approx(by_hand / 1e6, rel=1e-3)
    assert achieved > 0 and rows[0][8].startswith("(")
