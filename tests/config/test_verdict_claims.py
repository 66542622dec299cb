"""Claims in the study file: two claims validate and plan the right units; a claim that compares
unrelated methods, or whose searched arm searches nothing, gets one line naming the key and
exit 2; a method's declared search is a subset of its space, and a search samples only it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from helpers import tiny_study, validation_error, write_yaml

from redistill_study.cli import main
from redistill_study.config import StudyConfig
from redistill_study.study.arms import Arms, Claim
from redistill_study.study.phases import Phase
from redistill_study.study.plan import build_plan


def _two_claims(**verdict: Any) -> dict[str, Any]:
    study = tiny_study()
    study["methods"] = [
        {"name": "ce"},
        {"name": "kd"},
        {"name": "redistill"},
        {"name": "redistill_tuned", "trials": 3},
        {"name": "dkd", "tune": False, "params": {"warmup": 1}},
        {
            "name": "dkd_tuned",
            "method": "dkd",
            "tune": True,
            "search": ["alpha", "beta"],
            "params": {"warmup": 1},
            "trials": 3,
        },
    ]
    study["verdict"] = {
        "margin": 0.02,
        "claims": [
            {
                "name": "lambda",
                "fixed": "redistill",
                "searched": "redistill_tuned",
                "reference": "kd",
            },
            {"name": "dkd", "fixed": ["dkd"], "searched": "dkd_tuned", "reference": "kd"},
        ],
        **verdict,
    }
    return study


def test_two_claims_validate_and_plan_their_units(tmp_path: Path, capsys) -> None:
    path = write_yaml(tmp_path / "claims.yaml", _two_claims())
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    plan = build_plan(StudyConfig.model_validate(_two_claims()))
    assert plan.claims == (
        Claim("lambda", Arms(("redistill",), "redistill_tuned", "kd")),
        Claim("dkd", Arms(("dkd",), "dkd_tuned", "kd")),
    )
    assert plan.arms == plan.claims[0].arms  # the headline
    units = {(u.method.name, u.phase) for u in plan.first_units()}
    assert ("dkd_tuned", Phase.SEARCH) in units and ("dkd", Phase.SEEDS) in units
    dependent = {(u.method.name, u.phase) for u in plan.dependent_units()}
    assert ("dkd_tuned", Phase.FINAL) in dependent
    assert (("dkd_tuned", Phase.TRANSFER) in dependent) == plan.runs_transfer()
    # Every claim is part of the locked protocol.
    assert [c["name"] for c in plan.protocol()["verdict"]["claims"]] == ["lambda", "dkd"]


def test_a_declared_search_samples_only_its_parameters() -> None:
    plan = build_plan(StudyConfig.model_validate(_two_claims()))
    tuned = plan.method("dkd_tuned")
    assert set(tuned.space) == {"alpha", "beta"}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    suggested = tuned.suggest(trial)
    assert set(suggested) == {"alpha", "beta"} and set(trial.params) == {"alpha", "beta"}
    assert tuned.hparams()["T"] == 4.0 and tuned.hparams()["warmup"] == 1  # the rest fixed
    assert set(plan.method("redistill_tuned").space) == {"lam"}  # no search: the whole space


def test_a_study_without_claims_has_the_one_lambda_claim() -> None:
    plan = build_plan(StudyConfig.model_validate(tiny_study()))
    assert plan.claims == (Claim("lambda", Arms(("redistill",), "redistill_tuned", "kd")),)
    assert "claims" not in plan.protocol()["verdict"]  # resumes as a study from before claims


def _claim(study: dict[str, Any], i: int) -> dict[str, Any]:
    return study["verdict"]["claims"][i]


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        (  # a fixed arm of another method
            lambda d: _claim(d, 1).update(fixed=["kd"]),
            "verdict.claims[1].fixed[0]",
            "'kd' runs kd and the searched arm 'dkd_tuned' runs dkd",
        ),
        (  # the same method at a different non-searched setting: the parameter is named
            lambda d: d["methods"][4].update(params={}),
            "verdict.claims[1].fixed[0]",
            "outside the searched parameters (alpha, beta): warmup 20 ≠ 1",
        ),
        (  # a searched arm that searches nothing
            lambda d: _claim(d, 1).update(searched="dkd"),
            "verdict.claims[1].searched",
            "'dkd' searches nothing; the searched arm needs tune: true",
        ),
        (
            lambda d: _claim(d, 0).update(reference="kdd"),
            "verdict.claims[0].reference",
            "unknown method 'kdd'; did you mean 'kd'",
        ),
        (
            lambda d: _claim(d, 1).update(name="lambda"),
            "verdict.claims[1].name",
            "'lambda' names two claims",
        ),
        (  # claims and the one-claim keys together
            lambda d: d["verdict"].update(fixed=["redistill"]),
            "verdict.fixed",
            "declare the arms inside verdict.claims, or drop claims",
        ),
        (
            lambda d: d["methods"][5].update(search=["alpha", "gamma"]),
            "methods[5].search",
            "'gamma' is not in dkd's search space (searchable: alpha, beta, T)",
        ),
        (
            lambda d: d["methods"][4].update(search=["alpha"]),
            "methods[4].search",
            "searches nothing with tune: false",
        ),
        (  # the same loss function, other distributions: lskd is not kd at a setting
            lambda d: (
                d["methods"].append(
                    {"name": "lskd_tuned", "method": "lskd", "tune": True, "search": ["T"]}
                )
                or _claim(d, 1).update(fixed=["kd"], searched="lskd_tuned")
            ),
            "verdict.claims[1].fixed[0]",
            "'kd' runs kd and the searched arm 'lskd_tuned' runs lskd",
        ),
        (  # a name that could not key an MLflow parameter
            lambda d: _claim(d, 1).update(name="dkd+8"),
            "verdict.claims[1].name",
            "should match pattern",
        ),
        (  # a secondary recipe that asks a claim needs that claim's reference
            lambda d: d.update(
                recipes=[
                    {"name": "plain", "primary": True},
                    {"name": "clip1", "grad_clip": 1, "methods": ["ce", "dkd", "dkd_tuned"]},
                ]
            ),
            "recipes[1].methods",
            "must include the verdict's reference 'kd'",
        ),
        (
            lambda d: _claim(d, 0).pop("reference"),
            "verdict.claims[0].reference",
            "required",
        ),
        (  # a teacher condition the study does not have
            lambda d: _claim(d, 0).update(noises=["none", "confident_wrong=0.5"]),
            "verdict.claims[0].noises[1]",
            "unknown noise setting 'confident_wrong=0.5'; did you mean 'confident_wrong=0.3'",
        ),
        (
            lambda d: _claim(d, 0).update(noises=["none", "none"]),
            "verdict.claims[0].noises[1]",
            "'none' is named twice",
        ),
        (
            lambda d: _claim(d, 0).update(noises=[]),
            "verdict.claims[0].noises",
            "at least 1 item",
        ),
    ],
)
def test_an_invalid_claim_gets_one_line_and_exit_2(
    tmp_path: Path, capsys, change, key: str, expected: str
) -> None:
    study = _two_claims()
    change(study)
    err = validation_error(tmp_path, study, capsys)  # exit 2, one line, no traceback
    assert f": {key}:" in err and expected in err, err


def test_a_claim_per_teacher_condition_validates_plans_and_locks_its_scope(
    tmp_path: Path, capsys
) -> None:
    study = _two_claims()
    lam = _claim(study, 0)
    study["verdict"]["claims"] = [
        {**lam, "name": "lambda_clean", "noises": ["none"]},
        {**lam, "name": "lambda_wrong", "noises": ["confident_wrong=0.3"]},
    ]
    path = write_yaml(tmp_path / "scoped.yaml", study)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    plan = build_plan(StudyConfig.model_validate(study))
    arms = Arms(("redistill",), "redistill_tuned", "kd")
    assert plan.claims == (
        Claim("lambda_clean", arms, ("none",)),
        Claim("lambda_wrong", arms, ("confident_wrong=0.3",)),
    )
    locked = plan.protocol()["verdict"]["claims"]
    assert [c["noises"] for c in locked] == [["none"], ["confident_wrong=0.3"]]
    assert Claim.from_dict(locked[1]) == plan.claims[1]
    # A claim over every setting stores no scope: studies locked before scopes resume as they were.
    assert "noises" not in Claim("lambda", arms).as_dict()
