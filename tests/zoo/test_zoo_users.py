"""What starts from a zoo entry besides model.init: AECR's CR extractor."""

from __future__ import annotations

import torch

from contrastkit import zoo
from contrastkit.methods.aecr import build_extractor
from contrastkit.nn.experts import frame_expert
from tests.zoo.conftest import copy_home, write_family


def test_aecr_extracts_with_the_stages_of_a_zoo_encoder_normalised_as_it_was_trained(
    tiny_zoo, trained_tiny, tmp_path, monkeypatch
):
    copy_home(trained_tiny, tiny_zoo)
    metafile = write_family(tmp_path / "stats.yaml", tiny={"input_mean": [0.5], "input_std": [0.25]})
    monkeypatch.setenv("CONTRASTKIT_ZOO_FILES", str(metafile))
    assert zoo.find("tiny").input_mean == (0.5,)
    extractor = build_extractor("zoo:tiny", None)
    expert = frame_expert("zoo:tiny")
    x = torch.rand(2, 3, 32, 32)
    features = extractor(x)
    assert len(features) == 4 and not any(p.requires_grad for p in extractor.parameters())
    gray = (x.mean(dim=1, keepdim=True) - 0.5) / 0.25  # RGB into a grayscale encoder, then its normalisation
    torch.testing.assert_close(features[-1], expert.forward_map(gray))
