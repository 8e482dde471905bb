"""Clip views and frame dropping against videomoco.md §8 (oracles 4, 5, 8) and §3."""

from __future__ import annotations

import pytest
import torch

from contrastkit.views import build_augmentation
from contrastkit.views.clips import (
    ClipAugmentation,
    adversarial_frame_drop,
    drop_frames,
    frame_drop_mask,
    normalize_clips,
    random_frame_drop,
)


def _clips(b=3, t=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, t, 20, 20), dtype=torch.uint8, generator=g)


def _still_clip(b=4, t=5):
    """Every frame of a clip the same image: per-clip draws keep the frames equal."""
    g = torch.Generator().manual_seed(1)
    frame = torch.randint(0, 256, (b, 3, 1, 20, 20), dtype=torch.uint8, generator=g)
    return frame.expand(-1, -1, t, -1, -1).contiguous()


def test_one_draw_per_clip_by_default_and_per_frame_as_the_official_code():
    aug = build_augmentation("moco_v2", 16, (0.5,) * 3, (0.25,) * 3)
    clips = _still_clip()
    same = ClipAugmentation(aug)(clips, torch.Generator().manual_seed(0))
    assert same.shape == (4, 3, 5, 16, 16)
    for t in range(1, 5):
        torch.testing.assert_close(same[:, :, t], same[:, :, 0])
    assert not torch.allclose(same[0], same[1])  # clips still differ from each other
    per_frame = ClipAugmentation(aug, per_frame=True)(clips, torch.Generator().manual_seed(0))
    assert not torch.allclose(per_frame[:, :, 1], per_frame[:, :, 0])


def test_colour_runs_share_the_crop_and_draw_their_own_colours():
    clips = _still_clip(b=4, t=6)
    runs = [2, 4]
    colourless = build_augmentation("motion", 16, (0.5,) * 3, (0.25,) * 3, jitter_p=0.0, grayscale_p=0.0)
    crop_only = ClipAugmentation(colourless)(clips, torch.Generator().manual_seed(0), colour_runs=runs)
    for t in range(1, 6):  # one crop for the whole clip
        torch.testing.assert_close(crop_only[:, :, t], crop_only[:, :, 0])
    coloured = build_augmentation("motion", 16, (0.5,) * 3, (0.25,) * 3, jitter_p=1.0, grayscale_p=0.0)
    views = ClipAugmentation(coloured)(clips, torch.Generator().manual_seed(0), colour_runs=runs)
    torch.testing.assert_close(views[:, :, 1], views[:, :, 0])  # within a run: one draw
    torch.testing.assert_close(views[:, :, 5], views[:, :, 2])
    for b in range(4):  # across runs: their own draws
        assert not torch.allclose(views[b, :, 0], views[b, :, 2])
    with pytest.raises(ValueError, match="sum to"):
        ClipAugmentation(coloured)(clips, colour_runs=[2, 2])


def test_identity_frame_augmentation_keeps_the_clip():
    aug = build_augmentation(
        "moco_v2",
        20,
        (0.5,) * 3,
        (0.25,) * 3,
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip=False,
        jitter_p=0.0,
        grayscale_p=0.0,
        blur_p=0.0,
    )
    clips = _clips()
    out = ClipAugmentation(aug)(clips, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, normalize_clips(clips, aug.mean, aug.std), atol=1e-5, rtol=1e-5)


def test_dropped_frames_are_their_own_mean_and_the_rest_bit_identical():
    """Oracle 4: exactly k frames per clip constant in (C, H, W), equal to the original frame's
    mean; the other T - k frames unchanged bit for bit."""
    clips = _clips().float()
    for out, k in ((random_frame_drop(clips, 2, torch.Generator().manual_seed(0)), 2),):
        for b in range(clips.shape[0]):
            flat = [t for t in range(clips.shape[2]) if bool((out[b, :, t] == out[b, 0, t, 0, 0]).all())]
            assert len(flat) == k
            for t in range(clips.shape[2]):
                if t in flat:
                    torch.testing.assert_close(out[b, :, t], clips[b, :, t].mean().expand_as(out[b, :, t]))
                else:
                    assert torch.equal(out[b, :, t], clips[b, :, t])
    drawn = [
        set(
            torch.nonzero(
                random_frame_drop(clips, 2, torch.Generator().manual_seed(s))[0, 0, :, 0, 0]
                == clips[0].mean(dim=(0, 2, 3))
            )
            .flatten()
            .tolist()
        )
        for s in range(8)
    ]
    assert len({frozenset(d) for d in drawn}) > 1  # drawn per call, not fixed


def test_adversarial_drop_removes_the_lowest_scored_frames():
    clips = _clips(b=2, t=6).float()
    scores = torch.tensor([[0.3, 0.1, 0.2, 0.05, 0.15, 0.2], [0.1, 0.2, 0.3, 0.12, 0.25, 0.05]])
    out = adversarial_frame_drop(clips, scores, 2)
    expected = drop_frames(clips, frame_drop_mask(torch.tensor([[3, 1], [5, 0]]), 6))
    torch.testing.assert_close(out, expected)


def test_straight_through_gradient_reaches_every_score_and_no_pixel():
    """Oracle 5: with loss = sum(x~), dL/ds_j = C * H * W for every frame j; x gets nothing."""
    clips = _clips(b=2, t=6).float().requires_grad_()
    scores = torch.rand(2, 6).softmax(1).requires_grad_()
    adversarial_frame_drop(clips, scores, 2).sum().backward()
    torch.testing.assert_close(scores.grad, torch.full((2, 6), 3.0 * 20 * 20))
    assert clips.grad is None


def test_dropping_no_frame_is_the_identity():
    """Oracle 8: k = 0 gives x~ == x (so the two queries agree and L_G = 0)."""
    clips = _clips().float()
    scores = torch.rand(3, 6, requires_grad=True)
    assert torch.equal(adversarial_frame_drop(clips, scores, 0), clips)
    assert torch.equal(random_frame_drop(clips, 0), clips)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"clips must be \[B, C, T, H, W\]"):
        drop_frames(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"scores must be \[B, T\]"):
        adversarial_frame_drop(torch.zeros(2, 3, 4, 5, 5), torch.zeros(2, 5), 1)
    with pytest.raises(ValueError, match=r"count must lie in \[0, T=4\]"):
        random_frame_drop(torch.zeros(2, 3, 4, 5, 5), 5)


def test_temporal_crop_takes_one_window_per_clip():
    from contrastkit.views.clips import temporal_crop

    frames = torch.arange(10.0)[None, None, :, None, None].expand(4, 1, 10, 2, 2)  # value = frame number
    out = temporal_crop(frames, 3, 2, torch.Generator().manual_seed(0))
    assert out.shape == (4, 1, 3, 2, 2)
    steps = out[:, 0, :, 0, 0]
    assert torch.equal(steps[:, 1:] - steps[:, :-1], torch.full((4, 2), 2.0))
    assert (steps[:, 0] >= 0).all() and (steps[:, -1] <= 9).all()
    starts = {float(temporal_crop(frames, 3, 2, torch.Generator().manual_seed(s))[0, 0, 0, 0, 0]) for s in range(10)}
    assert len(starts) > 1
    with pytest.raises(ValueError, match="spans 11 > the 10 frames"):
        temporal_crop(frames, 6, 2)
