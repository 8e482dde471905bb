"""AECR (aecr.md): paired augmentation, the three arms, extractors by name only, the recipes end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.cli import main
from contrastkit.data.dehaze import synthetic_haze
from contrastkit.functional import contrastive_regularization
from contrastkit.methods.aecr import AECR, build_extractor, layer_weights, paired_flips

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TINY = dict(ngf=4, fa_repeats=1, deformable=False)


def test_paired_flips_apply_one_transform_to_both_images_per_sample() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.arange(64 * 3 * 4 * 4, dtype=torch.float32).reshape(64, 3, 4, 4)
    hazy, clear = paired_flips(x, x + 1000, g)
    assert torch.equal(hazy + 1000, clear)
    seen = {tuple(hazy[i, 0].flatten().tolist()) != tuple(x[i, 0].flatten().tolist()) for i in range(64)}
    assert seen == {True, False}  # per sample: some transformed, some not
    for i in range(64):  # each output is one of the 8 dihedral transforms of its own input
        candidates = [x[i].rot90(k, (-2, -1)) for k in range(4)] + [x[i].flip(-1).rot90(k, (-2, -1)) for k in range(4)]
        assert any(torch.equal(hazy[i], c) for c in candidates)


def test_l1_arm_builds_no_extractor_and_the_cr_arms_do() -> None:
    assert AECR(cr_weight=0, **TINY).extractor is None
    method = AECR(cr_weight=0.1, extractor="random-vgg19", extractor_width_divisor=16, **TINY)
    assert method.extractor is not None
    assert not any(k.startswith("_extractor") or "stages" in k for k in method.state_dict())  # not checkpointed


def test_loss_terms_compose_l1_and_cr() -> None:
    g = torch.Generator().manual_seed(0)
    hazy, clear = torch.rand(2, 2, 3, 16, 16, generator=g).unbind(0)
    for negatives in (True, False):
        torch.manual_seed(0)
        m = AECR(cr_weight=0.5, negatives=negatives, extractor="random-vgg19", extractor_width_divisor=16, **TINY)
        loss, l1, cr = m.loss_terms(hazy, clear)
        assert loss.item() == pytest.approx((l1 + 0.5 * cr).item())
        assert cr.item() > 0
    torch.manual_seed(0)
    a = AECR(cr_weight=0.0, **TINY).loss_terms(hazy, clear)
    assert a[2].item() == 0 and a[0].item() == pytest.approx(a[1].item())


def test_vgg19_is_never_a_silent_fallback() -> None:
    with pytest.raises(ValueError, match=r"needs ImageNet weights: --set method.vgg_weights=PATH"):
        build_extractor("vgg19", None)
    with pytest.raises(FileNotFoundError):
        build_extractor("run:/nowhere/run", None)


def test_layer_weights_align_with_the_deepest_layer() -> None:
    assert layer_weights(5) == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    assert layer_weights(4) == (1 / 16, 1 / 8, 1 / 4, 1.0)


def test_loss_falls_on_synthetic_pairs() -> None:
    data = synthetic_haze(0, train=32, test=2, size=32)
    hazy, clear = data.train["hazy"].float() / 255, data.train["clear"].float() / 255
    torch.manual_seed(0)
    method = AECR(
        cr_weight=0.1, extractor="random-vgg19", extractor_width_divisor=16, ngf=8, fa_repeats=1, deformable=False
    )
    optimizer = torch.optim.Adam(method.net.parameters(), 2e-3)
    losses = []
    for _ in range(30):
        loss, _, _ = method.loss_terms(hazy, clear)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_restore_pads_any_size_and_returns_unit_range() -> None:
    method = AECR(cr_weight=0, **TINY).eval()
    out = method.restore(torch.rand(1, 3, 17, 23))
    assert out.shape == (1, 3, 17, 23) and out.min() >= 0 and out.max() <= 1


def test_synthetic_recipe_smoke_writes_report_with_reference_rows(tmp_path, capsys) -> None:
    code = main(
        [
            "train",
            "aecr-synthetic",
            "--smoke",
            "--runs-dir",
            str(tmp_path),
            "--no-progress",
            "--data-root",
            str(SHARED_DATA),
        ]
    )
    assert code == 0
    run = next((tmp_path / "aecr-synthetic").iterdir())
    report = (run / "report.md").read_text()
    assert "| dark channel prior |" in report and "| hazy input (no restoration) |" in report
    assert "random VGG-19 (seed 0, channels / 4; not ImageNet features)" in report
    assert (run / "test_examples.png").is_file() and (run / "psnr.png").is_file()
    env = json.loads((run / "results.json").read_text())["environment"]  # runs can be compared
    assert env["torch"] == torch.__version__ and env["torch_threads"] >= 1 and env["contrastkit"]
    assert f"- Environment: contrastkit {env['contrastkit']}" in report
    if (SHARED_DATA / "dehaze").is_dir():
        assert "SOTS-5 PSNR" in report and (run / "sots_examples.png").is_file()
    assert "PSNR (dB)" in capsys.readouterr().out


def _reside(root: Path, clear_width: int = 32) -> None:
    rng = np.random.default_rng(0)
    for split, scenes in (("train", (1, 2, 3)), ("test", (9,))):
        (root / split / "hazy").mkdir(parents=True)
        (root / split / "gt").mkdir(parents=True)
        for s in scenes:
            clear = rng.integers(0, 200, (28, clear_width if split == "train" and s == 2 else 32, 3), dtype=np.uint8)
            Image.fromarray(clear).save(root / split / "gt" / f"{s}.png")
            for k in (1, 2):
                hazy = rng.integers(0, 255, (28, 32, 3), dtype=np.uint8)
                Image.fromarray(hazy).save(root / split / "hazy" / f"{s}_{k}.png")


def test_reside_recipe_on_a_user_folder_and_one_line_errors(tmp_path, capsys) -> None:
    _reside(tmp_path / "ok")
    base = ["train", "aecr-reside", "--smoke", "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    small = ["--set", "data.image_size=16", "--set", "data.batch_size=2", "--set", "data.num_workers=0"]
    assert main([*base, *small, "--set", f"data.path={tmp_path / 'ok'}"]) == 2  # vgg19 without weights
    assert "needs ImageNet weights" in capsys.readouterr().err
    random = ["--set", "method.extractor=random-vgg19", "--set", "method.extractor_width_divisor=16"]
    assert main([*base, *small, *random, "--set", f"data.path={tmp_path / 'ok'}"]) == 0
    capsys.readouterr()
    _reside(tmp_path / "bad", clear_width=30)
    assert main([*base, *small, *random, "--set", f"data.path={tmp_path / 'bad'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pair sizes differ" in err and "2_1.png" in err
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    weights = ["--set", f"loss.vgg_weights={tmp_path / 'wrong.pth'}"]  # loss.<key> is method.<key>
    assert main([*base, *small, *weights, "--set", f"data.path={tmp_path / 'ok'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing keys" in err and "wrong shapes for 0.weight" in err


@pytest.mark.parametrize("channels", [3, 1])
def test_the_extractor_can_be_the_backbone_of_a_run(tmp_path, channels) -> None:
    import yaml

    from contrastkit.nn.backbones import build_backbone

    backbone = build_backbone("convnet_small", channels, 8, 32)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"model": {"backbone": "convnet_small", "width": 8}}))
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()} | {"head.weight": torch.zeros(2)}
    torch.save({"state_dict": state}, tmp_path / "checkpoints" / "last.ckpt")
    extractor = build_extractor(f"run:{tmp_path}", None)
    assert len(extractor.stages) == 4 and not any(p.requires_grad for p in extractor.parameters())
    features = extractor(torch.rand(2, 3, 32, 32))
    assert [f.shape[1] for f in features] == [8, 16, 32, 64]
    first = extractor.stages[0] if channels == 3 else extractor.stages[0][1]
    torch.testing.assert_close(first[0].weight, backbone.body[0].weight)
    restored, clear, hazy = torch.rand(3, 2, 3, 32, 32).unbind(0)
    assert contrastive_regularization(restored, clear, hazy, extractor, layer_weights(4)) > 0
