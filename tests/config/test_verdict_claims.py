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


def _controls() -> dict[str, Any]:
    study = _two_claims()
    study["methods"] += [
        {"name": "kd_ref", "method": "kd", "params": {"T": 4.02}},
        {
            "name": "kd_aa",
            "method": "kd",
            "tune": True,
            "trials": 2,
            "ranges": {"T": [3.96, 4.04], "w_kd": [0.891, 0.909]},
        },
        {"name": "kd_starved", "method": "kd", "params": {"w_ce": 0.003, "w_kd": 0.03}},
    ]
    study["verdict"]["claims"] += [
        {
            "name": "aa",
            "fixed": "kd",
            "searched": "kd_aa",
            "reference": "kd_ref",
            "control": "positive",
        },
        {
            "name": "starved",
            "fixed": "kd_starved",
            "searched": "kd_aa",
            "reference": "kd",
            "control": "negative",
            "noises": ["none"],
        },
    ]
    return study


def test_a_declared_range_narrows_the_search_and_controls_are_locked(
    tmp_path: Path, capsys
) -> None:
    path = write_yaml(tmp_path / "controls.yaml", _controls())
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    plan = build_plan(StudyConfig.model_validate(_controls()))
    space = plan.method("kd_aa").space
    assert (space["T"].low, space["T"].high) == (3.96, 4.04)
    assert space["w_ce"] == plan.method("kd").cls.search_space["w_ce"]  # not narrowed
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        suggested = plan.method("kd_aa").suggest(study.ask())
        assert 3.96 <= suggested["T"] <= 4.04 and 0.891 <= suggested["w_kd"] <= 0.909
    verdict = plan.protocol()["verdict"]
    assert verdict["ranges"] == {"kd_aa": {"T": [3.96, 4.04], "w_kd": [0.891, 0.909]}}
    roles = {c["name"]: c.get("control") for c in verdict["claims"]}
    assert roles == {"lambda": None, "dkd": None, "aa": "positive", "starved": "negative"}


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        ({"lam": [0.5, 0.7]}, "'lam' is not searched by 'kd_aa'"),
        ({"T": [0.5, 4.0]}, "expected [low, high] with 1 ≤ low ≤ high ≤ 8"),
        ({"T": [5.0, 4.0]}, "expected [low, high]"),
        ({"T": [4.0]}, "expected [low, high]"),
    ],
    ids=["not-searched", "outside", "reversed", "one-number"],
)
def test_a_bad_range_is_one_line(tmp_path: Path, capsys, ranges: dict, expected: str) -> None:
    study = _controls()
    study["methods"][-2]["ranges"] = ranges
    err = validation_error(tmp_path, study, capsys)
    assert ": methods[7].ranges." in err and expected in err, err


def test_an_unknown_control_role_is_one_line(tmp_path: Path, capsys) -> None:
    study = _controls()
    study["verdict"]["claims"][-1]["control"] = "neutral"
    err = validation_error(tmp_path, study, capsys)
    assert ": verdict.claims[3].control:" in err and "'positive' or 'negative'" in err, err


@pytest.mark.parametrize(("transfer", "runs"), [("on", True), ("off", False)])
def test_the_transfer_phase_runs_as_declared(transfer: str, runs: bool) -> None:
    plan = build_plan(StudyConfig.model_validate({**_two_claims(), "transfer": transfer}))
    phases = {u.phase for u in plan.dependent_units()}
    assert (Phase.TRANSFER in phases) is runs and Phase.FINAL in phases


def test_auto_runs_transfer_where_it_adds_at_most_a_fifth() -> None:
    # seeds 2: each searched arm's transfer costs 2 trainings beside the cell's own.
    cheap = _two_claims()
    cheap["methods"] = [
        *cheap["methods"],
        *({"name": f"kd_{i}", "method": "kd", "params": {"T": 2.0 + i}} for i in range(8)),
    ]
    costly = _two_claims()
    for study, runs in ((cheap, True), (costly, False)):
        plan = build_plan(StudyConfig.model_validate(study))
        cell = sum(m.trials + 2 if m.tune else 2 for m in plan.methods)
        transfer = 2 * sum(m.tune for m in plan.methods)
        assert (5 * transfer <= cell) is runs
        assert plan.runs_transfer() is runs
