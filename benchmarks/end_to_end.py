"""End to end: the same pretraining on CIFAR-10 images, run by contrastkit's CLI, by lightly-train and
by lightly 1.6 following its own example, each contender in its own process.

    python benchmarks/end_to_end.py --data-root ../shared/data                          (the full run)
    python benchmarks/end_to_end.py --data-root ../shared/data --images 512 --epochs 2 --rounds 1 \\
        --cases simclr-folder-convnet_small                                             (smoke)

A case is a method, a data source and a backbone (``--cases``, e.g. ``moco-folder-convnet_small``):

- method ``simclr`` or ``moco`` (MoCo v2: queue 4096, momentum 0.99, temperature 0.2);
- data ``folder``: ``--images`` CIFAR-10 training images (and 2000 test images for the kNN) written
  once as PNG files under ``<cache>/cifar10-png-N-2000/{train,test}/<class>/`` and read from disk
  by ``--workers`` loader processes; ``memory``: the same count held as uint8 arrays in memory;
- backbone ``convnet_small`` (width 16) or ``resnet18``, at 32 px, batch ``--batch``.

Contenders:

- ``contrastkit``: ``contrastkit train`` with ``simclr-folder`` or ``moco-cifar10`` set to the case;
- ``lightly-train``: ``lightly_train.train(method="simclr")`` on the folder, our backbone passed as a
  ``ModelWrapper`` (from scratch: nothing downloads). It has no MoCo and reads only folders, so it
  runs the SimCLR folder cases only;
- ``lightly``: lightly 1.6's documented example for the method — its transform
  (``SimCLRTransform``/``MoCoV2Transform``), ``LightlyDataset`` (on the folder, or
  on the in-memory copy a dataset like torchvision's ``CIFAR10`` with the transform), its projection head and ``NTXentLoss`` (with a
  memory bank for MoCo, ``update_momentum`` for the key encoder) in a Lightning module and Trainer.

One clock for all: every Lightning ``Trainer`` the worker builds (contrastkit, lightly-train and the
lightly example all train with Lightning) gets the same epoch-clock callback. Images per second are
the epoch's images over the median epoch after the first (the first carries worker start-up and
warm-up). Beside it: the whole training call's wall time, the peak RSS of the process and of its
largest loader worker, and the kNN top-1 (k=20, cosine) of the trained backbone on the 2000 test
images against the training images — one evaluation for all, so no one wins by doing less.
Contenders alternate for ``--rounds`` rounds. Results: ``benchmarks/results/end_to_end.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
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
import yaml
from torch import Tensor, nn

from harness import machine_line

RESULTS = Path(__file__).parent / "results"
CONTENDERS = ("contrastkit", "lightly-train", "lightly")
CASES = (
    "simclr-folder-convnet_small",
    "simclr-memory-convnet_small",
    "moco-folder-convnet_small",
    "simclr-folder-resnet18",
)
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
TEST_IMAGES = 2000


def parse_case(case: str) -> tuple[str, str, str]:
    method, data, body = case.split("-", 2)
    if (
        method not in ("simclr", "moco")
        or data not in ("folder", "memory")
        or body not in ("convnet_small", "resnet18")
    ):
        raise SystemExit(f"unknown case {case!r}: METHOD-DATA-BACKBONE, e.g. {CASES[0]}")
    return method, data, body


def contenders_of(case: str) -> tuple[str, ...]:
    method, data, _ = parse_case(case)
    return CONTENDERS if (method, data) == ("simclr", "folder") else ("contrastkit", "lightly")


def picks(count: int, total: int) -> list[int]:
    """The seeded random draw of CIFAR-10 indices both the folder and the in-memory copy hold."""
    return torch.randperm(total, generator=torch.Generator().manual_seed(0))[:count].tolist()


def write_folder(data_root: str, images: int, cache: Path) -> Path:
    """The draw as PNG class folders (written once)."""
    from PIL import Image

    from contrastkit.data.images import load_cifar10

    folder = cache / f"cifar10-png-{images}-{TEST_IMAGES}"
    if (folder / "done").is_file():
        return folder
    cifar = load_cifar10(data_root)
    for split, array, labels, count in (
        ("train", cifar.train_images, cifar.train_labels, images),
        ("test", cifar.test_images, cifar.test_labels, TEST_IMAGES),
    ):
        for i in picks(count, len(labels)):
            out = folder / split / cifar.classes[int(labels[i])] / f"{i:05d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array[i].permute(1, 2, 0).numpy()).save(out)
    (folder / "done").write_text("")
    return folder


def backbone(name: str) -> nn.Module:
    from contrastkit.nn import build_backbone

    return build_backbone(name, 3, 16 if name == "convnet_small" else None, 32)


# -- one clock in every Trainer -------------------------------------------------------------------


EPOCH_SECONDS: list[float] = []


def clock_every_trainer() -> None:
    """Give every Lightning Trainer built in this process an epoch clock (both Lightning packages)."""
    import lightning.pytorch as lp
    import pytorch_lightning as pl

    for package in (lp, pl):

        class EpochClock(package.Callback):  # type: ignore[name-defined,misc]
            def on_train_epoch_start(self, *_: Any) -> None:
                self.start = time.perf_counter()

            def on_train_epoch_end(self, *_: Any) -> None:
                EPOCH_SECONDS.append(time.perf_counter() - self.start)

        def patched(self: Any, *args: Any, _init: Any = package.Trainer.__init__, _clock: Any = EpochClock, **kw: Any):
            kw["callbacks"] = [*(kw.get("callbacks") or []), _clock()]
            _init(self, *args, **kw)

        package.Trainer.__init__ = patched


# -- the contenders, each run in its own process (``--worker NAME``) -----------------------------


def run_contrastkit(args: argparse.Namespace, out: Path) -> float:
    from contrastkit.cli import main as cli
    from contrastkit.config import load_recipe
    from contrastkit.nn.backbones import load_run_backbone

    method, data, body = parse_case(args.case)
    recipe = load_recipe("simclr-folder" if method == "simclr" else "moco-cifar10")
    recipe.pop("description", None)
    recipe["data"].update(image_size=32, batch_size=args.batch, num_workers=args.workers)
    if data == "folder":
        recipe["data"].update(dataset="image_folder", path=str(args.folder), augmentation="auto")
        recipe["data"].pop("train_subset", None)
    else:
        recipe["data"].update(dataset="cifar10", train_subset=args.images, augmentation="auto")
        recipe["data"].pop("path", None)
    recipe["model"] = {"backbone": body, **({"width": 16} if body == "convnet_small" else {})}
    recipe["optim"]["epochs"] = args.epochs
    recipe["eval"] = {"knn_k": 20, "monitor_every": 10**6, "linear_probe": False, "label_fractions": []}
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    if cli(
        ["train", str(out / "recipe.yaml"), "--quiet", "--runs-dir", str(out / "runs"), "--data-root", args.data_root]
    ):
        raise SystemExit("contrastkit train failed")
    (results,) = (out / "runs").glob("*/*/results.json")
    trained, _, _ = load_run_backbone(results.parent)
    torch.save(trained.state_dict(), out / "backbone.pt")
    return float(json.loads(results.read_text())["train_seconds"])  # the fit, without its closing evaluation


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


def run_lightly_train(args: argparse.Namespace, out: Path) -> None:
    import lightly_train

    model = Wrapped(backbone(parse_case(args.case)[2]))
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
    torch.save(model.body.state_dict(), out / "backbone.pt")


class MemoryImages(torch.utils.data.Dataset):
    """The in-memory copy as lightly's CIFAR-10 example reads torchvision's: (views, label)."""

    def __init__(self, data_root: str, images: int, transform: Any) -> None:
        from contrastkit.data.images import load_cifar10

        cifar = load_cifar10(data_root)
        index = torch.tensor(picks(images, len(cifar.train_labels)))
        self.images = cifar.train_images[index].permute(0, 2, 3, 1).numpy()
        self.labels = cifar.train_labels[index].tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def run_lightly(args: argparse.Namespace, out: Path) -> None:
    import lightning as L
    from lightly.data import LightlyDataset
    from lightly.loss import NTXentLoss
    from lightly.models.modules import MoCoProjectionHead, SimCLRProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import MoCoV2Transform, SimCLRTransform

    method, data, body_name = parse_case(args.case)

    class SimCLR(L.LightningModule):
        def __init__(self, body: nn.Module) -> None:
            super().__init__()
            self.backbone = body
            self.head = SimCLRProjectionHead(int(body.feature_dim), 512, 128)
            self.loss = NTXentLoss(temperature=0.2)

        def training_step(self, batch: Any, _: int) -> Tensor:
            x0, x1 = batch[0]
            return self.loss(self.head(self.backbone(x0)), self.head(self.backbone(x1)))

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3, weight_decay=1e-6)

    class MoCo(L.LightningModule):
        def __init__(self, body: nn.Module) -> None:
            super().__init__()
            self.backbone = body
            self.head = MoCoProjectionHead(int(body.feature_dim), 512, 128)
            self.backbone_momentum, self.head_momentum = copy.deepcopy(body), copy.deepcopy(self.head)
            deactivate_requires_grad(self.backbone_momentum)
            deactivate_requires_grad(self.head_momentum)
            self.loss = NTXentLoss(temperature=0.2, memory_bank_size=(4096, 128))

        def training_step(self, batch: Any, _: int) -> Tensor:
            x_query, x_key = batch[0]
            update_momentum(self.backbone, self.backbone_momentum, m=0.99)
            update_momentum(self.head, self.head_momentum, m=0.99)
            query = self.head(self.backbone(x_query))
            key = self.head_momentum(self.backbone_momentum(x_key)).detach()
            return self.loss(query, key)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)

    transform = (
        SimCLRTransform(input_size=32, gaussian_blur=0.0)
        if method == "simclr"
        else MoCoV2Transform(input_size=32, gaussian_blur=0.0)
    )
    if data == "folder":
        dataset = LightlyDataset(str(args.folder / "train"), transform=transform)
    else:
        dataset = MemoryImages(args.data_root, args.images, transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=args.workers
    )
    model = (SimCLR if method == "simclr" else MoCo)(backbone(body_name))
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, loader)
    torch.save(model.backbone.state_dict(), out / "backbone.pt")


RUNNERS = {"contrastkit": run_contrastkit, "lightly-train": run_lightly_train, "lightly": run_lightly}


def knn_of(args: argparse.Namespace, weights: Path) -> float:
    """kNN top-1 (k=20, cosine) of a trained backbone: the folder's test images against its training images."""
    from PIL import Image

    from contrastkit.evaluation import knn_accuracy

    model = backbone(parse_case(args.case)[2])
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
    clock_every_trainer()
    out = Path(args.out_dir)
    start = time.perf_counter()
    fit_seconds = RUNNERS[args.worker](args, out)
    wall = fit_seconds or time.perf_counter() - start
    result: dict[str, Any] = {"train_wall": wall, "epoch_seconds": EPOCH_SECONDS}
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_worker_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["knn_top1"] = knn_of(args, out / "backbone.pt")
    (out / "result.json").write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--images", type=int, default=10000, help="training images of the convnet_small cases")
    parser.add_argument("--resnet18-images", type=int, default=1024, help="training images of the resnet18 cases")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=list(CASES), help="METHOD-DATA-BACKBONE, e.g. " + CASES[0])
    parser.add_argument("--rounds", type=int, default=2, help="each contender runs this many times, alternating")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from contrastkit.data.video_folders import cache_root

    for case in args.cases:
        parse_case(case)
    folders = {n: write_folder(args.data_root, n, cache_root()) for n in {args.images, args.resnet18_images}}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        case: {c: [] for c in contenders_of(case) if c in args.contenders} for case in args.cases
    }
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for case, by_contender in runs.items():
                for name in by_contender:
                    out = Path(tmp) / f"{case}-{name}-{round_}"
                    out.mkdir()
                    command = [sys.executable, __file__, "--data-root", args.data_root, "--worker", name]
                    images = images_of(case, args)
                    command += ["--case", case, "--out-dir", str(out), "--folder", str(folders[images])]
                    command += ["--images", str(images), "--epochs", str(args.epochs)]
                    command += ["--batch", str(args.batch), "--workers", str(args.workers)]
                    print(f"== {case}: {name}, round {round_}", flush=True)
                    done = subprocess.run(command, capture_output=True, text=True)
                    if done.returncode:
                        raise SystemExit(f"{name} failed on {case}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
                    by_contender[name].append(json.loads((out / "result.json").read_text()))
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/end_to_end.py " + " ".join(sys.argv[1:]),
        "machine": machine_line(),
        "settings": {k: vars(args)[k] for k in ("images", "resnet18_images", "epochs", "batch", "workers", "rounds")},
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "end_to_end.json").write_text(json.dumps(report, indent=2))
    (args.out / "end_to_end.md").write_text(markdown(report))
    print(markdown(report))


def images_of(case: str, args: argparse.Namespace | dict[str, Any]) -> int:
    settings = args if isinstance(args, dict) else vars(args)
    return int(settings["resnet18_images" if parse_case(case)[2] == "resnet18" else "images"])


def images_per_second(run: dict[str, Any], images: int, batch: int) -> float:
    """Steady state: the images of one epoch (full batches) over the median epoch after the first."""
    epochs = run["epoch_seconds"][1:] or run["epoch_seconds"]
    return (images // batch) * batch / statistics.median(epochs)


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        "# End to end: the same pretraining in contrastkit, lightly-train and lightly 1.6",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; {report['machine']}.  ",
        f"{s['images']} CIFAR-10 images ({s['resnet18_images']} for ResNet-18) at 32 px, {s['epochs']} epochs, batch {s['batch']}, {s['workers']} loader "
        f"workers; contenders alternate for {s['rounds']} rounds, each in its own process. Images/s: one epoch's "
        "images over the median epoch after the first, timed by the same Lightning callback in every contender. "
        "kNN: top-1 (k=20, cosine) of the trained backbone, 2000 test images against the training images, "
        "mean over rounds.",
        "",
    ]
    for case, by_contender in report["runs"].items():
        method, data, body = parse_case(case)
        title = {"simclr": "SimCLR", "moco": "MoCo v2"}[method]
        source = "a folder of PNG files" if data == "folder" else "the in-memory copy"
        lines += [f"## {title}, {body}, {source}", ""]
        lines += [
            "| contender | images/s | median epoch (s) | training call (s) | peak RSS (MiB) | kNN top-1 | contrastkit / this |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        speed = {
            n: statistics.median(images_per_second(r, images_of(case, s), int(s["batch"])) for r in rs)
            for n, rs in by_contender.items()
            if rs
        }
        for name, rs in by_contender.items():
            if not rs:
                continue
            epoch = statistics.median(e for r in rs for e in (r["epoch_seconds"][1:] or r["epoch_seconds"]))
            wall = statistics.median(r["train_wall"] for r in rs)
            rss = max(r["peak_rss_mib"] for r in rs)
            knn = statistics.mean(r["knn_top1"] for r in rs)
            ratio = f"{speed['contrastkit'] / speed[name]:.2f}x" if "contrastkit" in speed else "–"
            lines.append(f"| {name} | {speed[name]:.0f} | {epoch:.1f} | {wall:.0f} | {rss:.0f} | {knn:.1f} | {ratio} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
