"""Mistakes a new user makes are one line that names the recipe key, before any run folder is
made (issue 32, item 7); a run whose weights went non-finite stops with the finite-check line
before its evaluation draws anything."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.cli import main
from contrastkit.config import load_recipe, smoke
from contrastkit.pipeline.run import train


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_batch_larger_than_the_folder_names_data_batch_size(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(30):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            photos / f"{i}.png"
        )
    runs = tmp_path / "runs"
    args = ["train", "simclr-folder", "--set", f"data.path={photos}", "--runs-dir", str(runs), "--no-progress"]
    assert main(args) == 2
    line = _one_line(capsys)
    assert "data.batch_size" in line and "--set data.batch_size=" in line
    assert not runs.exists()


def test_a_clip_longer_than_the_video_names_its_keys(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["train", "vclr-synthetic", "--smoke", "--set", "data.clip_length=64", "--runs-dir", str(runs)]
    assert main([*args, "--no-progress"]) == 2
    line = _one_line(capsys)
    assert "data.clip_length 64" in line and "data.video_frames" in line
    assert not runs.exists()


class _PoisonWeights(L.Callback):
    """Leaves the backbone non-finite after the last step, past the objectives' own checks."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            for p in pl_module.backbone.parameters():
                p.fill_(float("nan"))


def test_a_diverged_run_stops_before_its_plots(tmp_path):
    raw = smoke(load_recipe("simclr-digits"))
    with pytest.raises(ValueError, match="trained_embeddings has non-finite values"):
        train(raw, runs_dir=tmp_path, progress=False, callbacks=[_PoisonWeights()])
    (run,) = (tmp_path / "simclr-digits").iterdir()
    assert not (run / "report.md").exists() and not (run / "embedding.png").exists()
