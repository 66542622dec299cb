"""The methods' roles in the verdict — fixed arms, the searched arm, the reference — as
declared, else by the default names where the study has them. Their one home: the plan, the
protocol and the analysis all read them from here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import StudyConfig
    from .plan import MethodPlan

DEFAULT_FIXED = ("redistill", "redistill_student_first")
DEFAULT_SEARCHED = "redistill_tuned"
DEFAULT_REFERENCE = "kd"


@dataclass(frozen=True)
class Arms:
    """The methods' roles in the verdict (never guessed from a name at analysis time)."""

    fixed: tuple[str, ...]
    searched: str | None
    reference: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"fixed": list(self.fixed), "searched": self.searched, "reference": self.reference}


def resolve_arms(config: StudyConfig, methods: Sequence[MethodPlan]) -> Arms:
    """The verdict's arms: as declared, else the defaults that the study has, by role."""
    by_name = {m.name: m for m in methods}
    v = config.verdict
    if v.fixed is not None:
        fixed = tuple(v.fixed)
    else:
        fixed = tuple(n for n in DEFAULT_FIXED if n in by_name and not by_name[n].tune)
    searched: str | None
    if v.searched is not None:
        searched = None if v.searched == "none" else v.searched
    else:
        m = by_name.get(DEFAULT_SEARCHED)
        searched = DEFAULT_SEARCHED if m is not None and m.tune and _searches_lambda(m) else None
    reference: str | None
    if v.reference is not None:
        reference = v.reference
    else:
        reference = DEFAULT_REFERENCE if DEFAULT_REFERENCE in by_name else None
    return Arms(fixed, searched, reference)


def _searches_lambda(method: MethodPlan) -> bool:
    return "lam" in method.cls.search_space
