"""CCL (ccl.md): compositions, masks, the official update order, the synthetic protocol."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import lightning as L
import pytest
import torch

from contrastkit.data.distill import ccl_synthetic
from contrastkit.methods import CCL
from contrastkit.methods.ccl import Composition, official_update
from contrastkit.nn import TinyClipCNN
from contrastkit.views import build_augmentation
from contrastkit.views.clips import ClipAugmentation

DATA = ccl_synthetic(0, train_per_class=4, test_per_class=2)
BATCH = {"input": DATA.train_clips[:24], "label": DATA.train_labels[:24], "index": torch.arange(24)}
BATCH |= {k: v[:24] for k, v in DATA.train_teachers.items()}


@dataclass(frozen=True)
class Plain:
    """Normalisation only: the same input for a sample whatever its batch."""

    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)

    def __call__(self, clips, generator=None):
        return (clips.float() / 255 - 0.5) / 0.25


def _build(seed=0, plain=False, **kw):
    L.seed_everything(seed, verbose=False)
    aug = Plain() if plain else ClipAugmentation(build_augmentation("motion", 32, (0.5,) * 3, (0.25,) * 3))
    return CCL(TinyClipCNN(3, 16), aug, num_classes=10, teacher_dims={"audio": 64, "image": 64}, **kw)


def test_oracle5_a_zero_composition_is_the_teacher():
    comp = Composition(64, 64, 10)
    torch.nn.init.zeros_(comp.residual.weight)
    torch.nn.init.zeros_(comp.residual.bias)
    teacher, student = torch.randn(5, 64), torch.randn(5, 64)
    composed, logits = comp(teacher, student)
    assert torch.equal(composed, teacher) and logits.shape == (5, 10)


def test_oracle6_videos_without_audio_leave_the_audio_terms_but_not_the_ce():
    model = _build(plain=True, teachers="audio")
    model.eval()  # BatchNorm on running statistics: a sample's feature does not depend on its batch
    silent = BATCH["audio"].abs().sum(1) == 0
    batch = {k: v.clone() for k, v in BATCH.items()}
    batch["audio"][:6] = 0  # six more silent videos
    keep = batch["audio"].abs().sum(1) != 0
    assert int((~keep).sum()) >= 6 and bool((~keep[silent]).all())
    full = model.losses(batch)
    kept = model.losses({k: v[keep] for k, v in batch.items()})
    assert torch.allclose(full["composition"], kept["composition"], atol=1e-5)
    assert not torch.allclose(full["student"], kept["student"])  # the CE still sees every video


def test_oracle7_teachers_are_never_modified_and_get_no_gradient():
    model = _build()
    before = {k: BATCH[k].clone() for k in ("audio", "image")}
    out = model.losses(BATCH)
    (out["student"] + out["composition"]).backward()
    for k in ("audio", "image"):
        assert torch.equal(BATCH[k], before[k]) and not BATCH[k].requires_grad


@pytest.mark.parametrize("leak", [True, False])
def test_the_official_order_gives_the_student_l_student_and_the_compositions_both(leak):
    model = _build(plain=True, official_grad_leak=leak)
    student = [*model.backbone.parameters(), *model.classifier.parameters()]
    comps = list(model.compositions.parameters())
    opt_s, opt_c = torch.optim.SGD(student, lr=0.0), torch.optim.SGD(comps, lr=0.0)  # lr 0: only gradients

    def grads(loss_name):
        m = copy.deepcopy(model)
        out = m.losses(BATCH)
        params = [*m.backbone.parameters(), *m.classifier.parameters()], list(m.compositions.parameters())
        g = torch.autograd.grad(out[loss_name], [*params[0], *params[1]], allow_unused=True, retain_graph=True)
        zero = [torch.zeros_like(p) for p in [*params[0], *params[1]]]
        g = [z if x is None else x for x, z in zip(g, zero)]
        return g[: len(params[0])], g[len(params[0]) :]

    student_from_student, comp_from_student = grads("student")
    _, comp_from_comp = grads("composition")
    official_update(model.losses(BATCH), opt_s, opt_c)
    for p, expected in zip(student, student_from_student):
        assert torch.allclose(p.grad, expected, atol=1e-6)
    for p, own, leaked in zip(comps, comp_from_comp, comp_from_student):
        assert torch.allclose(p.grad, own + leaked if leak else own, atol=1e-6)
    if not leak:
        assert all(float(x.abs().sum()) == 0 for x in comp_from_student)


def test_arms_build_the_right_players_and_mismatched_dims_are_refused():
    assert list(_build(teachers="none").players()) == ["student"] and _build(teachers="none").automatic_optimization
    assert list(_build(direct=True).players()) == ["student"]
    assert list(_build().players()) == ["student", "composition"] and not _build().automatic_optimization
    with pytest.raises(ValueError, match="must match"):
        CCL(TinyClipCNN(3, 8), Plain(), num_classes=10, teacher_dims={"audio": 64, "image": 64})


def test_the_synthetic_protocol_has_its_semantic_gap_and_missing_audio():
    data = ccl_synthetic(1)
    assert data.train_clips.shape == (200, 3, 8, 32, 32) and data.test_clips.shape == (500, 3, 8, 32, 32)
    audio, labels = data.train_teachers["audio"], data.train_labels
    silent = audio.abs().sum(1) == 0
    assert 0.03 < float(silent.float().mean()) < 0.2
    unit = torch.nn.functional.normalize(audio, dim=1)
    cos, other_class = unit @ unit.t(), labels[:, None] != labels[None, :]
    gap = (labels >= 5) & ~silent
    heard = (labels < 5) & ~silent
    # one shared "music" vector for classes 5-9: their audio is alike across classes, unlike 0-4's
    assert float(cos[gap][:, gap][other_class[gap][:, gap]].mean()) > 0.25
    assert abs(float(cos[heard][:, heard][other_class[heard][:, heard]].mean())) < 0.1
    image = torch.nn.functional.normalize(data.train_teachers["image"], dim=1)
    same = labels[:, None] == labels[None, :]
    assert float((image @ image.t())[same].mean()) > float((image @ image.t())[~same].mean()) + 0.3
