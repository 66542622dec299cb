"""The study config schema: strict (unknown keys are errors), typed, with ranges.

A study is a grid: pairs × noise settings × methods × seeds, on one dataset. Every field has a
default that suits the CPU-quick default study unless noted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NoiseKind = Literal[
    "none",
    "logit_gaussian",
    "confident_wrong",
    "overconfident",
    "label_noise_teacher",
    "undertrained",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class TrainConfig(Strict):
    """An SGD-style recipe (mdistiller's CIFAR recipe is ``sgd``, lr 0.05, step ×0.1)."""

    epochs: int = Field(20, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0, le=100)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0, le=1)
    schedule: Literal["step", "cosine", "constant"] = "step"
    milestones: list[int] = Field(default_factory=list)
    gamma: float = Field(0.1, gt=0, le=1)
    warmup_epochs: int = Field(0, ge=0, le=100_000)
    # Train on a seeded, stratified subset of this many training samples (None: all of them);
    # a teacher and its students can see subsets of different sizes of the same split.
    subset: int | None = Field(None, ge=1)
    # Validate every N epochs (the last epoch always): the pruner sees these epochs only.
    val_every: int = Field(1, ge=1, le=100_000)

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(m < 1 for m in value) or value != sorted(set(value)):
            raise ValueError("must be strictly increasing epoch numbers ≥ 1")
        return value


class DatasetConfig(Strict):
    name: str = "digits"
    root: str | None = None
    download: bool = False
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)  # datasets that ship no test split
    split_seed: int = Field(0, ge=0)
    # auto: the data set's own (cifar: crop 32 with padding 4 + flip; fashion_mnist: crop 28
    # with padding 2 + flip; mnist: crop with padding 2; imagefolder: random-resized crop + flip).
    augment: Literal["auto", "none", "cifar", "crop_flip", "crop", "imagenet"] = "auto"
    train_subset: int | None = Field(None, ge=1)  # a seeded, stratified subset of N train samples
    image_size: int = Field(224, ge=8, le=2048)  # imagefolder only


class ModelConfig(Strict):
    model: str
    args: dict[str, Any] = Field(default_factory=dict)


class Normalization(Strict):
    mean: list[float] = Field(min_length=1, max_length=4)
    std: list[float] = Field(min_length=1, max_length=4)

    @model_validator(mode="after")
    def _matching(self) -> Normalization:
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError("mean and std need one value per channel, std > 0")
        return self


class TeacherConfig(ModelConfig):
    checkpoint: str | None = None
    # The teacher's own training seed (None: the study's seed). Distinct seeds make distinct
    # teachers of one architecture: separate units of the verdict.
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    train: TrainConfig | None = None  # None: the study's teacher_train recipe
    # The input normalisation the teacher was trained with, if it differs from the data's.
    normalization: Normalization | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TeacherConfig:
        if self.checkpoint is not None and self.train is not None:
            raise ValueError("give either 'checkpoint' or 'train', not both")
        return self


class PairConfig(Strict):
    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[\w.+-]+$")
    teacher: TeacherConfig
    student: ModelConfig
    train: dict[str, Any] = Field(default_factory=dict)  # overrides of the student recipe

    @property
    def label(self) -> str:
        return self.name or f"{self.teacher.model}-{self.student.model}".replace(":", "_")


class NoiseConfig(Strict):
    kind: NoiseKind
    levels: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    mode: Literal["symmetric", "asymmetric"] = "symmetric"  # label_noise_teacher only

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
    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w.+-]+$")
    # The registered method this arm runs (None: the one called `name`), so one method can
    # appear twice under two names, e.g. {name: kd_t2, method: kd, params: {T: 2}}.
    method: str | None = None
    tune: bool | None = None  # None: the method's own default
    trials: int | None = Field(None, ge=1, le=100_000)
    params: dict[str, Any] = Field(default_factory=dict)


class TuningConfig(Strict):
    trials: int = Field(8, ge=1, le=100_000)
    # The training seed of every search trial (None: the study seed + 10,000). It must differ
    # from the evaluation seeds, so no final score comes from the run that won the search.
    seed: int | None = Field(None, ge=0, le=2**40)
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "none"] = "median"
    startup_trials: int = Field(4, ge=0, le=100_000)
    warmup_epochs: int = Field(3, ge=0, le=100_000)


class VerdictConfig(Strict):
    """The question, declared before any result exists (and locked once a study has started)."""

    # Equivalence margin δ in accuracy, as a fraction (0.005 = 0.5 points); None: the data
    # set's default.
    margin: float | None = Field(None, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    # Arms by role. None: `redistill` and `redistill_student_first` where the study has them.
    fixed: list[str] | None = None
    # The arm whose λ is searched per pair. None: `redistill_tuned` where the study tunes it;
    # "none" declares that the study has no searched arm (and so no tuning verdict).
    searched: str | None = None
    reference: str | None = None  # None: `kd` where the study has it


class StudyConfig(Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w.+-]+$")
    description: str = ""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    seeds: int = Field(3, ge=1, le=1000)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda|cuda:\d+|mps)$")
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False
    cohort_size: int = Field(4, ge=1, le=256)
    # Train a cohort of one student architecture as one wide model (one forward and backward
    # for all), where that reproduces the members up to float round-off; otherwise, and with
    # false, one student after another (bit for bit as each would train alone).
    vectorize: bool = True
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    teacher_train: TrainConfig = Field(default_factory=TrainConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pairs: list[PairConfig] = Field(min_length=1)
    noise: list[NoiseConfig] = Field(
        default_factory=lambda: [NoiseConfig(kind="none")], min_length=1
    )
    methods: list[MethodConfig] = Field(min_length=1)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    verdict: VerdictConfig = Field(default_factory=VerdictConfig)

    @field_validator("channels_last", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted on/off as true/false.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

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
