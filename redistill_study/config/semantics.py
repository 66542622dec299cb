"""What the schema cannot see: registry names, hyper-parameter domains, recipes, the
verdict's arms and files on disk — each problem one line naming its key."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from .._util import did_you_mean, resolve_path, unknown_name
from ..data import data_root, dataset_info, dataset_names, read_files
from ..errors import UserError
from ..losses import FloatRange, SearchDimension, get_method
from ..models import create_model, resolve_model_name
from ..models.checkpoint import load_checkpoint
from ..noise import noise_kind
from ._located import Located, pydantic_message
from .schema import MethodConfig, StudyConfig, TrainConfig
from .verdict_checks import check_verdict, searched_parameters


def check_semantics(
    config: StudyConfig,
    located: Located,
    *,
    base_dir: Path,
    check_files: bool = True,
    read_data: bool = False,
) -> None:
    """What the schema cannot see: registry names, hyper-parameter domains, files on disk."""
    if config.dataset.name not in dataset_names():
        raise located.error(
            ("dataset", "name"), unknown_name(config.dataset.name, dataset_names(), "dataset")
        )
    info = dataset_info(config.dataset.name)
    if info.needs_root:
        root = data_root(config.dataset, base_dir)
        if root is None:
            raise located.error(
                ("dataset", "root"),
                f"dataset {config.dataset.name!r} needs a 'root' folder: {info.files}",
            )
        if check_files and not config.dataset.download:
            how = f" (Debian's package {info.package} installs it)" if info.package else ""
            if not root.is_dir():
                raise located.error(("dataset", "root"), f"folder not found: {root}{how}")
            absent = info.missing(root) if config.dataset.name != "imagefolder" else None
            if absent:
                raise located.error(
                    ("dataset", "root"), f"file not found: {absent}{how}; expected {info.files}"
                )
            if read_data:  # present is not enough: a damaged or foreign file fails now
                try:
                    read_files(config.dataset.name, root)
                except UserError as exc:
                    raise located.error(("dataset", "root"), str(exc)) from None
    for i, pair in enumerate(config.pairs):
        for role in ("teacher", "student"):
            spec = getattr(pair, role)
            try:
                resolve_model_name(spec.model)
            except KeyError as exc:
                raise located.error(("pairs", i, role, "model"), str(exc.args[0])) from None
        if pair.train:
            try:
                TrainConfig.model_validate({**config.train.model_dump(), **pair.train})
            except ValidationError as exc:
                err = exc.errors()[0]
                key = ("pairs", i, "train", *err["loc"])
                if err["type"] == "extra_forbidden":
                    hint = did_you_mean(str(err["loc"][-1]), list(TrainConfig.model_fields), 1)
                    msg = f"unknown key{hint}"
                else:
                    msg = pydantic_message(err)
                raise located.error(key, msg) from None
        for role in ("teacher", "student"):
            spec = getattr(pair, role)
            classes = _class_count(config, base_dir)
            if spec.args and classes is not None:  # arguments are checked by building the model
                try:
                    create_model(spec.model, num_classes=classes, **spec.args)
                except (TypeError, ValueError, RuntimeError) as exc:
                    message = str(exc).splitlines()[0]
                    bad = re.search(r"unexpected keyword argument '(\w+)'", message)
                    if bad:
                        known = _model_arguments(spec.model, _class_count(config, base_dir))
                        message = f"{spec.model} takes no argument {bad[1]!r}" + did_you_mean(
                            bad[1], known
                        )
                    raise located.error(("pairs", i, role, "args"), message) from None
        ckpt = pair.teacher.checkpoint
        if ckpt is not None and check_files:
            resolved = resolve_path(ckpt, base_dir)
            if not resolved.is_file():
                raise located.error(
                    ("pairs", i, "teacher", "checkpoint"), f"file not found: {resolved}"
                )
            classes = _class_count(config, base_dir)
            if classes is not None:
                try:  # unreadable, foreign or mismatched weights fail now, not after hours
                    model = create_model(
                        pair.teacher.model, num_classes=classes, **pair.teacher.args
                    )
                    load_checkpoint(model, resolved, pair.teacher.checkpoint_prefix)
                except UserError as exc:
                    raise located.error(("pairs", i, "teacher", "checkpoint"), str(exc)) from None
    for i, method in enumerate(config.methods):
        try:
            cls = get_method(method.registered)
        except KeyError as exc:
            field = "method" if method.method else "name"
            raise located.error(("methods", i, field), str(exc.args[0])) from None
        try:
            cls(**method.params)
        except ValueError as exc:
            raise located.error(("methods", i, "params"), str(exc)) from None
        tune = method.is_tuned()
        if tune and not cls.search_space:
            raise located.error(
                ("methods", i, "tune"), f"method {method.name!r} has nothing to tune"
            )
        unknown = [k for k in method.search or () if k not in cls.search_space]
        if unknown or (method.search and not tune):
            raise located.error(
                ("methods", i, "search"),
                f"{unknown[0]!r} is not in {method.registered}'s search space (searchable: "
                f"{', '.join(cls.search_space) or 'nothing'})"
                if unknown
                else "searches nothing with tune: false; drop it or set tune: true",
            )
        searched = set(searched_parameters(method))
        _check_ranges(method, cls.search_space, searched if tune else set(), located, i)
        fixed_in_space = sorted(set(method.params) & searched) if tune else []
        if fixed_in_space:
            raise located.error(
                ("methods", i, "params"),
                f"{fixed_in_space[0]!r} is searched when tune is true; drop it or set tune: false",
            )
    for i, noise in enumerate(config.noise):
        try:
            kind = noise_kind(noise.kind)
        except KeyError as exc:
            raise located.error(("noise", i, "kind"), str(exc.args[0])) from None
        problem = kind.level_problem(noise.levels)
        if problem:
            raise located.error(("noise", i, "levels"), problem)
        retrains = kind.changes_teacher and any(noise.levels)
        loaded = [p.label for p in config.pairs if p.teacher.checkpoint is not None]
        if retrains and loaded:
            raise located.error(
                ("noise", i, "kind"),
                f"{noise.kind} needs teachers the study trains; pair {loaded[0]!r} loads one",
            )
    check_verdict(config, located)
    _check_recipes(config, located)
    seeds = range(config.seed, config.seed + config.seeds)
    if config.tuning.seed is not None and config.tuning.seed in seeds:
        raise located.error(
            ("tuning", "seed"),
            f"{config.tuning.seed} is one of the evaluation seeds {config.seed}…"
            f"{config.seed + config.seeds - 1}; the search needs a seed of its own",
        )


RECIPE_KEYS = ("name", "primary", "lr_scale", "methods")


def _check_recipes(config: StudyConfig, located: Located) -> None:
    """A recipe's keys are its own or keys of ``train`` with valid values; one primary, which
    trains every arm; a restricted recipe keeps the verdict's reference."""
    marked = [i for i, r in enumerate(config.recipes) if r.primary]
    if len(marked) > 1:
        raise located.error(
            ("recipes", marked[1], "primary"),
            f"only one recipe can be primary; {config.recipes[marked[0]].name!r} already is",
        )
    primary = config.primary_recipe
    known = {m.name for m in config.methods}
    for i, recipe in enumerate(config.recipes):
        for key in recipe.overrides:
            if key not in TrainConfig.model_fields:
                hint = did_you_mean(key, [*RECIPE_KEYS, *TrainConfig.model_fields], 1)
                raise located.error(
                    ("recipes", i, key),
                    f"unknown key{hint}; a recipe takes {', '.join(RECIPE_KEYS)} or a key of train",
                )
        try:
            TrainConfig.model_validate({**config.train.model_dump(), **recipe.overrides})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise located.error(("recipes", i, *err["loc"]), pydantic_message(err)) from None
        for pair in config.pairs:  # with each pair's own overrides, and lr × lr_scale
            try:
                TrainConfig.model_validate(
                    recipe.applied_to({**config.train.model_dump(), **pair.train})
                )
            except ValidationError as exc:
                err = exc.errors()[0]
                field = str(err["loc"][0]) if err["loc"] else ""
                key = "lr_scale" if field == "lr" and recipe.lr_scale != 1 else field
                raise located.error(
                    ("recipes", i, key), f"for pair {pair.label!r}: {field} {pydantic_message(err)}"
                ) from None
        if recipe.methods is None:
            continue
        if recipe is primary:
            raise located.error(
                ("recipes", i, "methods"),
                f"the primary recipe {recipe.name!r} trains every arm; restrict a secondary one",
            )
        for j, name in enumerate(recipe.methods):
            if name not in known:
                raise located.error(
                    ("recipes", i, "methods", j), unknown_name(name, list(known), "method")
                )
        claims = config.verdict.claims
        references: list[str | None]
        if claims:  # each claim the recipe asks (it trains a fixed arm) needs its reference
            references = [c.reference for c in claims if any(f in recipe.methods for f in c.fixed)]
        else:
            references = [config.verdict.reference or ("kd" if "kd" in known else None)]
        for reference in dict.fromkeys(references):
            if reference is not None and reference not in recipe.methods:
                raise located.error(
                    ("recipes", i, "methods"),
                    f"must include the verdict's reference {reference!r}: each recipe's verdict "
                    "compares against it",
                )


def _class_count(config: StudyConfig, base_dir: Path) -> int | None:
    """The data set's class count, where it is known without reading the data."""
    known = dataset_info(config.dataset.name).num_classes
    if known is not None:
        return known
    root = resolve_path(config.dataset.root or ".", base_dir) / "train"
    return sum(1 for p in root.iterdir() if p.is_dir()) if root.is_dir() else None


def _model_arguments(name: str, num_classes: int | None) -> list[str]:
    """The keyword arguments a model's constructor takes (a hint for a misspelt one)."""
    try:
        model = create_model(name, num_classes=num_classes or 10)
    except Exception:  # the names are a hint only
        return []
    parameters = inspect.signature(type(model).__init__).parameters.values()
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _check_ranges(
    method: MethodConfig,
    space: Mapping[str, SearchDimension],
    searched: set[str],
    located: Located,
    i: int,
) -> None:
    """A declared range narrows a searched float parameter: two numbers, low ≤ high, inside the
    method's own range."""
    for key, bounds in (method.ranges or {}).items():
        where = ("methods", i, "ranges", key)
        dim = space.get(key)
        if key not in searched:
            raise located.error(
                where,
                f"{key!r} is not searched by {method.name!r} (searched: "
                f"{', '.join(sorted(searched)) or 'nothing'})",
            )
        if not isinstance(dim, FloatRange):
            raise located.error(where, f"{key!r} is not a numeric range ({dim})")
        if len(bounds) != 2 or not dim.low <= bounds[0] <= bounds[1] <= dim.high:
            raise located.error(
                where,
                f"expected [low, high] with {dim.low:g} ≤ low ≤ high ≤ {dim.high:g}, got {bounds}",
            )
