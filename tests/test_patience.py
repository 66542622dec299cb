"""Waiting out an unreachable store: which errors are retried, the one line, the limit.

The errors are the real ones the drivers raise: psycopg2 and MLflow's HTTP client against a
port nobody listens on, SQLite with another connection holding the write lock.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from redistill_study._patience import Patience, is_transient
from redistill_study.errors import StoreUnreachable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


def _quiet(lines: list[str], quiet_for: float = 0.0) -> Patience:
    return Patience(
        "test store",
        limit=30,
        first_delay=0.01,
        max_delay=0.05,
        say=lines.append,
        quiet_for=quiet_for,
    )


def _down_for(seconds: float, answer: object):
    """A store that refuses connections for ``seconds``, then answers ``answer``."""
    back_at = time.monotonic() + seconds

    def store() -> object:
        if time.monotonic() < back_at:
            raise ConnectionRefusedError("connection refused")
        return answer

    return store


def test_a_postgresql_server_that_is_down_is_transient() -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    with pytest.raises(psycopg2.OperationalError) as caught:
        psycopg2.connect(host="127.0.0.1", port=_closed_port(), user="x", dbname="x")
    assert is_transient(caught.value)


def test_optunas_wrapped_commit_error_is_transient_through_its_cause(tmp_path: Path) -> None:
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    blocked = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'o.db'}", engine_kwargs={"connect_args": {"timeout": 0.1}}
    )
    holder = sqlite3.connect(tmp_path / "o.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(optuna.exceptions.StorageInternalError) as caught:
            blocked.set_study_user_attr(study_id, "k", 1)
    finally:
        holder.rollback()
        holder.close()
    # Optuna words it "invalid data in the commit"; the cause says the database is locked.
    assert is_transient(caught.value)


def test_a_locked_commit_raised_while_handling_a_missing_study_is_transient(
    tmp_path: Path,
) -> None:
    # As when eight workers create a study at once: Optuna's "Record does not exist." was being
    # handled when the commit met the lock; it says nothing about whether waiting helps.
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    blocked = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'o.db'}", engine_kwargs={"connect_args": {"timeout": 0.1}}
    )
    holder = sqlite3.connect(tmp_path / "o.db")
    holder.execute("BEGIN IMMEDIATE")  # others read, nobody else writes
    caught: BaseException | None = None
    try:
        try:
            blocked.get_study_id_from_name("absent")
        except KeyError:
            blocked.set_study_system_attr(study_id, "k", 1)
    except optuna.exceptions.StorageInternalError as exc:
        caught = exc
    finally:
        holder.rollback()
        holder.close()
    assert caught is not None
    handled, seen = caught, []
    while handled is not None:
        seen.append(str(handled))
        handled = handled.__cause__ or handled.__context__
    assert any("does not exist" in text for text in seen), seen  # the case, reproduced
    assert is_transient(caught)


def test_an_mlflow_server_that_is_down_is_transient(monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(Exception) as caught:
        client.get_experiment_by_name("x")
    assert is_transient(caught.value)


def test_errors_that_waiting_cannot_cure_pass_straight_through(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.execute("SELECT * FROM no_such_table")
    assert not is_transient(caught.value)
    assert not is_transient(ValueError("invalid literal"))
    lines: list[str] = []
    calls = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad data")

    with pytest.raises(ValueError):
        _quiet(lines).call(broken)
    assert len(calls) == 1 and lines == []


def test_an_outage_is_waited_for_with_one_line_at_each_end() -> None:
    lines: list[str] = []
    patience = _quiet(lines)
    store = _down_for(0.5, "answer")
    assert patience.call(store) == "answer"
    assert len(lines) == 2, lines
    assert lines[0].startswith("test store unreachable since ")
    assert "ConnectionRefusedError: connection refused" in lines[0]
    assert lines[1].startswith("test store back after ")
    assert patience.outages == 1 and not patience.down


def test_past_the_limit_it_gives_up_and_later_calls_do_not_wait_again() -> None:
    lines: list[str] = []
    patience = Patience("test store", limit=0.3, first_delay=0.01, say=lines.append)
    calls = []

    def down() -> None:
        calls.append(time.monotonic())
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(StoreUnreachable, match="test store unreachable since"):
        patience.call(down)
    assert calls[-1] - calls[0] >= 0.2 and len(calls) > 2
    tried = len(calls)
    with pytest.raises(StoreUnreachable):
        patience.call(down)
    assert len(calls) == tried  # given up: not even tried


def test_a_single_try_reports_the_outage_to_the_waiting_threads() -> None:
    lines: list[str] = []
    patience = _quiet(lines)
    time.sleep(0.05)
    assert patience.steady_for() >= 0.05
    with pytest.raises(ConnectionRefusedError):
        patience.call(lambda: (_ for _ in ()).throw(ConnectionRefusedError("refused")), False)
    assert patience.down and patience.steady_for() == 0.0
    assert patience.call(lambda: 1) == 1
    assert not patience.down and patience.steady_for() < 0.05  # counted from the recovery


def test_threads_share_one_outage(tmp_path: Path) -> None:
    lines: list[str] = []
    patience = _quiet(lines)
    store = _down_for(0.3, 1)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(patience.call(store))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [1, 1]
    assert patience.outages == 1
    assert sum(line.startswith("test store unreachable") for line in lines) == 1


def test_a_lock_that_clears_at_once_is_not_announced() -> None:
    lines: list[str] = []
    patience = _quiet(lines, quiet_for=1.0)
    assert patience.call(_down_for(0.1, "ok")) == "ok"
    assert lines == []  # waited for, not announced
    assert patience.call(_down_for(1.3, "ok")) == "ok"
    assert len(lines) == 2 and "unreachable since" in lines[0] and "back after" in lines[1]
