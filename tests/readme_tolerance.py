"""How a README block recorded on one processor is checked on another.

Same processor, torch build and thread count: the numbers reproduce bit for bit, and the test
compares the text exactly. Elsewhere the kernels sum in another order; SGD amplifies the
round-off over epochs, so a cell moves like a fresh draw of its seed noise, not like a rounding
error. What can be checked without depending on the hardware:

- **structure**: the same rows, columns, arms, noise settings, pair counts and table headers;
- **outcomes**: every arm's verdict word (the ``outcomes:`` line), where the decision is clear
  in both blocks; a decision the README or the rerun labels *marginal* (fewer than 99 % of
  reruns simulated from the study's own run-to-run spread reach it, docs/method.md §6) may move;
- **cells** ``m ± s`` over n seeds: the mean of a fresh draw differs from the recorded one with
  sd ≈ σ·√(2/n). σ is the row's pooled spread √(mean s²) over its pairs, the larger of the two
  blocks' (a cell's own 3-seed s is itself too noisy a scale: below a third of σ in ~10 % of
  cells). For at most a 0.1 % chance that any of the block's C cells fails under normal noise,
  each may move by z·√(2/n)·σ with z = Φ⁻¹(1 − 0.001 / (2C)) (≈ 4.4 for C = 100: 3.6·σ at
  n = 3), and never less than 1 point (a few test images);
- **a searched arm's cells** (its ``final`` and transferred settings): their structure only —
  which setting the search or the transfer chose is a discrete choice that round-off can flip,
  and where some settings collapse the cell jumps between modes (a rerun of the default study
  with one thread instead of two moved a transferred cell under the confidently-wrong teacher
  from 52.9 % to 92.9 %, another by 1.2 points whose seeds agreed to 0.16); the estimates that
  compare against the searched arm (``regret vs …``) likewise keep their rows and pair counts;
- **differences of two cells** (``redistill − kd``): the same with √(σ₁² + σ₂²);
- **teacher accuracy** (one run, no spread to scale by): 2 points;
- **estimates** (means, bounds, prediction ends over pairs): within half the shown interval, at
  least 1 point; p-values are not compared (a p near α is what the outcome word already checks);
- **"about N"** integers: within a factor of 2 (N grows with (spread / distance)²);
- **what was declared** (δ, δ_f, α and the rule's shares, wherever the block states them, and the
  notes in parentheses): to the letter;
- **the design block**: its first line (layout, seeds, margins, α) to the letter; probabilities
  within 0.2; the run-to-run spread within a factor of 2 or 2 points; a spread between fewer
  than four teachers, students or pairs, the correlations beside it and the failing pairs' share
  and size by structure only (a variance component with one or two degrees of freedom, clipped
  at zero, spans a factor of thirty; which pairs fail is a decision that can be marginal: a
  rerun on the scalar kernel path estimated the students' spread at 0.00 against 3.52);
  the grid that reaches 80 % power is a search whose answer can jump (or leave the searched
  range) with the spreads, so only its line's presence is checked.
"""

from __future__ import annotations

import math
import re

from scipy.stats import norm

CELL = re.compile(r"^([+-]?\d+\.\d+) ± (\d+\.\d+)")
NUMBER = re.compile(r"[+-]?(?:\d+\.\d+|\d+)(?:e[+-]?\d+)?|[+−-]?∞")
ABOUT = re.compile(r"about (\d+)")
SKELETON = re.compile(r"[+-]?(?:\d+\.\d+|\d+)(?:e[+-]?\d+)?|[+−-]?∞")


def _rows(block: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in block.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def _tables(block: str) -> list[list[list[str]]]:
    """Consecutive table lines as tables of cells."""
    tables: list[list[list[str]]] = []
    current: list[str] = []
    for line in [*block.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(_rows("\n".join(current)))
            current = []
    return tables


def _float(text: str) -> float:
    text = text.replace("−", "-")
    if text.endswith("∞"):
        return math.inf if not text.startswith("-") else -math.inf
    return float(text)


def _close(a: float, b: float, tol: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol


def cell_multiplier(cells: int, seeds: int) -> float:
    z = float(norm.ppf(1 - 0.001 / (2 * max(cells, 1))))
    return z * math.sqrt(2 / max(seeds, 1))


def compare_study_block(
    new: str, old: str, seeds: int, searched: frozenset[str] = frozenset()
) -> list[str]:
    """Problems of ``new`` against the recorded ``old`` (empty: within the tolerances above);
    ``searched``: the methods whose settings were searched."""
    problems: list[str] = []
    new_tables, old_tables = _tables(new), _tables(old)
    if len(new_tables) != len(old_tables):
        return [f"{len(new_tables)} tables, the README has {len(old_tables)}"]
    # Each recipe has its results and estimates tables (and perhaps its failing pairs).
    for table_new, table_old in zip(new_tables, old_tables):
        if table_new[0] != table_old[0]:
            problems.append(f"table header {table_new[0]} differs from {table_old[0]}")
        elif table_old[0][:2] == ["noise", "method"]:
            problems += _compare_results(table_new, table_old, seeds, searched)
        elif table_old[0][:3] == ["arm", "noise", "quantity"]:
            problems += _compare_estimates(table_new, table_old)
    problems += _compare_outcomes(new, old)
    problems += _compare_declared(new, old)
    return problems


DECLARED = re.compile(r"(δ_f|δ|α)( = |·)(\d+(?:\.\d+)?)")


def _compare_declared(new: str, old: str) -> list[str]:
    """What was declared before the data is the same to the letter: the margins and α wherever
    the block names them, and the explanatory notes in parentheses (the rule's shares)."""
    problems = []
    if sorted(set(DECLARED.findall(new))) != sorted(set(DECLARED.findall(old))):
        problems.append(
            f"declared margins or levels {sorted(set(DECLARED.findall(new)))} differ from the "
            f"README's {sorted(set(DECLARED.findall(old)))}"
        )
    notes_new = [x for x in new.splitlines() if x.startswith("(")]
    notes_old = [x for x in old.splitlines() if x.startswith("(")]
    if notes_new != notes_old:
        problems.append("the block's notes (the rule as stated) differ from the README's")
    return problems


def _pooled(rows: list[list[str]]) -> dict[tuple[str, str], float]:
    """Per (noise, method) row, the pooled seed spread √(mean s²) over its cells: one cell's
    own 3-seed sd has 2 degrees of freedom and falls below a third of the true spread in about
    10 % of cells, far too tight a scale for a block of ~100 cells; the row's pool has 2 per
    pair."""
    pooled = {}
    for row in rows[1:]:
        spreads = [float(m.group(2)) for c in row[2:] if (m := CELL.match(c))]
        if spreads:
            pooled[(row[0], row[1])] = math.sqrt(sum(x * x for x in spreads) / len(spreads))
    return pooled


def _compare_results(
    new: list[list[str]], old: list[list[str]], seeds: int, searched: frozenset[str]
) -> list[str]:
    if [r[:2] for r in new] != [r[:2] for r in old] or new[0] != old[0]:
        return ["the results table's rows or columns differ"]
    cells = sum(1 for row in old[1:] for c in row[2:] if CELL.match(c))
    k = cell_multiplier(cells, seeds)
    pooled_new, pooled_old = _pooled(new), _pooled(old)

    def spread(noise: str, method: str) -> float:
        key = (noise, method)
        return max(pooled_new.get(key, 0.0), pooled_old.get(key, 0.0))

    problems = []
    for row_new, row_old in zip(new[1:], old[1:]):
        noise, method = row_old[0], row_old[1]
        for j, (a, b) in enumerate(zip(row_new[2:], row_old[2:]), start=2):
            where = f"{noise} / {method} / {old[0][j]}"
            ma, mb = CELL.match(a), CELL.match(b)
            if mb or ma:
                if not (ma and mb):
                    problems.append(f"{where}: {a!r} against {b!r}")
                    continue
                if method.removesuffix(" (transferred)") in searched:
                    continue  # its structure only (see above)
                tol = max(1.0, k * spread(noise, method))
                if not _close(float(ma.group(1)), float(mb.group(1)), tol):
                    problems.append(f"{where}: {a} against {b} (tolerance {tol:.2f})")
            elif a == "—" or b == "—":
                if a != b:
                    problems.append(f"{where}: {a!r} against {b!r}")
            elif method == "teacher":
                if not _close(_float(a), _float(b), 2.0):
                    problems.append(f"{where}: teacher {a} against {b} (tolerance 2.00)")
            elif " − " in method:
                fixed, reference = method.split(" − ")
                sd = math.hypot(spread(noise, fixed), spread(noise, reference))
                tol = max(1.0, k * sd)
                if not _close(_float(a), _float(b), tol):
                    problems.append(f"{where}: {a} against {b} (tolerance {tol:.2f})")
    return problems


def _compare_estimates(new: list[list[str]], old: list[list[str]]) -> list[str]:
    if new[0] != old[0] or [r[:3] for r in new] != [r[:3] for r in old]:
        return ["the estimates table's rows or columns differ"]
    header = old[0]
    col = {name: i for i, name in enumerate(header)}
    problems = []
    for row_new, row_old in zip(new[1:], old[1:]):
        label = " / ".join(row_old[:3])
        if row_new[col["pairs"]] != row_old[col["pairs"]]:
            problems.append(
                f"{label}: {row_new[col['pairs']]} pairs, README {row_old[col['pairs']]}"
            )
        if row_old[col["quantity"]].startswith("regret"):
            continue  # against the searched arm: its rows and pairs only (see above)
        upper_col = next(i for i, h in enumerate(header) if h.startswith("upper"))
        lo, hi = _float(row_old[col["lower"]]), _float(row_old[upper_col])
        half = (hi - lo) / 2 if math.isfinite(hi - lo) else math.inf
        tol = max(1.0, half)
        for i, h in enumerate(header):
            if h.startswith(("mean", "lower", "upper", "new pair")):
                for a, b in zip(NUMBER.findall(row_new[i]), NUMBER.findall(row_old[i])):
                    if math.isfinite(tol) and not _close(_float(a), _float(b), tol):
                        problems.append(f"{label} / {h}: {a} against {b} (tolerance {tol:.2f})")
    return problems


OUTCOME = re.compile(r"(\S+) (holds|does not hold|inconclusive) \((clear|marginal)\)")


def outcomes_of(text: str) -> list[dict[str, tuple[str, bool]]]:
    """Per ``outcomes:`` line (one per recipe and claim), arm → (outcome, marginal)."""
    return [
        {arm: (outcome, label == "marginal") for arm, outcome, label in OUTCOME.findall(line)}
        for line in text.splitlines()
        if "outcomes:" in line
    ]


def _compare_outcomes(new: str, old: str) -> list[str]:
    """Every arm's outcome must be the same, except where the README's or the rerun's decision
    is marginal: fewer than 99 % of reruns simulated from the run-to-run spread reach it
    (docs/method.md §6), so another processor's round-off may move it."""
    problems = []
    lines_new, lines_old = outcomes_of(new), outcomes_of(old)
    if [list(x) for x in lines_new] != [list(x) for x in lines_old]:
        problems.append(f"the outcomes lines name other arms: {lines_new!r}, README {lines_old!r}")
    for ours, theirs in zip(lines_new, lines_old):
        for arm, (outcome, marginal) in theirs.items():
            if arm not in ours:
                continue
            moved, marginal_here = ours[arm][0] != outcome, ours[arm][1]
            if moved and not (marginal or marginal_here):
                problems.append(
                    f"outcome of {arm}: {ours[arm][0]} where the README has a clear {outcome}"
                )
    for a, b in zip(ABOUT.findall(new), ABOUT.findall(old)):
        if not 0.5 <= int(a) / max(int(b), 1) <= 2:
            problems.append(f"'about {a}' against the README's 'about {b}'")
    if len(ABOUT.findall(new)) != len(ABOUT.findall(old)):
        problems.append("the verdict names a different number of 'about N' estimates")
    return problems


GRID_LINE = "for 80 % power"  # a search over grids: its answer may jump with the spreads
WORLD_PART = re.compile(
    r"(pairs|teachers|students|regret–deficit|settings) (\d+\.\d+)"
    r"|(\d+) %( of pairs), [+-]?\d+\.\d+"
)
LAYOUT = re.compile(r"(\d+) pairs \((\d+) teachers × (\d+) students\)")


def _poorly_estimated(block: str) -> set[str]:
    """The world's parts a rerun can move by more than their size: a spread between fewer than
    four teachers, students or pairs (a variance component with one to two degrees of freedom,
    clipped at zero, spans a factor of thirty), the correlations beside them, and the failing
    pairs' share and size (which pairs the rule flags is itself a decision that can be
    marginal)."""
    layout = LAYOUT.search(block)
    if layout is None:
        return set()
    pairs, teachers, students = (int(x) for x in layout.groups())
    levels = {"pairs": pairs, "teachers": teachers, "students": students}
    loose = {name for name, n in levels.items() if n < 4}
    if loose:
        loose |= {"regret–deficit", "settings"}
    return loose | {"failing"}


def _masked(match: re.Match, loose: set[str]) -> str:
    if match.group(1) is not None:
        return f"{match.group(1)} ~" if match.group(1) in loose else match.group(0)
    return "~ % of pairs, ~" if "failing" in loose else match.group(0)


def compare_design_block(new: str, old: str) -> list[str]:
    problems = []
    new_lines = [x for x in new.splitlines() if not x.startswith(GRID_LINE)]
    old_lines = [x for x in old.splitlines() if not x.startswith(GRID_LINE)]
    if any(x.startswith(GRID_LINE) for x in old.splitlines()) != any(
        x.startswith(GRID_LINE) for x in new.splitlines()
    ):
        problems.append(f"the design block's {GRID_LINE!r} line is missing")
    if [SKELETON.sub("#", x) for x in new_lines] != [SKELETON.sub("#", x) for x in old_lines]:
        return ["the design block's lines differ in more than their numbers"]
    loose = _poorly_estimated(old)
    declared = bool(old_lines) and LAYOUT.search(old_lines[0]) is not None
    if declared and new_lines[:1] != old_lines[:1]:  # layout, seeds, margins, α: as declared
        problems.append(f"design: the declared study {new_lines[:1]} differs from {old_lines[:1]}")
    for a_line, b_line in zip(new_lines, old_lines):
        if b_line.startswith("world ("):
            a_line, b_line = (
                WORLD_PART.sub(lambda m: _masked(m, loose), x) for x in (a_line, b_line)
            )
        for a, b in zip(NUMBER.findall(a_line), NUMBER.findall(b_line)):
            x, y = _float(a), _float(b)
            if a_line.startswith("P("):
                ok = _close(x, y, 0.2) or not (0 <= y <= 1)
            elif "." in b:
                ok = _close(x, y, 2.0) or (y > 0 and 0.5 <= x / y <= 2)
            else:
                ok = x == y or (y > 0 and 0.5 <= x / y <= 2)
            if not ok:
                problems.append(f"design: {a} against {b} in {b_line!r}")
    return problems
