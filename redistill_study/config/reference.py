"""The configuration reference (docs/config.md), generated from the schema itself.

``python -m redistill_study.config.reference > docs/config.md`` rewrites it; a test fails when
the file and the schema disagree.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .schema import StudyConfig

HEADER = """# Configuration reference

Every key of a study config, generated from the schema (`redistill_study/config/schema.py`, with
`recipes.py` and `verdict.py` beside it) by
`python -m redistill_study.config.reference`; `make docs` rewrites this file and a test fails
when it is out of date. Unknown keys are errors, with a "did you mean". Paths are relative to
the config file. `[]` marks a list of such mappings.
"""


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (``X``, ``X | None``, ``list[X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out = []
    for arg in typing.get_args(annotation):
        out += _models(arg)
    return out


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is list:
        (inner,) = typing.get_args(annotation)
        return f"list of {_type_name(inner)}"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]  # no factory here takes data
        if isinstance(value, BaseModel):
            return "(see below)"
        if isinstance(value, list) and value and isinstance(value[0], BaseModel):
            return "`" + str([v.model_dump(exclude_defaults=True) for v in value]) + "`"
        return f"`{value}`"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "`null`"
    if field.default == "":
        return '`""`'
    return f"`{str(field.default).lower() if isinstance(field.default, bool) else field.default}`"


def _allowed(field: FieldInfo) -> str:
    parts = []
    for m in field.metadata:
        for cls, attr, sign in ((Ge, "ge", "≥"), (Gt, "gt", ">"), (Le, "le", "≤"), (Lt, "lt", "<")):
            if isinstance(m, cls):
                bound = getattr(m, attr)
                parts.append(f"{sign} {bound:,}" if isinstance(bound, int) else f"{sign} {bound}")
        if isinstance(m, MinLen):
            parts.append(f"length ≥ {m.min_length}")
        if isinstance(m, MaxLen):
            parts.append(f"length ≤ {m.max_length}")
        pattern = getattr(m, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts).replace("|", "\\|")


def reference() -> str:
    """One table per part of the config, in the order they first appear."""
    paths: dict[type[BaseModel], list[str]] = {StudyConfig: [""]}
    order: list[type[BaseModel]] = [StudyConfig]
    queue: list[type[BaseModel]] = [StudyConfig]
    while queue:
        model = queue.pop(0)
        for name, field in model.model_fields.items():
            for sub in _models(field.annotation):
                is_list = typing.get_origin(field.annotation) is list
                for prefix in paths[model]:
                    path = (f"{prefix}.{name}" if prefix else name) + ("[]" if is_list else "")
                    if sub not in paths:
                        paths[sub], order = [], [*order, sub]
                        queue.append(sub)
                    if path not in paths[sub]:
                        paths[sub].append(path)
    lines = [HEADER]
    for model in order:
        where = ", ".join(f"`{p}`" for p in paths[model]) if paths[model] != [""] else ""
        lines += [f"## {where}" if where else "## The top level", ""]
        if model.__doc__:
            lines += [model.__doc__.strip().splitlines()[0], ""]
        lines += ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(
                f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | "
                f"{_allowed(field)} | {meaning} |"
            )
        if model.model_config.get("extra") == "allow":  # a recipe: any key of train besides
            lines.append(
                "| any key of `train` | | | as in `train` | overrides the student recipe, "
                "e.g. `grad_clip: 5` |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(reference(), end="")
