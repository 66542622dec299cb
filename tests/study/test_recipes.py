"""Recipes as a declared study dimension: how they expand into cells, units and Optuna study
names, what each cell trains under, which cells share a cohort, the errors `validate` gives for
bad recipes, and a study run under two recipes end to end (both stores, summary and verdict)."""

from __future__ import annotations

import csv
from pathlib import Path

import mlflow
import optuna
import pytest
from helpers import tiny_study, validation_error, write_yaml

from redistill_study.cli import main
from redistill_study.config import StudyConfig
from redistill_study.study import build_plan
from redistill_study.study.phases import Phase

TWO_RECIPES = [
    {"name": "plain", "primary": True},
    {"name": "clip5", "grad_clip": 5.0, "methods": ["kd", "redistill", "redistill_tuned"]},
]


def _plan(**overrides):
    return build_plan(StudyConfig.model_validate(tiny_study(**overrides)))


def test_a_study_without_recipes_has_one_plain_primary_recipe() -> None:
    plan = _plan()
    assert [r.name for r in plan.recipes] == ["plain"] and plan.primary_recipe == "plain"
    unit = plan.first_units()[0]
    assert unit.name == "tiny/mlp-a/none/plain/ce/seeds"
    assert plan.cell_recipe(unit.cell) == plan.config.train


def test_every_cell_and_unit_carries_its_recipe() -> None:
    plan = _plan(recipes=TWO_RECIPES)
    assert len(plan.cells) == 2 * 2 * 2  # recipes × pairs × noise settings
    names = [u.name for u in plan.all_units()]
    assert "tiny/mlp-a/confident_wrong=0.3/clip5/redistill/seeds" in names
    assert "tiny/mlp-b/none/clip5/redistill_tuned/search" in names
    assert "tiny/mlp-b/none/clip5/redistill_tuned/transfer" in names
    # The secondary recipe trains only the arms it names; the primary trains every arm.
    clipped = {u.method.name for u in plan.all_units() if u.cell.recipe.name == "clip5"}
    plain = {u.method.name for u in plan.all_units() if u.cell.recipe.name == "plain"}
    assert clipped == {"kd", "redistill", "redistill_tuned"}
    assert plain == {"ce", "kd", "redistill", "redistill_tuned"}
    assert len(names) == len(set(names))
    slots = plan.slots(next(u for u in plan.first_units() if u.cell.recipe.name == "clip5"))
    assert {s.recipe for s in slots} == {"clip5"}
    assert {s.to_user_attrs()["recipe"] for s in slots} == {"clip5"}


def test_transfer_draws_on_the_same_recipe_only() -> None:
    plan = _plan(recipes=TWO_RECIPES)
    transfer = next(
        u
        for u in plan.dependent_units()
        if u.phase is Phase.TRANSFER and u.cell.recipe.name == "clip5"
    )
    sources = plan.sources(transfer)
    assert sources and {s.cell.recipe.name for s in sources} == {"clip5"}
    assert all(s.cell.pair.label != transfer.cell.pair.label for s in sources)


def test_recipe_overrides_apply_after_the_pairs_and_lr_scale_last() -> None:
    data = tiny_study(
        recipes=[
            {"name": "plain"},
            {"name": "slow", "lr_scale": 0.2, "epochs": 5},
            {"name": "clip1", "grad_clip": 1.0},
        ]
    )
    data["pairs"][1]["train"] = {"lr": 0.1}
    plan = build_plan(StudyConfig.model_validate(data))
    by = {(c.pair.label, c.recipe.name): c for c in plan.cells if c.noise.label == "none"}
    assert plan.primary_recipe == "plain"  # the one without overrides
    slow = plan.cell_recipe(by[("mlp-b", "slow")])
    assert slow.lr == pytest.approx(0.02) and slow.epochs == 5
    assert plan.cell_recipe(by[("mlp-a", "slow")]).lr == pytest.approx(0.01)
    assert plan.cell_recipe(by[("mlp-a", "clip1")]).grad_clip == 1.0
    # A clip is applied per member, so clipped and plain students share one cohort; a
    # different learning rate or length does not.
    key = plan.student_key
    assert key(by[("mlp-a", "plain")]) == key(by[("mlp-a", "clip1")])
    assert key(by[("mlp-a", "plain")]) != key(by[("mlp-a", "slow")])
    assert key(by[("mlp-a", "plain")]) != key(by[("mlp-b", "plain")])


def _error(tmp_path: Path, capsys, recipes, **overrides) -> str:
    return validation_error(tmp_path, tiny_study(recipes=recipes, **overrides), capsys)


def _line_of(tmp_path: Path, err: str) -> str:
    line = int(err.split("bad.yaml:")[1].split(":")[0])
    return (tmp_path / "bad.yaml").read_text().splitlines()[line - 1].strip()


@pytest.mark.parametrize(
    ("recipe", "key", "expected", "line_starts"),
    [
        (
            {"name": "c", "grad_clp": 5},
            "recipes[1].grad_clp",
            "did you mean 'grad_clip'",
            "grad_clp",
        ),
        ({"name": "c", "grad_clip": -1}, "recipes[1].grad_clip", "greater than 0", "grad_clip"),
        (
            {"name": "c", "schedule": "linear"},
            "recipes[1].schedule",
            "'step', 'cosine'",
            "schedule",
        ),
        ({"name": "c", "lr_scale": 0}, "recipes[1].lr_scale", "greater than 0", "lr_scale"),
        ({"name": "c", "methods": ["kd", "dkdd"]}, "recipes[1].methods[1]", "dkdd", "- dkdd"),
        (
            {"name": "c", "methods": ["redistill"]},
            "recipes[1].methods",
            "reference 'kd'",
            "methods",
        ),
        ({"name": "c", "primary": True}, "recipes[1].primary", "only one recipe", "primary"),
        ({"name": "plain"}, "recipes", "names must be unique", "recipes"),
    ],
)
def test_bad_recipes_get_one_line_naming_file_line_and_key(
    tmp_path: Path, capsys, recipe, key, expected, line_starts
) -> None:
    err = _error(tmp_path, capsys, [{"name": "plain", "primary": True}, recipe])
    assert f"{key}:" in err and expected in err, err
    assert _line_of(tmp_path, err).startswith(line_starts), err


def test_the_primary_recipe_cannot_restrict_its_arms(tmp_path: Path, capsys) -> None:
    err = _error(tmp_path, capsys, [{"name": "plain", "primary": True, "methods": ["kd"]}])
    assert "recipes[0].methods:" in err and "trains every arm" in err


@pytest.mark.slow
def test_a_study_under_two_recipes_end_to_end(tmp_path: Path, capsys) -> None:
    data = tiny_study(
        seeds=2,
        noise=[{"kind": "none"}],
        methods=[{"name": "ce"}, {"name": "kd"}, {"name": "redistill"}],
        train={"epochs": 2, "batch_size": 64, "lr": 0.05},
        recipes=[
            {"name": "plain", "primary": True},
            {"name": "clip1", "grad_clip": 1.0, "methods": ["kd", "redistill"]},
        ],
    )
    config = write_yaml(tmp_path / "r.yaml", data)
    out = tmp_path / "out"
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "verdict (recipe plain (as declared), primary):" in printed
    assert "under recipe clip1 (grad_clip 1.0):" in printed and "recipes: " in printed

    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'optuna.db'}")
    names = {s.study_name for s in storage.get_all_studies()}
    assert "tiny/mlp-a/none/clip1/redistill/seeds" in names
    assert "tiny/mlp-a/none/plain/ce/seeds" in names
    assert not any("/clip1/ce/" in n for n in names)  # not trained under the restricted recipe

    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["tiny"], filter_string="params.phase = 'seeds'")
    clipped = runs[runs["params.recipe"] == "clip1"]
    assert len(clipped) == 2 * 2 * 2  # pairs × methods × seeds
    assert {float(v) for v in clipped["params.recipe.grad_clip"]} == {1.0}
    assert len(runs[runs["params.recipe"] == "plain"]) == 2 * 3 * 2
    assert (clipped["metrics.train/grad_norm_max"] > 0).all()
    # The largest norm of any step is kept at the end, in both stores (the stability table's).
    assert (runs["metrics.train/grad_norm_peak"] >= runs["metrics.train/grad_norm_max"]).all()
    trials = storage.get_all_trials(
        storage.get_study_id_from_name("tiny/mlp-a/none/clip1/kd/seeds")
    )
    assert all(t.user_attrs["train/grad_norm_peak"] > 0 for t in trials)

    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["recipe"], r["method"]) for r in rows} == {
        ("plain", "ce"),
        ("plain", "kd"),
        ("plain", "redistill"),
        ("clip1", "kd"),
        ("clip1", "redistill"),
    }
    page = (out / "dashboard" / "index.html").read_text()
    assert 'id="recipes"' in page and "recipe clip1 (grad_clip 1.0)" in page


def test_a_recipe_can_be_added_to_a_started_study_but_not_changed(tmp_path: Path) -> None:
    from redistill_study.errors import UserError
    from redistill_study.study.protocol import PROTOCOL_KEY, lock_protocol

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    plain = [{"name": "plain", "primary": True}]
    lock_protocol(storage, _plan(recipes=plain), "s.yaml")
    # Rerunning the arms under a stabilised recipe is a resume, not a new question.
    lock_protocol(storage, _plan(recipes=[*plain, {"name": "clip5", "grad_clip": 5}]), "s.yaml")
    changed = [*plain, {"name": "clip5", "grad_clip": 1}]
    with pytest.raises(UserError, match=r"recipes\.clip5: .* differs from .*new name"):
        lock_protocol(storage, _plan(recipes=changed), "s.yaml")
    with pytest.raises(UserError, match="primary_recipe"):
        lock_protocol(
            storage,
            _plan(recipes=[{"name": "plain"}, {"name": "clip5", "grad_clip": 5, "primary": True}]),
            "s.yaml",
        )
    # A store written before recipes existed names its units without one: refused, clearly.
    old = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'old.db'}")
    study_id = old.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "tiny/_protocol")
    old.set_study_user_attr(study_id, PROTOCOL_KEY, '{"seeds": [0, 1], "verdict": {"alpha": 0.05}}')
    with pytest.raises(UserError, match=r"before recipes existed.*new --output"):
        lock_protocol(old, _plan(), "s.yaml")


def test_a_recipe_is_checked_with_every_pairs_own_recipe(tmp_path: Path, capsys) -> None:
    data = tiny_study(recipes=[{"name": "plain"}, {"name": "fast", "lr_scale": 1000}])
    data["pairs"][0]["train"] = {"lr": 0.5}  # 500 under `fast`: above lr's limit of 100
    err = validation_error(tmp_path, data, capsys)  # one line, exit 2
    assert "recipes[1].lr_scale:" in err and "pair 'mlp-a'" in err and "lr" in err, err
    err = _error(tmp_path, capsys, [{"name": "plain"}, {"name": "none", "methods": []}])
    assert "recipes[1].methods:" in err, err
