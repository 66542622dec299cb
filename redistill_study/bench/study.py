"""`bench study`: a study's own students, trained as one cohort one by one and vectorised,
side by side in one process; trainings per second and the ratio, per student architecture.

For every student architecture of the study, a cohort of ``cohort_size`` members (the study's
methods at their defaults, in turn) trains for the study's student recipe on its data, with the
one-by-one engine and the vectorised one in turn, from the same initial weights; ``--rounds``
alternations, the best rate of each engine reported (as ``timeit`` does: the machine's slow
spells only ever make a figure worse). The
teacher's logits come from a fixed table, as they do in a study whose data has no augmentation
(the cached path); the figure is the students' cost. Beside it: each student's FLOPs per
training sample (forward and backward, ``FlopCounterMode``), the rate the vectorised cohort
achieved in them, and the share of a measured float32 matmul peak — the distance to the limit.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ..config import PairConfig, default_study_path, load_study
from ..data import build_dataset
from ..models import create_model
from ..study import build_plan
from ..training import make_member, make_runtime, train_cohort
from .flops import matmul_peak, training_flops_per_sample


def run(args: argparse.Namespace) -> int:
    path = Path(args.study) if args.study else default_study_path()
    config = load_study(path)
    plan = build_plan(config)
    bundle = build_dataset(config.dataset, path.parent)
    runtime = make_runtime(
        args.device if args.device != "cpu" or config.device == "auto" else config.device,
        config.precision,
        config.channels_last,
        config.compile,
    )
    k = config.cohort_size
    table = (
        torch.randn(
            len(bundle.train), bundle.num_classes, generator=torch.Generator().manual_seed(0)
        )
        * 3
    )
    table = table.to(runtime.device)
    students: dict[str, PairConfig] = {}
    for cell in plan.cells:  # the primary recipe's students (recipes differ in settings only)
        if cell.recipe.name == plan.primary_recipe:
            students.setdefault(plan.student_key(cell), cell.pair)
    peak = matmul_peak(runtime.device)
    print(
        f"bench study {config.name}: {len(students)} student architecture(s), cohorts of K = {k},"
        f" {runtime.device} ({torch.get_num_threads()} threads), best of {args.rounds}"
        f" interleaved rounds; float32 matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    print(
        f"  {'student':<22} {'one by one':>14} {'vectorised':>14}   ratio"
        "   MFLOP/sample  vectorised GFLOP/s (of peak)"
    )
    for pair in students.values():
        recipe = plan.student_recipe(pair)
        if args.epochs:
            recipe = recipe.model_copy(update={"epochs": args.epochs})
        best = {False: 0.0, True: 0.0}
        engine = ""
        for _ in range(args.rounds):  # interleaved, so a slow spell of the machine hits both
            for vectorize in (False, True):
                rate, used = _cohort_rate(pair, plan, bundle, recipe, runtime, k, table, vectorize)
                best[vectorize] = max(best[vectorize], rate)
                engine = used if vectorize else engine
        seq, vec = best[False], best[True]
        args_text = ",".join(f"{k}={v}" for k, v in sorted(pair.student.args.items()))
        label = pair.student.model + (f"({args_text})" if args_text else "")
        label += " (fell back)" if engine != "vectorised" else ""
        per_sample = _flops_per_sample(pair, bundle, runtime)
        subset = bundle.train_subset(recipe.subset)
        samples = recipe.epochs * (len(subset) if subset is not None else len(bundle.train))
        achieved = vec * samples * per_sample  # training FLOPs only (validation not counted)
        print(
            f"  {label:<22} {seq:10.2f} tr/s {vec:10.2f} tr/s   ×{vec / seq:.2f}"
            f"   {per_sample / 1e6:12.4g}  {achieved / 1e9:9.2f} ({100 * achieved / peak:.1f} %)"
        )
    return 0


def _flops_per_sample(pair, bundle, runtime) -> float:
    model = create_model(pair.student.model, num_classes=bundle.num_classes, **pair.student.args)
    return training_flops_per_sample(
        model.to(runtime.device), bundle.input_shape, bundle.num_classes
    )


def _cohort_rate(pair, plan, bundle, recipe, runtime, k, table, vectorize) -> tuple[float, str]:
    """Trainings per second of one cohort of ``k`` members, and the engine it used."""
    members = [
        make_member(
            i,
            model_name=pair.student.model,
            model_args=pair.student.args,
            num_classes=bundle.num_classes,
            seed=i,
            method=plan.methods[i % len(plan.methods)].cls(
                **plan.methods[i % len(plan.methods)].config.params
            ),
            recipe=recipe,
            runtime=runtime,
        )
        for i in range(k)
    ]
    started = time.perf_counter()
    engine = train_cohort(
        members,
        bundle,
        recipe,
        data_seed=0,
        runtime=runtime,
        teacher=lambda idx, x, y: table.index_select(0, idx),
        vectorize=vectorize,
    )
    if runtime.device.type == "cuda":
        torch.cuda.synchronize(runtime.device)
    return k / (time.perf_counter() - started), engine
