"""Where and how training runs: device, autocast precision, memory format, compilation."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TypeVar, cast

import torch
import torch.nn as nn

from ..errors import UserError

_ModuleT = TypeVar("_ModuleT", bound=nn.Module)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None = None  # bf16 on CUDA by default
    channels_last: bool = False
    compile: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def prepare_model(self, model: _ModuleT) -> _ModuleT:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def maybe_compile(self, model: nn.Module) -> nn.Module:
        if not self.compile:
            return model
        # A module compiles to an OptimizedModule (a Module); the stub types only a callable.
        return cast(nn.Module, torch.compile(model))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"device {name!r} requested but CUDA is not available here (use device: auto)"
        )
    return torch.device(name)


def make_runtime(device: str, precision: str, channels_last: str, compile: bool) -> Runtime:
    dev = resolve_device(device)
    if precision == "bf16" or (precision == "auto" and dev.type == "cuda"):
        dtype: torch.dtype | None = torch.bfloat16
    else:
        dtype = None
    cl = channels_last == "on" or (channels_last == "auto" and dev.type == "cuda")
    return Runtime(device=dev, autocast_dtype=dtype, channels_last=cl, compile=compile)
