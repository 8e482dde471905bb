"""Frozen feature extractors for CR: VGG-19 slices from a local file, random VGG, backbone stages."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.nn.backbones import build_backbone
from contrastkit.nn.extractors import _vgg19_body, backbone_stages, load_vgg19_features, random_vgg19_features


def test_slices_end_at_relu1_1_to_relu5_1() -> None:
    vgg = random_vgg19_features(0, width_divisor=8)
    convs = [sum(isinstance(m, nn.Conv2d) for m in stage.modules()) for stage in vgg.stages]
    assert convs == [1, 2, 2, 4, 4]  # relu1_1 | conv1_2 conv2_1 | conv2_2 conv3_1 | conv3_2..4_1 | conv4_2..5_1
    assert all(isinstance(list(stage.children())[-1], nn.ReLU) for stage in vgg.stages)
    shapes = [f.shape for f in vgg(torch.rand(1, 3, 32, 32))]
    assert [s[-1] for s in shapes] == [32, 16, 8, 4, 2]


def test_random_vgg_is_seeded_and_frozen() -> None:
    a, b = random_vgg19_features(3, 8), random_vgg19_features(3, 8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not any(p.requires_grad for p in a.parameters())
    assert "not ImageNet" in a.description


def test_loads_a_torchvision_vgg19_state_dict(tmp_path) -> None:
    body = _vgg19_body()
    state = {f"features.{k}": v for k, v in body.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "vgg19.pth")
    vgg = load_vgg19_features(tmp_path / "vgg19.pth")
    assert torch.equal(vgg.stages[0][0].weight, body[0].weight)
    assert "vgg19.pth" in vgg.description


def test_wrong_architecture_names_missing_and_unexpected_keys(tmp_path) -> None:
    from torchvision.models.vgg import cfgs, make_layers

    torch.save(make_layers(cfgs["D"]).state_dict(), tmp_path / "vgg16.pth")  # VGG-16: other layer indices
    with pytest.raises(ValueError, match="not a torchvision VGG-19 state dict: missing keys"):
        load_vgg19_features(tmp_path / "vgg16.pth")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="unexpected keys weight"):
        load_vgg19_features(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(ValueError, match="not a readable weights file"):
        load_vgg19_features(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError):
        load_vgg19_features(tmp_path / "absent.pth")


def test_backbone_stages_of_convnet_small_and_resnet() -> None:
    small = backbone_stages(build_backbone("convnet_small", 3, 8, 32), "small")
    assert len(small.stages) == 4
    assert [f.shape[1] for f in small(torch.rand(1, 3, 32, 32))] == [8, 16, 32, 64]
    resnet = backbone_stages(build_backbone("resnet18", 3, 8, 32), "resnet")
    assert len(resnet.stages) == 5
