"""What an evaluation record's status means to the analysis, in one place.

- ``complete``: trained and scored; a complete run without a finite score is read as diverged.
- ``diverged``: its numbers blew up. For the fixed arm of a claim that is a failure of the pair;
  for a comparator the seed is left out of that pair's comparison. Tables show it at chance
  (1 / classes), for reading only.
- ``failed``: the run crashed. That is missing data, not an outcome: the runner retries it, and
  while it is missing its cell is incomplete. Any other status (a run pruned before its end)
  is read the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..study.phases import Status


def status_of(record: Mapping[str, Any]) -> Status:
    """The record's status as the analysis reads it (a non-finite score is a divergence)."""
    status = str(record.get("status", Status.COMPLETE))
    if status == Status.COMPLETE:
        value = record.get("test/top1")
        if value is None or not math.isfinite(float(value)):
            return Status.DIVERGED
        return Status.COMPLETE
    if status == Status.DIVERGED:
        return Status.DIVERGED
    return Status.FAILED  # pruned or unknown: no outcome, so missing data


def chance_of(record: Mapping[str, Any]) -> float:
    """The chance score a diverged run is read at: the record's ``chance``, else 1 / classes
    (computed here and nowhere else in the analysis)."""
    if record.get("chance") is not None:
        return float(record["chance"])
    if record.get("classes"):
        return 1.0 / float(record["classes"])
    raise ValueError(
        f"a {record.get('status')} record of {record.get('method')!r} on pair "
        f"{record.get('pair')!r} needs 'chance' or 'classes' to be shown at chance"
    )


def accuracy(record: Mapping[str, Any]) -> tuple[float, bool]:
    """(test top-1 for reading, shown at chance?): a diverged run reads at chance. A failed run
    has no accuracy; callers leave it out (it is missing)."""
    if status_of(record) == Status.COMPLETE:
        return float(record["test/top1"]), False
    return chance_of(record), True
