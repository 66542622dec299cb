"""The verdict's question, declared in the study file before any result exists."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ._strict import Strict


class ClaimConfig(Strict):
    """One "no tuning needed" claim: a method at a fixed setting against the same method searched
    per pair, and against a reference.

    >>> ClaimConfig(name="dkd", fixed="dkd", searched="dkd_tuned", reference="kd").fixed
    ['dkd']
    """

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$",  # a part of MLflow parameter and metric keys
        description="the claim's name (letters, digits, _ and -)",
    )
    fixed: list[str] = Field(
        min_length=1,
        description="the fixed arm(s): the searched method at its defaults or at a declared "
        "setting of the searched parameters (several: tested in this order, gatekept)",
    )
    searched: str = Field(description="the arm searched per pair: the same method, tune: true")
    reference: str = Field(
        description="the reference arm of the deficit (reference − fixed), e.g. kd, or ce for "
        "KD's own claim"
    )
    noises: list[str] | None = Field(
        None,
        min_length=1,
        description="the teacher conditions the claim covers, as the study names its noise "
        "settings (none, confident_wrong=0.3, label_noise_teacher=0.3 …); null: every setting. "
        "The same arms may be claimed once per condition, each claim decided on its own",
    )

    control: Literal["positive", "negative"] | None = Field(
        None,
        description="a check of the instrument whose truth is known by construction: positive "
        "(an A/A test: the searched space holds only settings equivalent to the fixed one; must "
        "hold) or negative (the fixed setting far from the searched optimum; must not hold). "
        "Controls are decided like any claim, inside the Bonferroni family",
    )

    @field_validator("fixed", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class VerdictConfig(Strict):
    """The question, declared before any result exists (and locked once a study has started)."""

    margin: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="the margin δ in accuracy, as a fraction (0.01 = 1 point; null: the data "
        "set's default)",
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="the test's level")
    fixed: list[str] | None = Field(
        None,
        description="the fixed arms (null: redistill and redistill_student_first, where present)",
    )
    searched: str | None = Field(
        None,
        description="the arm whose λ is searched per pair (null: redistill_tuned where it is "
        'tuned; "none": no tuning verdict)',
    )
    reference: str | None = Field(None, description="the reference arm (null: kd, where present)")
    claims: list[ClaimConfig] | None = Field(
        None,
        min_length=1,
        description="the claims, each decided on its own at α/K (Bonferroni across them; null: "
        "the one claim that fixed, searched and reference declare)",
    )
    failure_margin: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="δ_f: a pair whose regret or deficit is shown above it refutes the claim "
        "(null: 3 × margin)",
    )
    min_pairs: int = Field(10, ge=1, description="the fewest pairs with which a claim may hold")
    min_students: int = Field(
        4, ge=1, description="the fewest distinct students with which a claim may hold"
    )
    min_teachers: int = Field(
        4, ge=1, description="the fewest distinct teachers with which a claim may hold"
    )
