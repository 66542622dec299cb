"""The verdict's question, declared in the study file before any result exists."""

from __future__ import annotations

from pydantic import Field

from ._strict import Strict


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
