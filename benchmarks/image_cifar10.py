"""Image pretraining on the CIFAR-10 copy: SimCLR, HCL, MoCo v2, MoCHi, DenseCL and random init.

Run:  python benchmarks/image_cifar10.py --data-root ../shared/data          (about 30 min on 2 cores)
      python benchmarks/image_cifar10.py --data-root ../shared/data --seeds 0 --epochs 2   (a smoke pass)

Protocol (CPU-sized, moco.md §10 / hcl.md §7 / mochi.md §7 / densecl.md §6): the shipped
``*-cifar10`` recipes — stratified 10k-image training subset, the full 10k test split,
ConvNetSmall width 16, batch 256, 30 epochs, the same seeds for every method. Each run is a
normal ``contrastkit train`` run folder under ``runs/bench-image``. Reported per method: kNN
top-1 (k=200, bank = the 10k training images) and a linear probe on frozen features (mean and
std over seeds), DenseCL's 2x2-mosaic quadrant probe against MoCo and random init, and the
speed comparisons (same process, round-robin): our MoCo v2 training step against one built
from lightly's documented parts (same backbone, batch and views), and DenseCL's step over
MoCo's. Results: ``benchmarks/results/image_cifar10.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from contrastkit.config import apply_overrides, load_recipe, validate
from contrastkit.evaluation.dense_probe import quadrant_probe
from contrastkit.methods.base import ContrastiveMethod
from contrastkit.pipeline.run import train
from contrastkit.pipeline.tasks.images import image_method as build_method
from contrastkit.pipeline.tasks.images import image_splits as build_data

RESULTS = Path(__file__).parent / "results"
RUNS = "runs/bench-image"
METHODS = {
    "SimCLR": "simclr-cifar10",
    "HCL (beta 1, tau+ 0.1)": "hcl-cifar10",
    "MoCo v2": "moco-cifar10",
    "MoCHi (256, 256, 128)": "mochi-cifar10",
    "DenseCL (lambda 0.5)": "densecl-cifar10",
}


def _load(path: str) -> ContrastiveMethod:
    run = Path(path)
    import yaml

    recipe = validate(yaml.safe_load((run / "recipe.yaml").read_text()))
    splits = build_data(recipe, ARGS.data_root)
    method = build_method(recipe, splits)
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    method.load_state_dict(state["state_dict"])
    return method.eval()


def _quadrant(method: ContrastiveMethod, recipe_name: str, seed: int) -> float:
    recipe = validate(load_recipe(recipe_name))
    splits = build_data(recipe, ARGS.data_root)
    method.eval()
    return quadrant_probe(
        method.backbone.forward_map,
        method.preprocess,
        (splits.train_images, splits.train_labels),
        (splits.test_images, splits.test_labels),
        splits.num_classes,
        seed=seed,
    )


def run_accuracy(seeds: list[int], epochs: int | None) -> dict[str, Any]:
    per_method: dict[str, list[dict[str, Any]]] = {}
    random_init: list[dict[str, Any]] = []
    quadrant: dict[str, list[float]] = {"random init": [], "MoCo v2": [], "DenseCL (lambda 0.5)": []}
    for seed in seeds:
        for label, recipe_name in METHODS.items():
            raw = apply_overrides(load_recipe(recipe_name), [f"trainer.seed={seed}"])
            if epochs:
                raw = apply_overrides(raw, [f"optim.epochs={epochs}"])
            print(f"== {label} seed {seed}", flush=True)
            command = f"contrastkit train {recipe_name} --data-root {ARGS.data_root} --set trainer.seed={seed}"
            results = _finished_run(raw, recipe_name) if ARGS.reuse else None
            if results is None:
                results = train(raw, data_root=ARGS.data_root, runs_dir=RUNS, command=command, progress=False)
            per_method.setdefault(label, []).append(results)
            if label == "MoCo v2":
                random_init.append(results["random_init"])
                quadrant["random init"].append(_quadrant(_fresh(raw, seed), recipe_name, seed))
            if label in quadrant and label != "random init":
                quadrant[label].append(_quadrant(_load(results["run_dir"]), recipe_name, seed))
    return {"per_method": per_method, "random_init": random_init, "quadrant": quadrant}


def _finished_run(raw: dict[str, Any], recipe_name: str) -> dict[str, Any] | None:
    """The results of a finished run folder under ``RUNS`` with exactly this resolved recipe, if any."""
    import yaml

    wanted = validate(raw)
    for run in sorted((Path(RUNS) / recipe_name).glob("*/results.json"), reverse=True):
        if validate(yaml.safe_load((run.parent / "recipe.yaml").read_text())) == wanted:
            print(f"   reusing {run.parent}", flush=True)
            return dict(json.loads(run.read_text()))
    return None


def _fresh(raw: dict[str, Any], seed: int) -> ContrastiveMethod:
    """The architecture at the same random initialisation a run with this seed starts from."""
    import lightning as L

    recipe = validate(raw)
    L.seed_everything(seed, verbose=False)
    splits = build_data(recipe, ARGS.data_root)
    return build_method(recipe, splits)


# --- speed -----------------------------------------------------------------------------------


def _lightly_moco(ours: ContrastiveMethod, queue_size: int, temperature: float, m: float) -> Any:
    """MoCo v2 from lightly's documented parts, on a copy of our backbone (same architecture)."""
    from lightly.loss import NTXentLoss
    from lightly.models.modules import MoCoProjectionHead
    from lightly.models.utils import batch_shuffle, batch_unshuffle, deactivate_requires_grad, update_momentum

    backbone = copy.deepcopy(ours.backbone)
    head = MoCoProjectionHead(backbone.feature_dim, 512, 128)
    backbone_m, head_m = copy.deepcopy(backbone), copy.deepcopy(head)
    deactivate_requires_grad(backbone_m)
    deactivate_requires_grad(head_m)
    criterion = NTXentLoss(temperature=temperature, memory_bank_size=(queue_size, 128))
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.06, momentum=0.9, weight_decay=5e-4)

    def step(x_q: torch.Tensor, x_k: torch.Tensor) -> None:
        update_momentum(backbone, backbone_m, m)
        update_momentum(head, head_m, m)
        q = head(backbone(x_q))
        with torch.no_grad():
            shuffled, order = batch_shuffle(x_k)
            k = batch_unshuffle(head_m(backbone_m(shuffled)), order)
        loss = criterion(q, k)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def run_speed(repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    moco_recipe = validate(load_recipe("moco-cifar10"))
    splits = build_data(moco_recipe, ARGS.data_root)
    images = splits.train_images[:256]
    indices = torch.arange(256)
    contenders: dict[str, Any] = {}
    for label, name in (("contrastkit MoCo v2", "moco-cifar10"), ("contrastkit DenseCL", "densecl-cifar10")):
        method = build_method(validate(load_recipe(name)), splits)
        opt = torch.optim.SGD(method.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)

        def ours(method: ContrastiveMethod = method, opt: torch.optim.Optimizer = opt) -> None:
            method.on_train_batch_start(None, 0)
            loss = method.step({"input": images, "index": indices}).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        contenders[label] = ours
    reference = build_method(moco_recipe, splits)
    lightly_step = _lightly_moco(reference, 4096, 0.2, 0.99)
    g = torch.Generator().manual_seed(0)

    def lightly_moco() -> None:
        x_q, x_k = reference.augmentation(images, g), reference.augmentation(images, g)  # the same view cost as ours
        lightly_step(x_q, x_k)

    contenders["lightly MoCo v2 (same backbone, batch, views)"] = lightly_moco
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    heavy = _overhead_on_resnet18(images, indices, ARGS.resnet18_repeats)
    return {
        "densecl_over_moco_step_resnet18": heavy,
        "resnet18_repeats": ARGS.resnet18_repeats,
        "batch": 256,
        "repeats": repeats,
        "median_step_s": medians,
        "images_per_second": {k: 256 / v for k, v in medians.items()},
        "ours_vs_lightly_throughput": medians["lightly MoCo v2 (same backbone, batch, views)"]
        / medians["contrastkit MoCo v2"],
        "densecl_over_moco_step": medians["contrastkit DenseCL"] / medians["contrastkit MoCo v2"],
        "note": "our MoCo uses split BN (4 splits) + ShuffleBN as the card requires; lightly's parts use plain BN "
        "and an in-device shuffle (a no-op for plain BN on one device)",
    }


def _overhead_on_resnet18(images: torch.Tensor, indices: torch.Tensor, repeats: int) -> float:
    """DenseCL/MoCo step-time ratio with a full-width ResNet-18 backbone: closer to the paper's
    proportions, where the backbone, not the dense loss, dominates the step."""
    splits = build_data(validate(load_recipe("moco-cifar10")), ARGS.data_root)
    steps = {}
    for name in ("moco-cifar10", "densecl-cifar10"):
        raw = apply_overrides(load_recipe(name), ["model.backbone=resnet18", "model.width=64"])
        method = build_method(validate(raw), splits)
        opt = torch.optim.SGD(method.parameters(), lr=0.06, momentum=0.9)

        def step(method: ContrastiveMethod = method, opt: torch.optim.Optimizer = opt) -> None:
            method.on_train_batch_start(None, 0)
            loss = method.step({"input": images, "index": indices}).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[name] = step
    times: dict[str, list[float]] = {k: [] for k in steps}
    for fn in steps.values():
        fn()
    for _ in range(repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["densecl-cifar10"]) / statistics.median(times["moco-cifar10"])


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _ordering(acc: dict[str, Any], better: str, than: str) -> str:
    runs = acc["per_method"]
    if better not in runs or than not in runs:
        return f"- {better} >= {than}: not measured"
    a = [r["final"]["knn_top1"] for r in runs[better]]
    b = [r["final"]["knn_top1"] for r in runs[than]]
    pa = [r["final"]["linear_probe_top1"] for r in runs[better]]
    pb = [r["final"]["linear_probe_top1"] for r in runs[than]]
    holds = statistics.mean(a) >= statistics.mean(b) and statistics.mean(pa) >= statistics.mean(pb)
    seeds = [r["seed"] for r in runs[better]]
    paired_knn = [x - y for x, y in zip(a, b)]
    paired_probe = [x - y for x, y in zip(pa, pb)]
    per_seed = ", ".join(f"seed {s}: {k:+.2f} / {p:+.2f}" for s, k, p in zip(seeds, paired_knn, paired_probe))
    return (
        f"- {better} >= {than}: {'holds' if holds else 'does not hold'} (kNN {statistics.mean(a):.2f} vs "
        f"{statistics.mean(b):.2f}, linear {statistics.mean(pa):.2f} vs {statistics.mean(pb):.2f}). Paired "
        f"per-seed difference {better} - {than} (kNN / linear): {per_seed}; mean {_mean_std(paired_knn)} / "
        f"{_mean_std(paired_probe)}; {sum(d > 0 for d in paired_knn)} of {len(seeds)} seeds positive on kNN, "
        f"{sum(d > 0 for d in paired_probe)} on linear."
    )


def markdown(report: dict[str, Any]) -> str:
    acc = report["accuracy"]
    lines = [
        "# Image pretraining on the CIFAR-10 copy (CPU-sized)",
        "",
        f"Command: `{report['command']}`  ",
        *(
            [
                f"`--reuse`: finished run folders under `{RUNS}` with the identical resolved recipe were read back "
                "instead of retrained (an earlier, interrupted invocation of the same command trained them).  "
            ]
            if "--reuse" in report["command"]
            else []
        ),
        *(
            [
                f"Accuracy from: `{report['accuracy_from']['command']}` ({report['accuracy_from']['date']}, "
                f"{report['accuracy_from']['wall_minutes']:.0f} min); this command re-timed the speed section only.  "
            ]
            if "accuracy_from" in report
            else []
        ),
        f"Date: {report['date']}; seeds {report['seeds']}; wall time {report['wall_minutes']:.0f} min on "
        f"{report['machine']}.",
        "",
        "Protocol: shipped `*-cifar10` recipes — stratified 10k training subset, full 10k test split, ConvNetSmall "
        "(width 16), batch 256, same epochs and seeds for every method. kNN: k=200, cosine, bank = the training "
        "subset. Linear probe: frozen features, no augmentation. Mean ± std over seeds.",
        "",
        "| method | kNN top-1 | linear probe top-1 | per-seed kNN |",
        "|---|---:|---:|---|",
    ]
    init_knn = [r["knn_top1"] for r in acc["random_init"]]
    init_probe = [r["linear_probe_top1"] for r in acc["random_init"]]
    per_seed = ", ".join(f"{v:.2f}" for v in init_knn)
    lines.append(f"| random init (same architecture) | {_mean_std(init_knn)} | {_mean_std(init_probe)} | {per_seed} |")
    for label, runs in acc["per_method"].items():
        knn = [r["final"]["knn_top1"] for r in runs]
        probe = [r["final"]["linear_probe_top1"] for r in runs]
        lines.append(f"| {label} | {_mean_std(knn)} | {_mean_std(probe)} | {', '.join(f'{v:.2f}' for v in knn)} |")
    lines += [
        "",
        f"Orderings (means over {len(report['seeds'])} seeds, and the paired difference seed by seed: both methods "
        "of a pair start from the same initialisation and data order; a mean gap smaller than the std of the paired "
        "differences is not evidence):",
        "",
    ]
    lines += [
        _ordering(acc, *pair) for pair in (("HCL (beta 1, tau+ 0.1)", "SimCLR"), ("MoCHi (256, 256, 128)", "MoCo v2"))
    ]
    dense, moco = acc["quadrant"]["DenseCL (lambda 0.5)"], acc["quadrant"]["MoCo v2"]
    if dense and moco:
        verdict = "holds" if statistics.mean(dense) > statistics.mean(moco) else "does not hold"
        lines.append(
            f"- DenseCL > MoCo v2 on the quadrant probe: {verdict} ({statistics.mean(dense):.2f} vs "
            f"{statistics.mean(moco):.2f}). At 30 epochs on 32x32 images the 4x4 ConvNetSmall map has 16 cells; the dense "
            "term's correspondences are coarse and DenseCL's paper gains are on 7x7 ResNet maps after 200-800 epochs."
        )
    lines += [
        "",
        "## Dense features: 2x2-mosaic quadrant probe",
        "",
        "| encoder | quadrant top-1 |",
        "|---|---:|",
    ]
    for label, values in acc["quadrant"].items():
        lines.append(f"| {label} | {_mean_std(values)} |")
    speed = report.get("speed")
    if speed:
        lines += [
            "",
            "## Speed (one process, round-robin training steps, batch 256)",
            "",
            "| contender | median step (s) | images/s |",
            "|---|---:|---:|",
        ]
        for name, t in speed["median_step_s"].items():
            lines.append(f"| {name} | {t:.3f} | {speed['images_per_second'][name]:.0f} |")
        lines += [
            "",
            f"- Our MoCo v2 throughput / lightly-built MoCo v2: **{speed['ours_vs_lightly_throughput']:.2f}x** "
            f"(target >= 1.0). {speed['note']}.",
            f"- DenseCL step / MoCo step: **{speed['densecl_over_moco_step_resnet18']:.2f}x** with a full-width "
            f"ResNet-18 backbone on the same batch (median of {speed.get('resnet18_repeats', '?')} round-robin steps), "
            "where the backbone dominates the step as in the paper (target <= 1.05); "
            f"**{speed['densecl_over_moco_step']:.2f}x** with the benchmark's ConvNetSmall (width 16), where the "
            "dense loss itself (4096 dense anchors x the 4096-entry dense queue: two 1-GFLOP products) is a quarter "
            "of that tiny network's step.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder holding cifar10/{train,test}.npz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipes' epochs (smoke passes)")
    parser.add_argument("--speed-repeats", type=int, default=15)
    parser.add_argument("--resnet18-repeats", type=int, default=9, help="round-robin steps for the ResNet-18 ratio")
    parser.add_argument(
        "--skip-accuracy", action="store_true", help="re-time only; keep the accuracy of the last image_cifar10.json"
    )
    parser.add_argument(
        "--reuse", action="store_true", help=f"reuse finished run folders under {RUNS} with the same resolved recipe"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    ARGS = parser.parse_args()
    start = time.time()
    report: dict[str, Any] = {
        "command": "python benchmarks/image_cifar10.py --data-root "
        + str(ARGS.data_root)
        + (f" --seeds {' '.join(map(str, ARGS.seeds))}" if ARGS.seeds != [0, 1] else "")
        + (f" --epochs {ARGS.epochs}" if ARGS.epochs else "")
        + (" --reuse" if ARGS.reuse else "")
        + (" --skip-accuracy" if ARGS.skip_accuracy else ""),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "seeds": ARGS.seeds,
    }
    report["speed"] = run_speed(ARGS.speed_repeats)
    print(json.dumps(report["speed"], indent=2), flush=True)
    stem = "image_cifar10" if not ARGS.epochs else "image_cifar10_smoke"
    previous = ARGS.out / f"{stem}.json"
    if not ARGS.skip_accuracy:
        report["accuracy"] = run_accuracy(ARGS.seeds, ARGS.epochs)
    elif previous.exists():  # re-time only: keep the accuracy of the last full run, and say where it came from
        old = json.loads(previous.read_text())
        if "accuracy" in old:
            report["accuracy"] = old["accuracy"]
            report["seeds"] = old["seeds"]
            report["accuracy_from"] = old.get("accuracy_from") or {
                "command": old["command"],
                "date": old["date"],
                "wall_minutes": old["wall_minutes"],
            }
    report["wall_minutes"] = (time.time() - start) / 60
    ARGS.out.mkdir(parents=True, exist_ok=True)
    (ARGS.out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str))
    if "accuracy" in report:
        text = markdown(report)
        (ARGS.out / f"{stem}.md").write_text(text)
        print(text)


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
