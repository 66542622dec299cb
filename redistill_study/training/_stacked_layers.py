"""The layers of a wide model (:mod:`.stacked`): one module of K models of one architecture as
one module on the wide layout, where member k's channels are the k-th block of K along the
channel axis.

A convolution becomes a grouped convolution (K × its groups), batch norm runs over K × C
channels (so every member keeps its own running statistics), a linear layer becomes a batched
matrix product, and channel-wise layers (activations, pooling, flatten) are used as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

# Layers that act on each channel (or each feature) on its own: correct in the wide layout.
CHANNELWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Flatten,
)


class StackedLayer(nn.Module):
    """A stacked layer with weights of its own. As the model's first layer it may read the
    members' common input once (``shared_input``) instead of K copies of it."""

    k: int
    shared_input: bool

    @property
    def can_share_input(self) -> bool:
        return True


class StackedConv2d(StackedLayer):
    """K convolutions as one grouped convolution on the wide layout. As the model's first
    layer (``shared_input``) it reads the members' common input once: a plain convolution
    with K × the output channels, so the input is never copied K times."""

    def __init__(self, convs: Sequence[nn.Conv2d]) -> None:
        super().__init__()
        c = convs[0]
        if c.padding_mode != "zeros":
            raise NotImplementedError("padding modes other than zeros")
        self.k = len(convs)
        self.stride, self.padding, self.dilation = c.stride, c.padding, c.dilation
        self.member_groups = c.groups
        self.shared_input = False
        self.weight = nn.Parameter(torch.cat([m.weight.detach() for m in convs]))
        self.bias = (
            nn.Parameter(torch.cat([_present(m.bias).detach() for m in convs]))
            if c.bias is not None
            else None
        )

    @property
    def can_share_input(self) -> bool:
        return self.member_groups == 1  # with groups, member blocks would interleave

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.member_groups * (1 if self.shared_input else self.k)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, groups)


class StackedLinear(StackedLayer):
    """K linear layers on the wide layout (batch, K × features): a batched matrix product, or
    as the first layer (``shared_input``) one matrix product of the common input with the K
    weight matrices side by side."""

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.k = len(linears)
        self.shared_input = False
        self.weight = nn.Parameter(torch.stack([m.weight.detach().t() for m in linears]))
        first = linears[0]
        self.bias = (
            nn.Parameter(torch.stack([_present(m.bias).detach() for m in linears])[:, None, :])
            if first.bias is not None
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.shared_input:  # (B, in) @ (in, K × out)
            side_by_side = self.weight.transpose(0, 1).reshape(x.shape[1], -1)
            if self.bias is None:
                return x @ side_by_side
            return torch.addmm(self.bias.reshape(-1), x, side_by_side)
        per_member = x.reshape(b, self.k, -1).transpose(0, 1)  # (K, B, in)
        if self.bias is not None:
            out = torch.baddbmm(self.bias, per_member, self.weight)
        else:
            out = torch.bmm(per_member, self.weight)
        return out.transpose(0, 1).reshape(b, -1)


def _present(t: torch.Tensor | None) -> torch.Tensor:
    """A member's bias or running statistic where the first member's layer has one (the
    members share an architecture, so every member's layer has it)."""
    assert t is not None, "the members' layers differ"
    return t


def _stacked_batchnorm(bns: Sequence[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
    first = bns[0]
    cls = type(first)
    wide = cls(
        first.num_features * len(bns),
        eps=first.eps,
        momentum=first.momentum,
        affine=first.affine,
        track_running_stats=first.track_running_stats,
    )
    with torch.no_grad():
        if first.affine:
            wide.weight.copy_(torch.cat([m.weight for m in bns]))
            wide.bias.copy_(torch.cat([m.bias for m in bns]))
        if first.track_running_stats:
            _present(wide.running_mean).copy_(torch.cat([_present(m.running_mean) for m in bns]))
            _present(wide.running_var).copy_(torch.cat([_present(m.running_var) for m in bns]))
            _present(wide.num_batches_tracked).copy_(_present(first.num_batches_tracked))
    return wide.to(first.weight.device if first.affine else _present(first.running_mean).device)


def widen(modules: Sequence[nn.Module]) -> nn.Module:
    """The wide version of one module of K models (its children widened in place)."""
    first = modules[0]
    # The members share an architecture: every module has the first one's type.
    if isinstance(first, nn.Conv2d):
        return StackedConv2d(cast("Sequence[nn.Conv2d]", modules))
    if isinstance(first, nn.Linear):
        return StackedLinear(cast("Sequence[nn.Linear]", modules))
    if isinstance(first, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _stacked_batchnorm(cast("Sequence[nn.modules.batchnorm._BatchNorm]", modules))
    if isinstance(first, nn.Dropout):
        if first.p > 0:  # random per member: its own RNG stream, so one model at a time
            raise NotImplementedError("dropout")
        return nn.Identity()
    children = list(first.named_children())
    if not children:
        if isinstance(first, CHANNELWISE):
            return copy.deepcopy(first)
        raise NotImplementedError(type(first).__name__)
    if any(True for _ in first.parameters(recurse=False)) or any(
        True for _ in first.buffers(recurse=False)
    ):
        raise NotImplementedError(f"{type(first).__name__} with its own parameters")
    wide = copy.copy(first)  # the module's own forward code, with widened children
    wide._modules = {}
    for name, _ in children:
        wide._modules[name] = widen([getattr(m, name) for m in modules])
    return wide
