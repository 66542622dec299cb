"""Study configs: the schema and the loader that turns YAML into a validated StudyConfig."""

from .loader import default_study_path, load_study, resolve_path, shipped_studies
from .schema import (
    DatasetConfig,
    MethodConfig,
    ModelConfig,
    NoiseConfig,
    PairConfig,
    PopulationConfig,
    RecipeConfig,
    StudyConfig,
    TeacherConfig,
    TrainConfig,
    TuningConfig,
    VerdictConfig,
)

__all__ = [
    "DatasetConfig",
    "MethodConfig",
    "ModelConfig",
    "NoiseConfig",
    "PairConfig",
    "PopulationConfig",
    "RecipeConfig",
    "StudyConfig",
    "TeacherConfig",
    "TrainConfig",
    "TuningConfig",
    "VerdictConfig",
    "default_study_path",
    "load_study",
    "resolve_path",
    "shipped_studies",
]
