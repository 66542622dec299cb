"""Optuna storage: SQLite on one machine, PostgreSQL for many; heartbeats retry lost trials."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from ..errors import UserError, redact_url

# Heartbeats and the retry callback are marked experimental in Optuna; they are what we rely on.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

HEARTBEAT_INTERVAL = 5  # seconds between a running trial's heartbeats
GRACE_PERIOD = 30  # a trial silent this long is failed and re-queued by another worker


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
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
) -> RDBStorage:
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several local workers share one SQLite file: wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryAndCloseRun(on_stale),
        )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"Optuna storage {redact_url(url)} is not usable: {redact_url(first)[:300]}"
        ) from None


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"
