"""A declared population of teachers and students, and the seeded sample of pairs a study draws
from it: "generalises to unseen pairs" then means "to another random sample of this population".

A layout is S students, each with k of T teachers, round robin (every teacher gets the same
number of students within one): ``disjoint`` (k = 1, T = S), ``per_student`` (k teachers each)
or ``crossed`` (k = T).

>>> cells = pair_cells(teachers=3, students=3, per_student=2)
>>> cells
[(0, 0), (1, 0), (2, 1), (0, 1), (1, 2), (2, 2)]
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from ._strict import Strict
from .pairs import ModelConfig, PairConfig, TeacherConfig

__all__ = ["LayoutConfig", "PopulationConfig", "pair_cells"]


def pair_cells(teachers: int, students: int, per_student: int) -> list[tuple[int, int]]:
    """(teacher, student) indices: student s with teachers s·k, …, s·k + k − 1 (mod T)."""
    k = per_student
    return [((s * k + j) % teachers, s) for s in range(students) for j in range(k)]


class LayoutConfig(Strict):
    """How many teachers and students the sample takes, and how they pair."""

    pairing: Literal["disjoint", "per_student", "crossed"] = Field(
        description="disjoint: each teacher and student in one pair; per_student: each student "
        "with `per_student` teachers; crossed: every teacher with every student"
    )
    teachers: int = Field(ge=1, le=1000, description="teachers drawn from the population")
    students: int = Field(ge=1, le=1000, description="students drawn from the population")
    per_student: int = Field(1, ge=1, description="per_student: teachers per student")

    @model_validator(mode="after")
    def _consistent(self) -> LayoutConfig:
        if self.pairing == "disjoint" and self.teachers != self.students:
            raise ValueError("disjoint pairs need as many teachers as students")
        if self.pairing == "per_student" and self.per_student > self.teachers:
            raise ValueError("per_student cannot exceed the number of teachers")
        return self

    @property
    def k(self) -> int:
        return {"disjoint": 1, "crossed": self.teachers}.get(self.pairing, self.per_student)


class PopulationConfig(Strict):
    """The models a study's pairs are drawn from, the layout and the sample's seed."""

    seed: int = Field(0, ge=0, le=2**31 - 1, description="the seed of the sample")
    layout: LayoutConfig = Field(description="how many of each to draw, and how they pair")
    teachers: list[TeacherConfig] = Field(min_length=1, description="the teachers to draw from")
    students: list[ModelConfig] = Field(min_length=1, description="the students to draw from")

    @model_validator(mode="after")
    def _enough(self) -> PopulationConfig:
        for role, have in (("teachers", self.teachers), ("students", self.students)):
            want = getattr(self.layout, role)
            if want > len(have):
                raise ValueError(
                    f"the layout draws {want} {role}; the population declares {len(have)}"
                )
        return self

    def sample(self) -> list[PairConfig]:
        """The pairs: a seeded draw of teachers and students (without replacement, each drawn
        in random order), paired by the layout. The same seed gives the same pairs."""
        rng = random.Random(self.seed)
        lay = self.layout
        teachers = rng.sample(range(len(self.teachers)), lay.teachers)
        students = rng.sample(range(len(self.students)), lay.students)
        t_names, s_names = _labels(self.teachers), _labels(self.students)
        return [
            PairConfig(
                name=f"{t_names[teachers[t]]}-{s_names[students[s]]}",
                teacher=self.teachers[teachers[t]],
                student=self.students[students[s]],
            )
            for t, s in pair_cells(lay.teachers, lay.students, lay.k)
        ]


def _labels(models: Sequence[ModelConfig]) -> list[str]:
    """Each entry's name in pair labels: its model, numbered where the model repeats (with
    other arguments)."""
    names = [m.model.replace(":", "_") for m in models]
    return [
        n if names.count(n) == 1 else f"{n}_{names[:i].count(n) + 1}" for i, n in enumerate(names)
    ]
