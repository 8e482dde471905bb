"""VCLR (vclr.md): segment tuples, the four losses, two queues, the order task — card §8 oracles."""

from __future__ import annotations

import copy
import math
from collections import Counter

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from contrastkit.evaluation.retrieval import retrieval_recall
from contrastkit.functional.video import intra_loss
from contrastkit.methods import VCLR, OptimizerSettings
from contrastkit.nn import ConvNetSmall, TinyClipCNN
from contrastkit.nn.heads import order_embedding
from contrastkit.views import build_augmentation
from contrastkit.views.clips import ClipAugmentation
from contrastkit.views.segments import allowed_shuffles, order_shuffles, segment_bounds, segment_pair, tuple_elements

VIDEOS = torch.randint(0, 256, (16, 3, 12, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
BATCH = {"input": VIDEOS[:8], "index": torch.arange(8)}


def _augment(model, elements, generator):
    """One augmentation draw per element of ``[B, S, C, T, H, W]``, as the method draws them."""
    out = model.augmentation(elements.flatten(0, 1), generator)
    return out.view(*elements.shape[:2], *out.shape[1:])


def _build(seed=0, backbone=None, **kw):
    L.seed_everything(seed, verbose=False)
    aug = ClipAugmentation(build_augmentation("moco_v2", 16, (0.5,) * 3, (0.25,) * 3))
    options = dict(queue_size=64, proj_hidden=32, proj_dim=16, split_bn=2)
    return VCLR(backbone or ConvNetSmall(3, 8), aug, optimizer=OptimizerSettings("sgd", lr=0.05), **(options | kw))


# --- oracle 1: the segmenter --------------------------------------------------------------


@pytest.mark.parametrize("frames,segments", [(12, 3), (48, 3), (17, 3), (10, 4), (7, 1)])
def test_segments_partition_the_frames_and_tuples_differ_everywhere(frames, segments):
    bounds = segment_bounds(frames, segments)
    assert bounds[0][0] == 0 and bounds[-1][1] == frames
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert [stop - start for start, stop in bounds[:-1]] == [frames // segments] * (segments - 1)
    keys, queries = segment_pair(500, frames, segments, torch.Generator().manual_seed(1))
    for s, (start, stop) in enumerate(bounds):
        assert ((keys[:, s] >= start) & (keys[:, s] < stop)).all()
        assert ((queries[:, s] >= start) & (queries[:, s] < stop)).all()
    assert (keys != queries).all()
    # both frames of a segment are drawn uniformly: every frame of the segment shows up in both tuples
    assert set(keys[:, 0].tolist()) == set(range(*bounds[0])) == set(queries[:, 0].tolist())


def test_segments_refuse_videos_too_short_for_two_draws():
    with pytest.raises(ValueError, match="segments of at least 2 frames"):
        segment_bounds(5, 3)
    with pytest.raises(ValueError, match="room for < 2"):
        segment_pair(2, 12, 3, span=4)  # the last segment [8, 12) has room for one 4-frame clip


# --- oracle 4: order labels and shuffles --------------------------------------------------


def test_shuffles_are_never_forward_or_reversed_and_the_four_come_equally_often():
    perms = allowed_shuffles(3)
    assert len(perms) == 4
    assert [0, 1, 2] not in perms.tolist() and [2, 1, 0] not in perms.tolist()
    order, shuffled = order_shuffles(8000, 3, torch.Generator().manual_seed(0))
    identity = torch.arange(3)
    assert (order[~shuffled] == identity).all()
    drawn = Counter(tuple(p) for p in order[shuffled].tolist())
    assert set(drawn) == {tuple(p) for p in perms.tolist()}
    assert all(abs(n / shuffled.sum() - 0.25) < 0.03 for n in drawn.values())
    assert abs(float(shuffled.float().mean()) - 0.5) < 0.03
    with pytest.raises(ValueError, match="S >= 3"):
        allowed_shuffles(2)


def test_order_label_is_zero_iff_both_tuples_keep_their_order():
    model = _build()
    draw = model.sample(VIDEOS, torch.Generator().manual_seed(3))
    natural = torch.arange(3)
    q_kept = (draw.order_q == natural).all(1)
    k_kept = (draw.order_k == natural).all(1)
    assert torch.equal(draw.order_label == 0, q_kept & k_kept)
    assert torch.equal(draw.order_label, (~q_kept).long() + 2 * (~k_kept).long())


# --- oracle 5: L_intra ----------------------------------------------------------------------


def test_intra_is_log2_when_positive_and_negative_are_equally_close():
    w = F.normalize(torch.randn(5, 8), dim=1)
    b = torch.randn(5, 8)
    assert torch.allclose(intra_loss(w, b, b[:, None].expand(5, 2, 8)), torch.tensor(math.log(2)))
    other = torch.randn(5, 2, 8)  # brute force against the two-logit cross-entropy
    expected = []
    for i in range(5):
        for j in range(2):
            pos = F.cosine_similarity(w[i], b[i], dim=0) / 0.1
            neg = F.cosine_similarity(w[i], other[i, j], dim=0) / 0.1
            expected.append(-pos + torch.logsumexp(torch.stack([pos, neg]), 0))
    assert torch.allclose(intra_loss(w, b, other), torch.stack(expected).mean(), atol=1e-5)


# --- oracle 2, 3: L_vclr -------------------------------------------------------------------


def test_vclr_is_moco_infonce_on_the_tuple_embeddings():
    model = _build(inter_weight=0, intra_weight=0, order_weight=0)
    model.queue_vclr.enqueue(F.normalize(torch.randn(20, 16), dim=1))
    out = model.losses(VIDEOS[:8], torch.Generator().manual_seed(0))
    q, k, queue = F.normalize(out.vclr_query, dim=1), out.vclr_keys, model.queue_vclr.keys
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], dim=1) / 0.1
    expected = F.cross_entropy(logits, torch.zeros(8, dtype=torch.long))
    assert torch.allclose(out.terms["vclr"], expected, atol=1e-5)
    assert set(out.terms) == {"vclr"} and out.inter_keys is None  # switched-off losses are not computed


def test_one_segment_with_the_same_frame_reduces_vclr_to_moco():
    """S = 1 and a video of one repeated frame: both tuples hold the same frame, the consensus
    is that frame's feature, and L_vclr is MoCo's InfoNCE between its two augmentations."""
    model = _build(segments=1, inter_weight=0, intra_weight=0, order_weight=0, split_bn=1)
    model.eval()  # BatchNorm on running statistics: a feature does not depend on its batch-mates
    still = VIDEOS[:8, :, :1].expand(-1, -1, 4, -1, -1).contiguous()
    g = torch.Generator().manual_seed(0)
    out = model.losses(still, g)
    g = torch.Generator().manual_seed(0)
    model.sample(still, g)  # replay the draws: the query element, then the key element
    x_q = _augment(model, still[:, :, :1, None].transpose(1, 2), g)[:, 0, :, 0]
    x_k = _augment(model, still[:, :, :1, None].transpose(1, 2), g)[:, 0, :, 0]
    q = model.heads["tsn"](model.backbone(x_q))
    torch.testing.assert_close(out.vclr_query, q)
    with torch.no_grad():
        k = F.normalize(model.momentum_heads.module["tsn"](model.momentum_backbone(x_k)), dim=1)
    torch.testing.assert_close(out.vclr_keys, k, atol=1e-5, rtol=1e-4)


def test_the_tuple_embedding_is_the_head_of_the_mean_feature_in_any_frame_order():
    model = _build(inter_weight=0, intra_weight=0, order_weight=0)
    model.eval()
    out = model.losses(VIDEOS[:8], torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    draw = model.sample(VIDEOS[:8], g)
    x_q = _augment(model, tuple_elements(VIDEOS[:8], draw.query_starts), g)  # [B, S, C, 1, H, W]
    features = model.backbone(x_q.flatten(0, 1)[:, :, 0]).view(8, 3, -1)
    for perm in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        q = model.heads["tsn"](features[:, perm].mean(dim=1))
        torch.testing.assert_close(out.vclr_query, q, atol=1e-6, rtol=1e-5)


def test_shuffling_for_the_order_task_does_not_change_vclr():
    model = _build()
    model.shuffle_probability = 0.0
    plain = model.losses(VIDEOS[:8], torch.Generator().manual_seed(5))
    model.shuffle_probability = 1.0
    shuffled = model.losses(VIDEOS[:8], torch.Generator().manual_seed(5))
    assert (shuffled.order_acc >= 0) and not torch.equal(plain.terms["order"], shuffled.terms["order"])
    assert torch.allclose(plain.terms["vclr"], shuffled.terms["vclr"], atol=1e-6)
    assert torch.allclose(plain.terms["inter"], shuffled.terms["inter"], atol=1e-6)


def test_order_embeddings_normalise_across_frames_by_default():
    model = _build()
    features = torch.randn(4, 3, model.backbone.feature_dim)
    order = torch.arange(3).expand(4, 3)
    assert model.params.order_norm == "frames"
    frames = order_embedding(model.heads["order"], features, order, model.params.order_norm)
    assert torch.allclose(frames.norm(dim=1), torch.ones(4, 16), atol=1e-5)
    assert torch.allclose(
        order_embedding(model.heads["order"], features, order, "features").norm(dim=2), torch.ones(4, 3)
    )


# --- L_inter rows, queues (oracle 6), EMA (oracle 8) ---------------------------------------


def test_inter_has_one_row_per_segment_and_the_queues_advance_by_3b_and_b():
    model = _build(queue_size=40)
    out = model.losses(VIDEOS[:8], torch.Generator().manual_seed(0))
    assert out.inter_keys.shape == (24, 16)
    model.step(BATCH)
    assert int(model.queue_inter.ptr) == 24 and int(model.queue_vclr.ptr) == 8
    keys_before = model.queue_inter.keys.clone()
    model.step(BATCH)  # 24 more keys wrap around a queue of 40: slots 24..39 then 0..7
    assert int(model.queue_inter.ptr) == (48 % 40) and int(model.queue_vclr.ptr) == 16
    newest = torch.cat([torch.arange(24, 40), torch.arange(0, 8)])
    assert not torch.equal(model.queue_inter.keys[newest], keys_before[newest])
    assert torch.equal(model.queue_inter.keys[8:24], keys_before[8:24])


@pytest.mark.parametrize("positive,rows", [("same_frame", 8), ("same_segment", 8), ("segments", 24)])
def test_inter_positive_baselines(positive, rows):
    out = _build(inter_positive=positive).losses(VIDEOS[:8], torch.Generator().manual_seed(0))
    assert out.inter_keys.shape[0] == rows


def test_ema_with_zero_momentum_copies_the_online_weights():
    model = _build(ema_momentum=0.0)
    with torch.no_grad():
        for p in [*model.backbone.parameters(), *model.heads.parameters()]:
            p.add_(torch.randn_like(p))
    model.on_train_batch_start(None, 0)
    for online, key in model.momentum_pairs():
        for a, b in zip(online.state_dict().values(), key.state_dict().values()):
            assert torch.equal(a, b)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="segments >= 3"):
        _build(segments=2)
    with pytest.raises(ValueError, match="every loss weight is 0"):
        _build(inter_weight=0, intra_weight=0, vclr_weight=0, order_weight=0)


# --- training -------------------------------------------------------------------------------


def _losses_on_a_fixed_batch(model, steps=10):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    queues = [copy.deepcopy(q.state_dict()) for q in (model.queue_inter, model.queue_vclr)]
    losses = []
    for _ in range(steps):
        model.queue_inter.load_state_dict(queues[0])
        model.queue_vclr.load_state_dict(queues[1])
        model.on_train_batch_start(None, 0)
        loss = model.step(BATCH).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("clip_level", [False, True])
def test_loss_falls_on_a_fixed_batch_with_frame_and_clip_encoders(clip_level):
    kw = dict(backbone=TinyClipCNN(3, 8), clip_length=2) if clip_level else {}
    model = _build(**kw)
    losses = _losses_on_a_fixed_batch(model)
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses


def test_clip_level_elements_are_clips_of_clip_length_frames():
    model = _build(backbone=TinyClipCNN(3, 8), clip_length=3, clip_stride=1)
    starts = torch.tensor([[0, 4, 8]] * 2)
    elements = tuple_elements(VIDEOS[:2], starts, model.element_length, model.clip_stride)
    assert elements.shape == (2, 3, 3, 3, 16, 16)
    assert torch.equal(elements[1, 2, :, 1], VIDEOS[1, :, 9])
    assert model.clip_encoder is model.backbone
    assert _build().clip_encoder(model.preprocess(VIDEOS[:2, :, :4])).shape == (2, 64)


# --- oracle 7: retrieval --------------------------------------------------------------------


def test_retrieval_is_perfect_when_each_query_is_in_the_bank_and_monotone_in_k():
    bank, labels = torch.randn(30, 8), torch.arange(30) % 5
    assert retrieval_recall(bank, labels, bank[:10], labels[:10])[1] == 100.0
    recall = retrieval_recall(bank, labels, torch.randn(40, 8), torch.randint(5, (40,)))
    values = [recall[k] for k in sorted(recall)]
    assert values == sorted(values) and values[-1] == 100.0  # k = 50 > 30 covers the whole bank
    assert retrieval_recall(
        torch.eye(2), torch.tensor([0, 1]), torch.tensor([[1.0, 0.1]]), torch.tensor([1]), ks=(1, 2)
    ) == {
        1: 0.0,
        2: 100.0,
    }


def test_a_video_shorter_than_the_segments_is_looped_to_the_decoded_length(tmp_path):
    """The one rule for short videos (data.video_folders): decoding loops them from their start to the
    recipe's ``video_frames``, so a 4-frame mp4 still yields 3 segments of 2+ frames."""
    pytest.importorskip("av")
    from contrastkit.data.moving_objects import _write_mp4
    from contrastkit.data.video_folders import decode_videos

    path = tmp_path / "short.mp4"
    _write_mp4(
        path, torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    )
    decoded = decode_videos([path] * 4, [0, 1, 0, 1], frames=12, size=16).frames
    assert decoded.shape == (4, 3, 12, 16, 16) and torch.equal(decoded[:, :, 4:8], decoded[:, :, :4])
    out = _build(split_bn=1).losses(decoded, torch.Generator().manual_seed(0))
    assert torch.isfinite(out.terms["inter"]) and torch.isfinite(out.terms["order"])
    with pytest.raises(ValueError, match="5 frames cannot give 3 segments"):
        _build().losses(decoded[:, :, :5], torch.Generator())


# --- the step as a whole, and the properties each term rests on ----------------------------


def test_the_steps_loss_is_the_weighted_sum_of_its_terms_and_every_head_learns_from_it():
    model = _build(inter_weight=0.5, intra_weight=2.0, vclr_weight=1.5, order_weight=3.0)
    queues = [copy.deepcopy(q.state_dict()) for q in (model.queue_inter, model.queue_vclr)]
    out = model.losses(BATCH["input"], model.generator(0))
    expected = sum(model.weights[name] * out.terms[name] for name in ("inter", "intra", "vclr", "order"))
    model.queue_inter.load_state_dict(queues[0])
    model.queue_vclr.load_state_dict(queues[1])
    model.zero_grad()
    loss = model.step(BATCH).loss
    torch.testing.assert_close(loss, expected)
    loss.backward()
    for name, module in [*model.heads.items(), ("order_classifier", model.order_classifier)]:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()), name


def test_the_order_classifier_learns_the_labels_of_the_draw():
    """On a fixed batch (the same draw every step) the classifier fits the draw's labels: its
    accuracy against the labels ``sample`` drew reaches 100%."""
    model = _build(inter_weight=0, intra_weight=0, vclr_weight=0, split_bn=1)
    opt = torch.optim.Adam([*model.order_classifier.parameters(), *model.heads["order"].parameters()], lr=0.02)
    for _ in range(60):
        out = model.losses(VIDEOS, torch.Generator().manual_seed(0))
        opt.zero_grad()
        out.terms["order"].backward()
        opt.step()
    labels = model.sample(VIDEOS, torch.Generator().manual_seed(0)).order_label
    assert len(set(labels.tolist())) == 4  # all four classes are in the batch
    assert float(out.order_acc) == 1.0 and float(out.terms["order"]) < 0.1


def test_inter_keys_are_the_momentum_embeddings_of_the_anchors_frame_and_the_other_segments():
    """One key per element: ``x_1`` (the anchor's frame re-augmented) and each other query
    element, through the momentum backbone and inter head (eval mode: per-sample features)."""
    from contrastkit.views.segments import segment_tuple_views

    model = _build(split_bn=1, shuffle_keys=False)
    model.eval()
    out = model.losses(VIDEOS[:8], torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    draw = model.sample(VIDEOS[:8], g)
    x = segment_tuple_views(VIDEOS[:8], draw, model.augmentation, g)
    elements = torch.cat([x.anchor[:, None], x.others], dim=1)[:, :, :, 0]  # [B, S, C, H, W]: frames
    with torch.no_grad():
        features = model.momentum_backbone(elements.flatten(0, 1))
        expected = F.normalize(model.momentum_heads.module["inter"](features), dim=1)
    torch.testing.assert_close(out.inter_keys, expected, atol=1e-5, rtol=1e-4)
    per_video = out.inter_keys.view(8, 3, -1)
    assert (per_video[:, 0] - per_video[:, 1]).abs().amax(1).min() > 1e-3  # distinct frames, distinct keys
