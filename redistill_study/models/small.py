"""Small models for 8×8 single-channel inputs (the embedded digits data set)."""

from __future__ import annotations

import torch.nn as nn

from .registry import register_model


class DigitsMLP(nn.Module):
    def __init__(self, num_classes: int = 10, hidden: int = 32, in_features: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.net(x)


class DigitsCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 32, in_channels: int = 1) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * w, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model("digits_mlp", family="digits")
def digits_mlp(num_classes: int = 10, hidden: int = 32, **kw) -> nn.Module:
    return DigitsMLP(num_classes, hidden, **kw)


@register_model("digits_mlp_small", family="digits")
def digits_mlp_small(num_classes: int = 10, hidden: int = 10, **kw) -> nn.Module:
    return DigitsMLP(num_classes, hidden, **kw)


@register_model("digits_cnn", family="digits")
def digits_cnn(num_classes: int = 10, width: int = 24, **kw) -> nn.Module:
    return DigitsCNN(num_classes, width, **kw)


@register_model("digits_cnn_small", family="digits")
def digits_cnn_small(num_classes: int = 10, width: int = 4, **kw) -> nn.Module:
    return DigitsCNN(num_classes, width, **kw)
