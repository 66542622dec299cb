"""The README's default-study block is what the committed code produces: the study is run
again (two threads, as the block records) and its `report --markdown` must match."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
from update_readme import block_body, cpu_model

pytestmark = pytest.mark.slow
NUMBER = re.compile(r"[+-]?\d+\.\d+")


def test_readme_default_study_block_is_current(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    written = block_body(readme, "default-study")
    measured = re.search(
        r"\*Measured: `([^`]*)` at commit `\w+` on (.*?), \d+ cores, (\d+) threads", readme
    )
    assert measured, "the default-study block says where its numbers come from"
    threads = measured.group(3)
    out = tmp_path / "default"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "redistill_study",
            "run",
            "--threads",
            threads,
            "--output",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    produced = subprocess.run(
        [sys.executable, "-m", "redistill_study", "report", "--output", str(out), "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # `design` with the spreads of that run: the README's default-design block.
    design = subprocess.run(
        [sys.executable, "-m", "redistill_study", "design", "--from-output", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    design_written = block_body(readme, "default-design").split("```")[1].strip()
    design = design.replace(f"estimated from {out}", "estimated from default")
    if measured.group(2) == cpu_model():
        # Same processor and thread count: the numbers reproduce bit for bit.
        assert produced == written, "README default-study block is stale: regenerate it"
        assert design == design_written, "README default-design block is stale: regenerate it"
    else:
        # Another processor sums in another order: the same table, numbers within a point.
        for new, old in ((produced, written), (design, design_written)):
            assert NUMBER.sub("#", new) == NUMBER.sub("#", old)
        for a, b in zip(NUMBER.findall(produced), NUMBER.findall(written)):
            assert abs(float(a) - float(b)) <= 1.5, (a, b)
