"""The methods' roles in the verdict — per claim its fixed arms, the searched arm and the
reference — as declared, else by the default names where the study has them. Their one home:
the plan, the protocol and the analysis all read them from here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import StudyConfig
    from .method_plan import MethodPlan

DEFAULT_FIXED = ("redistill", "redistill_student_first")
DEFAULT_SEARCHED = "redistill_tuned"
DEFAULT_REFERENCE = "kd"
DEFAULT_CLAIM = "lambda"  # the name of the one claim of a study that declares no claims


@dataclass(frozen=True)
class Arms:
    """The methods' roles in the verdict (never guessed from a name at analysis time)."""

    fixed: tuple[str, ...]
    searched: str | None
    reference: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"fixed": list(self.fixed), "searched": self.searched, "reference": self.reference}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Arms:
        """The arms of :meth:`as_dict` (or of a stored study summary, which carries the same
        keys)."""
        return cls(tuple(d.get("fixed") or ()), d.get("searched"), d.get("reference"))


@dataclass(frozen=True)
class Claim:
    """One declared "no tuning needed" claim: its name, its arms and the teacher conditions
    (noise settings) it covers — None: every setting of the study.

    >>> Claim.from_dict({"name": "dkd", "fixed": ["dkd"], "searched": "dkd_tuned"}).arms
    Arms(fixed=('dkd',), searched='dkd_tuned', reference=None)
    >>> Claim.from_dict({"name": "l", "fixed": ["r"], "searched": "t", "noises": ["none"]}).noises
    ('none',)
    """

    name: str
    arms: Arms
    noises: tuple[str, ...] | None = None
    control: str | None = None  # "positive" (must hold) or "negative" (must not hold)

    def as_dict(self) -> dict[str, Any]:
        # "noises" and "control" only where declared: a study locked before them keeps its
        # protocol.
        scope = {} if self.noises is None else {"noises": list(self.noises)}
        control = {} if self.control is None else {"control": self.control}
        return {"name": self.name, **self.arms.as_dict(), **scope, **control}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Claim:
        noises = d.get("noises")
        return cls(
            str(d["name"]),
            Arms.from_dict(d),
            None if noises is None else tuple(noises),
            d.get("control"),
        )

    def covers(self, noise: str) -> bool:
        """Whether the claim speaks of this teacher condition."""
        return self.noises is None or noise in self.noises


def claims_of(summary: Mapping[str, Any]) -> tuple[Claim, ...]:
    """The claims a stored study summary declares (a summary without ``claims``, as every study
    had before claims, declares one: its ``fixed``, ``searched`` and ``reference``).

    >>> [c.name for c in claims_of({"fixed": ["redistill"], "searched": "redistill_tuned"})]
    ['lambda']
    >>> claims_of({"claims": []})
    ()
    """
    if summary.get("claims") is not None:  # [] : a recipe that asks none of them
        return tuple(Claim.from_dict(c) for c in summary["claims"])
    return (Claim(DEFAULT_CLAIM, Arms.from_dict(summary)),)


def resolve_claims(config: StudyConfig, methods: Sequence[MethodPlan]) -> tuple[Claim, ...]:
    """The verdict's claims: as declared, else the one claim of ``fixed``, ``searched`` and
    ``reference`` (each as declared, else the default the study has)."""
    claims = config.verdict.claims
    if claims is not None:
        return tuple(
            Claim(
                c.name,
                Arms(tuple(c.fixed), c.searched, c.reference),
                None if c.noises is None else tuple(c.noises),
                c.control,
            )
            for c in claims
        )
    return (Claim(DEFAULT_CLAIM, resolve_arms(config, methods)),)


def resolve_arms(config: StudyConfig, methods: Sequence[MethodPlan]) -> Arms:
    """The arms of a study without claims: as declared, else the defaults it has, by role."""
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
    return "lam" in method.space
