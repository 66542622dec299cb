"""Checkpoints in the shapes public KD repositories publish, always loaded with weights_only=True.

Accepted: a plain state dict, ``{"model": sd}``, ``{"state_dict": sd}``, ``{"net": sd}``,
``{"model_state_dict": sd}``, with or without ``module.`` (DataParallel) or ``_orig_mod.``
(torch.compile) prefixes; a distiller's whole state dict with a declared model prefix
(``teacher.``). The CIFAR zoo's parameter names are RepDistiller's and mdistiller's, so their
published teacher files (``ckpt_epoch_240.pth``) load as they are.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .._util import first_line
from ..errors import UserError
from ._naming import (
    closest_naming,
    earlier_other_function,
    fitting_prefix,
    prefixes,
    renamed_from_earlier,
    without_counters,
)

_WRAPPER_KEYS = ("model", "state_dict", "net", "model_state_dict", "student", "teacher")
_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: checkpoint file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a checkpoint file") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except Exception as exc:  # truncated, foreign or unsafe files fail in many ways
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({_why(exc)})") from None
    return _unwrap(obj, path)


def _why(exc: Exception) -> str:
    """The reason in this project's words (torch's own advice to turn the safety off is not
    repeated)."""
    text = str(exc)
    if "Weights only load failed" in text:
        return (
            "it holds Python objects besides tensors, and loading those could run code from "
            "the file; save the model's state_dict alone"
        )
    if "central directory" in text or "zip archive" in text:
        return "truncated or damaged: the zip container is incomplete"
    if isinstance(exc, (pickle.UnpicklingError, EOFError, UnicodeDecodeError)) or text.isdigit():
        return "not a torch.save file"
    return first_line(exc)[:200]


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None:
                obj = inner
                continue
        raise UserError(
            f"{path}: no state dict found (expected tensors, or one under "
            f"{', '.join(repr(k) for k in _WRAPPER_KEYS)})"
        )
    state = {}
    for key, value in obj.items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        state[key] = value
    return state


def load_checkpoint(model: nn.Module, path: str | Path, prefix: str | None = None) -> nn.Module:
    """Load weights into ``model``; a mismatch is one line naming the file and the difference.

    ``prefix``: the name the model is saved under in a larger state dict (a distiller's
    ``teacher.`` or ``student.``, mdistiller's ``latest`` / ``best`` files). Batch norm's step
    counters may be absent, as torch's strict load allows. A checkpoint of this project's CIFAR
    zoo from before it took the peers' parameter names loads where the function is the same."""
    state = read_state_dict(path)
    if prefix:
        inner = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not inner:
            raise UserError(
                f"{path}: no parameter is named under {prefix!r} "
                f"(prefixes found: {_found(state) or 'none'})"
            )
        state = inner
    own = model.state_dict()
    if without_counters(state) != without_counters(own):
        state = _other_names(state, model, set(own), Path(path))
    unexpected = sorted(set(state) - set(own))
    if unexpected:  # a counter the model does not keep
        raise UserError(
            f"{path}: checkpoint does not fit the architecture {type(model).__name__}: "
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise UserError(
                f"{path}: shape mismatch at {key!r}: checkpoint {tuple(tensor.shape)} vs model "
                f"{tuple(own[key].shape)} (wrong class count or architecture?)"
            )
    model.load_state_dict(state)  # strict: fills in a missing counter, as torch does
    return model


def _found(state: dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{p!r} ({n} keys)" for p, n in prefixes(state).most_common(4))


def _other_names(
    state: dict[str, torch.Tensor], model: nn.Module, own: set[str], path: Path
) -> dict:
    """The state under the model's own names (``own``) where that is safe; else one line
    saying why it does not fit and what to do."""
    arch = type(model).__name__
    renamed = renamed_from_earlier(state, model, own)
    if renamed is not None:
        return renamed
    if earlier_other_function(state, model):
        raise UserError(
            f"{path}: saved from this project's {arch} before it became the literature's "
            "network (RepDistiller's and mdistiller's), which computes another function; it "
            "cannot be renamed: train the teacher again"
        )
    prefix = fitting_prefix(state, own)
    if prefix is not None:
        raise UserError(
            f"{path}: the {arch} is saved under {prefix!r} (prefixes found: {_found(state)}): "
            f"set checkpoint_prefix: {prefix!r} on this teacher"
        )
    missing = sorted(without_counters(own) - set(state))
    unexpected = sorted(set(state) - own)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
    hint = closest_naming(state, own)
    if hint is None and not set(prefixes(state)) & set(prefixes(own)):
        hint = f"its names start otherwise: {_found(state)}"  # e.g. a distiller's, whole
    raise UserError(
        f"{path}: checkpoint does not fit the architecture {arch}: "
        + ", ".join(parts)
        + (f"; {hint}" if hint else "")
    )


def save_atomic(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # e.g. a full disk: nothing half-written stays behind
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
