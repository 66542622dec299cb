"""Training: the cohort trainer, teachers and their cache, metrics, and the runtime settings."""

from ..metrics import classification_metrics, expected_calibration_error
from .members import Member, make_member, predict, seeded_model
from .runtime import Runtime, make_runtime, resolve_device
from .teacher import TeacherSpec, obtain_teacher, teacher_logits_all
from .trainer import train_cohort

__all__ = [
    "Member",
    "Runtime",
    "TeacherSpec",
    "classification_metrics",
    "expected_calibration_error",
    "make_member",
    "make_runtime",
    "obtain_teacher",
    "predict",
    "resolve_device",
    "seeded_model",
    "teacher_logits_all",
    "train_cohort",
]
