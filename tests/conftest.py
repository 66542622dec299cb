from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_study, write_yaml


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "tiny.yaml", tiny_study())
