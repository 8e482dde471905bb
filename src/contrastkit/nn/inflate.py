"""Inflating a 2-D image encoder into its 3-D clip counterpart (I3D: Carreira & Zisserman, "Quo
Vadis, Action Recognition?", CVPR 2017): every ``k x k`` kernel is repeated over ``t`` frames and
divided by ``t``, every other tensor (BatchNorm, biases) is copied. With the frames padded in time
by repeating the first and last frame, a clip of identical frames then gives, at every time step,
exactly the 2-D network's map of that frame: the clip encoder starts where the image encoder is.

- ``ConvNetSmall3d``: ``ConvNetSmall``'s blocks as ``(t, 3, 3)`` convolutions (time halved with
  space after the first block), so ``inflate(ConvNetSmall(...))`` is one.
- ``inflate_state_dict``: a 2-D state dict in the shapes of a 3-D module's, keys matched strictly.
- ``init_backbone``: what a recipe's ``model.init`` (and ``model.freeze``) does to any backbone.
"""

from __future__ import annotations

import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.nn.backbones import Backbone, ConvNetSmall
from contrastkit.registry import register_backbone

__all__ = [
    "ConvNetSmall3d",
    "TimeReplicateConv3d",
    "check_keys",
    "freeze_module",
    "inflate",
    "inflate_state_dict",
    "init_backbone",
    "initial_weights",
    "load_strict",
]


class TimeReplicateConv3d(nn.Conv3d):
    """A ``Conv3d`` whose input is padded in time by repeating its first and last frames
    (``kernel_t // 2`` each side) and in space by zeros, as its 2-D original pads space."""

    def forward(self, x: Tensor) -> Tensor:
        pad_t = self.kernel_size[0] // 2
        if pad_t:
            x = F.pad(x, (0, 0, 0, 0, pad_t, pad_t), mode="replicate")
        return self._conv_forward(x, self.weight, self.bias)


class ConvNetSmall3d(Backbone):
    """``ConvNetSmall`` for clips ``[B, C, T, H, W]``: four ``(t, 3, 3)`` conv-BN-ReLU blocks,
    widths ``width * (1, 2, 4, 8)``, time and space halved after the first block.

    Args:
        in_channels: frame channels.
        width: channels of the first block.
        time_kernel: ``t``, frames each kernel spans (odd).
    """

    def __init__(self, in_channels: int = 3, width: int = 32, time_kernel: int = 3) -> None:
        super().__init__()
        if time_kernel < 1 or time_kernel % 2 == 0:
            raise ValueError(f"time_kernel must be odd and >= 1, got {time_kernel}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i, out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            conv = TimeReplicateConv3d(channels, out, (time_kernel, 3, 3), stride=stride, padding=(0, 1, 1), bias=False)
            layers += [conv, nn.BatchNorm3d(out), nn.ReLU(inplace=True)]
            channels = out
        self.body = nn.Sequential(*layers)
        self.feature_dim = channels

    def forward_map(self, x: Tensor) -> Tensor:
        out: Tensor = self.body(x)
        return out


def check_keys(state: dict[str, Tensor], ours: dict[str, Tensor], what: str) -> None:
    """Raise ``ValueError`` in one line, ``what: missing ...; unexpected ...``, unless ``state``
    has exactly the keys of ``ours``."""
    missing, unexpected = sorted(set(ours) - set(state)), sorted(set(state) - set(ours))
    if missing or unexpected:

        def shown(keys: list[str]) -> str:
            return (", ".join(keys[:4]) + (" ..." if len(keys) > 4 else "")) or "none"

        raise ValueError(f"{what}: missing {shown(missing)}; unexpected {shown(unexpected)}")


def load_strict(module: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """``module.load_state_dict(state)`` with keys and shapes matched strictly; a mismatch raises
    ``ValueError`` in one line that starts with ``what`` and names the first key that differs."""
    ours = module.state_dict()
    check_keys(state, ours, what)
    wrong = [k for k in ours if state[k].shape != ours[k].shape]
    if wrong:
        k = wrong[0]
        raise ValueError(
            f"{what}: {k} is {tuple(state[k].shape)} there, {tuple(ours[k].shape)} here"
            + (f" (and {len(wrong) - 1} more tensors)" if len(wrong) > 1 else "")
        )
    module.load_state_dict(state)


def inflate_state_dict(state: dict[str, Tensor], target: nn.Module) -> dict[str, Tensor]:
    """``state`` of a 2-D module in the shapes of ``target``'s, its 3-D counterpart: a tensor with
    one dimension fewer than the target's is a kernel, repeated over the target's time size and
    divided by it; the others are copied as they are.

    Raises:
        ValueError: the two modules' keys or shapes differ (one line naming them).
    """
    ours = target.state_dict()
    check_keys(state, ours, f"the 2-D weights do not fit {type(target).__name__}")
    out = {}
    for key, want in ours.items():
        value = state[key]
        if value.dim() == want.dim() - 1 and value.dim() >= 3:
            frames = want.shape[2]
            value = value.unsqueeze(2).repeat_interleave(frames, dim=2) / frames
        if value.shape != want.shape:
            raise ValueError(f"{key}: the 2-D tensor {tuple(state[key].shape)} does not inflate to {tuple(want.shape)}")
        out[key] = value.to(want.dtype)
    return out


@torch.no_grad()
def inflate(encoder: ConvNetSmall, time_kernel: int = 3) -> ConvNetSmall3d:
    """The clip counterpart of a trained ``ConvNetSmall``, its kernels inflated over
    ``time_kernel`` frames: on a clip of identical frames it gives the image encoder's features."""
    first: nn.Conv2d = encoder.body[0]  # type: ignore[assignment]
    clip = ConvNetSmall3d(first.in_channels, first.out_channels, time_kernel)
    clip.load_state_dict(inflate_state_dict(encoder.state_dict(), clip))
    return clip


@register_backbone("convnet_small3d", summary="ConvNetSmall's blocks as (3, 3, 3) convolutions; inflates convnet_small")
def _convnet_small3d(in_channels: int, width: int | None, image_size: int) -> Backbone:
    return ConvNetSmall3d(in_channels, width or 32)


def initial_weights(source: str) -> dict[str, Tensor]:
    """The backbone weights ``source`` names: ``zoo:NAME`` (a zoo entry, cached or downloaded;
    ``contrastkit zoo get NAME`` trains one that has no URL), ``run:RUN_DIR`` (the backbone a
    contrastkit run trained) or a file holding a state dict (``contrastkit export --format state_dict``, or a
    Lightning checkpoint, whose ``backbone.*`` tensors are taken).

    Raises:
        FileNotFoundError: no such run folder or file; ValueError: an unreadable file.
    """
    from contrastkit.nn.backbones import load_run_backbone

    if source.startswith("run:"):
        backbone, _, _ = load_run_backbone(source.removeprefix("run:"))
        return backbone.state_dict()
    if source.startswith("zoo:"):
        path = _zoo_weights(source.removeprefix("zoo:"))
    else:
        path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.init: no file {path} (give a state-dict file or run:RUN_DIR)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for damaged files
        raise ValueError(
            f"model.init: {path} is not a readable state dict ({str(err).splitlines()[0][:120]})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = {k.removeprefix("backbone."): v for k, v in state["state_dict"].items() if k.startswith("backbone.")}
    if not isinstance(state, dict) or not state:
        raise ValueError(f"model.init: {path} holds no tensors of a backbone")
    return state


def _zoo_weights(name: str) -> Path:
    """A zoo entry's weights file: cached, else fetched from its URL; an entry that would have to
    be trained is refused in one line naming the command (training is not a side effect of init)."""
    from contrastkit import zoo

    entry = zoo.find(name)
    if zoo.read_cached(name) is None and not entry.url:
        raise zoo.ZooError(
            f"model.init zoo:{name}: not cached and no URL; train it once: contrastkit zoo get {name} --data-root DATA"
        )
    return zoo.get(name).weights


def init_backbone(backbone: nn.Module, source: str, *, freeze: bool = False) -> str:
    """Start ``backbone`` from ``source`` (see ``initial_weights``), keys matched strictly; the
    weights of a 2-D encoder are inflated into a 3-D counterpart (``inflate_state_dict``).
    ``freeze`` keeps it as it is: no gradient, BatchNorm on its running statistics. Returns how the
    report names the starting point.

    Raises:
        ValueError: weights that do not fit, in one line naming the missing and unexpected keys.
    """
    state, ours = initial_weights(source), backbone.state_dict()
    check_keys(state, ours, f"model.init {source}: the weights do not fit {type(backbone).__name__}")
    inflated = any(state[k].dim() == ours[k].dim() - 1 for k in ours)
    if inflated:
        state = inflate_state_dict(state, backbone)
    load_strict(backbone, state, f"model.init {source}")
    if freeze:
        freeze_module(backbone)
    return f"{source}{' (2-D weights inflated)' if inflated else ''}{', frozen' if freeze else ''}"


def freeze_module(module: nn.Module) -> None:
    """No gradient, and eval mode for good: ``module.train()`` leaves its BatchNorm statistics."""
    module.requires_grad_(False)
    module.eval()
    module.train = types.MethodType(_eval_only, module)  # type: ignore[method-assign]


def _eval_only(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)
