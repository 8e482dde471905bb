"""The real-text protocol of the cross-modal issue: moving CIFAR-10 objects with written captions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastkit.data.captions import CAPTION_TEMPLATES, caption, caption_pairs
from contrastkit.data.errors import DataError
from contrastkit.data.moving_objects import DIRECTIONS


def _fake_cifar(root) -> None:
    folder = root / "cifar10"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("test", 30)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        np.savez(folder / f"{split}.npz", images=images, labels=np.arange(n) % 10)


def test_captions_are_sentences_about_class_direction_and_speed():
    assert caption("airplane", 0, 1.2, 0, 0) == "an airplane moving to the right"
    assert caption("cat", 4, 1.9, 1, 1) == "the cat drifts leftwards quickly"
    assert caption("truck", 6, 1.0, 2, 2) == "a picture of a truck sliding towards the bottom"
    sentences = {
        caption("dog", d, 1.0, t, w) for d in range(8) for t in range(len(CAPTION_TEMPLATES)) for w in range(3)
    }
    assert len(sentences) > 100  # paraphrases: many distinct sentences per (class, direction)


def test_pairs_carry_clusters_captions_and_frames(tmp_path):
    _fake_cifar(tmp_path)
    pairs = caption_pairs(tmp_path, 0, train=40, test=12, text_encoder="hashing", cache_dir=tmp_path / "cache")
    assert pairs.train_video.shape == (40, 3 * 3 * 8 * 8) and pairs.test_video.shape == (12, 576)
    assert pairs.train_text.shape[0] == 40 and pairs.test_text.shape[0] == 12
    assert pairs.train_video.mean(0).abs().max() < 1e-4  # standardised with the training split
    assert pairs.test_captions is not None and len(pairs.test_captions) == 12
    assert pairs.test_thumbnails is not None and pairs.test_thumbnails.shape == (12, 3, 32, 32)
    # the cluster is (class, direction), and the caption names both
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    for text, cluster in zip(pairs.test_captions, pairs.test_clusters.tolist(), strict=True):
        assert f" {names[cluster // len(DIRECTIONS)]} " in f" {text} "
    again = caption_pairs(tmp_path, 0, train=40, test=12, text_encoder="hashing", cache_dir=tmp_path / "cache")
    assert torch.equal(again.test_video, pairs.test_video) and again.test_captions == pairs.test_captions
    other = caption_pairs(tmp_path, 1, train=40, test=12, text_encoder="hashing", cache_dir=tmp_path / "cache")
    assert other.test_captions != pairs.test_captions


def test_without_cifar10_the_error_says_where_to_point(tmp_path):
    with pytest.raises(DataError, match="cifar10/train.npz"):
        caption_pairs(tmp_path, 0, text_encoder="hashing")


def test_the_clips_input_gives_the_raw_clips_of_the_same_pairs(tmp_path):
    _fake_cifar(tmp_path)
    options = dict(train=20, test=8, text_encoder="hashing", cache_dir=tmp_path / "cache")
    clips = caption_pairs(tmp_path, 0, video_input="clips", **options)
    descriptors = caption_pairs(tmp_path, 0, **options)
    assert clips.train_video.shape == (20, 3, 8, 32, 32) and clips.train_video.dtype == torch.uint8
    assert clips.test_video.shape == (8, 3, 8, 32, 32)
    assert torch.equal(clips.train_text, descriptors.train_text) and clips.test_captions == descriptors.test_captions
    # the thumbnail is the middle frame of the same clip
    assert torch.equal(clips.test_video[:, :, 4], clips.test_thumbnails)
    with pytest.raises(ValueError, match="video_input"):
        caption_pairs(tmp_path, 0, video_input="pixels", **options)
