"""VideoMoCo (videomoco.md): MoCo on clips with adversarial frame dropping and queue decay."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch

from contrastkit.data.module import ArrayDataModule
from contrastkit.methods import MoCo, OptimizerSettings, VideoMoCo
from contrastkit.nn import TinyClipCNN
from contrastkit.views import build_augmentation
from contrastkit.views.clips import ClipAugmentation

CLIPS = torch.randint(0, 256, (48, 3, 8, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
BATCH = {"input": CLIPS[:16], "index": torch.arange(16)}


def _build(cls=VideoMoCo, seed=0, **kw):
    L.seed_everything(seed, verbose=False)
    aug = ClipAugmentation(build_augmentation("moco_v2", 16, (0.5,) * 3, (0.25,) * 3))
    options = dict(queue_size=64, proj_hidden=32, proj_dim=16, temperature=0.07, split_bn=2)
    if cls is VideoMoCo:
        options |= dict(generator_width=8)
    optimizer = kw.pop("optimizer", OptimizerSettings("sgd", lr=0.05))
    return cls(TinyClipCNN(3, 8), aug, optimizer=optimizer, **(options | kw))


def _fit(model, epochs=1, callbacks=()):
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(model, datamodule=ArrayDataModule({"input": CLIPS}, batch_size=16))


def test_without_drop_and_decay_it_is_moco_on_clips():
    moco, video = _build(MoCo), _build(drop="none", decay=1.0)
    assert video.automatic_optimization
    for a, b in zip(moco.backbone.parameters(), video.backbone.parameters()):
        assert torch.equal(a, b)
    for _ in range(2):
        torch.testing.assert_close(video.step(BATCH).loss, moco.step(BATCH).loss)


def test_decay_changes_the_loss_once_the_queue_has_ages():
    plain, decayed = _build(drop="none", decay=1.0), _build(drop="none", decay=0.5)
    torch.testing.assert_close(decayed.step(BATCH).loss, plain.step(BATCH).loss)  # ages 0 before 1st enqueue
    assert not torch.allclose(decayed.step(BATCH).loss, plain.step(BATCH).loss)


def test_the_generator_waits_for_the_warmup_then_both_players_train():
    """warmup_fraction 0.5 of 2 epochs: G is untouched during epoch 0; without warm-up both the
    frame scorer and the encoder move, and G's drop of round(0.25 * 8) = 2 frames is recorded."""
    model = _build(warmup_fraction=0.5)
    assert not model.automatic_optimization and list(model.players()) == ["generator", "encoder"]
    scorer = copy.deepcopy(model.frame_scorer.state_dict())

    class StopAfterOne(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = True

    _fit(model, epochs=2, callbacks=[StopAfterOne()])
    assert all(torch.equal(v, model.frame_scorer.state_dict()[k]) for k, v in scorer.items()), "G trained in warm-up"
    assert model.last_dropped is None

    model = _build(warmup_fraction=0.0)
    scorer, encoder = copy.deepcopy(model.frame_scorer.state_dict()), copy.deepcopy(model.backbone.state_dict())
    _fit(model)
    assert not torch.equal(scorer["score.weight"], model.frame_scorer.state_dict()["score.weight"])
    assert not torch.equal(encoder["body.0.weight"], model.backbone.state_dict()["body.0.weight"])
    assert model.last_dropped is not None and model.last_dropped.shape == (16, 2)


def test_generator_loss_is_minus_w_times_the_l1_gap_and_the_leak_adds_the_encoder_loss():
    model = _build(drop_ratio=0.25)
    x = model.views(CLIPS[:8])[0]
    k = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    with torch.no_grad():
        from contrastkit.views.clips import adversarial_frame_drop

        scores = model.frame_scorer(x)
        q = torch.nn.functional.normalize(model.query(adversarial_frame_drop(x, scores, 2)), dim=1)
        q_r = torch.nn.functional.normalize(model.query(x), dim=1)
        expected = -100 * (q - q_r).abs().mean()
        torch.testing.assert_close(model.generator_loss(x, k, 2), expected)
        leak = _build(drop_ratio=0.25, official_grad_leak=True)
        leak.load_state_dict(model.state_dict())
        gap = leak.generator_loss(x, k, 2) - expected
        torch.testing.assert_close(gap, leak.criterion(q, k, enqueue=False))
        assert float(model.generator_loss(x, k, 0)) == 0.0  # oracle 8: no drop, no gap


def test_random_drop_arm_flattens_the_same_number_of_frames(monkeypatch):
    import contrastkit.methods.videomoco as module

    seen = []
    real = module.random_frame_drop
    monkeypatch.setattr(module, "random_frame_drop", lambda x, n, g: seen.append(n) or real(x, n, g))
    model = _build(drop="random", drop_ratio=0.5)
    assert model.automatic_optimization and model.frame_scorer is None
    model.step(BATCH)
    assert seen == [4]


def test_params_and_bad_options():
    from contrastkit.methods import VideoMoCoParams

    params = VideoMoCoParams()
    assert (params.temperature, params.queue_size, params.decay, params.drop_ratio) == (0.07, 1024, 0.98, 0.25)
    with pytest.raises(ValueError, match="drop: Input should be .adversarial., .random. or .none."):
        _build(drop="sometimes")


def _spy_on_one_step(model, monkeypatch):
    """Fit one batch (both players update once) and record what G's objective and each
    ``query`` call received, and G's weights before its update."""
    seen = {"queries": [], "generator_inputs": []}
    query, generator_loss = model.query, model.generator_loss

    def spy_query(x):
        seen["queries"].append(x.detach().clone())
        return query(x)

    def spy_generator_loss(x_q, k, count):
        seen["generator_inputs"].append((x_q.detach().clone(), k.detach().clone(), count))
        seen["g_before"] = copy.deepcopy(model.frame_scorer)
        seen["model_before"] = copy.deepcopy(model)
        return generator_loss(x_q, k, count)

    monkeypatch.setattr(model, "query", spy_query)
    monkeypatch.setattr(model, "generator_loss", spy_generator_loss)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=ArrayDataModule({"input": CLIPS[:16]}, batch_size=16))
    return seen


def test_the_encoder_trains_on_the_clip_with_gs_frames_dropped(monkeypatch):
    from contrastkit.views.clips import drop_frames, frame_drop_mask

    model = _build(warmup_fraction=0.0, split_bn=1)
    seen = _spy_on_one_step(model, monkeypatch)
    (x_q, _, count), encoder_input = seen["generator_inputs"][0], seen["queries"][-1]
    assert len(seen["queries"]) == 3  # G's objective: dropped and clean; then the encoder's turn
    assert model.last_dropped.shape == (16, count) and count == 2
    with torch.no_grad():  # G after its update chooses the frames the encoder then trains without
        lowest = model.frame_scorer(x_q).topk(count, dim=1, largest=False).indices
    assert torch.equal(lowest, model.last_dropped)
    torch.testing.assert_close(encoder_input, drop_frames(x_q, frame_drop_mask(lowest, x_q.shape[2])))
    assert not torch.allclose(encoder_input, x_q)


def test_the_generator_moves_towards_a_larger_gap_between_dropped_and_clean_queries(monkeypatch):
    """One SGD step of G (no momentum yet, no weight decay) goes along the gradient of
    ``mean|q - q_r|``: G maximises the gap, it does not minimise it."""
    model = _build(warmup_fraction=0.0, split_bn=1, optimizer=OptimizerSettings("sgd", lr=0.05, weight_decay=0.0))
    seen = _spy_on_one_step(model, monkeypatch)
    x_q, k, count = seen["generator_inputs"][0]
    before = seen["model_before"]
    from contrastkit.views.clips import adversarial_frame_drop

    scores = before.frame_scorer(x_q)
    q = torch.nn.functional.normalize(
        before.projection(before.backbone(adversarial_frame_drop(x_q, scores, count))), dim=1
    )
    with torch.no_grad():
        q_r = torch.nn.functional.normalize(before.projection(before.backbone(x_q)), dim=1)
    (q - q_r).abs().mean().backward()
    ascent = torch.cat([p.grad.flatten() for p in before.frame_scorer.parameters()])
    moved = torch.cat(
        [(a - b).flatten() for a, b in zip(model.frame_scorer.parameters(), seen["g_before"].parameters())]
    )
    assert ascent.norm() > 0
    assert torch.nn.functional.cosine_similarity(moved, ascent, dim=0) > 0.99


def test_the_official_leak_passes_the_encoder_loss_gradient_to_g():
    """With ``official_grad_leak`` G's gradient gains exactly that of ``L_D`` through its drop."""
    from contrastkit.views.clips import adversarial_frame_drop

    plain, leak = _build(drop_ratio=0.25), _build(drop_ratio=0.25, official_grad_leak=True)
    leak.load_state_dict(plain.state_dict())
    x = plain.views(CLIPS[:8])[0]
    k = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)

    def g_grad(model, loss_of):
        model.zero_grad()
        loss_of(model).backward()
        return torch.cat([p.grad.flatten() for p in model.frame_scorer.parameters()])

    extra = g_grad(leak, lambda m: m.generator_loss(x, k, 2)) - g_grad(plain, lambda m: m.generator_loss(x, k, 2))
    encoder_loss = g_grad(
        plain, lambda m: m.contrast(m.query(adversarial_frame_drop(x, m.frame_scorer(x), 2)), k, None)
    )
    assert encoder_loss.norm() > 0
    torch.testing.assert_close(extra, encoder_loss, atol=1e-5, rtol=1e-4)
