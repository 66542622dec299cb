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


def test_claims_and_declared_searches_are_locked_both_ways(storage_url: str) -> None:
    storage = open_storage(storage_url)
    methods = [
        {"name": "ce"},
        {"name": "kd"},
        {"name": "kd_tuned", "method": "kd", "tune": True, "search": ["T"], "trials": 2},
        {"name": "redistill"},
        {"name": "redistill_tuned", "trials": 2},
    ]
    claims = [
        {"name": "lambda", "fixed": "redistill", "searched": "redistill_tuned", "reference": "kd"},
        {"name": "kd_T4", "fixed": "kd", "searched": "kd_tuned", "reference": "ce"},
    ]
    plan = one_pair_plan(methods=methods, verdict={"claims": claims})
    lock_protocol(storage, plan, "s.yaml")
    lock_protocol(storage, plan, "s.yaml")
    # Dropping a claim — or every claim, leaving the one that the first one's arms make — is a
    # change of the question, refused like any other.
    for verdict in ({"claims": claims[:1]}, {}):
        with pytest.raises(UserError, match=r"s\.yaml: verdict\.claims: .* differs"):
            lock_protocol(storage, one_pair_plan(methods=methods, verdict=verdict), "s.yaml")
    # So is a searched arm's declared space.
    wider = [*methods[:2], {**methods[2], "search": ["T", "w_kd"]}, *methods[3:]]
    with pytest.raises(UserError, match=r"verdict\.searches\.kd_tuned: .* differs"):
        lock_protocol(storage, one_pair_plan(methods=wider, verdict={"claims": claims}), "s.yaml")
