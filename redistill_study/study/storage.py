"""Optuna storage: SQLite on one machine, PostgreSQL for many; patient through outages."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from .._patience import DEFAULT_LIMIT, Patience, opening
from .._util import file_lock, first_line
from ..errors import StoreUnreachable, UserError, redact_url

# Heartbeats and the retry callback are marked experimental in Optuna; they are what we rely on.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# During an outage SQLAlchemy's pool logs each dead connection it fails to reset or close, with
# a traceback; the storage's patience already says, in one line, that the server is away.
logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)

# Seconds between a running trial's heartbeats, and the silence after which another worker
# fails the trial and re-queues it. The environment can shorten them (tests do).
HEARTBEAT_INTERVAL = int(os.environ.get("REDISTILL_HEARTBEAT_INTERVAL", "5"))
GRACE_PERIOD = int(os.environ.get("REDISTILL_HEARTBEAT_GRACE", "30"))
# An answer this slow (a lock held that long) may have held a live worker's heartbeats past
# the grace period: the sweep then waits for steadiness again (see liveness).
SLOW_AFTER = max(GRACE_PERIOD - HEARTBEAT_INTERVAL, 1)
# Seconds a SQLite connection waits for another process's write lock before the attempt fails
# (and the storage's patience tries again).
SQLITE_BUSY_TIMEOUT = float(os.environ.get("REDISTILL_SQLITE_BUSY_TIMEOUT", "120"))


# Every operation of Optuna's storage API; PatientStorage forwards each through its Patience.
_FORWARDED = (
    "check_trial_is_updatable",
    "create_new_study",
    "create_new_trial",
    "delete_study",
    "get_all_studies",
    "get_all_trials",
    "get_best_trial",
    "get_n_trials",
    "get_study_directions",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_system_attrs",
    "get_study_user_attrs",
    "get_trial",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "get_trial_params",
    "get_trial_system_attrs",
    "get_trial_user_attrs",
    "set_study_system_attr",
    "set_study_user_attr",
    "set_trial_intermediate_value",
    "set_trial_param",
    "set_trial_system_attr",
    "set_trial_user_attr",
    "record_heartbeat",
    "_get_stale_trial_ids",
    "get_heartbeat_interval",
    "get_failed_trial_callback",
    "get_heartbeat_stale_trial_callback",
    "remove_session",
)


def _forward(name: str) -> Callable[..., Any]:
    def method(self: PatientStorage, *args: Any, **kwargs: Any) -> Any:
        target = getattr(self.inner, name)
        return self.patience.call(lambda: target(*args, **kwargs))

    method.__name__ = name
    return method


class PatientStorage(BaseStorage, BaseHeartbeat):
    """Optuna's storage (with its read cache) behind a :class:`Patience`: an operation that
    meets a database which is down or locked is retried until it answers or the patience ends.

    ``engine`` is the relational storage's SQLAlchemy engine, for the statements of
    :mod:`.waiting` and :mod:`.retry`; run them through ``patience.call`` too."""

    def __init__(self, rdb: RDBStorage, patience: Patience) -> None:
        self.rdb, self.patience = rdb, patience
        self.inner = optuna.storages.get_storage(rdb)  # Optuna's cache over the RDB storage
        self.engine = rdb.engine
        self._immediate = threading.local()
        if self.engine.dialect.name == "sqlite":
            self._serialise_state_changes()

    def _serialise_state_changes(self) -> None:
        """On SQLite, a trial's state change takes the write lock before it reads the state.

        Optuna reads the state, then writes it (``SELECT … FOR UPDATE`` locks nothing on
        SQLite), so a worker finishing its trial could write COMPLETE over the FAIL another
        worker's sweep had just committed. With ``BEGIN IMMEDIATE`` the two are serialised:
        the later one sees the earlier's state. (SQLAlchemy's recipe for pysqlite: the driver
        stops issuing its own BEGIN, and every transaction begins here.)"""
        immediate = self._immediate

        @sqlalchemy.event.listens_for(self.engine, "connect")
        def _connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sqlalchemy.event.listens_for(self.engine, "begin")
        def _begin(connection: Any) -> None:
            immediate_now = getattr(immediate, "on", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate_now else "BEGIN")

        self.engine.dispose()  # connections opened before the listeners are not reused

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        tried = False

        def attempt() -> bool:
            nonlocal tried
            self._immediate.on = True
            try:
                return self.inner.set_trial_state_values(trial_id, state, values)
            except UpdateFinishedTrialError:
                # A retry after a commit whose answer was lost: the first attempt did it.
                if tried and self.inner.get_trial(trial_id).state is state:
                    return True
                raise
            finally:
                self._immediate.on = False
                tried = True

        return self.patience.call(attempt)


for _name in _FORWARDED:
    setattr(PatientStorage, _name, _forward(_name))
PatientStorage.__abstractmethods__ = frozenset()


def open_storage(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    limit: float = DEFAULT_LIMIT,
) -> PatientStorage:
    """The study's storage, created if missing, every operation patient through outages of up
    to ``limit`` seconds."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several local workers share one SQLite file: wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    else:
        engine_kwargs["pool_pre_ping"] = True
        if url.startswith(("postgresql://", "postgresql+psycopg2://")):
            # A server behind a partition does not refuse, it stays silent: an attempt gives
            # up after 10 s so that the patience, not the kernel's TCP timeout, decides.
            # Keep-alives find a connection to a vanished server in about 25 s, not the
            # kernel's quarter of an hour.
            engine_kwargs["connect_args"] = {
                "connect_timeout": 10,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            }
    what = f"Optuna storage {redact_url(url)}"
    patience = Patience(what, limit, slow_after=SLOW_AFTER)
    attempt = 0
    while True:
        try:
            rdb = opening(what).call(
                lambda: RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval or HEARTBEAT_INTERVAL,
                    grace_period=grace_period or GRACE_PERIOD,
                )
            )
            return PatientStorage(rdb, patience)  # type: ignore[abstract]  # set from _FORWARDED
        except StoreUnreachable as exc:
            raise UserError(f"{exc}; check the URL and that the server is up") from None
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
