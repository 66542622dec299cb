"""The stability table from records whose truth is set: divergences clustered in one student,
crashed runs left out (missing, not outcomes), a teacher-free method's copies counted once, the
median step and last finite gradient norm of divergence, the peak gradient norm of the runs that
did not diverge, the recipes side by side, and the table in the terminal and the README."""

from __future__ import annotations

from redistill_study.analysis.stability import (
    stability_markdown,
    stability_rows,
    stability_text,
)


def _record(method, student, status="complete", step=None, norm=None, peak=None, **extra):
    record = {"method": method, "phase": "seeds", "student": student, "status": status}
    if status == "complete":
        record["test/top1"] = 0.9
    if step is not None:
        record["divergence_step"] = step
    if norm is not None:
        record["divergence_grad_norm"] = norm
    if peak is not None:
        record["train/grad_norm_peak"] = peak
    return {**record, **extra}


def test_divergences_are_counted_per_method_and_student() -> None:
    records = [
        *(
            _record("redistill", "mlp", "diverged", step=s, norm=n)
            for s, n in ((7, 500.0), (8, 546.0), (30, 2e4))
        ),
        _record("redistill", "mlp", peak=11.0),
        *(_record("redistill", "cnn", peak=3.0) for _ in range(4)),
        *(_record("kd", "mlp", peak=p) for p in (14.0, 15.0, 16.0, 15.5)),
        _record("kd", "mlp", "failed"),  # a crash: missing, not a run that ended
        _record("ce", "mlp"),
        _record("ce", "mlp", shared_from="mlp-mlp/none"),  # the same run, another noise
        _record("redistill_tuned", "cnn", "diverged", phase="transfer"),  # no step recorded
    ]
    rows = {(r["method"], r["student"]): r for r in stability_rows(records)}
    assert rows[("redistill", "mlp")] == {
        "method": "redistill",
        "student": "mlp",
        "recipe": "",
        "runs": 4,
        "diverged": 3,
        "median_step": 8.0,
        "last_finite_norm": 546.0,
        "peak_norm": 11.0,  # of the run that did not diverge
    }
    assert rows[("redistill", "cnn")]["diverged"] == 0 and rows[("redistill", "cnn")]["runs"] == 4
    assert rows[("kd", "mlp")]["runs"] == 4  # the crashed run is not in the denominator
    assert rows[("kd", "mlp")]["peak_norm"] == 15.25
    assert rows[("ce", "mlp")]["runs"] == 1 and rows[("ce", "mlp")]["peak_norm"] is None
    transferred = rows[("redistill_tuned (transferred)", "cnn")]
    assert transferred["diverged"] == 1 and transferred["median_step"] is None

    text = stability_text(list(rows.values()))
    assert text[0].startswith("stability: where runs diverged")
    body = {tuple(line.split()[:2]): line for line in text[2:]}
    assert "3 of 4" in body[("redistill", "mlp")] and " 8 " in body[("redistill", "mlp")]
    assert "546.0" in body[("redistill", "mlp")]
    # The reference stands beside the student whose runs diverged, for comparison; a student
    # where only another arm diverged shows that arm and the reference, nothing else.
    assert "0 of 4" in body[("kd", "mlp")] and "15.2" in body[("kd", "mlp")]
    assert ("ce", "mlp") not in body and ("redistill", "cnn") not in body
    assert stability_text(stability_rows([_record("kd", "mlp")])) == [
        "stability: no evaluation run diverged"
    ]
    assert stability_markdown(stability_rows([_record("kd", "mlp")])) == ""
    markdown = stability_markdown(list(rows.values())).splitlines()
    assert markdown[0].startswith("| method | student | diverged | median step |")
    assert len(markdown) == 2 + 3  # redistill and kd on mlp, the transferred arm on cnn


def test_each_recipe_is_counted_apart() -> None:
    # The divergence follows the recipe: every plain run of one student blew up, none clipped.
    records = [
        *(_record("redistill", "mlp", "diverged", step=s, recipe="plain") for s in (7, 8, 9)),
        *(_record("redistill", "mlp", recipe="clip5") for _ in range(3)),
        _record("redistill", "mlp", "diverged", step=400, recipe="clip5"),
    ]
    rows = {(r["method"], r["recipe"]): r for r in stability_rows(records)}
    plain, clipped = rows[("redistill", "plain")], rows[("redistill", "clip5")]
    assert (plain["diverged"], plain["runs"], plain["median_step"]) == (3, 3, 8.0)
    assert (clipped["diverged"], clipped["runs"]) == (1, 4)
    text = stability_text(list(rows.values()))
    assert text[1].split()[:4] == ["method", "student", "recipe", "diverged"]
    assert any(
        line.split()[:3] == ["redistill", "mlp", "plain"] and "3 of 3" in line for line in text
    )
