"""Config validation: good configs pass; bad ones give one line with file, line and key, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import REPO, tiny_study, validation_error, write_yaml

from redistill_study.cli import main
from redistill_study.config import load_study
from redistill_study.errors import ConfigError


def test_shipped_default_study_validates(capsys) -> None:
    assert main(["validate", str(REPO / "studies" / "default.yaml")]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("study", sorted(p.name for p in (REPO / "studies").glob("*.yaml")))
def test_every_shipped_study_validates(study: str, capsys) -> None:
    path = str(REPO / "studies" / study)
    assert main(["validate", "--skip-files", path]) == 0, capsys.readouterr().err
    # With its files: valid where the data is on this machine, else one line saying where.
    code = main(["validate", path])
    captured = capsys.readouterr()
    if code == 2:
        assert captured.err.count("\n") == 1 and "dataset.root" in captured.err
        dataset = yaml.safe_load(Path(path).read_text())["dataset"]["name"]
        assert dataset not in ("digits", "fashion_mnist")  # these two are here
    else:
        assert code == 0 and "ok" in captured.out


def _error_for(tmp_path: Path, data, capsys) -> str:
    return validation_error(tmp_path, data, capsys)


def test_unknown_key_with_suggestion_and_line(tmp_path: Path, capsys) -> None:
    data = tiny_study()
    data["tuning"] = {"trails": 3}
    err = _error_for(tmp_path, data, capsys)
    assert "bad.yaml:" in err and "tuning.trails" in err and "did you mean 'trials'" in err
    line = int(err.split("bad.yaml:")[1].split(":")[0])
    assert (tmp_path / "bad.yaml").read_text().splitlines()[line - 1].strip().startswith("trails")


def _misspell_param(d):
    d["methods"][1]["params"] = {"Tt": 2.0}


def _misspell_arg(d):
    d["pairs"][0]["student"]["args"] = {"hiden": 16}


def _misspell_required(d):
    d["pairs"][0]["student"]["modle"] = d["pairs"][0]["student"].pop("model")


@pytest.mark.parametrize(
    ("mutate", "key", "hint"),
    [
        (_misspell_param, "methods[1].params", "did you mean 'T'?"),
        (
            _misspell_arg,
            "pairs[0].student.args",
            "takes no argument 'hiden'; did you mean 'hidden'?",
        ),
        (_misspell_required, "pairs[0].student.model", "found 'modle' — a misspelling?"),
    ],
)
def test_misspellings_at_every_level_get_a_hint(tmp_path: Path, capsys, mutate, key, hint) -> None:
    data = tiny_study()
    assert data["methods"][1]["name"] == "kd" and data["pairs"][0]["student"]["model"]
    mutate(data)
    err = _error_for(tmp_path, data, capsys)
    assert f"{key}:" in err and hint in err, err


@pytest.mark.parametrize(
    ("mutate", "key", "expected"),
    [
        (lambda d: d["train"].update(epochs=-1), "train.epochs", "greater than or equal to 1"),
        (lambda d: d["train"].update(lr="fast"), "train.lr", "number"),
        (
            lambda d: d["pairs"][0]["student"].update(model="resnet999"),
            "pairs[0].student.model",
            "unknown model",
        ),
        (lambda d: d["methods"].append({"name": "kdd"}), "methods[4].name", "did you mean 'kd'"),
        (
            lambda d: d["methods"][1].update(params={"T": -3}),
            "methods[1].params",
            "outside its domain",
        ),
        (
            lambda d: d.update(noise=[{"kind": "confident_wrong", "levels": [1.5]}]),
            "noise[0].levels",
            "fractions",
        ),
        (lambda d: d.update(pairs=[]), "pairs", "at least 1"),
        (
            lambda d: d.update(verdict={"fixed": ["redistill_tuned"]}),
            "verdict.fixed[0]",
            "a fixed arm needs tune: false",
        ),
        (
            lambda d: d.update(verdict={"searched": "kd"}),
            "verdict.searched",
            "searches nothing",
        ),
        (
            lambda d: d.update(verdict={"reference": "kdd"}),
            "verdict.reference",
            "did you mean 'kd'",
        ),
        (lambda d: d.update(verdict={"margin": 2}), "verdict.margin", "less than 1"),
        (lambda d: d.update(tuning={"seed": 1}), "tuning.seed", "evaluation seeds"),
        (
            lambda d: d["methods"].append({"name": "kd_t2", "method": "kdx"}),
            "methods[4].method",
            "unknown method",
        ),
        (lambda d: d.pop("methods"), "methods", "required"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, capsys, mutate, key, expected) -> None:
    data = tiny_study()
    mutate(data)
    err = _error_for(tmp_path, data, capsys)
    assert f": {key}:" in err, err
    assert expected in err, err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary", "binary"),
        (b"- a\n- b\n", "mapping"),
        (b"name: [unclosed\n", "invalid YAML"),
    ],
)
def test_broken_files(tmp_path: Path, capsys, content: bytes, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(path) in err and err.count("\n") == 1


def test_missing_file_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_load_study_returns_typed_config(tiny_config: Path) -> None:
    config = load_study(tiny_config)
    assert config.pairs[0].label == "mlp-a" and config.train.epochs == 3
    with pytest.raises(ConfigError):
        load_study(tiny_config.parent / "missing.yaml")


def test_checkpoint_problems_are_caught_by_validation(tmp_path: Path, capsys) -> None:
    import torch

    from redistill_study.models import create_model

    wrong_classes = tmp_path / "teacher_5_classes.pth"
    torch.save({"model": create_model("digits_mlp", num_classes=5).state_dict()}, wrong_classes)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(wrong_classes.read_bytes()[:200])
    for ckpt, expected in ((wrong_classes, "shape mismatch"), (truncated, "not a readable")):
        data = tiny_study()
        data["pairs"][0]["teacher"] = {"model": "digits_mlp", "checkpoint": str(ckpt)}
        data["noise"] = [{"kind": "none"}]
        path = write_yaml(tmp_path / "ckpt.yaml", data)
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert "pairs[0].teacher.checkpoint" in err and expected in err and err.count("\n") == 1


def test_bad_model_args_are_caught_by_validation(tmp_path: Path, capsys) -> None:
    data = tiny_study()
    data["pairs"][0]["student"]["args"] = {"depth_of_field": 3}
    path = write_yaml(tmp_path / "args.yaml", data)
    assert main(["validate", str(path)]) == 2
    assert "pairs[0].student.args" in capsys.readouterr().err


def test_arms_by_role_and_aliases(tmp_path: Path) -> None:
    from redistill_study.study import build_plan

    data = tiny_study()
    # A second *fixed* arm called redistill_tuned searches nothing: no searched arm by default.
    data["methods"] = [
        {"name": "kd"},
        {"name": "redistill"},
        {"name": "redistill_tuned", "tune": False, "params": {"lam": -1.6667}},
        {"name": "kd_t2", "method": "kd", "params": {"T": 2.0}},
    ]
    plan = build_plan(load_study(write_yaml(tmp_path / "roles.yaml", data)))
    assert plan.arms.searched is None and plan.arms.fixed == ("redistill",)
    assert plan.method("kd_t2").cls.name == "kd" and plan.method("kd_t2").hparams()["T"] == 2.0
    # The defaults when the study has every arm, and the search seed apart from evaluation.
    plan = build_plan(load_study(REPO / "studies" / "default.yaml"))
    assert plan.arms.reference == "kd" and plan.arms.searched == "redistill_tuned"
    assert plan.tuning_seed not in plan.seeds


def test_a_study_file_cannot_build_python_objects(tmp_path: Path, capsys) -> None:
    """The loader is a safe one (PyYAML's SafeLoader, in C where built): a Python tag is an
    invalid-YAML line with exit 2, and nothing runs."""
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "evil.yaml" in err and "Traceback" not in err
    assert not marker.exists()
