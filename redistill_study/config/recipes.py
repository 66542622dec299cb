"""Training recipes: the ``train`` keys a teacher or student is trained with, and the named
variations of the student recipe (``recipes:``) a study compares."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._strict import Strict


class TrainConfig(Strict):
    """A training recipe (mdistiller's CIFAR recipe is ``sgd``, lr 0.05, step ×0.1)."""

    epochs: int = Field(20, ge=1, le=100_000, description="epochs of training")
    batch_size: int = Field(64, ge=1, le=1_000_000, description="samples per optimiser step")
    optimizer: Literal["sgd", "adam", "adamw"] = Field("sgd", description="the optimiser")
    lr: float = Field(0.05, gt=0, le=100, description="base learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD)")
    weight_decay: float = Field(
        5e-4, ge=0, le=1, description="weight decay (not on biases and norm parameters)"
    )
    schedule: Literal["step", "cosine", "constant"] = Field(
        "step", description="learning-rate schedule over the epochs"
    )
    milestones: list[int] = Field(
        default_factory=list, description="epochs at which a step schedule multiplies by gamma"
    )
    gamma: float = Field(0.1, gt=0, le=1, description="step schedule factor")
    warmup_epochs: int = Field(
        0, ge=0, le=100_000, description="epochs of linear learning-rate warm-up"
    )
    subset: int | None = Field(
        None,
        ge=1,
        description="train on a seeded, stratified subset of this many training samples "
        "(null: all); teachers and students can see subsets of different sizes",
    )
    val_every: int = Field(
        1,
        ge=1,
        le=100_000,
        description="validate every N epochs (and after the last); the pruner sees these only",
    )
    grad_clip: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="clip each student's gradient to this 2-norm before every step, as "
        "torch.nn.utils.clip_grad_norm_ (null: no clipping; the norm is recorded either way)",
    )

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(m < 1 for m in value) or value != sorted(set(value)):
            raise ValueError("must be strictly increasing epoch numbers ≥ 1")
        return value


class RecipeConfig(BaseModel):
    """A named variation of the student recipe: every arm is trained under every recipe.

    Besides ``name``, ``primary``, ``lr_scale`` and ``methods`` it takes any key of ``train``
    (``grad_clip: 5``, ``lr: 0.02``, ``epochs: 8``…), applied over the study's ``train`` and the
    pair's own overrides; ``lr_scale`` then multiplies the learning rate.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(  # no "+": the name is part of MLflow metric keys
        min_length=1, max_length=40, pattern=r"^[\w.-]+$", description="the recipe's name"
    )
    primary: bool = Field(
        False, description="the recipe whose verdict is the headline (exactly one per study)"
    )
    lr_scale: float = Field(1.0, gt=0, le=1000, description="multiplies the learning rate")
    methods: list[str] | None = Field(
        None,
        min_length=1,
        description="the arms trained under this recipe (null: every arm; the primary recipe "
        "trains every arm)",
    )

    @property
    def overrides(self) -> dict[str, Any]:
        """The keys of ``train`` this recipe sets."""
        return dict(self.model_extra or {})

    def applied_to(self, train: dict[str, Any]) -> dict[str, Any]:
        """A student recipe's keys (the study's ``train`` with a pair's overrides) under this
        recipe: its overrides, then ``lr × lr_scale``."""
        merged = {**train, **self.overrides}
        merged["lr"] = merged["lr"] * self.lr_scale
        return merged


PLAIN_RECIPE = "plain"
