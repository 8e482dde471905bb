"""Our batched image views against torchvision v2 and kornia on the same batch.

Run:  python benchmarks/views.py                 (32x32 and 96x96, batch 256, 2 torch threads)
      python benchmarks/views.py --repeats 3     (smoke)
Results: ``benchmarks/results/views.{json,md}``.

Every contender makes MoCo v2's views (``moco.md`` §5: RandomResizedCrop scale (0.2, 1),
horizontal flip, ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale p 0.2, Gaussian blur
sigma (0.1, 2) with p 0.5, normalisation) of 256 uint8 images, each image with its own random
draw:
- ours: ``contrastkit.views.ViewAugmentation`` on the batch, with an explicit generator;
- torchvision v2, per image: the usual Dataset-side pipeline, called on each image in turn
  (v2 called once on a batch would give every image the same crop, so it is not the same thing);
- kornia: ``kornia.augmentation`` on the batch (per-sample parameters; it draws from torch's
  global RNG, so a resumed run cannot replay the same views unless that state is restored).
Round-robin over the contenders, median of ``--repeats`` calls, ratios to ours in the same
process (timings on shared CPUs are noisy; the ratios are what to read).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from contrastkit.views.image import PRESETS

RESULTS = Path(__file__).parent / "results"
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def ours(size: int) -> Any:
    aug = PRESETS["moco_v2"](size, MEAN, STD)
    generator = torch.Generator().manual_seed(0)
    return lambda batch: aug(batch, generator)


def torchvision_per_image(size: int) -> Any:
    from torchvision.transforms import v2

    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
    pipeline = v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )
    return lambda batch: torch.stack([pipeline(image) for image in batch])


def kornia_batch(size: int) -> Any:
    import kornia.augmentation as K

    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
    pipeline = torch.nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.2, 1.0)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=0.5),
        K.Normalize(torch.tensor(MEAN), torch.tensor(STD)),
    )
    return lambda batch: pipeline(batch.float().div_(255))


CONTENDERS = {
    "ours (batched)": ours,
    "torchvision v2 (per image)": torchvision_per_image,
    "kornia (batched)": kornia_batch,
}


def measure(size: int, batch: int, repeats: int) -> dict[str, Any]:
    images = torch.randint(
        0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    functions = {}
    for name, build in CONTENDERS.items():
        try:
            functions[name] = build(size)
            functions[name](images[:8])  # warm-up, and a check that it runs
        except ImportError as err:
            print(f"  {name}: not installed ({err})")
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            out = fn(images)
            times[name].append(time.perf_counter() - start)
            assert out.shape == (batch, 3, size, size) and torch.isfinite(out).all(), name
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    base = medians["ours (batched)"]
    return {name: {"ms": ms, "ratio": ms / base} for name, ms in medians.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    for size in args.sizes:
        print(f"== {size}x{size}, batch {args.batch}", flush=True)
        rows[str(size)] = measure(size, args.batch, args.repeats)
        for name, r in rows[str(size)].items():
            print(f"  {name:28s} {r['ms']:8.1f} ms  {r['ratio']:5.2f}x ours", flush=True)
    import torchvision

    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    try:
        import kornia

        versions["kornia"] = kornia.__version__
    except ImportError:
        pass
    command = "python benchmarks/views.py" + (f" --repeats {args.repeats}" if args.repeats != 15 else "")
    report = {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "batch": args.batch,
        "threads": args.threads,
        "cpu": platform.machine(),
        "versions": versions,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "views.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Image views: ours vs torchvision v2 vs kornia",
        "",
        f"`{command}` — {report['date']}; batch {args.batch} of MoCo v2 views, each image its own draw; "
        f"{args.threads} torch threads; " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "Median of round-robin calls; the ratio is to ours in the same process.",
        "",
        "| size | contender | ms per batch | x ours |",
        "|---|---|---:|---:|",
    ]
    for size, contenders in rows.items():
        for name, r in contenders.items():
            lines.append(f"| {size}x{size} | {name} | {r['ms']:.1f} | {r['ratio']:.2f} |")
    (args.out / "views.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
