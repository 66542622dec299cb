"""The tracker on a real MLflow store shared by several worker processes."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from redistill_study.tracking import Tracker

ROUNDS, WORKERS = 10, 4


def _log_the_same_datasets(uri: str, barrier, out) -> None:
    tracker = Tracker(uri, "race")
    runs = [tracker.start_run(f"r{i}") for i in range(ROUNDS)]
    for i, run in enumerate(runs):
        barrier.wait()  # every worker logs the same new data set at the same moment
        tracker.log_dataset(run, "digits", f"digest-{i}", "digits", "training")
    out.put(runs)


def test_workers_that_log_the_same_new_data_set_at_once_all_link_it(tmp_path: Path) -> None:
    """MLflow's get-or-create of a data set is not atomic: all but one of the racing workers
    were refused (UNIQUE constraint failed) and crashed. Each must link its run to the one
    data set."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "race")
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [
        ctx.Process(target=_log_the_same_datasets, args=(uri, barrier, out)) for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    runs = [run for _ in procs for run in out.get(timeout=120)]  # a crashed worker sends none
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    digests = {
        run: [d.dataset.digest for d in tracker.client.get_run(run).inputs.dataset_inputs]
        for run in runs
    }
    assert all(len(found) == 1 for found in digests.values()), digests
    assert len({d for found in digests.values() for d in found}) == ROUNDS
