"""End to end: the same SimCLR pretraining on a folder of PNG images, run by contrastkit's CLI, by
lightly-train and by lightly 1.6 following its own example, each in its own process.

    python benchmarks/end_to_end.py --data-root ../shared/data                       (the full run)
    python benchmarks/end_to_end.py --data-root ../shared/data --images 512 --epochs 2 --rounds 1   (smoke)

The folder: ``--images`` CIFAR-10 training images (and 2000 test images for the kNN) written as
PNG files under ``<cache>/cifar10-png-N/{train,test}/<class>/``. Every contender trains the same
backbone (``--backbone``: our ConvNetSmall, width 16, or ResNet-18) at 32 px with batch
``--batch`` for ``--epochs`` epochs, reading the PNG files with ``--workers`` loader processes:

- ``contrastkit``: ``contrastkit train simclr-folder`` (its views, its loader, its report);
- ``lightly-train``: ``lightly_train.train(method="simclr")`` on the folder, our backbone passed as
  a ``ModelWrapper`` (from scratch: no weights are downloaded);
- ``lightly``: lightly 1.6's SimCLR example — ``LightlyDataset``, ``SimCLRTransform``, its
  ``SimCLRProjectionHead`` and ``NTXentLoss`` in a Lightning module and Trainer.

Contenders alternate for ``--rounds`` rounds. Per run: wall time of the training call, images per
second over it, the median epoch after the first (where the contender reports epochs), peak RSS of
the process, and the kNN top-1 (k=20, cosine) of its trained backbone on the 2000 test images
against the training images — one evaluation for all, so no one wins by doing less.
Results: ``benchmarks/results/end_to_end.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

RESULTS = Path(__file__).parent / "results"
CONTENDERS = ("contrastkit", "lightly-train", "lightly")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def write_folder(data_root: str, images: int, test: int, cache: Path) -> Path:
    """A seeded random draw of CIFAR-10 images as PNG class folders (written once)."""
    from PIL import Image

    from contrastkit.data.images import load_cifar10

    folder = cache / f"cifar10-png-{images}-{test}"
    if (folder / "done").is_file():
        return folder
    cifar = load_cifar10(data_root)
    for split, array, labels, count in (
        ("train", cifar.train_images, cifar.train_labels, images),
        ("test", cifar.test_images, cifar.test_labels, test),
    ):
        picks = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:count]  # the copy is by class
        for i in picks.tolist():
            out = folder / split / cifar.classes[int(labels[i])] / f"{i:05d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array[i].permute(1, 2, 0).numpy()).save(out)
    (folder / "done").write_text("")
    return folder


def backbone(name: str) -> nn.Module:
    from contrastkit.nn import build_backbone

    return build_backbone(
        "convnet_small" if name == "convnet_small" else "resnet18", 3, 16 if name == "convnet_small" else None, 32
    )


# -- the contenders, each run in its own process (``--worker NAME``) -----------------------------


def run_contrastkit(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    sets = {
        "data.path": args.folder,  # its train/ and test/ sub-folders are the splits
        "data.image_size": 32,
        "data.batch_size": args.batch,
        "data.num_workers": args.workers,
        "model.backbone": "convnet_small" if args.backbone == "convnet_small" else "resnet18",
        "optim.epochs": args.epochs,
        "eval.monitor_every": 10**6,  # no kNN monitor during training
    }
    if args.backbone == "convnet_small":
        sets["model.width"] = 16
    command = ["contrastkit", "train", "simclr-folder", "--quiet", "--runs-dir", str(out)]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    (run,) = (out / "simclr-folder").iterdir()
    from contrastkit.nn.backbones import load_run_backbone
    from contrastkit.pipeline.report import read_csv_rows

    epochs = [float(r["epoch_seconds"]) for r in read_csv_rows(run / "metrics.csv") if r.get("epoch_seconds")]
    results = json.loads((run / "results.json").read_text())
    trained, _, _ = load_run_backbone(run)
    torch.save(trained.state_dict(), out / "backbone.pt")
    return {"train_wall": results["train_seconds"], "command_wall": wall, "epoch_seconds": epochs}


class Wrapped(nn.Module):
    """Our backbone as lightly-train's ``ModelWrapper``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        return {"features": self.body.forward_map(x)}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": x["features"].mean(dim=(2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return int(self.body.feature_dim)

    def get_model(self) -> nn.Module:
        return self.body

    def architecture_info(self) -> dict[str, str]:
        return {"model_type": "convolutional", "norm_type": "batchnorm"}


def run_lightly_train(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import lightly_train

    model = Wrapped(backbone(args.backbone))
    start = time.perf_counter()
    lightly_train.train(
        out=str(out / "lt"),
        data=str(args.folder / "train"),
        model=model,
        method="simclr",
        epochs=args.epochs,
        batch_size=args.batch,
        num_workers=args.workers,
        accelerator="cpu",
        devices=1,
        precision="32-true",
        transform_args={"image_size": (32, 32)},
        overwrite=True,
    )
    wall = time.perf_counter() - start
    torch.save(model.body.state_dict(), out / "backbone.pt")
    return {"train_wall": wall, "command_wall": wall, "epoch_seconds": []}


def run_lightly(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import lightning as L
    from lightly.data import LightlyDataset
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    class SimCLR(L.LightningModule):
        def __init__(self, body: nn.Module) -> None:
            super().__init__()
            self.backbone = body
            self.head = SimCLRProjectionHead(int(body.feature_dim), 512, 128)
            self.loss = NTXentLoss(temperature=0.2)

        def training_step(self, batch: Any, _: int) -> Tensor:
            (x0, x1), _, _ = batch
            z0, z1 = self.head(self.backbone(x0)), self.head(self.backbone(x1))
            return self.loss(z0, z1)

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3, weight_decay=1e-6)

    class EpochClock(L.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_epoch_start(self, *_: Any) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, *_: Any) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    transform = SimCLRTransform(input_size=32, gaussian_blur=0.0)
    dataset = LightlyDataset(str(args.folder / "train"), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=args.workers
    )
    model, clock = SimCLR(backbone(args.backbone)), EpochClock()
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    start = time.perf_counter()
    trainer.fit(model, loader)
    wall = time.perf_counter() - start
    torch.save(model.backbone.state_dict(), out / "backbone.pt")
    return {"train_wall": wall, "command_wall": wall, "epoch_seconds": clock.seconds}


RUNNERS = {"contrastkit": run_contrastkit, "lightly-train": run_lightly_train, "lightly": run_lightly}


def knn_of(args: argparse.Namespace, weights: Path) -> float:
    """kNN top-1 (k=20, cosine) of a trained backbone: test images against training images."""
    from PIL import Image

    from contrastkit.evaluation import knn_accuracy

    model = backbone(args.backbone)
    model.load_state_dict(torch.load(weights))
    model.eval()
    classes = sorted(p.name for p in (args.folder / "train").iterdir())

    def features(split: str) -> tuple[Tensor, Tensor]:
        files = sorted((args.folder / split).rglob("*.png"))
        labels = torch.tensor([classes.index(f.parent.name) for f in files])
        x = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
        x = x.permute(0, 3, 1, 2).float().div(255)
        x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
        with torch.no_grad():
            return torch.cat([model(b) for b in x.split(512)]), labels

    bank, bank_labels = features("train")
    queries, labels = features("test")
    return knn_accuracy(bank, bank_labels, queries, labels, len(classes), k=20)


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    out = Path(args.out_dir)
    result = RUNNERS[args.worker](args, out)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["peak_rss_children_mib"] = children
    result["knn_top1"] = knn_of(args, out / "backbone.pt")
    (out / "result.json").write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backbone", choices=("convnet_small", "resnet18"), default="convnet_small")
    parser.add_argument("--rounds", type=int, default=2, help="each contender runs this many times, alternating")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from contrastkit.data.video_folders import cache_root

    args.folder = write_folder(args.data_root, args.images, 2000, cache_root())
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in args.contenders}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name in args.contenders:
                out = Path(tmp) / f"{name}-{round_}"
                out.mkdir()
                command = [sys.executable, __file__, "--data-root", args.data_root, "--worker", name]
                command += ["--out-dir", str(out), "--folder", str(args.folder), "--backbone", args.backbone]
                command += ["--epochs", str(args.epochs), "--batch", str(args.batch), "--workers", str(args.workers)]
                print(f"== {name} round {round_}", flush=True)
                subprocess.run(command, check=True)
                runs[name].append(json.loads((out / "result.json").read_text()))
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/end_to_end.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "settings": {
            k: str(v)
            for k, v in vars(args).items()
            if k in ("images", "epochs", "batch", "workers", "backbone", "rounds")
        },
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "end_to_end.json").write_text(json.dumps(report, indent=2))
    (args.out / "end_to_end.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    images = int(s["images"]) * int(s["epochs"])
    lines = [
        "# End to end: SimCLR on a folder of PNG images, contrastkit vs lightly-train vs lightly 1.6",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; {report['machine']}; {s['images']} images, {s['epochs']} epochs, batch {s['batch']}, "
        f"{s['workers']} loader workers, backbone {s['backbone']}, {s['rounds']} alternating rounds.",
        "",
        "| contender | images/s (training call) | median epoch (s) | peak RSS (MiB) | kNN top-1 | contrastkit / this |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    speed = {n: statistics.median(images / r["train_wall"] for r in rs) for n, rs in report["runs"].items() if rs}
    for name, rs in report["runs"].items():
        if not rs:
            continue
        epochs = [e for r in rs for e in r["epoch_seconds"][1:]]
        median_epoch = f"{statistics.median(epochs):.1f}" if epochs else "–"
        rss = max(r["peak_rss_mib"] + r["peak_rss_children_mib"] for r in rs)
        knn = statistics.mean(r["knn_top1"] for r in rs)
        ratio = f"{speed['contrastkit'] / speed[name]:.2f}x" if "contrastkit" in speed else "–"
        lines.append(f"| {name} | {speed[name]:.0f} | {median_epoch} | {rss:.0f} | {knn:.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
