"""The loss family: the power divergence, and every distillation method behind one interface.

Plain PyTorch use, without the study runner::

    from redistill_study.losses import create_method
    loss_fn = create_method("redistill")            # λ = 2/3, T = 4
    terms = loss_fn(student(x), teacher(x), y)      # {"ce": ..., "kd": ...}
    sum(terms.values()).backward()
"""

from .base import Choice, Context, FloatRange, IntRange, Method, SearchDimension
from .divergence import (
    power_divergence,
    power_divergence_from_log_probs,
    power_divergence_terms,
)
from .registry import ENTRY_POINT_GROUP, create_method, get_method, list_methods, register_method

__all__ = [
    "ENTRY_POINT_GROUP",
    "Choice",
    "Context",
    "FloatRange",
    "IntRange",
    "Method",
    "SearchDimension",
    "create_method",
    "get_method",
    "list_methods",
    "power_divergence",
    "power_divergence_from_log_probs",
    "power_divergence_terms",
    "register_method",
]
