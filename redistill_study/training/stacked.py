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

from collections.abc import Sequence

import torch
import torch.nn as nn

from ._stacked_layers import StackedConv2d, StackedLayer, StackedLinear, widen

__all__ = ["StackedConv2d", "StackedLinear", "StackedModel", "stack_models"]

TOLERANCE = 1e-4  # wide vs one-by-one forward, relative to the logits' scale


class StackedModel(nn.Module):
    """K models as one. ``forward(x)`` returns the K members' logits, shape (K, B, C)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.k = len(models)
        self.body = widen(list(models))
        self.first: StackedLayer | None = None  # the layer that reads the shared input, if any

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self.first is not None and self.first.shared_input
        wide = x if shared else x.repeat(1, self.k, *([1] * (x.dim() - 2)))
        out = self.body(wide)
        # Contiguous per member, so each member's loss reads a dense (B, C) block.
        return out.reshape(x.shape[0], self.k, -1).transpose(0, 1).contiguous()

    def set_first(self, layer: StackedLayer | None) -> None:
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
def _first_layer(wide: StackedModel, shape: tuple[int, ...]) -> StackedLayer | None:
    """The stacked layer that the forward pass calls first, if it can read a shared input."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: order.append(mod))
        for m in wide.body.modules()
        if isinstance(m, StackedLayer)
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
    first = order[0] if order else None  # a StackedLayer: only those have the hook
    return first if isinstance(first, StackedLayer) and first.can_share_input else None


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
