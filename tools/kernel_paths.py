"""Rerun the default study on each CPU kernel path this processor can take and print, per path,
its wall time, its outcomes and whether it is within the README block's tolerances: the table of
the README's `kernel-paths` block.

    python tools/kernel_paths.py --threads 2 --paths avx512 avx2 default > paths.md
    python tools/update_readme.py kernel-paths --text-file paths.md \
        --command "python tools/kernel_paths.py --threads 2 --paths avx512 avx2 default"

A path is set with ``ATEN_CPU_CAPABILITY`` and oneDNN's and MKL's matching caps, as
``tests/test_readme.py`` sets it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tools"))
from readme_tolerance import compare_study_block, outcomes_of  # noqa: E402
from test_readme import kernel_path_env, searched_methods  # noqa: E402
from update_readme import block_body  # noqa: E402


def _run(path: str, threads: int, out: Path) -> tuple[float, str]:
    env = kernel_path_env(path)
    command = [sys.executable, "-m", "redistill_study"]
    start = time.perf_counter()
    run = [*command, "run", "--threads", str(threads), "--output", str(out), "--quiet"]
    subprocess.run(run, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    report = [*command, "report", "--output", str(out), "--markdown"]
    block = subprocess.run(report, check=True, env=env, capture_output=True, text=True).stdout
    return wall, block


def _outcomes(block: str) -> str:
    lines = outcomes_of(block)
    return " / ".join(
        ", ".join(f"{arm} {o}{' (marginal)' if m else ''}" for arm, (o, m) in line.items())
        for line in lines
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paths", nargs="+", default=["avx512", "avx2", "default"])
    args = parser.parse_args()
    readme = (REPO / "README.md").read_text()
    written = block_body(readme, "default-study")
    seeds = int(re.search(r"(\d+) seeds", block_body(readme, "default-design")).group(1))
    rows = [
        "| kernel path | wall time | outcomes (per recipe) | against the README's block |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.paths:
            wall, block = _run(path, args.threads, Path(tmp) / path)
            problems = compare_study_block(block, written, seeds, searched_methods())
            verdict = (
                "identical"
                if block.strip() == written.strip()
                else "within the tolerances"
                if not problems
                else f"{len(problems)} problem(s): {problems[0]}"
            )
            minutes = f"{int(wall // 60)} min {wall % 60:.0f} s"
            rows.append(f"| `{path}` | {minutes} | {_outcomes(block)} | {verdict} |")
            print(rows[-1], file=sys.stderr)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
