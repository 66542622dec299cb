"""The layering of docs/architecture.md, read from the code's own imports."""

from __future__ import annotations

import ast
from collections import defaultdict

from helpers import REPO

from redistill_study.config.reference import reference

PACKAGE = REPO / "redistill_study"
ROWS = [
    {"_util", "errors", "metrics"},
    {"_patience"},
    {"losses", "noise", "models", "data"},
    {"config"},
    {"training"},
    {"tracking"},
    {"study"},
    {"analysis"},
    {"bench"},
    {"cli"},
    {"__main__"},
]
ROW = {name: i for i, names in enumerate(ROWS) for name in names}


def _targets(node: ast.AST, rel) -> list[list[str]]:
    """The package paths (inside redistill_study) that one import statement reaches."""
    if isinstance(node, ast.ImportFrom) and node.level:
        base = list(rel.parts[:-1])
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        if node.module:
            return [[*base, *node.module.split(".")]]
        return [[*base, alias.name] for alias in node.names]  # from .. import pkg
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "redistill_study":
        inner = node.module.split(".")[1:]
        return [inner] if inner else [[alias.name] for alias in node.names]
    if isinstance(node, ast.Import):  # import redistill_study.pkg
        return [
            alias.name.split(".")[1:]
            for alias in node.names
            if alias.name.split(".")[0] == "redistill_study"
        ]
    return []


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        package = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _targets(node, rel):
                if target and target[0] and target[0] != package:
                    edges[package].add(target[0])
    return edges


def test_the_import_reader_sees_every_form() -> None:
    from pathlib import PurePath

    rel = PurePath("study", "runner.py")
    forms = {
        "from ..analysis import decide": "analysis",
        "from .. import analysis": "analysis",
        "from redistill_study.analysis import decide": "analysis",
        "from redistill_study import analysis": "analysis",
        "import redistill_study.analysis.verdict": "analysis",
    }
    for code, expected in forms.items():
        (node,) = ast.parse(code).body
        assert [t[0] for t in _targets(node, rel)] == [expected], code


def test_every_package_has_a_row() -> None:
    found = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    found |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert found == set(ROW), found ^ set(ROW)


def test_imports_only_point_down() -> None:
    wrong = [
        f"{source} (row {ROW[source]}) imports {target} (row {ROW[target]})"
        for source, targets in _edges().items()
        for target in targets
        if ROW[target] >= ROW[source]
    ]
    assert not wrong, wrong


def test_the_configuration_reference_is_current() -> None:
    written = (REPO / "docs" / "config.md").read_text()
    assert written == reference(), "docs/config.md is out of date: run `make docs`"


def test_every_config_key_has_a_meaning() -> None:
    rows = [line for line in reference().splitlines() if line.startswith("| `")]
    assert rows and all(not line.rstrip().endswith("|  |") for line in rows), [
        line for line in rows if line.rstrip().endswith("|  |")
    ]


# Where an import inside a function is deliberate; docs/architecture.md names each place.
LAZY_IMPORTS = {
    "cli": "each command imports what it runs, so --help and a bad argument answer at once",
    "bench": "dispatches to one benchmark; psycopg2 only for the PostgreSQL one",
    "models/registry.py": "the zoo modules, timm and torchvision on first use",
    "tracking": "MLflow on first use: validate, design and --help never pay for it",
    "losses/fused.py": "the method base class, which imports this module",
}


def _lazy_import_places() -> set[str]:
    places = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(fn)):
                top = rel.parts[0] if len(rel.parts) > 1 else rel.stem
                places.add(top if top in LAZY_IMPORTS else rel.as_posix())
    return places


def test_imports_inside_functions_are_only_where_the_architecture_says() -> None:
    assert _lazy_import_places() <= set(LAZY_IMPORTS), _lazy_import_places() - set(LAZY_IMPORTS)
    doc = (REPO / "docs" / "architecture.md").read_text()
    assert all(f"`{place}`" in doc for place in LAZY_IMPORTS), [
        p for p in LAZY_IMPORTS if f"`{p}`" not in doc
    ]


def test_no_package_module_is_over_three_hundred_lines() -> None:
    long = {
        path.relative_to(PACKAGE).as_posix(): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 300
    }
    assert not long, long


def test_the_analysis_reads_records_without_the_runner_or_torch() -> None:
    """Reading a study's records needs neither the trainer nor Optuna (the report and the
    README's decide() example stay light)."""
    import subprocess
    import sys

    code = (
        "import sys, redistill_study.analysis.verdict, redistill_study.analysis.summary; "
        "print(sorted(m for m in ('torch', 'optuna', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
