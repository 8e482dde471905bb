"""The base class: dictionary batches, the opt-in kNN monitor, and the two-player hook (manual
optimisation with one optimiser and schedule per player, resumable, DDP-safe)."""

from __future__ import annotations

import os

import lightning as L
import pytest
import torch

from contrastkit.data.module import ArrayDataModule
from contrastkit.methods.base import StepOutput
from tests.gloo import run_on_ranks
from tests.methods.toy_two_player import ToyAdversarial, toy_data


def _trainer(tmp_path, epochs: int, **kw) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=str(tmp_path),
        **kw,
    )


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_two_players_step_in_order_with_only_their_own_parameters_trainable(tmp_path):
    L.seed_everything(0, verbose=False)
    model = ToyAdversarial()
    assert not model.automatic_optimization
    before = _params(model)
    _trainer(tmp_path, 1).fit(model, datamodule=ArrayDataModule(toy_data(), batch_size=16))
    assert model.order == ["generator", "encoder"] * 4
    assert set(model.grad_flags) == {("generator", True, False), ("encoder", False, True)}
    after = _params(model)
    assert not torch.equal(before["generator_net.weight"], after["generator_net.weight"])
    assert not torch.equal(before["backbone.linear.weight"], after["backbone.linear.weight"])
    assert all(p.requires_grad for p in model.parameters()), "toggling must be undone after each player"


def test_generator_update_raises_the_encoder_loss_and_leaves_the_encoder_alone(tmp_path):
    """One generator step alone (the encoder's optimiser never steps) moves only the generator,
    in the direction that increases the contrastive loss."""
    L.seed_everything(0, verbose=False)
    model = ToyAdversarial(lr=0.05)
    x = toy_data()["input"][:16]
    with torch.no_grad():
        start = float(model.contrast(x))
    encoder_before = model.backbone.linear.weight.detach().clone()
    model.step = lambda batch: _one_generator_step(model, batch)  # type: ignore[method-assign]
    _trainer(tmp_path, 1, limit_train_batches=1).fit(model, datamodule=ArrayDataModule({"input": x}, batch_size=16))
    assert torch.equal(model.backbone.linear.weight, encoder_before)
    with torch.no_grad():
        assert float(model.contrast(x)) > start


def _one_generator_step(model: ToyAdversarial, batch: dict) -> StepOutput:
    with model.player("generator") as update:
        loss = model.contrast(batch["input"])
        update(-loss)
    return StepOutput(loss)


def test_both_optimisers_and_schedules_are_checkpointed_and_resume_exactly(tmp_path):
    def fresh() -> ToyAdversarial:
        L.seed_everything(0, verbose=False)
        return ToyAdversarial()

    data = toy_data()
    straight = fresh()
    _trainer(tmp_path / "a", 3).fit(straight, datamodule=ArrayDataModule(data, batch_size=16, seed=1))

    ckpt = tmp_path / "one.ckpt"

    class StopAfterFirstEpoch(L.Callback):
        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            trainer.save_checkpoint(ckpt)
            trainer.should_stop = True

    first = fresh()
    trainer = _trainer(tmp_path / "b", 3, callbacks=[StopAfterFirstEpoch()])
    trainer.fit(first, datamodule=ArrayDataModule(data, batch_size=16, seed=1))
    state = torch.load(ckpt, weights_only=True)
    assert len(state["optimizer_states"]) == 2 and len(state["lr_schedulers"]) == 2
    assert all(s["last_epoch"] == 4 for s in state["lr_schedulers"])  # each schedule stepped once per batch
    resumed = fresh()
    _trainer(tmp_path / "c", 3).fit(resumed, datamodule=ArrayDataModule(data, batch_size=16, seed=1), ckpt_path=ckpt)
    for key, value in _params(straight).items():
        torch.testing.assert_close(_params(resumed)[key], value, msg=key)


def _ddp_fit(rank: int, world: int) -> dict[str, torch.Tensor]:
    from lightning.pytorch.strategies import DDPStrategy

    os.environ.update(LOCAL_RANK=str(rank), NODE_RANK="0", WORLD_SIZE=str(world), RANK=str(rank))
    L.seed_everything(0, verbose=False)
    model = ToyAdversarial()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=world,
        strategy=DDPStrategy(find_unused_parameters=True),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(model, datamodule=ArrayDataModule(toy_data(), batch_size=8))
    return _params(model)


@pytest.mark.distributed
def test_two_player_method_under_ddp_keeps_both_players_in_sync():
    """Two gloo ranks see different rows; if either player's gradients were not all-reduced its
    weights would differ between ranks after training."""
    L.seed_everything(0, verbose=False)
    initial = _params(ToyAdversarial())
    ranks = run_on_ranks(_ddp_fit, 2)
    for key in ranks[0]:
        torch.testing.assert_close(ranks[0][key], ranks[1][key], msg=key)
    assert not torch.equal(ranks[0]["generator_net.weight"], initial["generator_net.weight"])
    assert not torch.equal(ranks[0]["backbone.linear.weight"], initial["backbone.linear.weight"])


def test_single_player_methods_keep_automatic_optimisation_and_dict_batches():
    from contrastkit.data import load_digits
    from contrastkit.methods import SimCLR
    from contrastkit.nn import ConvNetSmall
    from contrastkit.views import build_augmentation

    digits = load_digits(16)
    model = SimCLR(ConvNetSmall(1, 4), build_augmentation("digits", 16, digits.mean, digits.std), proj_hidden=16)
    assert model.automatic_optimization and list(model.players()) == ["model"]
    module = ArrayDataModule({"input": digits.train_images[:40], "label": digits.train_labels[:40]}, batch_size=8)
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {"input", "label", "index"} and batch["input"].shape == (8, 1, 16, 16)
    assert torch.equal(batch["input"], digits.train_images[batch["index"]])
    assert module.val_dataloader() == []  # the kNN monitor is opt-in
