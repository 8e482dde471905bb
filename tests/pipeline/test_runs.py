"""End-to-end runs: every shipped recipe at --smoke size, run folders, resume equivalence."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from contrastkit.cli import main
from contrastkit.config import list_recipes, load_recipe, smoke
from contrastkit.pipeline import evaluate_run, train

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
HAS_CIFAR = (SHARED_DATA / "cifar10" / "train.npz").is_file()
HAS_GRAPHS = (SHARED_DATA / "planetoid").is_dir() and (SHARED_DATA / "TUDataset").is_dir()


TRAIN_RECIPES = sorted(n for n in list_recipes() if "federation" not in load_recipe(n))
FEDERATED_RECIPES = sorted(n for n in list_recipes() if "federation" in load_recipe(n))
# CI runs every recipe that needs no download plus one real-data recipe per family and method
# kind; the other real-data smokes repeat the same code paths on other files (make test-slow).
CI_REAL_DATA = {"moco-cifar10", "densecl-cifar10", "mochi-cifar10", "mvgrl-cora", "mvgrl-mutag"}


def _real_graphs(name: str) -> bool:
    return name.startswith("mvgrl") and "sbm" not in name


def _smoke_param(name: str) -> object:
    real = "cifar10" in name or _real_graphs(name)
    return pytest.param(name, marks=pytest.mark.slow) if real and name not in CI_REAL_DATA else name


# generated from the CIFAR-10 copy without "cifar10" in the name
NEEDS_CIFAR = {
    "crossclr-captions",
    "crossclr-captions-clips",
    "crossclr-captions-expert",
    "ccl-cifar",
    "vclr-cifar",
    "videomoco-cifar",
    "longshort-cifar",
}
# start from a zoo entry: smoke-tested with a state dict of the same architecture written here
NEEDS_EXPERT = {"crossclr-captions-expert": "data.video_expert"}
# the fast suite keeps transformers out: the captions smoke encodes with the hashing encoder
SMOKE_EXTRA = {name: ["--set", "data.text_encoder=hashing"] for name in NEEDS_CIFAR if name.startswith("crossclr")}
# need the user's dataset: smoke-tested on a fake tree or files the tests write
USER_DATA_RECIPES = {"videomoco-ucf101", "vclr-ucf101", "crossclr-features", "aecr-reside", "simclr-folder"}


@pytest.mark.parametrize("name", [_smoke_param(n) for n in TRAIN_RECIPES if n not in USER_DATA_RECIPES])
def test_recipe_runs_at_smoke_size(name, tmp_path):
    if ("cifar10" in name or name in NEEDS_CIFAR) and not HAS_CIFAR:
        pytest.skip(f"no CIFAR-10 copy under {SHARED_DATA}")
    if _real_graphs(name) and not HAS_GRAPHS:
        pytest.skip(f"no Planetoid/TUDataset copies under {SHARED_DATA}")
    expert: list[str] = []
    if name in NEEDS_EXPERT:
        from contrastkit.nn.backbones import ConvNetSmall

        torch.save(ConvNetSmall(3, 16).state_dict(), tmp_path / "expert.pt")
        expert = ["--set", f"{NEEDS_EXPERT[name]}={tmp_path / 'expert.pt'}"]
    code = main(
        [
            "train",
            name,
            "--smoke",
            "--no-progress",
            "--runs-dir",
            str(tmp_path),
            "--data-root",
            str(SHARED_DATA),
            "--set",
            "trainer.limit_val_batches=2",
            *SMOKE_EXTRA.get(name, []),
            *expert,
        ]
    )
    assert code == 0
    (run,) = (tmp_path / name).iterdir()
    expected = ["recipe.yaml", "metrics.csv", "steps.csv", "report.md", "results.json", "checkpoints/last.ckpt"]
    expected += ["loss.png"] if name.startswith("aecr") else ["loss.png", "embedding.png"]
    if name.startswith("aecr"):  # restoration: no embeddings; examples, PSNR per epoch, SOTS pairs
        expected += ["test_examples.png", "psnr.png"]
        expected += ["sots_examples.png"] if (SHARED_DATA / "dehaze").is_dir() else []
    elif name.startswith(("videomoco", "vclr", "longshort")):
        expected += ["knn.png", "frames.png", "retrieval.png"]
        expected += ["segmentation.png"] if name.startswith("longshort") else []
    elif name.startswith("crossclr"):
        expected += ["similarity_matrix.png"] + (["retrieval_examples.png"] if name in NEEDS_CIFAR else [])
    elif name.startswith("ccl"):
        pass  # a supervised student: no kNN monitor, no pair similarities
    elif not name.startswith("mvgrl"):
        expected += ["knn.png", "similarity.png"]
    for item in expected:
        assert (run / item).is_file(), item
    results = json.loads((run / "results.json").read_text())
    metric = results["metrics"][0]["key"]
    assert 0 <= results["final"][metric] <= 100 and 0 <= results["random_init"][metric] <= 100
    assert "random init" in (run / "report.md").read_text()
    if name == "ccl-cifar":  # the frozen teacher's own top-1 is kept beside the student's
        assert 10 < results["final"]["teacher_image_top1"] <= 100


class _Killed(RuntimeError):
    pass


class _Crash(L.Callback):
    """Simulates a kill right after the first epoch's checkpoint."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise _Killed


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("name", ["moco-digits", "mochi-digits"])
def test_resume_reaches_the_same_result_as_an_uninterrupted_run(name, tmp_path):
    raw = smoke(load_recipe(name))
    raw["trainer"]["limit_train_batches"] = 4
    raw["eval"]["linear_probe"] = False
    straight = train(raw, runs_dir=tmp_path / "a", progress=False)
    with pytest.raises(_Killed):
        train(raw, runs_dir=tmp_path / "b", progress=False, callbacks=[_Crash()])
    (interrupted,) = (tmp_path / "b" / raw["name"]).iterdir()
    assert torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    resumed = train({}, resume=interrupted, progress=False)
    a, b = _weights(Path(straight["run_dir"])), _weights(interrupted)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert resumed["final"]["knn_top1"] == straight["final"]["knn_top1"]
    steps = (interrupted / "steps.csv").read_text().splitlines()
    assert len(steps) == 1 + 8  # header + 2 epochs x 4 steps, no duplicates from the replay


def test_eval_rewrites_the_report_of_a_run(tmp_path):
    raw = smoke(load_recipe("simclr-digits"))
    raw["eval"]["linear_probe"] = False
    results = train(raw, runs_dir=tmp_path, progress=False)
    run = Path(results["run_dir"])
    (run / "report.md").unlink()
    again = evaluate_run(run, progress=False)
    assert again["final"]["knn_top1"] == pytest.approx(results["final"]["knn_top1"])
    assert (run / "report.md").is_file()
    assert yaml.safe_load((run / "recipe.yaml").read_text())["name"] == "simclr-digits"


def test_atomic_checkpoint_leaves_no_temporary_file(tmp_path):
    raw = smoke(load_recipe("moco-digits"))
    raw["eval"]["linear_probe"] = False
    run = Path(train(raw, runs_dir=tmp_path, progress=False)["run_dir"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]


@pytest.mark.slow
@pytest.mark.parametrize("name", FEDERATED_RECIPES)
def test_federated_recipe_runs_at_smoke_size(name, tmp_path):
    """Each algorithm starts a Ray-backed Flower simulation (a minute or more each): slow."""
    if "cifar10" in name and not HAS_CIFAR:
        pytest.skip(f"no CIFAR-10 copy under {SHARED_DATA}")
    args = ["federate", name, "--smoke", "--runs-dir", str(tmp_path), "--data-root", str(SHARED_DATA)]
    assert main(args) == 0
    (run,) = (tmp_path / name).iterdir()
    assert (run / "report.md").is_file() and (run / "accuracy.png").is_file()


def test_ucf101_recipe_runs_on_a_tiny_tree_in_the_split_file_layout(tmp_path):
    """videomoco-ucf101 (R(2+1)D-18) and vclr-ucf101 at smoke size on a fake UCF101 tree written by the test."""
    pytest.importorskip("av")
    from contrastkit.data.moving_objects import _write_mp4

    root = tmp_path / "UCF101"
    for cls in ("ApplyEyeMakeup", "Archery"):
        for g in range(1, 7):
            clip = torch.randint(0, 256, (12, 40, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(g))
            _write_mp4(root / cls / f"v_{cls}_g0{g}_c01.avi", clip)
    (root / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    lines = [f"{cls}/v_{cls}_g0{g}_c01.avi" for cls in ("ApplyEyeMakeup", "Archery") for g in range(1, 7)]
    (root / "trainlist01.txt").write_text("\n".join(line for line in lines if "g05" not in line and "g06" not in line))
    (root / "testlist01.txt").write_text("\n".join(line for line in lines if "g05" in line or "g06" in line))
    code = main(
        [
            "train",
            "videomoco-ucf101",
            "--smoke",
            "--no-progress",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--data-root",
            str(tmp_path),
            "--set",
            "data.num_workers=0",
        ]
    )
    assert code == 0
    (run,) = (tmp_path / "runs" / "videomoco-ucf101").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["model"].startswith("r2plus1d_18") and "split files" in results["data"]
    code = main(  # VCLR's recipe for the same layout: frame-level ResNet-50, segment tuples
        [
            "train",
            "vclr-ucf101",
            "--smoke",
            "--no-progress",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--data-root",
            str(tmp_path),
            "--set",
            "data.num_workers=0",
            "--set",
            "model.backbone=resnet18",
        ]
    )
    assert code == 0
    (run,) = (tmp_path / "runs" / "vclr-ucf101").iterdir()
    assert "retrieval_r1" in json.loads((run / "results.json").read_text())["final"]
    (root / "testlist01.txt").write_text("Archery/v_Archery_g09_c01.avi\n")
    args = ["train", "videomoco-ucf101", "--smoke", "--runs-dir", str(tmp_path / "runs2"), "--data-root", str(tmp_path)]
    assert main(args) == 2
    assert not (tmp_path / "runs2").exists()  # nothing written before the data is known to be readable
