"""The README's default-study block is what the committed code produces: the study is run
again (with the thread count the block records) and its `report --markdown` must match — bit
for bit on the processor and torch build that recorded it, within the tolerances of
``readme_tolerance`` anywhere else. The study is also rerun on the CPU kernel paths this machine
can take besides its own and the recorded one (``ATEN_CPU_CAPABILITY`` with oneDNN's and MKL's
matching caps), so that a block that would fail on another processor fails here first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO
from readme_tolerance import compare_design_block, compare_study_block

sys.path.insert(0, str(REPO / "tools"))
from update_readme import block_body, cpu_model, torch_build

MEASURED = re.compile(
    r"\*Measured: `([^`]*)` at commit `\w+` on (.*?), \d+ cores, (\d+) threads, (torch [^;]*);"
)


def searched_methods() -> frozenset[str]:
    from redistill_study.config import load_study
    from redistill_study.study import build_plan

    plan = build_plan(load_study(REPO / "studies" / "default.yaml", check_files=False))
    return frozenset(m.name for m in plan.methods if m.tune)


# torch's CPU kernel paths, widest first, with the caps that keep oneDNN and MKL on the same
# instruction set (torch reports the path in use as get_cpu_capability(): AVX512, AVX2, DEFAULT).
# On the scalar path oneDNN stays at AVX2: its SSE4.1 convolutions are 3.5 times slower, which
# would make this one test take 40 minutes on two cores.
KERNEL_PATHS = {
    "avx512": {"DNNL_MAX_CPU_ISA": "AVX512_CORE", "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    "avx2": {"DNNL_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default": {"DNNL_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}


def kernel_path_env(path: str) -> dict[str, str]:
    """The environment that runs torch, oneDNN and MKL on one kernel path."""
    return {**os.environ, "ATEN_CPU_CAPABILITY": path, **KERNEL_PATHS[path]}


def _in_use() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability().lower()


def _python(
    *args: str, timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "redistill_study", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,  # the commands the README shows name files relative to it
    )


def _rerun(tmp_path: Path, threads: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """The default study run again: its README block and its design block."""
    out = tmp_path / "default"
    # A generous limit: the run takes two to six minutes on two idle cores.
    run = _python(
        "run", "--threads", threads, "--output", str(out), "--quiet", timeout=3600, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    produced = _python("report", "--output", str(out), "--markdown", env=env).stdout.strip()
    design = _python("design", "--from-output", str(out)).stdout.strip()
    return produced, design.replace(f"estimated from {out}", "estimated from default")


def _written() -> tuple[str, str, re.Match]:
    readme = (REPO / "README.md").read_text()
    measured = MEASURED.search(readme)
    assert measured, "the default-study block says where its numbers come from"
    design = block_body(readme, "default-design").split("```")[1].strip()
    return block_body(readme, "default-study"), design, measured


def _within_tolerances(produced: str, design: str, written: str, design_written: str) -> None:
    seeds = int(re.search(r"(\d+) seeds", design_written).group(1))
    problems = compare_study_block(produced, written, seeds, searched_methods())
    problems += compare_design_block(design, design_written)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_readme_default_study_block_is_current(tmp_path: Path) -> None:
    written, design_written, measured = _written()
    produced, design = _rerun(tmp_path, measured.group(3))
    if (measured.group(2), measured.group(4)) == (cpu_model(), torch_build()):
        assert produced == written, "README default-study block is stale: regenerate it"
        assert design == design_written, "README default-design block is stale: regenerate it"
    else:
        _within_tolerances(produced, design, written, design_written)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["avx2", "default"])
def test_a_rerun_on_another_kernel_path_is_within_the_tolerances(tmp_path: Path, path: str) -> None:
    # Another kernel path sums in another order, as another processor does: a block that an
    # AVX2-only machine would find stale fails here on an AVX-512 one.
    written, design_written, measured = _written()
    recorded = re.search(r"\((\w+) kernels\)", measured.group(4))
    order = list(KERNEL_PATHS)
    if order.index(path) < order.index(_in_use()):
        pytest.skip(f"this processor (or ATEN_CPU_CAPABILITY) does not run {path} kernels")
    if path == _in_use():
        pytest.skip(f"{path} is this machine's own path: the block test reran on it")
    if recorded and path == recorded.group(1).lower():
        pytest.skip(f"{path} is the path the block was recorded on")
    produced, design = _rerun(tmp_path, measured.group(3), env=kernel_path_env(path))
    _within_tolerances(produced, design, written, design_written)


def test_the_readme_decision_example_runs_on_records_the_results_seam_builds() -> None:
    import numpy as np
    from helpers import study_records

    readme = (REPO / "README.md").read_text()
    (example,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", readme, re.S)
        if "decide(evaluations" in block
    ]
    evaluations = study_records(np.random.default_rng(0), teachers=4, students=4, pairs=12)
    names: dict = {"evaluations": evaluations}
    exec(compile(example, "README.md", "exec"), names)
    assert names["d"].outcome in ("holds", "does not hold", "inconclusive")
    assert "redistill" in names["d"].arms


def _yaml_blocks(after: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index(after)
    return re.findall(r"```yaml\n(.*?)```", text[start:], re.S)


def _with_methods(snippet: str) -> dict:
    import yaml
    from helpers import tiny_study

    given = yaml.safe_load(snippet)
    study = tiny_study()
    names = {m["name"] for m in given["methods"]}
    study["methods"] = [m for m in study["methods"] if m["name"] in ("ce", "kd")]
    study["methods"] += [m for m in given["methods"] if m["name"] not in ("ce", "kd")]
    study["verdict"] = given["verdict"]
    assert names <= {m["name"] for m in study["methods"]}
    return study


def test_the_readme_claim_examples_validate_and_its_error_is_what_validate_says(
    tmp_path: Path, capsys
) -> None:
    from helpers import write_yaml

    from redistill_study.cli import main

    opening = _yaml_blocks("# redistill-study")[0]
    assert len(opening.strip().splitlines()) == 5  # "five lines of a study file"
    claims = _yaml_blocks("### Claims: any method")[0]
    for snippet in (opening, claims):
        path = write_yaml(tmp_path / "claims.yaml", _with_methods(snippet))
        assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    # The error shown is the one validate prints when dkd's warm-up differs.
    broken = claims.replace(
        "{name: dkd, tune: false, params: {warmup: 1}}", "{name: dkd, tune: false}"
    )
    path = write_yaml(tmp_path / "study.yaml", _with_methods(broken))
    assert main(["validate", str(path)]) == 2
    printed = capsys.readouterr().err.split(": ", 2)[2]  # after "error: FILE:LINE"
    text = (REPO / "README.md").read_text()
    shown = re.search(r"```\nerror: study\.yaml:\d+: (.*)\n```", text)
    assert shown is not None and printed.strip() == shown.group(1)


def test_the_readme_per_condition_claims_validate_and_a_wrong_setting_is_refused(
    tmp_path: Path, capsys
) -> None:
    import yaml
    from helpers import tiny_study, write_yaml

    from redistill_study.cli import main

    scoped = _yaml_blocks("### Claims: any method")[1]
    study = tiny_study()
    study["noise"].append({"kind": "label_noise_teacher", "levels": [0.3]})
    study["verdict"] = yaml.safe_load(scoped)["verdict"]
    path = write_yaml(tmp_path / "scoped.yaml", study)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    study["verdict"]["claims"][1]["noises"] = ["confident_wrong=0.5"]
    path = write_yaml(tmp_path / "scoped.yaml", study)
    assert main(["validate", str(path)]) == 2
    shown = re.search(r"\(`(unknown noise setting [^`]*)`\)", (REPO / "README.md").read_text())
    assert shown is not None and shown.group(1) in capsys.readouterr().err


def test_the_readme_config_example_validates_with_its_population_alternative() -> None:
    import yaml

    from redistill_study.config import StudyConfig

    example = _yaml_blocks("### Config")[0]
    study = yaml.safe_load(example)
    assert len(StudyConfig.model_validate(study).pairs) == 1
    # The commented alternative: the same study with a population instead of its pairs.
    commented = re.search(r"# population: (\{.*?\})\n(?!#)", example, re.S)
    assert commented is not None
    population = yaml.safe_load(re.sub(r"\n#\s*", " ", commented.group(1)).replace("…", ""))
    population["teachers"] = [t for t in population["teachers"] if t] * 12
    population["students"] = [s for s in population["students"] if s] * 12
    del study["pairs"]
    config = StudyConfig.model_validate({**study, "population": population})
    assert len(config.pairs) == 12


@pytest.mark.slow
def test_readme_confirm_design_block_is_current() -> None:
    # The layout the confirmatory study was sized with: the same command, the same answer (the
    # figures within Monte-Carlo noise of another processor's float sums: 0.02).
    written = block_body((REPO / "README.md").read_text(), "fashion-confirm-design")
    command = re.search(
        r"\*Measured: `python -m redistill_study (design [^`]*)`",
        (REPO / "README.md").read_text().split("generated:fashion-confirm-design -->", 1)[1],
    )
    assert command is not None
    produced = _python(*command.group(1).split()).stdout.strip()
    shown = written.strip("`\n").strip().splitlines()
    lines = produced.splitlines()
    assert len(lines) == len(shown)
    number = re.compile(r"\d+\.\d+")
    for now, then in zip(lines, shown):
        assert number.sub("#", now) == number.sub("#", then), (now, then)
        for a, b in zip(number.findall(now), number.findall(then)):
            assert abs(float(a) - float(b)) <= 0.02, (now, then)


CONFIRM_STORE = REPO / "docs" / "results" / "fashion_mnist_confirm"


@pytest.mark.slow
def test_readme_confirm_block_is_what_its_kept_store_gives(tmp_path: Path) -> None:
    # The confirmatory study's Optuna store is kept (gzipped), so its README block is
    # regenerated from the records themselves: the same text on the recording processor and
    # torch build, and elsewhere the same text with every number within float round-off of the
    # analysis (a rerun share within one point).
    import gzip
    import shutil

    store = tmp_path / "fashion_mnist_confirm"
    store.mkdir()
    with gzip.open(CONFIRM_STORE / "optuna.db.gz") as src, (store / "optuna.db").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.copy(CONFIRM_STORE / "study.yaml", store / "study.yaml")
    report = _python("report", "--output", str(store), "--markdown", timeout=1200)
    assert report.returncode == 0, report.stderr
    text = (REPO / "README.md").read_text()
    written = block_body(text, "fashion-confirm")
    produced = report.stdout.strip()
    measured = MEASURED.search(text.split("generated:fashion-confirm -->", 1)[1])
    assert measured is not None
    if (measured.group(2), measured.group(4)) == (cpu_model(), torch_build()):
        assert produced == written, "README fashion-confirm block is stale: regenerate it"
        return
    number = re.compile(r"[+-]?\d+(?:\.\d+)?")
    for now, then in zip(produced.splitlines(), written.splitlines(), strict=True):
        assert number.sub("#", now) == number.sub("#", then), (now, then)
        for a, b in zip(number.findall(now), number.findall(then)):
            assert abs(float(a) - float(b)) <= (1.0 if "." not in b else 0.02), (now, then)
