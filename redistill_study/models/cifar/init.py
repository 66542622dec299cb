"""The weight initialisation the CIFAR zoo shares (as in RepDistiller / torchvision)."""

from __future__ import annotations

from typing import Literal

import torch.nn as nn


def init_weights(model: nn.Module, linear: Literal["keep", "zero_bias", "normal"] = "keep") -> None:
    """Kaiming-normal (fan-out) convolutions with zero bias, unit/zero batch norm; the final
    linear layer is left as built, gets a zero bias, or N(0, 0.01) weights and a zero bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear != "keep":
            if linear == "normal":
                nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
