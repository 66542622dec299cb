from __future__ import annotations

from pathlib import Path

import pytest
from helpers import started, tiny_study, write_yaml


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "tiny.yaml", tiny_study())


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    from postgres import PostgresCluster, server_binary

    if server_binary("initdb") is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs them)")
    with started(PostgresCluster, "redistill-pg-") as cluster:  # runs as user postgres
        yield cluster
