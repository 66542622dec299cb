"""Teacher noise models and their measured severity."""

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

__all__ = [
    "NOISE_KINDS",
    "NoiseSetting",
    "flip_labels",
    "hashed_normal",
    "measure_severity",
    "undertrained_epochs",
]
