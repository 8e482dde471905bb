"""CrossCLR on paired features (crossclr.md): the method, the clustered protocol, users' feature files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from contrastkit.cli import main
from contrastkit.data.errors import DataError
from contrastkit.data.pairs import clustered_pairs, load_feature_pairs
from contrastkit.evaluation.crossmodal import cluster_recall_at_1, paired_ranks, retrieval_scores
from contrastkit.functional.crossclr import connectivity, crossclr
from contrastkit.methods import CrossCLR
from contrastkit.methods.crossclr import ClipEncoder, clip_descriptor
from contrastkit.nn import TinyClipCNN


def test_the_method_is_the_functional_loss_on_its_encoders_and_their_inputs():
    torch.manual_seed(0)
    model = CrossCLR(20, 12, hidden=16, dim=8, connectivity="cosine")
    x, y = torch.randn(10, 20), torch.randn(10, 6, 12)  # text as a sequence: connectivity on its time-average
    expected = crossclr(model.embed_video(x), model.embed_text(y), x, y.mean(1), connectivity_kind="cosine")
    assert torch.allclose(model.loss(x, y), expected)


def test_none_settings_mean_no_pruning_and_uniform_weights():
    torch.manual_seed(0)
    model = CrossCLR(20, 12, hidden=16, dim=8, intra_weight=0, prune_threshold=None, weight_temperature=None)
    x, y = torch.rand(10, 20), torch.rand(10, 12)
    logits = (
        torch.nn.functional.normalize(model.embed_video(x), dim=1)
        @ torch.nn.functional.normalize(model.embed_text(y), dim=1).t()
    )
    target = torch.arange(10)
    infonce = 0.5 * (
        torch.nn.functional.cross_entropy(logits / 0.03, target)
        + torch.nn.functional.cross_entropy(logits.t() / 0.03, target)
    )
    assert torch.allclose(model.loss(x, y), infonce, atol=1e-5)


@pytest.mark.parametrize("encoder", ["mlp", "transformer"])
def test_loss_falls_on_the_clustered_pairs(encoder):
    pairs = clustered_pairs(0)
    torch.manual_seed(0)
    model = CrossCLR(64, 64, hidden=32, dim=16, encoder=encoder, connectivity="cosine")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = torch.arange(64)
    losses = []
    for _ in range(30):
        loss = model.loss(pairs.train_video[batch], pairs.train_text[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.7 * losses[0], losses


# --- end to end on raw clips ------------------------------------------------------------------


def _clips(n=12, seed=0):
    return torch.randint(0, 256, (n, 3, 4, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_end_to_end_trains_the_clip_backbone_with_a_descriptor_as_connectivity():
    torch.manual_seed(0)
    model = CrossCLR(16, 12, hidden=16, dim=8, connectivity="cosine", video_backbone=TinyClipCNN(3, 4))
    assert isinstance(model.video_encoder, ClipEncoder)
    clips, text = _clips(), torch.randn(12, 12)
    expected = crossclr(
        model.embed_video(clips), model.embed_text(text), clip_descriptor(clips), text, connectivity_kind="cosine"
    )
    assert torch.allclose(model.loss(clips, text), expected)
    model.loss(clips, text).backward()
    assert all(p.grad is not None for p in model.video_encoder.backbone.parameters())


def test_the_clip_descriptor_pools_positions_and_standardises_over_the_batch():
    clips = _clips(6)
    d = clip_descriptor(clips)
    assert d.shape == (6, 3 * 3 * 8 * 8)
    assert torch.allclose(d.mean(0), torch.zeros(d.shape[1]), atol=1e-5)
    assert torch.allclose(d.std(0), torch.ones(d.shape[1]), atol=1e-4)
    two = clip_descriptor(clips[:, :, :2])  # fewer frames than 3 positions: one per frame
    assert two.shape == (6, 3 * 2 * 64)
    pooled = torch.nn.functional.adaptive_avg_pool3d(clips.float() / 255, (3, 8, 8)).flatten(1)
    assert torch.allclose(d, (pooled - pooled.mean(0)) / pooled.std(0), atol=1e-5)


def test_loss_falls_end_to_end_on_clips():
    torch.manual_seed(0)
    model = CrossCLR(16, 12, hidden=32, dim=16, connectivity="cosine", video_backbone=TinyClipCNN(3, 8))
    clips, text = _clips(16), torch.randn(16, 12)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = model.loss(clips, text)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.7 * losses[0], losses


def test_clustered_pairs_follow_the_card():
    pairs = clustered_pairs(3)
    sizes = torch.bincount(pairs.train_clusters)
    assert len(sizes) == 60 and (sizes[:6] == 40).all() and ((sizes[6:] >= 4) & (sizes[6:] <= 6)).all()
    assert torch.equal(pairs.train_clusters, pairs.test_clusters) and not torch.equal(
        pairs.train_video, pairs.test_video
    )
    # hubs are the influential samples: their text inputs are near-duplicates, so they top the connectivity
    _, cn = connectivity(pairs.train_text, "cosine")
    hub = pairs.train_clusters < 6
    assert cn[hub].mean() > cn[~hub].mean() + 0.2


def test_retrieval_metrics_on_hand_made_embeddings():
    gallery = torch.eye(4)
    queries = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0.2, 1.0, 0], [0, 0, 0, 1.0]])
    assert paired_ranks(queries, gallery).tolist() == [1, 2, 1, 1]
    scores = retrieval_scores(queries, gallery, ks=(1, 5))
    assert scores == {"r1": 75.0, "r5": 100.0, "medr": 1.0, "mnr": 1.25}
    assert cluster_recall_at_1(queries, gallery, torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 1, 2])) == 100.0


def _write_pairs(folder, video, text, clusters=None, suffix=".npy"):
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (("video", video), ("text", text), ("clusters", clusters)):
        if array is None:
            continue
        if suffix == ".npy":
            np.save(folder / f"{name}.npy", array)
        elif suffix == ".npz":
            np.savez(folder / f"{name}.npz", array)
        else:
            torch.save(torch.as_tensor(array), folder / f"{name}.pt")


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt"])
def test_feature_files_load_in_every_format_and_split_when_there_is_no_test_folder(tmp_path, suffix):
    rng = np.random.default_rng(0)
    _write_pairs(tmp_path / "f" / "train", rng.random((50, 8)), rng.random((50, 5, 4)), np.arange(50) % 5, suffix)
    pairs = load_feature_pairs(tmp_path / "f", seed=1)
    assert pairs.train_video.shape == (40, 8) and pairs.test_text.shape == (10, 5, 4) and len(pairs.test_clusters) == 10


def test_bad_feature_files_name_the_file_and_the_rows(tmp_path):
    rng = np.random.default_rng(0)
    _write_pairs(tmp_path / "a" / "train", rng.random((30, 8)), rng.random((29, 4)))
    with pytest.raises(DataError, match=r"video.npy has 30 rows but .*text.npy has 29"):
        load_feature_pairs(tmp_path / "a")
    video = rng.random((30, 8))
    video[[3, 17]] = np.nan
    _write_pairs(tmp_path / "b" / "train", video, rng.random((30, 4)))
    with pytest.raises(DataError, match=r"video.npy has non-finite values in 2 row\(s\): 3, 17"):
        load_feature_pairs(tmp_path / "b")


def test_the_features_recipe_trains_on_user_files_and_bad_files_exit_2(tmp_path, capsys):
    pairs = clustered_pairs(1)
    _write_pairs(
        tmp_path / "mine" / "train", pairs.train_video.numpy(), pairs.train_text.numpy(), pairs.train_clusters.numpy()
    )
    _write_pairs(
        tmp_path / "mine" / "test", pairs.test_video.numpy(), pairs.test_text.numpy(), pairs.test_clusters.numpy()
    )
    args = ["train", "crossclr-features", "--no-progress", "--runs-dir", str(tmp_path / "runs")]
    args += ["--set", "optim.epochs=10", "--set", "optim.lr=0.003", "--set", "method.connectivity=cosine"]
    args += ["--set", "method.hidden=64", "--set", "method.dim=32", "--set", "eval.embedding_map_points=200"]
    assert main([*args, "--set", f"data.path={tmp_path / 'mine'}"]) == 0
    (run,) = (tmp_path / "runs" / "crossclr-features").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["final"]["t2v_r1"] > results["random_init"]["t2v_r1"]
    assert (run / "similarity_matrix.png").is_file()
    capsys.readouterr()
    _write_pairs(tmp_path / "bad" / "train", np.ones((10, 4)), np.ones((9, 4)))
    assert main([*args, "--set", f"data.path={tmp_path / 'bad'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has 10 rows but" in err[0]
