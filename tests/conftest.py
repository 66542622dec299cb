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


@pytest.fixture
def postgres_url_factory(request: pytest.FixtureRequest):
    """A fresh database on the session's PostgreSQL server, started on first use."""
    import os
    import time

    def make() -> str:
        cluster = request.getfixturevalue("postgres")
        name = f"t_{os.getpid()}_{time.monotonic_ns() % 10**9}"
        cluster.create_database(name)
        return cluster.url(name)

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_url_factory) -> str:
    """An empty Optuna storage on each backend: a SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    return postgres_url_factory()
