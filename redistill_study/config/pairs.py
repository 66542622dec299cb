"""A teacher–student pair: the models by name and arguments, the teacher's source and recipe."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from ._strict import Strict
from .recipes import TrainConfig

__all__ = ["ModelConfig", "Normalization", "PairConfig", "TeacherConfig"]


class ModelConfig(Strict):
    """A model by name, with constructor arguments."""

    model: str = Field(
        description="a built-in model (`redistill-study models`), timm:<name> or torchvision:<name>"
    )
    args: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the model's constructor"
    )


class Normalization(Strict):
    """An input normalisation, one value per channel."""

    mean: list[float] = Field(min_length=1, max_length=4, description="per-channel mean")
    std: list[float] = Field(min_length=1, max_length=4, description="per-channel std (> 0)")

    @model_validator(mode="after")
    def _matching(self) -> Normalization:
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError("mean and std need one value per channel, std > 0")
        return self


class TeacherConfig(ModelConfig):
    """A pair's teacher: trained by the study (and cached), or loaded from a checkpoint."""

    checkpoint: str | None = Field(
        None, description="weights to load instead of training (relative to the config)"
    )
    checkpoint_prefix: str | None = Field(
        None,
        min_length=1,
        description="the name prefix the teacher is saved under in the checkpoint, e.g. "
        "'teacher.' in mdistiller's distiller checkpoints (latest, best, epoch_N)",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        description="the teacher's training seed (null: the study seed); distinct seeds make "
        "distinct teachers, separate units of the verdict",
    )
    train: TrainConfig | None = Field(
        None, description="the teacher's recipe (null: the study's teacher_train)"
    )
    normalization: Normalization | None = Field(
        None, description="the input normalisation the teacher was trained with, if different"
    )

    @model_validator(mode="after")
    def _one_source(self) -> TeacherConfig:
        if self.checkpoint is not None and self.train is not None:
            raise ValueError("give either 'checkpoint' or 'train', not both")
        if self.checkpoint_prefix is not None and self.checkpoint is None:
            raise ValueError("'checkpoint_prefix' names a prefix inside 'checkpoint': give both")
        return self


class PairConfig(Strict):
    """One teacher–student pair."""

    name: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[\w.+-]+$",
        description="the pair's label (null: teacher-student)",
    )
    teacher: TeacherConfig = Field(description="the teacher")
    student: ModelConfig = Field(description="the student")
    train: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the student recipe for this pair"
    )

    @property
    def label(self) -> str:
        return self.name or f"{self.teacher.model}-{self.student.model}".replace(":", "_")
