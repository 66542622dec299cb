from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_study, write_yaml


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "tiny.yaml", tiny_study())


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    from postgres import PostgresCluster, server_binary

    if server_binary("initdb") is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs them)")
    import shutil
    import tempfile

    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="redistill-pg-"))
    cluster = PostgresCluster(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
