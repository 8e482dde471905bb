"""MOON's frozen models run together (``federated/frozen.py``) against running them one by one."""

from __future__ import annotations

import copy

import pytest
import torch

from contrastkit.federated import FederatedModel, LocalSettings, local_train
from contrastkit.federated.frozen import FrozenRepresentations


def _perturbed(model: FederatedModel, seed: int) -> FederatedModel:
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return other.eval()


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("geometry", [(3, 32), (1, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_stacked_moon_cnn_equals_one_by_one(count, geometry, channels_last):
    channels, size = geometry
    torch.manual_seed(0)
    base = FederatedModel("moon_cnn", channels, size, 10, proj_dim=32)
    models = [_perturbed(base, seed) for seed in range(count)]
    x = torch.randn(5, channels, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    reps = FrozenRepresentations(models)
    assert (reps._stacked is not None) == (count > 1)
    with torch.no_grad():
        expected = torch.stack([m(x)[1] for m in models])
    got = reps(x)
    assert got.shape == (count, 5, 32)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_weights_are_read_once_and_other_backbones_run_one_by_one():
    torch.manual_seed(0)
    models = [FederatedModel("resnet18", 3, 8, 10, proj_dim=16, width=4).eval() for _ in range(2)]
    reps = FrozenRepresentations(models)
    assert reps._stacked is None
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(reps(x), torch.stack([m(x)[1] for m in models]))
    cnn = [FederatedModel("moon_cnn", 3, 32, 10).eval() for _ in range(2)]
    stacked = FrozenRepresentations(cnn)
    x = torch.randn(2, 3, 32, 32)
    before = stacked(x)
    with torch.no_grad():
        cnn[0].projection[2].bias.add_(1.0)
    assert torch.equal(stacked(x), before)  # the weights were copied when it was built
    torch.testing.assert_close(FrozenRepresentations(cnn)(x)[0], before[0] + 1.0)
    with pytest.raises(ValueError, match="at least one model"):
        FrozenRepresentations([])


def test_moon_local_training_with_stacked_frozen_models_matches_the_one_by_one_path(monkeypatch):
    """A few MOON steps through ``local_train`` give the same weights whether the frozen models
    run stacked or one by one (the stacked path is only a faster evaluation of the same term)."""
    torch.manual_seed(0)
    base = FederatedModel("moon_cnn", 3, 32, 10)
    images = torch.randint(0, 256, (96, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(10, (96,))
    settings = LocalSettings("moon", epochs=1, batch_size=32, mu=5.0)

    def run() -> FederatedModel:
        model = copy.deepcopy(base)
        local_train(
            model,
            images,
            labels,
            settings,
            preprocess=lambda x: x.float() / 255,
            augment=True,
            generator=torch.Generator().manual_seed(1),
            global_model=_perturbed(base, 1),
            previous_models=[_perturbed(base, 2)],
        )
        return model

    stacked = run()
    monkeypatch.setattr("contrastkit.federated.frozen.MoonCNN", type("NoMatch", (), {}))
    one_by_one = run()
    for a, b in zip(stacked.state_dict().values(), one_by_one.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
