"""Write a generated block of the README from a finished study (or a benchmark's output).

    python tools/update_readme.py default-study --output default --wall 115 \
        --command "python -m redistill_study run --threads 2 --output default"
    python tools/update_readme.py speed --text-file bench.txt

A block sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; its first line
("*Measured: …*") says where the numbers come from (command, commit, machine, threads, wall
time), and tests/test_readme.py checks the default study's block against a fresh run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                simd = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else ""
                return f"{line.split(':', 1)[1].strip()} {simd}".strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_build() -> str:
    """The torch build and the CPU kernels it dispatches to: with the processor, what decides
    whether a rerun reproduces a recorded number bit for bit."""
    try:
        import torch

        return f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels)"
    except ImportError:
        return "no torch"


def provenance(
    command: str, wall: float | None, threads: int | None, commit: str = "", note: str = ""
) -> str:
    commit = (
        commit
        or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    )
    cores = os.cpu_count()
    where = f"{cpu_model()}, {cores} cores" + (f", {threads} threads" if threads else "")
    where += f", {torch_build()}"
    minutes = "" if wall is None else f"; wall time {int(wall // 60)} min {wall % 60:.0f} s"
    extra = f" {note}" if note else ""
    return f"*Measured: `{command}` at commit `{commit}` on {where}{minutes}.{extra}*\n"


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- generated:{re.escape(name)} -->\n).*?(<!-- /generated:{re.escape(name)} -->)",
        re.S,
    )
    if not pattern.search(text):
        sys.exit(f"README.md has no generated:{name} block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def block_body(text: str, name: str) -> str:
    """A block's content without its source line."""
    match = re.search(
        rf"<!-- generated:{re.escape(name)} -->\n(.*?)<!-- /generated:{re.escape(name)} -->",
        text,
        re.S,
    )
    if match is None:
        raise KeyError(name)
    lines = match.group(1).splitlines()
    return "\n".join(line for line in lines if not line.startswith("*Measured:")).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("block")
    parser.add_argument("--output", help="the study's output folder (report --markdown)")
    parser.add_argument("--text-file", help="the block's text, as written")
    parser.add_argument("--command", default="", help="the command that produced the numbers")
    parser.add_argument("--wall", type=float, help="its wall time in seconds")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--intro", default="", help="a sentence before the table")
    parser.add_argument("--commit", default="", help="the commit that ran (default: HEAD)")
    parser.add_argument("--note", default="", help="a remark for the source line")
    args = parser.parse_args()
    if args.output:
        body = subprocess.run(
            [
                sys.executable,
                "-m",
                "redistill_study",
                "report",
                "--output",
                args.output,
                "--markdown",
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        ).stdout
    else:
        body = Path(args.text_file).read_text()
    source = provenance(args.command, args.wall, args.threads, args.commit[:7], args.note)
    intro = f"{args.intro}\n\n" if args.intro else ""
    README.write_text(replace_block(README.read_text(), args.block, f"{source}\n{intro}{body}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
