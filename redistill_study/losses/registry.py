"""Methods by name, like torchdistill's loss registry; third parties plug in by entry point.

A package adds methods without touching this project by declaring, in its pyproject.toml::

    [project.entry-points."redistill_study.methods"]
    my_kd = "my_package.my_module:MyKD"     # a Method subclass

(the entry point may also name a module whose import registers its methods).
"""

from __future__ import annotations

import fnmatch
import importlib
from importlib.metadata import entry_points
from typing import Any

from .._util import did_you_mean
from .base import Method

ENTRY_POINT_GROUP = "redistill_study.methods"

_METHODS: dict[str, type[Method]] = {}
_builtin_loaded = False
_plugins_loaded = False

_BUILTIN_MODULES = ("ce", "kd", "redistill", "dkd", "lskd", "wsl", "ka", "lr", "ckd", "ttm", "ats")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} needs a non-empty class attribute 'name'")
    existing = _METHODS.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"method name {name!r} is already registered by {existing.__qualname__}")
    _METHODS[name] = cls
    return cls


def unregister_method(name: str) -> None:
    """Remove a registered method (for tests and interactive sessions)."""
    _METHODS.pop(name, None)


def _load() -> None:
    global _builtin_loaded, _plugins_loaded
    if not _builtin_loaded:
        _builtin_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(f"{__package__}.{module}")
    if not _plugins_loaded:
        _plugins_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            loaded = ep.load()
            if isinstance(loaded, type) and issubclass(loaded, Method):
                register_method(loaded)


def list_methods(pattern: str | None = None) -> list[str]:
    """Registered method names, sorted; ``pattern`` is a shell-style filter (``"*kd*"``)."""

    _load()
    names = sorted(_METHODS)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``; unknown names raise with close matches."""
    _load()
    try:
        return _METHODS[name]
    except KeyError:
        hint = did_you_mean(name, _METHODS)
        raise KeyError(f"unknown method {name!r}{hint} (see `redistill-study methods`)") from None


def create_method(name: str, **hparams: Any) -> Method:
    """Build a method: ``create_method("redistill", lam=0.5, T=2.0)``."""
    return get_method(name)(**hparams)
