"""The locked protocol over a real storage: a changed question is refused, a new recipe welcome."""

from __future__ import annotations

import pytest
from helpers import one_pair_plan

from redistill_study.errors import UserError
from redistill_study.study.protocol import lock_protocol
from redistill_study.study.storage import open_storage


def test_the_protocol_refuses_a_changed_question_and_welcomes_a_new_recipe(
    storage_url: str,
) -> None:
    storage = open_storage(storage_url)
    plan = one_pair_plan()
    lock_protocol(storage, plan, "s.yaml")
    lock_protocol(storage, plan, "s.yaml")  # the same question resumes
    changed = one_pair_plan(verdict={"margin": 0.02})
    with pytest.raises(UserError, match=r"s\.yaml: verdict\.margin: 0\.02 differs"):
        lock_protocol(storage, changed, "s.yaml")
    more = one_pair_plan(
        recipes=[{"name": "plain", "primary": True}, {"name": "clip1", "grad_clip": 1}]
    )
    recorded = lock_protocol(storage, more, "s.yaml")
    assert set(recorded["recipes"]) == {"plain", "clip1"}
    clip2 = one_pair_plan(
        recipes=[{"name": "plain", "primary": True}, {"name": "clip1", "grad_clip": 2}]
    )
    with pytest.raises(UserError, match=r"recipes\.clip1: .* differs"):
        lock_protocol(storage, clip2, "s.yaml")
