"""The stability table from records whose truth is set: divergences clustered in one student,
crashed runs left out (missing, not outcomes), a teacher-free method's copies counted once, the
median step of divergence, the recipes side by side, and the table in the terminal report."""

from __future__ import annotations

from redistill_study.analysis.stability import stability_rows, stability_text


def _record(method, student, status="complete", step=None, **extra):
    record = {"method": method, "phase": "seeds", "student": student, "status": status}
    if status == "complete":
        record["test/top1"] = 0.9
    if step is not None:
        record["divergence_step"] = step
    return {**record, **extra}


def test_divergences_are_counted_per_method_and_student() -> None:
    records = [
        *(_record("redistill", "mlp", "diverged", step=s) for s in (7, 8, 30)),
        _record("redistill", "mlp"),
        *(_record("redistill", "cnn") for _ in range(4)),
        *(_record("kd", "mlp") for _ in range(4)),
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
    }
    assert rows[("redistill", "cnn")]["diverged"] == 0 and rows[("redistill", "cnn")]["runs"] == 4
    assert rows[("kd", "mlp")]["runs"] == 4  # the crashed run is not in the denominator
    assert rows[("ce", "mlp")]["runs"] == 1
    transferred = rows[("redistill_tuned (transferred)", "cnn")]
    assert transferred["diverged"] == 1 and transferred["median_step"] is None

    text = stability_text(list(rows.values()))
    assert text[0].startswith("stability: runs that diverged")
    body = "\n".join(text[1:])
    assert "redistill" in body and "3 of 4" in body and " 8" in body
    assert "kd" not in body.replace("redistill", "")  # only where a run diverged
    assert stability_text(stability_rows([_record("kd", "mlp")])) == [
        "stability: no evaluation run diverged"
    ]


def test_each_recipe_is_counted_apart() -> None:
    # The divergence follows the recipe: every plain run of one student blew up, none clipped.
    records = [
        *(_record("redistill", "mlp", "diverged", step=s, recipe="plain") for s in (7, 8, 9)),
        *(_record("redistill", "mlp", recipe="clip5") for _ in range(3)),
        _record("redistill", "mlp", "diverged", step=400, recipe="clip5"),
    ]
    rows = {(r["method"], r["recipe"]): r for r in stability_rows(records)}
    assert (rows[("redistill", "plain")]["diverged"], rows[("redistill", "plain")]["runs"]) == (
        3,
        3,
    )
    assert rows[("redistill", "plain")]["median_step"] == 8.0
    assert (rows[("redistill", "clip5")]["diverged"], rows[("redistill", "clip5")]["runs"]) == (
        1,
        4,
    )
    text = stability_text(list(rows.values()))
    assert text[1].split() == ["method", "student", "recipe", "diverged", "median", "step"]
    assert any(
        line.split()[:3] == ["redistill", "mlp", "plain"] and "3 of 3" in line for line in text
    )
