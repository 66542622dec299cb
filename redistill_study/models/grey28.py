"""Models for 28 × 28 grey-scale images (Fashion-MNIST, MNIST): four families of different
inductive bias, from about 2 k to about 2 M parameters: the Fashion-MNIST population of
``studies/fashion_mnist_confirm.yaml`` draws its teachers and students from them.

| family    | names                                              | what it is                |
|-----------|----------------------------------------------------|---------------------------|
| CNN       | ``fm_cnn_{xxs,xs,s,m,l}``, ``fm_cnn_{xs_deep,deep}`` | conv + BN + pooling       |
|           | ``fm_cnn_xs_gap``                                  | global average only       |
| ResNet    | ``fm_resnet_xs``, ``fm_resnet8``, ``fm_resnet14``  | basic-block ResNets       |
| MobileNet | ``fm_mobilenet_{xs,s,m}``                          | inverted residuals        |
| MLP       | ``fm_mlp_{xs,s,m}``, ``fm_mlp_2x32``, ``fm_mlp_3x64`` | on the flat image      |
|           | ``fm_mlp_{deep,wide,l}`` (512³, 2048, 1024²)       |                           |
|           | ``..._bn`` of xs, s, 2x32, 3x64, m, l              | with batch norm           |

``in_chans`` (default 1) lets any of them take colour input.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .cifar.init import init_weights
from .registry import register_model

FAMILY = "grey28"


def _conv_bn(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> list:
    return [
        nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
    ]


class PlainCNN(nn.Module):
    """Stages of 3 × 3 conv + BN + ReLU, 2 × 2 max-pooling between stages, global average."""

    def __init__(
        self,
        widths: tuple[int, ...],
        per_stage: int = 1,
        num_classes: int = 10,
        in_chans: int = 1,
        pooled: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        inp = in_chans
        for i, w in enumerate(widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(per_stage):
                layers += _conv_bn(inp, w)
                inp = w
        # pooled = 1: global average; 3: a 3 × 3 grid, so the classifier sees where things are.
        layers += [nn.AdaptiveAvgPool2d(pooled), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(inp * pooled * pooled, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, inp: int, out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(inp, out, stride=stride),
            nn.Conv2d(out, out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inp != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A stem, three stages of basic blocks (28 → 14 → 7), global average pooling."""

    def __init__(
        self, blocks: int, widths: tuple[int, int, int], num_classes: int = 10, in_chans: int = 1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = _conv_bn(in_chans, widths[0])
        inp = widths[0]
        for stage, w in enumerate(widths):
            for b in range(blocks):
                layers.append(BasicBlock(inp, w, 2 if stage > 0 and b == 0 else 1))
                inp = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(inp, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.residual = stride == 1 and inp == out
        self.body = nn.Sequential(
            *_conv_bn(inp, hidden, kernel=1),
            *_conv_bn(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class SmallMobileNet(nn.Module):
    """MobileNetV2-style: a stem, inverted-residual stages (expansion, width, blocks, stride)."""

    def __init__(
        self,
        stages: tuple[tuple[int, int, int, int], ...],
        stem: int = 16,
        head: int = 128,
        num_classes: int = 10,
        in_chans: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = _conv_bn(in_chans, stem)
        inp = stem
        for expand, width, blocks, stride in stages:
            for b in range(blocks):
                layers.append(InvertedResidual(inp, width, stride if b == 0 else 1, expand))
                inp = width
        layers += [*_conv_bn(inp, head, kernel=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(head, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MLP(nn.Module):
    def __init__(
        self,
        hidden: tuple[int, ...],
        num_classes: int = 10,
        in_chans: int = 1,
        size: int = 28,
        norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        inp = in_chans * size * size
        for h in hidden:
            # Batch norm keeps each hidden layer's scale fixed, whatever the step did to it.
            layers += [nn.Linear(inp, h), *([nn.BatchNorm1d(h)] if norm else [])]
            layers.append(nn.ReLU(inplace=True))
            inp = h
        layers.append(nn.Linear(inp, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# name: (widths, convs per stage, the classifier's pooled grid: 3 × 3 sees where things are,
# 1 is the global average alone)
_CNNS = {
    "fm_cnn_xxs": ((4, 8, 16), 1, 3),
    "fm_cnn_xs": ((8, 16, 32), 1, 3),
    "fm_cnn_xs_deep": ((8, 16, 32), 2, 3),
    "fm_cnn_xs_gap": ((8, 16, 32), 1, 1),
    "fm_cnn_s": ((16, 32, 64), 1, 3),
    "fm_cnn_m": ((32, 64, 128), 1, 3),
    "fm_cnn_l": ((64, 128, 256), 1, 3),
    "fm_cnn_deep": ((32, 64, 128), 2, 3),
}
# name: (hidden widths, batch norm after each hidden layer)
_MLPS = {
    "fm_mlp_xs": ((16,), False),
    "fm_mlp_xs_bn": ((16,), True),
    "fm_mlp_s": ((32,), False),
    "fm_mlp_s_bn": ((32,), True),
    "fm_mlp_2x32": ((32, 32), False),
    "fm_mlp_2x32_bn": ((32, 32), True),
    "fm_mlp_3x64": ((64, 64, 64), False),
    "fm_mlp_3x64_bn": ((64, 64, 64), True),
    "fm_mlp_m": ((128,), False),
    "fm_mlp_m_bn": ((128,), True),
    "fm_mlp_deep": ((512, 512, 512), False),
    "fm_mlp_wide": ((2048,), False),
    "fm_mlp_l": ((1024, 1024), False),
    "fm_mlp_l_bn": ((1024, 1024), True),
}


def _register() -> None:
    for name, (widths, per_stage, grid) in _CNNS.items():
        register_model(name, FAMILY)(
            lambda num_classes=10, in_chans=1, pooled=grid, _w=widths, _p=per_stage: PlainCNN(
                _w, _p, num_classes, in_chans, pooled
            )
        )
    for name, (hidden, norm) in _MLPS.items():
        register_model(name, FAMILY)(
            lambda num_classes=10, in_chans=1, _h=hidden, _n=norm: MLP(
                _h, num_classes, in_chans, norm=_n
            )
        )


_register()


@register_model("fm_resnet8", FAMILY)
def fm_resnet8(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return SmallResNet(1, (16, 32, 64), num_classes, in_chans)


@register_model("fm_resnet14", FAMILY)
def fm_resnet14(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return SmallResNet(2, (16, 32, 64), num_classes, in_chans)


@register_model("fm_resnet_xs", FAMILY)
def fm_resnet_xs(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return SmallResNet(1, (8, 16, 32), num_classes, in_chans)


@register_model("fm_mobilenet_xs", FAMILY)
def fm_mobilenet_xs(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return SmallMobileNet(((1, 4, 1, 1), (2, 8, 1, 2), (2, 16, 1, 2)), 4, 32, num_classes, in_chans)


@register_model("fm_mobilenet_s", FAMILY)
def fm_mobilenet_s(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return SmallMobileNet(
        ((1, 8, 1, 1), (4, 16, 2, 2), (4, 32, 2, 2)), 8, 64, num_classes, in_chans
    )


@register_model("fm_mobilenet_m", FAMILY)
def fm_mobilenet_m(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return SmallMobileNet(
        ((1, 16, 1, 1), (6, 24, 2, 2), (6, 48, 3, 2), (6, 64, 2, 1)), 16, 128, num_classes, in_chans
    )
