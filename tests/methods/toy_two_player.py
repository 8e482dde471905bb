"""A toy two-player method for the base class's manual-optimisation hook: a generator perturbs
the input to *raise* the encoder's InfoNCE loss, the encoder lowers it (VideoMoCo's shape:
``videomoco.md`` §3 steps G then D). Importable by spawned DDP workers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit.functional import info_nce
from contrastkit.methods.base import Batch, ContrastiveMethod, OptimizerSettings, StepOutput
from contrastkit.nn.backbones import Backbone


class LinearEncoder(Backbone):
    feature_dim = 6

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, self.feature_dim)

    def forward_map(self, x: Tensor) -> Tensor:
        return self.linear(x)


class ToyAdversarial(ContrastiveMethod):
    """Players ``generator`` (first) and ``encoder``; ``order`` records the updates made and
    ``grad_flags`` which parameters required gradients inside each player's block."""

    def __init__(self, dim: int = 8, lr: float = 0.1) -> None:
        super().__init__(LinearEncoder(dim), None, optimizer=OptimizerSettings("sgd", lr=lr, momentum=0.9))  # type: ignore[arg-type]
        self.generator_net = nn.Linear(dim, dim)
        self.order: list[str] = []
        self.grad_flags: list[tuple[str, bool, bool]] = []

    def players(self) -> dict[str, list[nn.Module]]:
        return {"generator": [self.generator_net], "encoder": [self.backbone]}

    def perturb(self, x: Tensor) -> Tensor:
        return x + 0.5 * torch.tanh(self.generator_net(x))

    def contrast(self, x: Tensor) -> Tensor:
        return info_nce(self.backbone(self.perturb(x)), self.backbone(x), temperature=0.5)

    def _flags(self, name: str) -> None:
        self.grad_flags.append(
            (name, self.generator_net.weight.requires_grad, self.backbone.linear.weight.requires_grad)
        )

    def step(self, batch: Batch) -> StepOutput:
        x = batch["input"]
        with self.player("generator") as update:
            self._flags("generator")
            update(-self.contrast(x))
            self.order.append("generator")
        with self.player("encoder") as update:
            self._flags("encoder")
            loss = self.contrast(x)
            update(loss)
            self.order.append("encoder")
        return StepOutput(loss)


def toy_data(rows: int = 64, dim: int = 8, seed: int = 0) -> dict[str, Tensor]:
    return {"input": torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed))}
