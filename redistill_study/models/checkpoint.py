"""Checkpoints in the shapes public KD repositories publish, always loaded with weights_only=True.

Accepted: a plain state dict, ``{"model": sd}``, ``{"state_dict": sd}``, ``{"net": sd}``,
``{"model_state_dict": sd}``, with or without ``module.`` (DataParallel) or ``_orig_mod.``
(torch.compile) prefixes.
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


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights into ``model``; a mismatch is one line naming the file and the difference."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        raise UserError(
            f"{path}: checkpoint does not fit the architecture {type(model).__name__}: "
            + ", ".join(parts)
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise UserError(
                f"{path}: shape mismatch at {key!r}: checkpoint {tuple(tensor.shape)} vs model "
                f"{tuple(own[key].shape)} (wrong class count or architecture?)"
            )
    model.load_state_dict(state)
    return model


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
