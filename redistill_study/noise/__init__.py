"""Teacher noise models and their measured severity."""

import zlib

from .base import NoiseSetting, flip_labels, hashed_normal, undertrained_epochs
from .severity import measure_severity

NOISE_KINDS = (
    "none",
    "logit_gaussian",
    "confident_wrong",
    "overconfident",
    "label_noise_teacher",
    "undertrained",
)


def noise_seed(study_seed: int, kind: str) -> int:
    """One seed per (study seed, noise kind), from the kind's *name*: every method and seed of
    a cell sees the same corruption, the levels of a kind are nested, and adding or reordering
    kinds changes nothing that exists."""
    return (study_seed * 1_000_003 + zlib.crc32(kind.encode())) % 2**40


__all__ = [
    "NOISE_KINDS",
    "NoiseSetting",
    "flip_labels",
    "hashed_normal",
    "measure_severity",
    "noise_seed",
    "undertrained_epochs",
]
