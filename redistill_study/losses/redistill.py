"""REDistill: KD with the KL term replaced by the power divergence D_λ.

`redistill` keeps λ fixed (2/3 by default, the paper's claim, teacher first: D_{2/3}(p‖q));
`redistill_student_first` is the other reading of the same claim, D_{2/3}(q‖p), which by the
identity D_λ(p‖q) = D_{−1−λ}(q‖p) is λ = −5/3 with the teacher first; `redistill_tuned` searches λ
over [−2, 1.5], which covers both argument orders (D_λ(p‖q) = D_{−1−λ}(q‖p)), and keeps
every other hyper-parameter at the KD defaults so the tuned-vs-fixed regret isolates λ.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import FloatRange
from .kd import KD_SEARCH_SPACE
from .registry import register_method
from .soft_target import SoftTargetMethod

FIXED_LAMBDA = 2.0 / 3.0
STUDENT_FIRST_LAMBDA = -1.0 - FIXED_LAMBDA  # D_{2/3}(q‖p) = D_{−5/3}(p‖q)
LAMBDA_SEARCH_RANGE = FloatRange(-2.0, 1.5)


@register_method
class REDistill(SoftTargetMethod):
    name = "redistill"
    summary = "KD with D_λ in place of KL, λ fixed"
    defaults: ClassVar[dict[str, Any]] = {**SoftTargetMethod.defaults, "lam": FIXED_LAMBDA}
    search_space = KD_SEARCH_SPACE  # used only with `tune: true`; λ stays fixed


@register_method
class REDistillStudentFirst(SoftTargetMethod):
    name = "redistill_student_first"
    summary = "KD with D_{2/3}(q‖p): the student-first reading of λ = 2/3 (= λ −5/3)"
    defaults: ClassVar[dict[str, Any]] = {
        **SoftTargetMethod.defaults,
        "lam": STUDENT_FIRST_LAMBDA,
    }
    search_space = KD_SEARCH_SPACE  # used only with `tune: true`; λ stays fixed


@register_method
class REDistillTuned(SoftTargetMethod):
    name = "redistill_tuned"
    summary = "KD with D_λ in place of KL, λ searched per pair"
    defaults: ClassVar[dict[str, Any]] = {**SoftTargetMethod.defaults, "lam": FIXED_LAMBDA}
    search_space = {"lam": LAMBDA_SEARCH_RANGE}
    tuned_by_default = True
