"""VGG with batch norm for CIFAR, with RepDistiller's and mdistiller's parameter names (`vgg.py`:
``block0`` … ``block4``, ``classifier``): five conv blocks, global average pool."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import register_model
from .init import init_weights

CONFIGS = {
    8: [[64], [128], [256], [512], [512]],
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def _block(widths: list[int], in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [
            nn.Conv2d(in_channels, w, 3, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        ]
        in_channels = w
    return nn.Sequential(*layers[:-1])  # the block's last ReLU is applied in forward


class VGG(nn.Module):
    def __init__(self, config: list[list[int]], num_classes: int = 100):
        super().__init__()
        ins = [3] + [c[-1] for c in config[:-1]]
        for i, (widths, cin) in enumerate(zip(config, ins)):
            self.add_module(f"block{i}", _block(widths, cin))  # the peers' names
        self.depth = len(config)
        self.classifier = nn.Linear(config[-1][-1], num_classes)
        init_weights(self, linear="normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        for i in range(self.depth):
            x = F.relu(getattr(self, f"block{i}")(x))
            if i < 3 or (i == 3 and h == 64):
                x = F.max_pool2d(x, 2, 2)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _register(depth: int) -> None:
    @register_model(f"vgg{depth}", family="cifar", revision=2)
    def factory(num_classes: int = 100) -> nn.Module:
        return VGG(CONFIGS[depth], num_classes)


for _depth in CONFIGS:
    _register(_depth)
