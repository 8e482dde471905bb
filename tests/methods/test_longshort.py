"""Long/short-view decomposition (longshort.md): the split, the samplers, both losses — card §8 oracles."""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from contrastkit.data.motion_phases import VELOCITY, phase_lengths, phase_video
from contrastkit.functional.video import nonstationary_loss, stationary_loss, temporal_loss
from contrastkit.methods import LongShortViews, OptimizerSettings
from contrastkit.nn import TinyClipCNN
from contrastkit.nn.heads import OrderAggregator, check_order_sensitive
from contrastkit.views import build_augmentation
from contrastkit.views.clips import ClipAugmentation
from contrastkit.views.segments import long_short_indices, shift_views, shuffled_orders

VIDEOS = torch.randint(0, 256, (8, 3, 24, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
BATCH = {"input": VIDEOS, "index": torch.arange(8)}
VIEWS = dict(long_length=4, long_stride=4, short_views=4, short_length=2, short_stride=2)


def _build(seed=0, **kw):
    L.seed_everything(seed, verbose=False)
    aug = ClipAugmentation(build_augmentation("motion", 16, (0.5,) * 3, (0.25,) * 3))
    options = dict(proj_hidden=16, proj_dim=8) | VIEWS
    return LongShortViews(TinyClipCNN(3, 4), aug, optimizer=OptimizerSettings("adam", lr=1e-3), **(options | kw))


# --- oracle 1: the split -------------------------------------------------------------------


def test_the_halves_partition_the_feature_and_stat_does_not_reach_the_other_head():
    model = _build()
    h = torch.randn(5, model.backbone.feature_dim)
    s, n = model.split(h)
    assert s.shape == n.shape == (5, 8) and torch.equal(torch.cat([s, n], 1), h)
    model.losses(VIDEOS)["stat"].backward()
    for module in (model.nonstationary_head, model.aggregator):
        assert all(p.grad is None or not p.grad.any() for p in module.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.stationary_head.parameters())


# --- oracle 2: the short views -------------------------------------------------------------


def test_short_views_are_disjoint_ordered_and_inside_the_long_span():
    long, short = long_short_indices(64, 64, torch.Generator().manual_seed(0))  # the card's 16@4, 4 x 8@2
    assert long.shape == (64, 16) and short.shape == (64, 4, 8)
    assert (long[:, 1:] - long[:, :-1] == 4).all()
    assert (short >= long[:, :1, None]).all() and (short <= long[:, -1:, None]).all()
    assert (short[:, 1:].min(dim=2).values > short[:, :-1].max(dim=2).values).all()  # disjoint, in order
    assert (short[:, :, 1:] >= short[:, :, :-1]).all()


def test_one_short_view_as_long_as_the_long_view_is_the_long_view():
    long, short = long_short_indices(
        16,
        40,
        torch.Generator().manual_seed(1),
        long_length=6,
        long_stride=3,
        short_views=1,
        short_length=6,
        short_stride=3,
    )
    assert torch.equal(short[:, 0], long)


def test_views_share_one_crop_per_video():
    model = _build()
    still = VIDEOS[:, :, :1].expand(-1, -1, 24, -1, -1).contiguous()  # every frame the same
    long, short = model.views(still)
    assert long.shape == (8, 3, 4, 16, 16) and short.shape == (8, 4, 3, 2, 16, 16)
    assert torch.allclose(short[:, 2, :, 1], long[:, :, 0])  # same augmentation draw for all views


# --- oracle 3, 4: the losses ---------------------------------------------------------------


@pytest.mark.parametrize("symmetric", [False, True])
def test_stat_matches_the_hand_value_when_short_equals_long_and_others_are_orthogonal(symmetric):
    b, k, tau = 6, 3, 0.1
    long = torch.eye(b, 8)  # orthogonal unit rows
    short = long[:, None].expand(b, k, 8)
    expected = math.log(1 + (b - 1) * math.exp(-1 / tau))
    assert stationary_loss(short, long, tau, symmetric) == pytest.approx(expected, rel=1e-5)


def test_identical_short_codes_make_the_hard_negative_a_copy_of_the_positive():
    b, k, d = 5, 4, 8
    aggregate = OrderAggregator(k, d)
    long = torch.randn(b, d)
    same = F.normalize(torch.randn(b, 1, d), dim=2).expand(b, k, d)
    order = shuffled_orders(b, k, torch.Generator().manual_seed(0))
    per_row = nonstationary_loss(long, same, lambda c: F.normalize(aggregate(c), dim=1), order, 0.1)
    assert per_row >= math.log(2) - 1e-6
    different = F.normalize(torch.randn(b, k, d), dim=2)
    mean_on = nonstationary_loss(long, different, lambda c: F.normalize(aggregate(c), dim=1), order, 0.1)
    mean_off = nonstationary_loss(long, different, lambda c: F.normalize(aggregate(c), dim=1), None, 0.1)
    assert mean_on > mean_off  # the hard negative adds a term to every row's denominator


# --- L_temp (our addition, lambda_t) ---------------------------------------------------------


def test_codes_constant_within_a_video_pay_at_least_log_k_in_the_temporal_term():
    b, k, d = 6, 4, 8
    g = torch.Generator().manual_seed(1)
    constant = F.normalize(torch.randn(b, 1, d, generator=g), dim=2).expand(b, k, d)
    for _ in range(5):  # whatever the predictions, no position can be told apart
        predicted = F.normalize(torch.randn(b, k, d, generator=g), dim=2)
        assert temporal_loss(constant, predicted, 0.1) >= math.log(k) - 1e-5
    own = torch.eye(d)[:b, None].expand(b, k, d)  # one code per video, other videos orthogonal
    assert temporal_loss(own, own, 0.01) == pytest.approx(math.log(k), abs=1e-4)  # the same video's positions
    distinct = torch.eye(b * k)[:, : b * k].view(b, k, b * k)  # every position its own direction
    assert temporal_loss(distinct, distinct, 0.1) < 0.01


def test_the_temporal_term_trains_the_nonstationary_side_only():
    model = _build(lambda_t=1.0)
    out = model.losses(VIDEOS)
    assert set(out) == {"stat", "nons", "temp"}
    out["temp"].backward()
    assert all(p.grad is None for p in model.stationary_head.parameters())
    assert all(p.grad is not None for p in model.position_predictor.parameters())
    assert model.nonstationary_head[0].weight.grad.abs().sum() > 0
    assert "temp" not in _build().losses(VIDEOS) and not hasattr(_build(), "position_predictor")


def test_short_views_are_shifted_each_by_its_own_bounded_offset():
    views = torch.randn(3, 4, 2, 2, 10, 10)
    shifted = shift_views(views, 2, torch.Generator().manual_seed(0))
    found = []
    for original, moved in zip(views.flatten(0, 1), shifted.flatten(0, 1), strict=True):
        offsets = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(torch.roll(original, (dy, dx), dims=(-2, -1)), moved)
        ]
        assert len(offsets) == 1  # a whole-pixel circular shift within the bound, the frames moved together
        found.append(offsets[0])
    assert len(set(found)) > 3  # drawn per view, not once per batch
    assert torch.equal(shift_views(views, 0), views)
    model = _build(short_shift=2)
    long, short = model.views(VIDEOS)
    assert short.shape == _build().views(VIDEOS)[1].shape


def test_colour_per_view_keeps_the_crop_and_draws_colours_per_view():
    still = VIDEOS[:, :, :1].expand(-1, -1, 24, -1, -1).contiguous()  # every frame the same image
    long, short = _build(colour_per_view=True).views(still)
    for j in range(short.shape[1]):
        torch.testing.assert_close(short[:, j, :, 1], short[:, j, :, 0])  # one draw within a view
    assert not torch.allclose(short[:, 0], short[:, 1])  # its own colours per short view
    shared_long, shared_short = _build().views(still)
    torch.testing.assert_close(shared_short[:, 0], shared_short[:, 1])  # the default: one draw per video


# --- oracle 5: the aggregator --------------------------------------------------------------


def test_the_aggregator_is_order_sensitive_and_a_mean_is_rejected():
    check_order_sensitive(OrderAggregator(4, 8), 4, 8)
    with pytest.raises(ValueError, match="ignores the order"):
        check_order_sensitive(lambda codes: codes.mean(dim=1), 4, 8)


def test_shuffled_orders_are_drawn_per_video_and_never_the_identity():
    orders = shuffled_orders(2000, 3, torch.Generator().manual_seed(0))
    assert not (orders == torch.arange(3)).all(1).any()
    assert len({tuple(o) for o in orders.tolist()}) == 5  # every non-identity order of 3, reversal included
    assert torch.equal(shuffled_orders(50, 2), torch.tensor([[1, 0]]).expand(50, 2))
    with pytest.raises(ValueError, match="short_views >= 2"):
        _build(short_views=1)


# --- oracle 6: the generator ---------------------------------------------------------------


def test_generated_phases_move_the_object_by_their_velocity():
    g = torch.Generator().manual_seed(3)
    lengths = phase_lengths(64, 4, 10, g)
    assert sum(lengths) == 64 and min(lengths) >= 10
    labels = torch.cat([torch.full((n,), d) for n, d in zip(lengths, [0, 2, 1, 3])])
    frames, position = phase_video(1, labels, image_size=32, object_size=6, start=(30, 31), generator=g)
    assert frames.shape == (64, 32, 32, 3)
    for t in range(1, 64):
        dy, dx = VELOCITY[int(labels[t])]
        assert position[t].tolist() == [(position[t - 1, 0] + dy) % 32, (position[t - 1, 1] + dx) % 32]


def test_generated_sets_keep_appearance_and_have_four_distinct_phases(tmp_path):
    pytest.importorskip("av")
    from contrastkit.data.motion_phases import generate_motion_phases, read_frame_labels
    from contrastkit.data.video_folders import load_video_folder

    root = generate_motion_phases(tmp_path / "mp", train=8, test=4, frames=20, size=16, min_phase=4, seed=1)
    videos = load_video_folder(root)
    labels = read_frame_labels(root)
    assert len(labels) == 12 and videos.classes == ("plus", "ring", "square", "stripes")
    for file in videos.train_files:
        per_frame = labels[str(file.resolve())]
        runs = [per_frame[0]] + [b for a, b in zip(per_frame, per_frame[1:]) if a != b]
        assert len(per_frame) == 20 and len(runs) == 4  # four pieces, adjacent ones different


# --- training ------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"objective": "longshort"}, {"objective": "simclr"}, {"lambda_t": 1.0}])
def test_loss_falls_on_a_fixed_batch(options):
    model = _build(**options)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = model.step(BATCH)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses


def test_videos_shorter_than_the_long_view_are_refused_with_the_numbers():
    with pytest.raises(ValueError, match=r"16 frames at stride 4 spans 61 > 40 frames"):
        long_short_indices(2, 40)
    with pytest.raises(ValueError, match="spans 13 > 12"):
        _build().losses(VIDEOS[:, :, :12])


def test_each_loss_reads_the_half_that_feature_parts_names():
    """The gradient of ``L_stat`` reaches the backbone feature only in the stationary slice of
    ``feature_parts()``, that of ``L_nons`` only in the non-stationary one."""
    for term, own, other in [("stat", "stationary", "nonstationary"), ("nons", "nonstationary", "stationary")]:
        model = _build()
        parts, features = model.feature_parts(), []

        def keep(module, args, out, features=features):
            out.retain_grad()
            features.append(out)

        model.backbone.register_forward_hook(keep)
        model.losses(VIDEOS)[term].backward()
        assert len(features) == 2  # the long views, then the short views
        for h in features:
            assert h.grad[:, parts[own]].abs().sum() > 0, term
            assert torch.equal(h.grad[:, parts[other]], torch.zeros_like(h.grad[:, parts[other]])), term


def test_the_shuffled_aggregate_is_a_negative_of_the_nonstationary_loss():
    """One more negative makes InfoNCE strictly larger: with the same weights and draws,
    ``L_nons`` with ``order_negative`` exceeds ``L_nons`` without it by the shuffled aggregate's
    share of the denominator."""
    model = _build()
    without = copy.deepcopy(model)
    without.params = model.params.model_copy(update={"order_negative": False})
    on, off = model.losses(VIDEOS)["nons"], without.losses(VIDEOS)["nons"]
    assert float(on) > float(off) + 1e-4
    torch.testing.assert_close(model.losses(VIDEOS)["stat"], without.losses(VIDEOS)["stat"])
