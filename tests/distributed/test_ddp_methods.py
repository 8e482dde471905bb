"""SimCLR and MoCo under a real 2-process gloo group equal one process on the global batch.

BatchNorm layers run in eval mode here: per-rank BN statistics legitimately differ from
global-batch statistics under DDP (that is what ShuffleBN exploits), so only with fixed
statistics can the two set-ups be compared exactly. Views are fixed functions of the images
(identity and flip), so both set-ups see the same inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
from torch import nn

from contrastkit.data import load_digits
from contrastkit.methods import MoCo, OptimizerSettings, SimCLR
from contrastkit.nn import ConvNetSmall
from contrastkit.views import build_augmentation
from tests.gloo import run_on_ranks

pytestmark = pytest.mark.distributed

GLOBAL_BATCH = 16
STEPS = 3


def _build(kind: str):
    L.seed_everything(0, verbose=False)
    digits = load_digits(16)
    aug = build_augmentation("digits", 16, digits.mean, digits.std)
    common = dict(optimizer=OptimizerSettings("sgd", lr=0.1), proj_hidden=32, proj_dim=16)
    if kind == "simclr":
        model = SimCLR(ConvNetSmall(1, 4), aug, **common)
    else:
        model = MoCo(ConvNetSmall(1, 4), aug, queue_size=40, split_bn=1, **common)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    model.views = lambda images, count=2: [model.preprocess(images), model.preprocess(images.flip(-1))]
    return model, digits.train_images[: GLOBAL_BATCH * STEPS]


def _run(model, images, rank: int, world: int) -> dict:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    per_rank = GLOBAL_BATCH // world
    losses, first_grads = [], None
    for step in range(STEPS):
        rows = slice(step * GLOBAL_BATCH + rank * per_rank, step * GLOBAL_BATCH + (rank + 1) * per_rank)
        model.on_train_batch_start(None, step)
        loss = model.step({"input": images[rows], "index": torch.arange(GLOBAL_BATCH * STEPS)[rows]}).loss
        opt.zero_grad()
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        if world > 1:  # DDP's gradient averaging
            for g in grads:
                dist.all_reduce(g)
                g /= world
            total = loss.detach().clone()
            dist.all_reduce(total)
            loss = total / world
        for p, g in zip([p for p in model.parameters() if p.grad is not None], grads):
            p.grad.copy_(g)
        opt.step()
        losses.append(float(loss))
        first_grads = first_grads if first_grads is not None else grads
    queue = model.criterion.queue.state_dict() if getattr(model.criterion, "queue", None) is not None else {}
    return {"losses": losses, "grads": first_grads, "queue": queue}


def _on_rank(rank: int, world: int, kind: str) -> dict:
    model, images = _build(kind)
    return _run(model, images, rank, world)


@pytest.mark.parametrize("kind", ["simclr", "moco"])
def test_two_ranks_match_one_process(kind):
    ranks = run_on_ranks(_on_rank, 2, kind)
    model, images = _build(kind)
    single = _run(model, images, 0, 1)
    for result in ranks:
        torch.testing.assert_close(result["losses"][0], single["losses"][0])
        for got, want in zip(result["grads"], single["grads"]):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(torch.tensor(result["losses"]), torch.tensor(single["losses"]), rtol=1e-4, atol=1e-5)
    if kind == "moco":
        for name, value in ranks[0]["queue"].items():
            assert torch.equal(value, ranks[1]["queue"][name]), name
            torch.testing.assert_close(value, single["queue"][name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_lightning_ddp_run_writes_one_run_folder(tmp_path):
    """The CLI with --devices 2 --strategy ddp: Lightning launches a second process (gloo)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "contrastkit.cli",
            "train",
            "moco-digits",
            "--smoke",
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--accelerator",
            "cpu",
            "--no-progress",
            "--runs-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "moco-digits").iterdir())
    assert len(runs) == 1, runs
    results = json.loads((runs[0] / "results.json").read_text())
    assert results["world_size"] == 2
    assert Path(runs[0] / "report.md").is_file()
