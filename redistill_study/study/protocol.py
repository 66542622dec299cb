"""The study's declared protocol — evaluation seeds, search seed, the recipes' settings and the
verdict's question (margin, α, arms, primary recipe) — stored with the study when it starts and
checked on every resume, so the question cannot change after results exist. A recipe may be
added to a started study (its arms then train); a declared one cannot change."""

from __future__ import annotations

import json
from typing import Any

from optuna.storages import BaseStorage

from ..errors import UserError
from .plan import Plan
from .queue import create_named_study

PROTOCOL_KEY = "protocol"
# Declared keys that studies started by earlier versions did not record (and, by prefix, the
# declared search spaces, first recorded after the first version that had them).
ADDED_LATER = frozenset(
    {"verdict.failure_margin", "verdict.min_pairs", "verdict.min_students", "verdict.min_teachers"}
)


def protocol_study_name(plan: Plan) -> str:
    return f"{plan.config.name}/_protocol"


def lock_protocol(storage: BaseStorage, plan: Plan, source: str) -> dict[str, Any]:
    """Record the plan's protocol, or check it against the one recorded; a change is a
    one-line error naming the key (``source`` is the config file, for the message)."""
    wanted = plan.protocol()
    study_id = create_named_study(storage, protocol_study_name(plan))
    stored = storage.get_study_user_attrs(study_id).get(PROTOCOL_KEY)
    if stored is None:
        storage.set_study_user_attr(study_id, PROTOCOL_KEY, json.dumps(wanted, sort_keys=True))
        stored = storage.get_study_user_attrs(study_id)[PROTOCOL_KEY]  # a racing worker's wins
    recorded = json.loads(stored)
    if "primary_recipe" not in recorded.get("verdict", {}):
        raise UserError(
            f"{source}: this output holds a study started before recipes existed (its units are "
            "named without one); run the study with a new --output"
        )
    added = {}
    recorded.setdefault("recipes", {})  # recipes' settings were not locked at first
    for name, settings in wanted["recipes"].items():
        before = recorded["recipes"].get(name)
        if before is None:
            added[name] = settings  # one added since is welcome, and locked from now on
        elif before != settings:
            raise UserError(
                f"{source}: recipes.{name}: {settings!r} differs from {before!r}, declared when "
                "this study started; restore it, or declare the changed recipe under a new name"
            )
    flat = _flatten({k: v for k, v in recorded.items() if k != "recipes"})
    now = _flatten({k: v for k, v in wanted.items() if k != "recipes"})
    for key in dict.fromkeys([*now, *flat]):  # a key dropped since (claims: …) is a change too
        value = now.get(key)
        if key not in flat and (key in ADDED_LATER or key.startswith("verdict.searches.")):
            continue  # a study started before the key existed: it keeps the rule it had
        before = flat.get(key)
        if before != value:
            raise UserError(
                f"{source}: {key}: {value!r} differs from {before!r}, declared when this study "
                "started; restore it, or run the changed study with a new --output"
            )
    if added:
        recorded["recipes"].update(added)
        storage.set_study_user_attr(study_id, PROTOCOL_KEY, json.dumps(recorded, sort_keys=True))
    return recorded


def read_protocol(storage: BaseStorage, plan: Plan) -> dict[str, Any] | None:
    try:
        study_id = storage.get_study_id_from_name(protocol_study_name(plan))
    except KeyError:
        return None
    stored = storage.get_study_user_attrs(study_id).get(PROTOCOL_KEY)
    return json.loads(stored) if stored else None


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
