"""Optuna storage: SQLite on one machine, PostgreSQL for many; heartbeats retry lost trials."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from .._util import file_lock, first_line
from ..errors import UserError, redact_url

# Heartbeats and the retry callback are marked experimental in Optuna; they are what we rely on.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

# Seconds between a running trial's heartbeats, and the silence after which another worker
# fails the trial and re-queues it. The environment can shorten them (tests do).
HEARTBEAT_INTERVAL = int(os.environ.get("REDISTILL_HEARTBEAT_INTERVAL", "5"))
GRACE_PERIOD = int(os.environ.get("REDISTILL_HEARTBEAT_GRACE", "30"))


class RetryAndCloseRun(RetryHeartbeatStaleTrialCallback):
    """Re-queue a stale trial (Optuna's callback) and close its MLflow run as KILLED."""

    def __init__(self, on_stale: Callable[[FrozenTrial], None] | None = None) -> None:
        super().__init__(max_retry=3)
        self.on_stale = on_stale

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.on_stale is not None:
            self.on_stale(trial)
        super().__call__(study, trial)


def open_storage(
    url: str,
    on_stale: Callable[[FrozenTrial], None] | None = None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
) -> RDBStorage:
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several local workers share one SQLite file: wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True
    attempt = 0
    while True:
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval or HEARTBEAT_INTERVAL,
                grace_period=grace_period or GRACE_PERIOD,
                heartbeat_stale_trial_callback=RetryAndCloseRun(on_stale),
            )
        except Exception as exc:
            # Another process creating the same tables at this moment: its tables will do.
            attempt += 1
            if "already exists" in str(exc) and attempt < 4:
                time.sleep(0.2 * attempt)
                continue
            first = first_line(exc)
            raise UserError(
                f"Optuna storage {redact_url(url)} is not usable: {redact_url(first)[:300]}"
            ) from None


def open_storage_readonly(url: str) -> RDBStorage:
    """An existing storage opened for reading: no table is created, and a SQLite file is opened
    read-only by the driver itself."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise UserError(f"{path}: no Optuna storage here; run the study first")
        # A write-ahead-log database is read through a shared-memory file next to it; in a
        # folder nobody may write to (so no writer either), it is read as an immutable file.
        frozen = (
            not os.access(path.parent, os.W_OK) and not path.with_name(path.name + "-shm").exists()
        )
        log = path.with_name(path.name + "-wal")
        if frozen and log.is_file() and log.stat().st_size > 0:
            # Read as immutable, the commits still in the log would be silently missing.
            raise UserError(
                f"{path}: its last commits are still in {log.name} and this folder cannot be "
                f'written; copy the store with `sqlite3 {path.name} ".backup COPY.db"` instead'
            )
        url = f"sqlite:///file:{path.resolve()}?mode=ro{'&immutable=1' if frozen else ''}&uri=true"
    try:
        return RDBStorage(url, skip_table_creation=True)
    except Exception as exc:
        first = first_line(exc)
        raise UserError(
            f"Optuna storage {redact_url(url)} is not readable: {redact_url(first)[:300]}"
        ) from None


def use_write_ahead_log(url: str, wait: float = 120.0) -> None:
    """Put a local SQLite store in write-ahead-log mode (the mode stays with the file).

    A commit then appends to the log with one sync instead of rewriting pages through a
    rollback journal with several, and readers never block the writer. It is as durable
    (SQLite's default synchronous=FULL is kept) and needs the processes on one host, which a
    shared SQLite file needs anyway."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if path.is_file():
        with contextlib.closing(sqlite3.connect(path, timeout=wait)) as connection:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                # Another worker held a transaction through the wait: the store keeps its
                # journal this time (correct, only slower), and a later start switches it.
                pass


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


@contextlib.contextmanager
def store_init_lock(*urls: str) -> Iterator[None]:
    """Serialise store creation between processes sharing local SQLite files (a lock file next
    to each database). Server databases are created once with `redistill-study init`."""
    paths = sorted(
        Path(url.removeprefix("sqlite:///")).with_suffix(".init.lock")
        for url in urls
        if url.startswith("sqlite:///")
    )
    with contextlib.ExitStack() as stack:
        for path in paths:
            stack.enter_context(file_lock(path))
        yield
