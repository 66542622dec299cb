"""Counter-based randomness for noise: a pure function of (seed, split, sample index), the same
on any device, in any process, whatever the batch or its order."""

from __future__ import annotations

import math

import torch

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _srl(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift on int64 (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def splitmix64(keys: torch.Tensor) -> torch.Tensor:
    """SplitMix64 on int64 tensors (wrapping arithmetic): a counter-based RNG for any device."""
    z = keys + _GOLDEN
    z = (z ^ _srl(z, 30)) * _MIX1
    z = (z ^ _srl(z, 27)) * _MIX2
    return z ^ _srl(z, 31)


def hashed_uniform(keys: torch.Tensor) -> torch.Tensor:
    """Uniform floats in (0, 1), float64, one per int64 key."""
    bits = _srl(splitmix64(keys), 11).to(torch.float64)
    return (bits + 0.5) * 2.0**-53


def hashed_normal(keys: torch.Tensor) -> torch.Tensor:
    """Standard normal floats (Box–Muller), one per int64 key."""
    u1 = hashed_uniform(keys * 2)
    u2 = hashed_uniform(keys * 2 + 1)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


def stream(seed: int, split: str, salt: int) -> int:
    """A 64-bit sub-seed for one (noise seed, split, purpose)."""
    base = torch.tensor([seed * 16 + SPLIT_IDS[split] * 4 + salt], dtype=torch.int64)
    return int(splitmix64(base)[0])
