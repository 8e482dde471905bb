"""MOON's frozen models evaluated together: the global model and the previous local model(s).

Every local step of MOON feeds one augmented batch to the model being trained and to ``1 + M``
frozen models (``docs/methods/moon.md``). Their weights do not change during a party's local training,
so for the paper's CIFAR-10 CNN (``MoonCNN``) they are stacked once per ``local_train`` call
and run as one network:

- the first convolutions (all read the same images) become one convolution with ``6 (1 + M)``
  output channels, which costs the same as one with 6 on a CPU (3 input channels leave
  oneDNN's vector lanes idle, so the extra output channels are nearly free);
- the second convolutions become one grouped convolution; the pools and ReLUs run once;
- each fully connected layer becomes one batched matrix product (``baddbmm``).

The result equals running the models one by one up to float rounding (tested in
``tests/federated/test_frozen.py``). Other backbones (the ResNet option) run one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.federated.model import FederatedModel
from contrastkit.nn.backbones import MoonCNN, max_pool_2x2

__all__ = ["FrozenRepresentations"]


class FrozenRepresentations:
    """``reps(x) -> [len(models), B, proj_dim]``: each frozen model's projection ``z`` of ``x``.

    Args:
        models: the frozen models in order (MOON: the global model, then the previous ones).
            Their weights are read when this object is built; build a new one if they change.
    """

    def __init__(self, models: Sequence[FederatedModel]) -> None:
        if not models:
            raise ValueError("FrozenRepresentations needs at least one model")
        self.models = list(models)
        stackable = len(self.models) > 1 and all(isinstance(m.encoder, MoonCNN) for m in self.models)
        self._stacked = _StackedMoonCNN(self.models) if stackable else None

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        if self._stacked is not None:
            return self._stacked(x)
        return torch.stack([m(x)[1] for m in self.models])


class _StackedMoonCNN:
    """``M`` MoonCNN + projection models as one network (weights copied at construction)."""

    def __init__(self, models: list[FederatedModel]) -> None:
        layers = [_moon_layers(m) for m in models]
        with torch.no_grad():
            self.w1 = torch.cat([conv1.weight for conv1, _, _ in layers])
            self.b1 = torch.cat([_bias(conv1) for conv1, _, _ in layers])
            self.w2 = torch.cat([conv2.weight for _, conv2, _ in layers])
            self.b2 = torch.cat([_bias(conv2) for _, conv2, _ in layers])
            # per fully connected layer: [M, in, out] weights and [M, 1, out] biases for baddbmm
            self.linears = [
                (
                    torch.stack([linears[k].weight.t() for _, _, linears in layers]),
                    torch.stack([_bias(linears[k])[None] for _, _, linears in layers]),
                )
                for k in range(len(layers[0][2]))
            ]
        self.count = len(models)

    def __call__(self, x: Tensor) -> Tensor:
        h = max_pool_2x2(F.conv2d(x, self.w1, self.b1)).relu_()
        h = max_pool_2x2(F.conv2d(h, self.w2, self.b2, groups=self.count)).relu_()
        h = h.reshape(len(x), self.count, -1).transpose(0, 1)  # [M, B, 16 * H' * W'], per-model flatten order
        last = len(self.linears) - 1
        for i, (weight, bias) in enumerate(self.linears):
            h = torch.baddbmm(bias, h, weight)
            if i != last:
                h = h.relu_()
        return h


def _moon_layers(model: FederatedModel) -> tuple[nn.Conv2d, nn.Conv2d, list[nn.Linear]]:
    """The two convolutions and the four linear layers (encoder fc, projection) in order."""
    encoder = model.encoder
    if not isinstance(encoder, MoonCNN):
        raise TypeError(f"expected a MoonCNN encoder, got {type(encoder).__name__}")
    conv1, conv2 = encoder.features[0], encoder.features[3]
    linears = [encoder.fc[0], encoder.fc[2], model.projection[0], model.projection[2]]
    if not (isinstance(conv1, nn.Conv2d) and isinstance(conv2, nn.Conv2d)):
        raise TypeError("MoonCNN.features[0] and [3] must be the convolutions")
    checked = [layer for layer in linears if isinstance(layer, nn.Linear)]
    if len(checked) != len(linears):
        raise TypeError("MoonCNN.fc[0], fc[2] and the projection's [0], [2] must be linear layers")
    return conv1, conv2, checked


def _bias(layer: nn.Conv2d | nn.Linear) -> Tensor:
    if layer.bias is None:
        return torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype, device=layer.weight.device)
    return layer.bias
