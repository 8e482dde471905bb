"""``trainer.precision=bf16-mixed`` on CPU for every method at smoke size (issue 21 item 3).

Two recipes run in ``make test`` (the fused image kernel and MoCHi's kernel) with unit checks of
the other parts that needed a fix (sparse graph propagation, FastDeconv, the 3D CNN); every
other method's recipe runs under ``-m slow``.
"""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.config import apply_overrides, load_recipe, smoke
from contrastkit.pipeline.run import train

FAST = ["moco-digits", "mochi-digits"]
SLOW = [
    "mvgrl-sbm",
    "aecr-synthetic",
    "simclr-digits",
    "densecl-digits",
    "moco-hcl-digits",
    "hcl-digits",
    "mvgrl-sbm-graphs",
    "videomoco-synthetic",
    "vclr-synthetic",
    "longshort-synthetic",
    "crossclr-synthetic",
    "ccl-synthetic",
]


def _bf16_run(name: str, tmp_path) -> None:
    raw = smoke(apply_overrides(load_recipe(name), ["trainer.precision=bf16-mixed"]))
    if "linear_probe" in raw.get("eval", {}) or name.endswith("digits"):
        raw.setdefault("eval", {})["linear_probe"] = False
    results = train(raw, runs_dir=tmp_path, progress=False)
    headline = results["metrics"][0]["key"]
    assert math.isfinite(results["final"][headline]), results["final"]


@pytest.mark.parametrize("name", FAST)
def test_bf16_mixed_trains(name, tmp_path):
    _bf16_run(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_bf16_mixed_trains_every_other_method(name, tmp_path):
    _bf16_run(name, tmp_path)


def test_tiny3d_weight_gradients_are_finite_under_cpu_bf16_for_two_frames():
    from contrastkit.registry import BACKBONES

    backbone = BACKBONES.get("tiny3d").build(3, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = backbone(torch.randn(4, 3, 2, 16, 16))
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in backbone.parameters() if p.grad is not None)


def test_sparse_propagation_and_fast_deconv_under_cpu_bf16():
    from contrastkit.nn.dehaze import FastDeconv
    from contrastkit.nn.graph import propagate

    index = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
    matrix = torch.sparse_coo_tensor(index, torch.rand(4), (3, 3)).coalesce()
    weight = torch.randn(4, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = propagate(matrix, torch.randn(3, 4) @ weight) @ torch.randn(5, 2)
    out.sum().backward()
    assert torch.isfinite(weight.grad).all()
    expected = torch.sparse.mm(matrix, torch.ones(3, 5))
    torch.testing.assert_close(propagate((matrix.indices(), matrix.values(), 3), torch.ones(3, 5)), expected)

    conv = FastDeconv(3, 3, 3, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(torch.rand(2, 3, 8, 8))
    y.sum().backward()
    assert torch.isfinite(conv.weight.grad).all() and conv.running_deconv.dtype == torch.float32
