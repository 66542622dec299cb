"""MobileNetV2 for CIFAR as in KD papers (RepDistiller's and mdistiller's `mobile_half`:
expansion 6, width 0.5), with their parameter names (``conv1``, ``blocks.<stage>.<i>``,
``conv2``, ``classifier.0``) so that their published teacher files load as they are."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import register_model
from .init import init_weights


def _conv_bn(inp: int, oup: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        self.use_residual = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, expand: int = 6, width: float = 0.5, num_classes: int = 100):
        super().__init__()
        settings = [  # expansion, channels, blocks, stride
            (1, 16, 1, 1),
            (expand, 24, 2, 1),
            (expand, 32, 3, 2),
            (expand, 64, 4, 2),
            (expand, 96, 3, 1),
            (expand, 160, 3, 2),
            (expand, 320, 1, 1),
        ]
        channels = int(32 * width)
        self.conv1 = _conv_bn(3, channels, 3, 2)
        stages = []
        for t, c, n, s in settings:
            out = int(c * width)
            blocks = []
            for i in range(n):
                blocks.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.ModuleList(stages)
        self.last_channel = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = _conv_bn(channels, self.last_channel, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, num_classes))
        init_weights(self, linear="normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for stage in self.blocks:
            x = stage(x)
        x = self.conv2(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@register_model("MobileNetV2", family="cifar", revision=2)
def mobilenetv2(num_classes: int = 100) -> nn.Module:
    return MobileNetV2(6, 0.5, num_classes)
