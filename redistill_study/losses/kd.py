"""`kd` (Hinton et al. 2015): w_ce·CE + w_kd·T²·KL(softmax(t/T) ‖ softmax(s/T))."""

from __future__ import annotations

from .base import FloatRange, SearchDimension
from .registry import register_method
from .soft_target import SoftTargetMethod

KD_SEARCH_SPACE: dict[str, SearchDimension] = {
    "T": FloatRange(1.0, 8.0),
    "w_kd": FloatRange(0.1, 10.0, log=True),
    "w_ce": FloatRange(0.1, 1.0),
}


@register_method
class KD(SoftTargetMethod):
    name = "kd"
    summary = "Hinton KD: CE + T²·KL on softened logits"
    search_space = KD_SEARCH_SPACE
