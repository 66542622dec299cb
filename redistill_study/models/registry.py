"""Models by name, timm-style: ``create_model(name, num_classes=..., **kwargs)``.

Built-in names come from this package's zoo; ``timm:<name>`` and ``torchvision:<name>`` reach
any classification model of those libraries (always built without pretrained weights: teacher
weights come from a checkpoint file or from training).
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from .._util import did_you_mean

ModelFactory = Callable[..., nn.Module]

_MODELS: dict[str, ModelFactory] = {}
_FAMILY: dict[str, str] = {}
_REVISION: dict[str, int] = {}
_loaded = False


def register_model(
    name: str, family: str = "", revision: int = 1
) -> Callable[[ModelFactory], ModelFactory]:
    """Register a factory under ``name``. ``revision`` goes up whenever the model's parameter
    names or function change, so that a teacher cached under an earlier one is never reused."""

    def decorator(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS and _MODELS[name] is not factory:
            raise ValueError(f"model name {name!r} is already registered")
        _MODELS[name] = factory
        _FAMILY[name] = family
        _REVISION[name] = revision
        return factory

    return decorator


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from . import cifar, grey28, small  # noqa: F401  (registration side effects)


def _external(name: str) -> tuple[str, str] | None:
    prefix, sep, rest = name.partition(":")
    return (prefix, rest) if sep and prefix in ("timm", "torchvision") else None


def resolve_model_name(name: str) -> str:
    """Return ``name`` if it can be built, else raise KeyError with close matches."""
    _load()
    external = _external(name)
    if external is None:
        if name in _MODELS:
            return name
        hint = did_you_mean(name, _MODELS)
        raise KeyError(
            f"unknown model {name!r}{hint} (see `redistill-study models`; "
            "or use timm:<name> / torchvision:<name>)"
        )
    library, model = external
    known = _external_names(library)
    if model not in known:
        hint = did_you_mean(f"{library}:{model}", [f"{library}:{k}" for k in known])
        raise KeyError(f"unknown {library} model {model!r}{hint}")
    return name


@functools.cache
def _external_names(library: str) -> list[str]:
    if library == "timm":
        import timm

        return list(timm.list_models())
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def create_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a freshly initialised model (seed the global RNG first for a fixed init)."""
    resolve_model_name(name)
    external = _external(name)
    if external is None:
        return _MODELS[name](num_classes=num_classes, **kwargs)
    library, model = external
    if library == "timm":
        import timm

        return timm.create_model(model, pretrained=False, num_classes=num_classes, **kwargs)
    import torchvision

    return torchvision.models.get_model(model, weights=None, num_classes=num_classes, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """Model names, sorted; ``pattern`` is a shell-style filter (``"resnet*"``). Built-in
    names by default; a pattern that starts with ``timm:`` or ``torchvision:`` lists that
    library's models (``"timm:mobilenetv3*"``)."""
    _load()
    external = _external(pattern or "")
    if external is not None:
        library, inner = external
        return [
            f"{library}:{n}"
            for n in sorted(_external_names(library))
            if fnmatch.fnmatch(n, inner or "*")
        ]
    return sorted(n for n in _MODELS if pattern is None or fnmatch.fnmatch(n, pattern))


def model_revision(name: str) -> int:
    """The revision of a built-in model (1 for timm's and torchvision's)."""
    _load()
    return _REVISION.get(name, 1)


def model_family(name: str) -> str:
    _load()
    return _FAMILY.get(name, name.partition(":")[0])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
