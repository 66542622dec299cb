"""K models of one architecture as one wide model: one forward and one backward for all K.

Member k's channels are the k-th block of K along the channel axis: a convolution becomes a
grouped convolution (K × its groups), batch norm runs over K × C channels (so every member
keeps its own running statistics), a linear layer becomes a batched matrix product, and
channel-wise layers (activations, pooling, flatten) are used as they are. A model's own forward
code runs unchanged on the wide layout, so residual blocks work; anything that mixes channels
another way (concatenation, channel shuffle) is caught by comparing the wide model with the K
originals once, and the cohort then trains them one by one instead.

>>> import torch
>>> from redistill_study.models import create_model
>>> models = []
>>> for k in range(3):
...     _ = torch.manual_seed(k)
...     models.append(create_model("digits_cnn_small", num_classes=10))
>>> wide = stack_models(models).eval()
>>> x = torch.randn(5, 1, 8, 8)
>>> torch.allclose(wide(x)[1], models[1].eval()(x), atol=1e-5)
True
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

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
TOLERANCE = 1e-4  # wide vs one-by-one forward, relative to the logits' scale


class StackedConv2d(nn.Module):
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
            nn.Parameter(torch.cat([m.bias.detach() for m in convs]))
            if c.bias is not None
            else None
        )

    @property
    def can_share_input(self) -> bool:
        return self.member_groups == 1  # with groups, member blocks would interleave

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.member_groups * (1 if self.shared_input else self.k)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, groups)


class StackedLinear(nn.Module):
    """K linear layers on the wide layout (batch, K × features): a batched matrix product, or
    as the first layer (``shared_input``) one matrix product of the common input with the K
    weight matrices side by side."""

    can_share_input = True

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.k = len(linears)
        self.shared_input = False
        self.weight = nn.Parameter(torch.stack([m.weight.detach().t() for m in linears]))
        first = linears[0]
        self.bias = (
            nn.Parameter(torch.stack([m.bias.detach() for m in linears])[:, None, :])
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
            wide.running_mean.copy_(torch.cat([m.running_mean for m in bns]))
            wide.running_var.copy_(torch.cat([m.running_var for m in bns]))
            wide.num_batches_tracked.copy_(first.num_batches_tracked)
    return wide.to(first.weight.device if first.affine else first.running_mean.device)


def _widen(modules: Sequence[nn.Module]) -> nn.Module:
    """The wide version of one module of K models (its children widened in place)."""
    first = modules[0]
    if isinstance(first, nn.Conv2d):
        return StackedConv2d(modules)  # type: ignore[arg-type]
    if isinstance(first, nn.Linear):
        return StackedLinear(modules)  # type: ignore[arg-type]
    if isinstance(first, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _stacked_batchnorm(modules)  # type: ignore[arg-type]
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
        wide._modules[name] = _widen([getattr(m, name) for m in modules])
    return wide


class StackedModel(nn.Module):
    """K models as one. ``forward(x)`` returns the K members' logits, shape (K, B, C)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.k = len(models)
        self.body = _widen(list(models))
        self.first: nn.Module | None = None  # the layer that reads the shared input, if any

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self.first is not None and self.first.shared_input
        wide = x if shared else x.repeat(1, self.k, *([1] * (x.dim() - 2)))
        out = self.body(wide)
        # Contiguous per member, so each member's loss reads a dense (B, C) block.
        return out.reshape(x.shape[0], self.k, -1).transpose(0, 1).contiguous()

    def set_first(self, layer: nn.Module | None) -> None:
        # A plain attribute, not a registered submodule: the layer already lives in `body`,
        # and registering it twice would put its weights in the state dict twice.
        object.__setattr__(self, "first", layer)

    def share_input(self, on: bool) -> None:
        """Let the first layer read the common input once (see :class:`StackedConv2d`)."""
        if self.first is not None:
            self.first.shared_input = on

    def member_parameters(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's slice of every parameter and buffer (views into the wide tensors)."""
        out = {}
        for name, tensor in list(self.body.named_parameters()) + list(self.body.named_buffers()):
            if name.endswith("num_batches_tracked"):
                continue
            out[name] = _member_slice(
                tensor, k, self.k, isinstance(self._owner(name), StackedLinear)
            )
        return out

    def _owner(self, name: str) -> nn.Module:
        module = self.body
        for part in name.split(".")[:-1]:
            module = getattr(module, part)
        return module

    def parameters_finite(self, k: int) -> str:
        for name, tensor in self.member_parameters(k).items():
            if not torch.isfinite(tensor).all():
                return name
        return ""

    @torch.no_grad()
    def unstack_into(self, k: int, model: nn.Module) -> None:
        """Copy member k's weights and running statistics into ``model``."""
        wide = dict(self.body.named_parameters()) | dict(self.body.named_buffers())
        for name, target in list(model.named_parameters()) + list(model.named_buffers()):
            source = wide[name]
            if name.endswith("num_batches_tracked"):
                target.copy_(source)
                continue
            piece = _member_slice(source, k, self.k, isinstance(self._owner(name), StackedLinear))
            if isinstance(self._owner(name), StackedLinear) and name.endswith("weight"):
                piece = piece.t()
            target.copy_(piece.reshape(target.shape))


def _member_slice(t: torch.Tensor, k: int, n: int, batched: bool) -> torch.Tensor:
    if batched:  # StackedLinear keeps a leading member axis
        return t[k]
    size = t.shape[0] // n
    return t[k * size : (k + 1) * size]


def stack_models(
    models: Sequence[nn.Module], input_shape: Sequence[int] | None = None
) -> StackedModel | None:
    """The wide model of ``models`` (same architecture), or None where it would not be exact:
    an unsupported layer, or a forward that does not match the members one by one on a random
    batch of ``input_shape`` (default: guessed from the first conv or linear layer)."""
    try:
        wide = StackedModel(models)
    except NotImplementedError:
        return None
    first = models[0]
    wide = wide.to(next(first.parameters()).device)
    shape = tuple(input_shape) if input_shape is not None else _input_shape(first)
    if shape is None:
        return None
    wide.set_first(_first_layer(wide, shape))
    # The shared input where the model's forward allows it (checked, not assumed: a model
    # that reads its input twice fails the comparison), else the input repeated K times.
    for shared in (True, False) if wide.first is not None else (False,):
        wide.share_input(shared)
        if _matches(wide, models, shape):
            wide.train(first.training)
            return wide
    return None


@torch.no_grad()
def _first_layer(wide: StackedModel, shape: tuple[int, ...]) -> nn.Module | None:
    """The stacked layer that the forward pass calls first, if it can read a shared input."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: order.append(mod))
        for m in wide.body.modules()
        if isinstance(m, (StackedConv2d, StackedLinear))
    ]
    mode = wide.training
    wide.eval()
    try:
        device = next(wide.parameters()).device
        wide(torch.zeros((1, *shape), device=device))
    except RuntimeError:
        pass  # the layers called before the failure are known; the comparison decides
    finally:
        for h in hooks:
            h.remove()
        wide.train(mode)
    return order[0] if order and order[0].can_share_input else None


@torch.no_grad()
def _matches(wide: StackedModel, models: Sequence[nn.Module], shape: tuple[int, ...]) -> bool:
    """The wide model against each member on a random batch, in eval mode (no state changes)."""
    first_param = next(models[0].parameters())
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    wide.eval()
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn((4, *shape), generator=gen).to(first_param.device, first_param.dtype)
    try:
        out = wide(x)
        ok = all(
            torch.allclose(out[k], m(x), rtol=TOLERANCE, atol=TOLERANCE * float(m(x).abs().max()))
            for k, m in enumerate(models)
        )
    except RuntimeError:
        ok = False
    for m, mode in zip(models, modes):
        m.train(mode)
    return ok


def _input_shape(model: nn.Module) -> tuple[int, ...] | None:
    """A plausible input shape from the first conv or linear layer."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return (m.in_channels, 16, 16)
        if isinstance(m, nn.Linear):
            return (m.in_features,)
    return None
