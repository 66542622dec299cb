"""`bench claims`: N simulated workers claim, hold and finish the trials of a large study.

Each worker is a process with its own storage connection that loops as a real worker does:
the scheduler's check of every unit's state, then one claim (the waiting-trial query, the
WAITING → RUNNING transition, the heartbeat, the sampler for search trials), a hold of a random
5–20 ms instead of training, and Optuna told the trial is complete. No data, no models, no
MLflow: the figure is the queue alone. Every (storage, N) runs twice on fresh stores — with the
per-study queries a loop used to make ("per unit") and with the single queries it makes now
("one query") — and prints claims per second, the median and 99th-percentile latency of one
loop (check + claim), database statements per loop, and the trials claimed twice (must be 0).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError

from ..config import load_study, shipped_studies
from ..study import build_plan
from ..study import waiting as waiting_module
from ..study.queue import TrialQueue
from ..study.scheduler import PhaseScheduler
from ..study.storage import open_storage, sqlite_url


def _worker(url: str, study: str, mode: str, seconds: float, seed: int, out: Any) -> None:
    import sqlalchemy

    rng = random.Random(seed)
    plan = build_plan(load_study(study, check_files=False))
    storage = open_storage(url)
    statements = [0]
    sqlalchemy.event.listen(
        storage.engine,
        "before_cursor_execute",
        lambda *a: statements.__setitem__(0, statements[0] + 1),
    )
    if mode == "per unit":  # the claim as it was: Optuna's API, one query per unit
        waiting_module.ONE_QUERY = False
    queue = TrialQueue(storage, plan)
    scheduler = PhaseScheduler(plan, queue)
    latencies, counts, claimed = [], [], []
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        before, started = statements[0], time.perf_counter()
        try:
            scheduler.advance()
            cohort = queue.claim_cohort(1, f"bench-{seed}")
        except UpdateFinishedTrialError:  # the old claim's race: another worker had it too
            claimed.append(-1)
            claimed.append(-1)
            continue
        latencies.append(time.perf_counter() - started)
        counts.append(statements[0] - before)
        if not cohort:
            break
        time.sleep(rng.uniform(0.005, 0.020))
        for c in cohort:
            claimed.append(c.trial_id)
            try:
                c.study.tell(c.trial, 0.5)
            except ValueError:  # told already: another worker claimed it too
                claimed.append(c.trial_id)
    out.put((latencies, counts, claimed))


def _init(url: str, study: str) -> int:
    plan = build_plan(load_study(study, check_files=False))
    queue = TrialQueue(open_storage(url), plan)
    for unit in plan.first_units():
        queue.plan_unit(unit)
    return sum(len(plan.slots(u)) for u in plan.first_units())


def _measure(url: str, study: str, workers: int, mode: str, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("fork")
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(url, study, mode, seconds, i, results))
        for i in range(workers)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    parts = [results.get(timeout=seconds + 300) for _ in procs]
    wall = time.perf_counter() - started
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _, _ in parts for x in lat)
    counts = [x for _, c, _ in parts for x in c]
    claimed = [x for _, _, c in parts for x in c]
    races = claimed.count(-1) // 2
    claimed = [x for x in claimed if x != -1]
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "claims": len(claimed),
        "claims_per_s": len(claimed) / wall,
        "p50_ms": 1000 * q[49],
        "p99_ms": 1000 * q[98],
        "statements": statistics.fmean(counts) if counts else 0.0,
        "twice": len(claimed) - len(set(claimed)) + races,
    }


def run(args: argparse.Namespace) -> int:
    study = args.study or str(shipped_studies() / "cifar100_classic.yaml")
    counts = args.workers_list or [1, 8, 32]
    seconds = args.seconds or 15.0
    backends: list[tuple[str, Any]] = [("SQLite", None)]
    cluster = None
    if args.postgres:
        from .pgtemp import PostgresCluster, server_binary

        if server_binary("initdb") is None:
            print("PostgreSQL server binaries not found: SQLite only")
        else:
            cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="redistill-bench-pg-")))
            cluster.start()
            backends.append(("PostgreSQL", cluster))
    plan = build_plan(load_study(study, check_files=False))
    print(
        f"bench claims: {Path(study).name}, {len(plan.first_units())} units queued, "
        f"{seconds:g} s per figure, holds of 5–20 ms"
    )
    print(
        f"  {'storage':<11} {'N':>3}  {'claim':<10} {'claims/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'stmts/loop':>11} {'twice':>5}"
    )
    try:
        for backend, pg in backends:
            for n in counts:
                rates = {}
                for mode in ("per unit", "one query"):
                    if pg is None:
                        folder = Path(tempfile.mkdtemp(prefix="redistill-bench-"))
                        url = sqlite_url(folder / "optuna.db")
                    else:
                        name = f"bench_{n}_{mode.replace(' ', '_')}_{int(time.time())}"
                        pg.create_database(name)
                        url = pg.url(name)
                    total = _init(url, study)
                    r = _measure(url, study, n, mode, seconds)
                    rates[mode] = r["claims_per_s"]
                    print(
                        f"  {backend:<11} {n:>3}  {mode:<10} {r['claims_per_s']:>9.1f} "
                        f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['statements']:>11.1f} "
                        f"{r['twice']:>5}   ({r['claims']} of {total} trials)",
                        flush=True,
                    )
                print(f"  {'':<11} {n:>3}  one query ×{rates['one query'] / rates['per unit']:.1f}")
    finally:
        if cluster is not None:
            cluster.stop()
    return 0
