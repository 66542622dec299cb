"""A declared population: the sample is seeded and reproducible, pairs as its layout says, is
refused in one line where the population cannot supply it; the shipped Fashion-MNIST population
has at least 12 teachers and 12 students of at least three families each, all registered."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import REPO, tiny_study, validation_error

from redistill_study.config import StudyConfig
from redistill_study.config.population import pair_cells
from redistill_study.models import list_models
from redistill_study.study.plan import build_plan


def _population(**layout: Any) -> dict[str, Any]:
    study = tiny_study()
    del study["pairs"]
    study["population"] = {
        "seed": 3,
        "layout": {"pairing": "disjoint", "teachers": 3, "students": 3, **layout},
        "teachers": [
            {"model": "digits_mlp"},
            {"model": "digits_mlp", "args": {"hidden": 48}},
            {"model": "digits_mlp", "args": {"hidden": 96}},
            {"model": "digits_mlp", "args": {"hidden": 24}},
        ],
        "students": [
            {"model": "digits_mlp_small"},
            {"model": "digits_mlp_small", "args": {"hidden": 8}},
            {"model": "digits_mlp_small", "args": {"hidden": 4}},
        ],
    }
    return study


def test_the_sample_is_seeded_reproducible_and_drawn_from_the_population() -> None:
    def drawn(seed: int) -> list:
        study = _population()
        study["population"]["seed"] = seed
        return StudyConfig.model_validate(study).pairs

    assert drawn(3) == drawn(3)  # the same seed: the same pairs
    assert len({tuple(p.label for p in drawn(seed)) for seed in range(12)}) > 1
    population = StudyConfig.model_validate(_population()).population
    assert population is not None
    for pair in drawn(3):
        assert pair.teacher in population.teachers and pair.student in population.students
    plan = build_plan(StudyConfig.model_validate(_population()))
    assert plan.units_of_generalisation() == 3 and plan.distinct_students() == 3


@pytest.mark.parametrize(
    ("layout", "pairs", "per_student"),
    [
        ({}, 3, 1),
        ({"pairing": "per_student", "per_student": 2}, 6, 2),
        ({"pairing": "crossed", "teachers": 2}, 6, 2),
    ],
    ids=["disjoint", "per-student", "crossed"],
)
def test_the_layout_pairs_the_sample(layout: dict, pairs: int, per_student: int) -> None:
    config = StudyConfig.model_validate(_population(**layout))
    plan = build_plan(config)
    assert len(config.pairs) == pairs
    per = Counter(plan.student_label(p) for p in config.pairs)
    assert set(per.values()) == {per_student}
    assert len({(plan.teacher_label(p), plan.student_label(p)) for p in config.pairs}) == pairs


def test_pair_cells_give_every_teacher_the_same_number_of_students() -> None:
    cells = pair_cells(teachers=4, students=6, per_student=2)
    assert set(Counter(t for t, _ in cells).values()) == {3}
    assert all(len({t for t, s in cells if s == k}) == 2 for k in range(6))


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        (
            lambda s: s["population"]["layout"].update(teachers=5, students=5),
            "population",
            "the layout draws 5 teachers; the population declares 4",
        ),
        (
            lambda s: s["population"]["layout"].update(students=2),
            "population.layout",
            "as many teachers as students",
        ),
        (lambda s: s.update(pairs=tiny_study()["pairs"]), "pairs", "either pairs or population"),
        (lambda s: s["population"].update(teachers=[]), "population.teachers", "at least 1 item"),
        (lambda s: s.pop("population"), "pairs", "at least 1 pair"),
    ],
    ids=["too-many", "disjoint-unequal", "both", "empty", "neither"],
)
def test_a_sample_the_population_cannot_supply_is_one_line(
    tmp_path: Path, capsys, change, key: str, expected: str
) -> None:
    study = _population()
    change(study)
    err = validation_error(tmp_path, study, capsys)  # exit 2, one line, no traceback
    assert f": {key}:" in err and expected in err, err


def test_the_fashion_mnist_population_is_large_and_varied() -> None:
    study = yaml.safe_load((REPO / "studies" / "fashion_mnist_confirm.yaml").read_text())
    population = study["population"]
    registered = set(list_models())

    def family(name: str) -> str:  # fm_<family>_…
        return name.split("_")[1].rstrip("0123456789")

    for role in ("teachers", "students"):
        names = [m["model"] for m in population[role]]
        assert len(set(names)) >= 12, role
        assert set(names) <= registered, role
        assert len({family(n) for n in names}) >= 3, role
    config = StudyConfig.model_validate(study)
    assert len(config.pairs) == 12
    plan = build_plan(config)
    assert plan.units_of_generalisation() == 12 and plan.distinct_students() == 12
    assert not plan.runs_transfer()  # declared off: no claim is decided on it
