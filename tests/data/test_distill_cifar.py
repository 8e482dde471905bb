"""CCL's protocol on CIFAR-10 clips: an image teacher on a frozen encoder plus a trained head, an
audio teacher with a semantic gap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastkit.data.distill import GAP_CLASSES
from contrastkit.data.distill_cifar import TEACHER_DIM, ccl_cifar, train_teacher_head
from contrastkit.data.errors import DataError
from contrastkit.nn.backbones import ConvNetSmall

COLOURS = torch.rand(10, 3, generator=torch.Generator().manual_seed(3)) * 255


def _solid_cifar(root, per_class: dict[str, int]) -> None:
    """Every image of class c one solid colour: a teacher that looks at the clip's frame can tell it."""
    folder = root / "cifar10"
    folder.mkdir(parents=True)
    for split, n in per_class.items():
        labels = np.arange(n * 10) % 10
        images = np.broadcast_to(COLOURS[labels].numpy()[:, None, None, :], (n * 10, 32, 32, 3)).astype(np.uint8)
        np.savez(folder / f"{split}.npz", images=images, labels=labels)


OPTIONS = dict(train_per_class=4, test_per_class=6, head_images=200)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    _solid_cifar(root, {"train": 30, "test": 10})
    return root


def test_clips_labels_and_teachers_have_their_shapes_and_are_seeded(cifar):
    data = ccl_cifar(cifar, 0, **OPTIONS)
    assert data.train_clips.shape == (40, 3, 8, 32, 32) and data.train_clips.dtype == torch.uint8
    assert data.test_clips.shape == (60, 3, 8, 32, 32)
    assert torch.equal(data.train_labels.bincount(), torch.full((10,), 4))
    for split in (data.train_teachers, data.test_teachers):
        assert split["image"].shape[1] == TEACHER_DIM and split["audio"].shape[1] == TEACHER_DIM
    again, other = ccl_cifar(cifar, 0, **OPTIONS), ccl_cifar(cifar, 1, **OPTIONS)
    assert torch.equal(again.test_clips, data.test_clips)
    assert torch.equal(again.train_teachers["image"], data.train_teachers["image"])
    assert not torch.equal(other.test_clips, data.test_clips)
    # each clip shows its image drifting: the frames differ, and the clip's colour is its class's
    clip, label = data.train_clips[0].float(), int(data.train_labels[0])
    assert (clip[:, 0] - clip[:, -1]).abs().mean() > 1
    centre = clip[:, 0].flatten(1).median(1).values
    assert (centre - COLOURS[label]).abs().max() < 40


def test_the_image_teacher_sees_the_clips_own_frame(cifar):
    # solid colours: a teacher on the clip's frame is near perfect, even on a random encoder
    data = ccl_cifar(cifar, 0, **OPTIONS)
    assert data.teacher_top1["image"] > 90
    z = data.test_teachers["image"]
    same = data.test_labels[:, None] == data.test_labels[None]
    sim = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(z, dim=1).T
    assert sim[same].mean() > sim[~same].mean() + 0.3


def test_the_image_teacher_takes_its_encoder_from_a_weights_file(cifar, tmp_path):
    torch.manual_seed(5)
    torch.save(ConvNetSmall(3, 16).state_dict(), tmp_path / "expert.pt")
    with_file = ccl_cifar(cifar, 0, image_teacher=str(tmp_path / "expert.pt"), **OPTIONS)
    random = ccl_cifar(cifar, 0, **OPTIONS)
    assert torch.equal(with_file.train_clips, random.train_clips)  # the same clips...
    assert not torch.allclose(with_file.train_teachers["image"], random.train_teachers["image"])  # ...another teacher
    assert "expert.pt" in with_file.source
    with pytest.raises(FileNotFoundError):
        ccl_cifar(cifar, 0, image_teacher=str(tmp_path / "missing.pt"), **OPTIONS)


def test_the_audio_teacher_hears_one_shared_vector_on_the_gap_classes(cifar):
    data = ccl_cifar(cifar, 0, **OPTIONS)
    audio, labels = data.test_teachers["audio"], data.test_labels
    heard = audio.abs().sum(1) > 0
    gap = torch.isin(labels, torch.tensor(GAP_CLASSES))
    class_means = torch.stack([audio[heard & (labels == c)].mean(0) for c in range(10)])
    spread = torch.cdist(class_means, class_means)
    # the gap classes' means differ by their noise alone; the audible classes' by their prototypes too
    assert spread[5:, 5:].max() < spread[:5, :5][~torch.eye(5, dtype=torch.bool)].min()
    assert (~heard).any() and gap.any()


def test_the_teacher_head_classifies_its_training_features():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    features = torch.randn(4, 32, generator=g)[labels] * 5 + 100 + torch.randn(200, 32, generator=g)
    head = train_teacher_head(features, labels, 4, seed=0, steps=200)
    assert (head(features).argmax(1) == labels).float().mean() == 1
    assert head[0].out_features == TEACHER_DIM and not any(p.requires_grad for p in head.parameters())


def test_too_few_images_and_no_cifar_are_one_clear_error(cifar, tmp_path):
    with pytest.raises(DataError, match="class 0 has"):
        ccl_cifar(cifar, 0, train_per_class=4, head_images=10_000)
    with pytest.raises(DataError, match="cifar10/"):
        ccl_cifar(tmp_path, 0)
