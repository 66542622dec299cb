"""Read a study config: YAML (safe_load) → schema → checks against the registries and files.

Every problem becomes one :class:`ConfigError` line: ``file:line: key.path: what was expected``
(:mod:`._located`); the checks beyond the schema are :mod:`.semantics`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from pydantic import ValidationError

from .._util import resolve_path
from ._located import read_yaml, schema_error
from .schema import StudyConfig
from .semantics import check_semantics

__all__ = ["default_study_path", "load_study", "resolve_path", "shipped_studies"]


def shipped_studies() -> Path:
    """The study configs that ship with the package (``studies/`` of the repository)."""
    return Path(str(files("redistill_study") / "studies"))


def default_study_path() -> Path:
    """The embedded default study, wherever the package is installed."""
    return shipped_studies() / "default.yaml"


def load_study(
    path: str | Path, *, check_files: bool = True, read_data: bool = False
) -> StudyConfig:
    """Parse and fully validate a study file; raise :class:`ConfigError` on the first problem.
    ``check_files``: data folders and checkpoints exist; ``read_data``: the data set's files
    are also read and checked, as ``validate`` does (``run`` reads them anyway)."""
    path = Path(path)
    data, located = read_yaml(path)
    try:
        config = StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise schema_error(exc, located, data) from None
    check_semantics(
        config, located, base_dir=path.parent, check_files=check_files, read_data=read_data
    )
    return config
