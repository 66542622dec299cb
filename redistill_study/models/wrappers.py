"""Model wrappers that adapt a teacher to the student's data pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


class Renormalize(nn.Module):
    """Feed ``model`` inputs normalised its own way when the batch stream normalises another:
    x_model = (x·std_data + mean_data − mean_model) / std_model, per channel."""

    scale: torch.Tensor  # buffers (registered below)
    shift: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        data_mean: Sequence[float],
        data_std: Sequence[float],
        model_mean: Sequence[float],
        model_std: Sequence[float],
    ) -> None:
        super().__init__()
        self.model = model
        data_mean_t = torch.tensor(data_mean).view(1, -1, 1, 1)
        data_std_t = torch.tensor(data_std).view(1, -1, 1, 1)
        model_mean_t = torch.tensor(model_mean).view(1, -1, 1, 1)
        model_std_t = torch.tensor(model_std).view(1, -1, 1, 1)
        # One affine map: x·scale + shift.
        self.register_buffer("scale", data_std_t / model_std_t, persistent=False)
        self.register_buffer("shift", (data_mean_t - model_mean_t) / model_std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * self.scale.to(x.dtype) + self.shift.to(x.dtype))
