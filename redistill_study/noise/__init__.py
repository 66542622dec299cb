"""Teacher noise models and their measured severity."""

import zlib

from .base import NoiseSetting, flip_labels, undertrained_epochs
from .kinds import NoiseKind, noise_kind, noise_kind_names, register_noise_kind
from .random import hashed_normal
from .severity import measure_severity


def noise_seed(study_seed: int, kind: str) -> int:
    """One seed per (study seed, noise kind), from the kind's *name*: every method and seed of
    a cell sees the same corruption, the levels of a kind are nested, and adding or reordering
    kinds changes nothing that exists."""
    return (study_seed * 1_000_003 + zlib.crc32(kind.encode())) % 2**40


__all__ = [
    "NoiseKind",
    "NoiseSetting",
    "flip_labels",
    "hashed_normal",
    "measure_severity",
    "noise_kind",
    "noise_kind_names",
    "noise_seed",
    "register_noise_kind",
    "undertrained_epochs",
]
