"""The study config schema: strict (unknown keys are errors), typed, with ranges.

A study is a grid: pairs × noise settings × methods × seeds, on one dataset. Every field has a
default that suits the CPU-quick default study unless noted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..losses import get_method
from ._strict import Strict
from .pairs import ModelConfig, Normalization, PairConfig, TeacherConfig
from .population import PopulationConfig
from .recipes import PLAIN_RECIPE, RecipeConfig, TrainConfig
from .verdict import VerdictConfig

__all__ = [  # the pair models live in .pairs; imported from here too
    "DatasetConfig",
    "MethodConfig",
    "ModelConfig",
    "NoiseConfig",
    "Normalization",
    "PairConfig",
    "PopulationConfig",
    "StudyConfig",
    "TeacherConfig",
    "TuningConfig",
]


class DatasetConfig(Strict):
    """The data set and its fixed, seeded splits."""

    name: str = Field(
        "digits", description="digits, fashion_mnist, mnist, cifar10, cifar100 or imagefolder"
    )
    root: str | None = Field(
        None,
        description="folder of the data set's files, relative to the config (null: the data "
        "set's default, e.g. /usr/share/datasets/fashion-mnist)",
    )
    download: bool = Field(False, description="let torchvision fetch CIFAR into root")
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of the training split held out for validation"
    )
    test_fraction: float = Field(
        0.2, gt=0, lt=1, description="share held out as test, for data sets without a test split"
    )
    split_seed: int = Field(0, ge=0, description="seed of the validation (and test) split")
    augment: Literal["auto", "none", "cifar", "crop_flip", "crop", "imagenet"] = Field(
        "auto",
        description="on-device augmentation; auto: the data set's own (cifar: crop 32, padding "
        "4, flip; fashion_mnist: crop, padding 2, flip; mnist: crop, padding 2; imagefolder: "
        "random-resized crop, flip); none lets teacher logits be cached",
    )
    train_subset: int | None = Field(
        None, ge=1, description="a seeded, stratified subset of N training samples for the study"
    )
    image_size: int = Field(224, ge=8, le=2048, description="imagefolder: crop size")


class NoiseConfig(Strict):
    """A teacher-noise kind and its levels (each level is a noise setting)."""

    kind: str = Field(
        description="the kind of teacher unreliability: none, logit_gaussian, confident_wrong, "
        "overconfident, label_noise_teacher, undertrained"
    )
    levels: list[float] = Field(
        default_factory=lambda: [0.0], min_length=1, description="the levels, each a setting"
    )
    mode: Literal["symmetric", "asymmetric"] = Field(
        "symmetric", description="label_noise_teacher: uniform flips or c → c+1"
    )

    @field_validator("levels")
    @classmethod
    def _finite_non_negative(cls, value: list[float]) -> list[float]:
        for level in value:
            if not (0.0 <= level < 1e6):
                raise ValueError(f"levels must be ≥ 0 and finite, got {level}")
        if len(set(value)) != len(value):
            raise ValueError("levels must be distinct")
        return value


class MethodConfig(Strict):
    """One arm of the study: a registered method, fixed or tuned."""

    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[\w.+-]+$", description="the arm's name"
    )
    method: str | None = Field(
        None,
        description="the registered method it runs (null: the one called `name`), so one "
        "method can appear twice, e.g. {name: kd_t2, method: kd, params: {T: 2}}",
    )
    tune: bool | None = Field(
        None, description="search its space with Optuna (null: the method's own default)"
    )
    trials: int | None = Field(
        None, ge=1, le=100_000, description="search trials per cell (null: tuning.trials)"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="fixed hyper-parameters (`redistill-study methods`)"
    )
    search: list[str] | None = Field(
        None,
        min_length=1,
        description="with tune: true, the parameters searched, a subset of the method's space "
        "(null: all of it); the others stay at their defaults or params",
    )
    ranges: dict[str, list[float]] | None = Field(
        None,
        description="with tune: true, narrower [low, high] ranges for searched parameters, "
        "inside the method's own (e.g. a positive control: {T: [3.9, 4.1]})",
    )

    @property
    def registered(self) -> str:
        """The name of the registered method this arm runs."""
        return self.method or self.name

    def is_tuned(self) -> bool:
        """Searched with Optuna: as declared, else the method's own default."""
        if self.tune is not None:
            return self.tune
        return bool(get_method(self.registered).tuned_by_default)


class TuningConfig(Strict):
    """How tuned methods search, on the validation split."""

    trials: int = Field(8, ge=1, le=100_000, description="search trials per cell and method")
    seed: int | None = Field(
        None,
        ge=0,
        le=2**40,
        description="training seed of every search trial (null: study seed + 10,000); never an "
        "evaluation seed",
    )
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna sampler")
    pruner: Literal["median", "none"] = Field("median", description="Optuna pruner")
    startup_trials: int = Field(
        4, ge=0, le=100_000, description="trials before the sampler and pruner act"
    )
    warmup_epochs: int = Field(
        3, ge=0, le=100_000, description="epochs before a trial can be pruned"
    )


class StudyConfig(Strict):
    """A study: pairs × noise settings × methods × seeds on one data set."""

    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[\w.+-]+$", description="the study's name"
    )
    description: str = Field("", description="one line about the study")
    seed: int = Field(
        0, ge=0, le=2**31 - 1, description="the study seed; evaluation seeds start here"
    )
    seeds: int = Field(3, ge=1, le=1000, description="evaluation seeds per arm")
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda|cuda:\d+|mps)$", description="auto, cpu, cuda, cuda:N"
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="autocast precision (auto: bf16 on CUDA)"
    )
    channels_last: Literal["auto", "on", "off"] = Field(
        "auto", description="channels-last memory format (auto: on for CUDA)"
    )
    compile: bool = Field(False, description="wrap students in torch.compile")
    cohort_size: int = Field(4, ge=1, le=256, description="students trained on one data stream")
    vectorize: bool = Field(
        True,
        description="train a cohort as one wide model where that is exact up to round-off "
        "(false: one student after another, bit for bit as alone)",
    )
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="the data set")
    teacher_train: TrainConfig = Field(
        default_factory=TrainConfig, description="the teachers' recipe"
    )
    train: TrainConfig = Field(default_factory=TrainConfig, description="the students' recipe")
    # population before pairs: the pairs' validator reads it.
    population: PopulationConfig | None = Field(
        None,
        description="the teachers and students pairs are drawn from, the layout and the seed: "
        "the pairs are a seeded sample of it (instead of `pairs`)",
    )
    pairs: list[PairConfig] = Field(
        default_factory=list,
        validate_default=True,
        description="the teacher–student pairs (or `population`, which draws them)",
    )
    transfer: Literal["auto", "on", "off"] = Field(
        "auto",
        description="the exploratory `transfer` phase (a searched arm's setting chosen on the "
        "other pairs), which no verdict uses: auto runs it where it adds at most a fifth to "
        "the trainings of a cell",
    )
    noise: list[NoiseConfig] = Field(
        default_factory=lambda: [NoiseConfig(kind="none")],
        min_length=1,
        description="teacher-noise settings",
    )
    methods: list[MethodConfig] = Field(min_length=1, description="the arms")
    recipes: list[RecipeConfig] = Field(
        default_factory=lambda: [RecipeConfig(name=PLAIN_RECIPE, primary=True)],
        min_length=1,
        description="named variations of the student recipe, e.g. {name: clip5, grad_clip: 5} "
        "(default: one, `plain`, the recipe as given); the verdict decides per recipe",
    )
    tuning: TuningConfig = Field(default_factory=TuningConfig, description="the searches")
    verdict: VerdictConfig = Field(
        default_factory=VerdictConfig, description="the declared question"
    )

    @field_validator("channels_last", "transfer", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted on/off as true/false.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("pairs")
    @classmethod
    def _pairs_or_population(
        cls, value: list[PairConfig], info: ValidationInfo
    ) -> list[PairConfig]:
        population = info.data.get("population")
        if population is not None:
            if value:
                raise ValueError("declare either pairs or population, not both")
            return population.sample()
        if not value:
            raise ValueError("should have at least 1 pair (or a population to draw them from)")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> StudyConfig:
        labels = [p.label for p in self.pairs]
        dupes = {x for x in labels if labels.count(x) > 1}
        if dupes:
            raise ValueError(f"pair names must be unique; repeated: {sorted(dupes)}")
        names = [m.name for m in self.methods]
        dupes = {x for x in names if names.count(x) > 1}
        if dupes:
            raise ValueError(f"methods must be unique; repeated: {sorted(dupes)}")
        return self

    @field_validator("recipes")
    @classmethod
    def _unique_recipes(cls, value: list[RecipeConfig]) -> list[RecipeConfig]:
        names = [r.name for r in value]
        dupes = {x for x in names if names.count(x) > 1}
        if dupes:
            raise ValueError(f"names must be unique; repeated: {sorted(dupes)}")
        return value

    @property
    def primary_recipe(self) -> RecipeConfig:
        """The recipe marked ``primary``; else the plain one (no overrides), else the first."""
        marked = [r for r in self.recipes if r.primary]
        plain = [r for r in self.recipes if not r.overrides and r.lr_scale == 1]
        return (marked or plain or self.recipes)[0]
