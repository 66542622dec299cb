"""Waiting out a store that went away: capped exponential back-off with jitter, one line.

A database failover or a tracking server's restart is weather, not a bug: an operation that
fails because its server cannot be reached is tried again until ``limit`` seconds have passed
since the outage began, with one line when it starts and one when it ends. Errors that retrying
cannot cure (a wrong password, a missing table, bad data) pass straight through. A full disk
under a local store counts as weather too: freeing space is the operator's fix, and the worker
waits for it.

>>> calls = []
>>> def flaky():
...     calls.append(1)
...     if len(calls) < 3:
...         raise ConnectionRefusedError("connection refused")
...     return "ok"
>>> patience = Patience("test store", limit=10, first_delay=0.001, say=lambda line: None)
>>> patience.call(flaky), len(calls)
('ok', 3)
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import StoreUnreachable, redact_url

T = TypeVar("T")

DEFAULT_LIMIT = float(os.environ.get("REDISTILL_STORE_PATIENCE", "300"))
# A store that has never answered this process is more likely a wrong address than an outage:
# opening waits this long, silently, then says so in one line.
OPENING_LIMIT = float(os.environ.get("REDISTILL_STORE_OPENING_PATIENCE", "10"))
# A failure that clears within this many seconds is not announced: SQLite answers "database is
# locked" at once (without waiting) when two of a worker's own connections both want to write.
QUIET_FOR = 1.0

# What a server that is down, restarting or locked says, as the drivers word it. Anything else
# (authentication, a host name that does not resolve, a missing table) is not retried.
_TRANSIENT = (
    "connection refused",
    "could not connect to server",
    "connection to server",
    "server closed the connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection reset",
    "connection aborted",
    "connection already closed",
    "broken pipe",
    "timeout expired",
    "timed out",
    "database is locked",
    "deadlock detected",
    "database or disk is full",
    "no space left on device",
    "no connection to the server",
    "ssl syscall error",
    "max retries exceeded",
    "remote end closed connection",
    "can't reconnect until invalid transaction is rolled back",
    "503 service unavailable",
    "502 bad gateway",
)
_PERMANENT = (
    "password authentication failed",
    "could not translate host name",
    "does not exist",
    "no such table",
    "permission denied",
)


def _chain(exc: BaseException, causes_only: bool = False) -> list[BaseException]:
    """The error and what led to it: its explicit causes (``raise … from``), and with
    ``causes_only`` false also what was being handled when it was raised."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or (None if causes_only else current.__context__)
    return seen


def is_transient(exc: BaseException) -> bool:
    """True for the errors of a server that is unreachable, restarting or locked."""
    if isinstance(exc, StoreUnreachable):
        return False
    text = " ".join(str(e) for e in _chain(exc)).lower()
    # Permanence is read from the failure's own causes: an error handled on the way (Optuna's
    # "Record does not exist." before it creates a study) says nothing about the store.
    causes = " ".join(str(e) for e in _chain(exc, causes_only=True)).lower()
    if any(marker in causes for marker in _PERMANENT):
        return False
    if any(isinstance(e, (ConnectionError, TimeoutError)) for e in _chain(exc)):
        return True
    return any(marker in text for marker in _TRANSIENT)


def opening(what: str) -> Patience:
    """The patience for opening a store: short and silent (see ``OPENING_LIMIT``)."""
    return Patience(what, limit=OPENING_LIMIT, max_delay=2.0, say=lambda line: None)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Patience:
    """Retries for one store, shared by every thread of a worker.

    ``call`` retries transient failures for up to ``limit`` seconds from the start of the
    outage; past it, this and every later call raise :class:`StoreUnreachable` at once, so a
    worker that gives up releases what it can without waiting again. ``steady_for`` says how
    long the store has answered since the last outage this process saw (or since it started,
    or since an answer took over ``slow_after`` seconds): the stale-trial sweep waits for one
    grace period of it (see :mod:`..study.liveness`).
    """

    def __init__(
        self,
        what: str,
        limit: float = DEFAULT_LIMIT,
        first_delay: float = 0.5,
        max_delay: float = 5.0,
        say: Callable[[str], None] = _stderr,
        slow_after: float | None = None,
        quiet_for: float = QUIET_FOR,
    ) -> None:
        self.what, self.limit, self.slow_after = what, limit, slow_after
        self.quiet_for = min(quiet_for, limit)
        self.first_delay, self.max_delay, self.say = first_delay, max_delay, say
        self._lock = threading.Lock()
        self._down_since: float | None = None  # monotonic
        self._down_wall = ""
        self._attempts = 0
        self._last_said = 0.0
        self._said = False  # whether this outage has been announced
        self._steady_since = time.monotonic()
        self.gave_up = False
        self.outages = 0

    # --- state shared between threads --------------------------------------------------

    def _failed(self, exc: BaseException) -> float:
        """Record one failure; the seconds the outage has lasted."""
        now = time.monotonic()
        with self._lock:
            if self._down_since is None:
                self._down_since, self._attempts, self._said = now, 0, False
                self._down_wall = dt.datetime.now().strftime("%H:%M:%S")
                self.outages += 1
            self._attempts += 1
            if not self._said and now - self._down_since >= self.quiet_for:
                self._announce(exc, now)
            elif self._said and now - self._last_said >= 60:
                self._last_said = now
                self.say(
                    f"{self.what} unreachable since {self._down_wall}, retrying "
                    f"({self._attempts}/…)"
                )
            return now - self._down_since

    def _announce(self, exc: BaseException, now: float) -> None:
        self._said, self._last_said = True, now
        self.say(
            f"{self.what} unreachable since {self._down_wall}, retrying for up to "
            f"{self.limit:.0f} s ({_reason(exc)})"
        )

    def _answered(self, slow: bool = False) -> None:
        if slow:
            # An answer that took ``slow_after`` seconds (a lock held that long): others'
            # heartbeats may have waited as long and look stale, so steadiness starts again.
            self._steady_since = time.monotonic()
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            now = time.monotonic()
            if self._said:  # a lock that cleared within ``quiet_for`` was never announced
                self.say(f"{self.what} back after {now - self._down_since:.0f} s")
            self._down_since, self._steady_since = None, now

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def steady_for(self) -> float:
        """Seconds the store has answered without an outage (0 while it is down)."""
        return 0.0 if self.down else time.monotonic() - self._steady_since

    # --- calls -------------------------------------------------------------------------

    def call(self, fn: Callable[[], T], wait: bool = True) -> T:
        """``fn()``, retried through an outage; ``wait=False`` tries once (and still tells
        the others that the store is down: a heartbeat thread must never block)."""
        delay = self.first_delay
        while True:
            if self.gave_up:
                raise StoreUnreachable(f"{self.what} unreachable for over {self.limit:.0f} s")
            started = time.monotonic()
            try:
                result = fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                lasted = self._failed(exc)
                if not wait:
                    raise
                if lasted >= self.limit:
                    with self._lock:
                        if not self._said:
                            self._announce(exc, time.monotonic())
                    self.gave_up = True
                    raise StoreUnreachable(
                        f"{self.what} unreachable since {self._down_wall} "
                        f"(over {self.limit:.0f} s): {_reason(exc)}"
                    ) from None
                time.sleep(min(delay, self.limit - lasted) * random.uniform(0.5, 1.0))
                delay = min(self.max_delay, delay * 2)
                continue
            slow = self.slow_after is not None and time.monotonic() - started > self.slow_after
            self._answered(slow)
            return result


def _reason(exc: BaseException) -> str:
    """The first line of the innermost error that names the real cause (a driver's "connection
    refused", not the pool's or Optuna's wrapping of it)."""
    chain = _chain(exc)
    telling = [e for e in chain if any(m in str(e).lower() for m in _TRANSIENT)]
    inner = (telling or chain)[-1]
    lines = str(inner).strip().splitlines()
    return redact_url(f"{type(inner).__name__}: {lines[0] if lines else ''}")[:200]
