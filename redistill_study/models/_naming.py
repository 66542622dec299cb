"""How a checkpoint's parameter names relate to a model's, when they are not the same: a
prefix a distiller saved its models under, this project's own names before its CIFAR zoo took
the peers' (revision 2), or another architecture's names. Used by ``checkpoint`` to load what
it safely can and to say in one line what it cannot."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable

import torch
import torch.nn as nn

from .registry import create_model, list_models, model_family

BATCHES = "num_batches_tracked"


def without_counters(keys: Iterable[str]) -> set[str]:
    """The keys less batch norm's step counters, which torch's strict load fills in when a
    checkpoint lacks them."""
    return {k for k in keys if not k.endswith(BATCHES)}


def prefixes(keys: Iterable[str]) -> Counter[str]:
    """First name components with their key counts (``student.``: 62)."""
    return Counter(k.split(".", 1)[0] + "." for k in keys if "." in k)


def fitting_prefix(keys: Iterable[str], own: set[str]) -> str | None:
    """The prefix under which the checkpoint holds exactly this model (``teacher.`` in a
    distiller's state dict), if one does."""
    keys = list(keys)
    for prefix in prefixes(keys):
        inner = without_counters(k[len(prefix) :] for k in keys if k.startswith(prefix))
        if inner and inner == without_counters(own):
            return prefix
    return None


# --- this project's names before revision 2 ----------------------------------------------------


def _wrn(key: str, model: nn.Module) -> str:
    n = len(model.block1.layer)  # type: ignore[arg-type,union-attr]
    flat = re.match(r"blocks\.(\d+)\.(.*)", key)
    if flat:
        j, rest = int(flat[1]), flat[2].replace("shortcut.", "convShortcut.")
        return f"block{j // n + 1}.layer.{j % n}.{rest}"
    return "bn1." + key[3:] if key.startswith("bn.") else key


def _vgg(key: str, model: nn.Module) -> str:
    return re.sub(r"^blocks\.(\d+)\.", r"block\1.", key)


def _mobilenet(key: str, model: nn.Module) -> str:
    sizes = [len(stage) for stage in model.blocks]  # type: ignore[union-attr]
    flat = re.match(r"features\.(\d+)\.(.*)", key)
    if flat:
        k, rest = int(flat[1]), flat[2]
        if k == 0:
            return f"conv1.{rest}"
        if k == 1 + sum(sizes):
            return f"conv2.{rest}"
        k -= 1
        for stage, size in enumerate(sizes):
            if k < size:
                return f"blocks.{stage}.{k}.{rest}"
            k -= size
    if key.startswith("classifier.") and not key.startswith("classifier.0."):
        return "classifier.0." + key[len("classifier.") :]
    return key


# Per class whose function did not change: the rename from the earlier names.
_EARLIER: dict[str, Callable[[str, nn.Module], str]] = {
    "WideResNet": _wrn,
    "VGG": _vgg,
    "MobileNetV2": _mobilenet,
}
# Per class whose function changed too, the prefix its earlier names began with: V1 had no
# ReLU after the depthwise batch norm, V2 a 3 × 3 stem where the peers have 1 × 1.
_EARLIER_OTHER_FUNCTION = {"ShuffleNetV1": "stages.", "ShuffleNetV2": "stages."}


def renamed_from_earlier(
    state: dict[str, torch.Tensor], model: nn.Module, own: Iterable[str]
) -> dict | None:
    """The state under the model's names (``own``) when it was saved with this project's names
    before revision 2 and the model computes the same function (None otherwise)."""
    rename = _EARLIER.get(type(model).__name__)
    if rename is None:
        return None
    renamed = {rename(k, model): v for k, v in state.items()}
    return renamed if without_counters(renamed) == without_counters(own) else None


def earlier_other_function(state: dict[str, torch.Tensor], model: nn.Module) -> bool:
    """A checkpoint of this project's ShuffleV1 / V2 before they became the peers' networks."""
    mark = _EARLIER_OTHER_FUNCTION.get(type(model).__name__)
    return mark is not None and any(k.startswith(mark) for k in state)


# --- another architecture's names --------------------------------------------------------------


@functools.cache
def _zoo_keys() -> dict[str, frozenset[str]]:
    out = {}
    with torch.device("meta"):
        for name in list_models():
            if model_family(name) == "cifar":
                out[name] = frozenset(without_counters(create_model(name, 100).state_dict()))
    return out


def closest_naming(keys: Iterable[str], own: set[str]) -> str | None:
    """The zoo architecture whose names the checkpoint follows, where it is not this model's:
    ``these keys follow wrn_40_2's names (RepDistiller's and mdistiller's)``."""
    keys = without_counters(keys)
    own = without_counters(own)
    best, score = None, 0.0
    for name, names in _zoo_keys().items():
        overlap = len(keys & names) / max(len(keys | names), 1)
        if overlap > score:
            best, score = name, overlap
    if best is None or score < 0.8 or _zoo_keys()[best] == own:
        return None
    return f"these keys follow {best}'s names (RepDistiller's and mdistiller's)"
