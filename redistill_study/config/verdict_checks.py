"""The verdict's claims, checked against the study's methods: every arm a method of the study, in
a role its tuning allows, and every fixed arm the searched method itself at a fixed setting —
each problem one line naming its key."""

from __future__ import annotations

from typing import Any

from .._util import unknown_name
from ..losses import get_method
from ..noise import NoiseSetting
from ._located import Located
from .schema import MethodConfig, StudyConfig


def searched_parameters(method: MethodConfig) -> list[str]:
    """The parameters a tuned arm searches: its declared ``search``, else its whole space."""
    return list(method.search or get_method(method.registered).search_space)


def differences(fixed: MethodConfig, searched: MethodConfig) -> str | None:
    """Why ``fixed`` is not ``searched`` at a fixed setting (None: it is). The two must run the
    same loss (one class's ``terms``) and agree on every parameter the search leaves alone, so
    that the regret isolates the searched parameters."""
    f_cls, s_cls = get_method(fixed.registered), get_method(searched.registered)
    if _behaviour(f_cls) != _behaviour(s_cls) or f_cls.uses_teacher != s_cls.uses_teacher:
        return (
            f"{fixed.name!r} runs {fixed.registered} and the searched arm {searched.name!r} runs "
            f"{searched.registered}: a claim compares one method at a fixed setting with the "
            "same method searched"
        )
    free = set(searched_parameters(searched))
    f_h: dict[str, Any] = {**f_cls.defaults, **fixed.params}
    s_h: dict[str, Any] = {**s_cls.defaults, **searched.params}
    differ = [k for k in dict.fromkeys([*f_h, *s_h]) if k not in free and f_h.get(k) != s_h.get(k)]
    if not differ:
        return None
    shown = ", ".join(f"{k} {f_h.get(k)!r} ≠ {s_h.get(k)!r}" for k in differ)
    return (
        f"{fixed.name!r} and the searched arm {searched.name!r} differ outside the searched "
        f"parameters ({', '.join(sorted(free))}): {shown}; give both the same value or search it"
    )


def _behaviour(cls: type) -> dict[str, object]:
    """What a method class computes: every method and property it has, as the class in its MRO
    that defines it holds it (metadata — name, defaults, spaces — is data, not behaviour). Two
    classes with the same behaviour differ only in their defaults, as ``redistill`` and
    ``redistill_tuned`` do; ``lskd`` reuses KD's ``terms()`` but not its distributions."""
    out: dict[str, object] = {}
    for klass in cls.__mro__[:-1]:  # not object
        for name, value in vars(klass).items():
            hook = callable(value) or isinstance(value, (property, classmethod, staticmethod))
            if hook and not name.startswith("__"):
                out.setdefault(name, value)
    return out


def check_verdict(config: StudyConfig, located: Located) -> None:
    """Declared arms must be methods of the study, in a role their tuning allows; a declared
    claim's fixed arms must be its searched method at a fixed setting."""
    v = config.verdict
    methods = {m.name: m for m in config.methods}
    if v.claims is None:
        _check_arms(methods, located, ("verdict",), v.fixed or [], v.searched, v.reference)
        return
    for key in ("fixed", "searched", "reference"):
        if getattr(v, key) is not None:
            raise located.error(
                ("verdict", key), "declare the arms inside verdict.claims, or drop claims"
            )
    seen: set[str] = set()
    labels = noise_labels(config)
    for i, claim in enumerate(v.claims):
        where = ("verdict", "claims", i)
        if claim.name in seen:
            raise located.error((*where, "name"), f"{claim.name!r} names two claims")
        seen.add(claim.name)
        if claim.searched == "none":
            raise located.error((*where, "searched"), "a claim needs a searched arm")
        _check_arms(methods, located, where, claim.fixed, claim.searched, claim.reference)
        _check_scope(labels, located, where, claim.noises)
        for j, name in enumerate(claim.fixed):
            problem = differences(methods[name], methods[claim.searched])
            if problem:
                raise located.error((*where, "fixed", j), problem)


def noise_labels(config: StudyConfig) -> list[str]:
    """The study's noise settings as the plan and the records name them."""
    return list(
        dict.fromkeys(
            NoiseSetting(kind=n.kind, level=float(level), mode=n.mode).label
            for n in config.noise
            for level in n.levels
        )
    )


def _check_scope(
    labels: list[str], located: Located, where: tuple[str | int, ...], noises: list[str] | None
) -> None:
    """A claim's conditions are settings the study has (``labels``), each named once."""
    for k, label in enumerate(noises or ()):
        if label not in labels:
            raise located.error((*where, "noises", k), unknown_name(label, labels, "noise setting"))
        if label in (noises or [])[:k]:
            raise located.error((*where, "noises", k), f"{label!r} is named twice")


def _check_arms(
    methods: dict[str, MethodConfig],
    located: Located,
    where: tuple[str | int, ...],
    fixed: list[str],
    searched: str | None,
    reference: str | None,
) -> None:
    def known(name: str, *key: str | int) -> MethodConfig:
        if name not in methods:
            raise located.error((*where, *key), unknown_name(name, list(methods), "method"))
        return methods[name]

    for i, name in enumerate(fixed):
        if known(name, "fixed", i).is_tuned():
            raise located.error(
                (*where, "fixed", i), f"{name!r} is tuned; a fixed arm needs tune: false"
            )
    if searched not in (None, "none") and not known(searched, "searched").is_tuned():
        raise located.error(
            (*where, "searched"),
            f"{searched!r} searches nothing; the searched arm needs tune: true",
        )
    if reference is not None:
        known(reference, "reference")
