"""Where a MOON local epoch's time goes, against a FedAvg epoch on the same party (one process).

Run:  python benchmarks/moon_step.py            (about 1 min on 2 cores)

Times the library's own ``contrastkit.federated.local_train`` for one local epoch of
``--steps`` batches of 64 (the paper's batch) on the paper's CIFAR-10 CNN (``moon_cnn``),
augmentation included, with the FedAvg and the MOON settings (mu 5, t 0.5, the global model
and one previous model frozen), round-robin, median of ``--repeats``. Also timed alone, per
batch (``--steps`` calls back to back per sample): MOON's two frozen forwards (stacked, as
``local_train`` runs them, and one by one) and its model-contrastive term (forward + backward).
One torch thread and glibc's heap kept warm, as each party gets in the simulation (two parties train at once on
2 cores). The epoch ratio MOON / FedAvg is what a round's local work costs; a round adds
evaluation and aggregation, shared by both.
Results: ``benchmarks/results/moon_step.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from contrastkit._allocator import keep_heap_warm
from contrastkit.federated import FederatedModel, LocalSettings, local_train
from contrastkit.federated.frozen import FrozenRepresentations
from contrastkit.federated.local import _conv_layout
from contrastkit.functional import model_contrastive

RESULTS = Path(__file__).parent / "results"
BATCH = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="batches per timed local epoch")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (the simulation gives each party 1; 2 parties run at once)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    keep_heap_warm(force=True)  # as the federated ClientApp does with CONTRASTKIT_KEEP_HEAP_WARM=1
    images = torch.randint(0, 256, (args.steps * BATCH, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(10, (len(images),))
    model = FederatedModel("moon_cnn", 3, 32, 10)
    global_model, previous = copy.deepcopy(model), copy.deepcopy(model)

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255).sub_(0.5).div_(0.25)

    def epoch(settings: LocalSettings) -> Callable[[], None]:
        def run() -> None:
            local_train(
                model,
                images,
                labels,
                settings,
                preprocess=preprocess,
                augment=True,
                generator=torch.Generator().manual_seed(0),
                global_model=global_model if settings.algorithm == "moon" else None,
                previous_models=[previous] if settings.algorithm == "moon" else None,
            )

        return run

    x = _conv_layout(preprocess(images[:BATCH]))
    z = torch.randn(BATCH, 256, requires_grad=True)
    z_glob, z_prev = torch.randn(BATCH, 256), torch.randn(BATCH, 256)

    stacked = FrozenRepresentations([global_model, previous])

    def frozen_one_by_one() -> None:
        with torch.no_grad():
            global_model(x)
            previous(x)

    def per_batch(f: Callable[[], object]) -> Callable[[], None]:
        """``--steps`` calls back to back, like the batches of an epoch (so every row is warm alike)."""

        def run() -> None:
            for _ in range(args.steps):
                f()

        return run

    parts = {
        "FedAvg local epoch": epoch(LocalSettings("fedavg", epochs=1)),
        "MOON local epoch": epoch(LocalSettings("moon", epochs=1, mu=5.0, temperature=0.5)),
        "two frozen forwards, stacked as local_train runs them": per_batch(lambda: stacked(x)),
        "two frozen forwards, one by one": per_batch(frozen_one_by_one),
        "model-contrastive term, fwd + bwd": per_batch(
            lambda: model_contrastive(z, z_glob, z_prev, temperature=0.5).backward()
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in parts}
    for f in parts.values():
        f()
    for _ in range(args.repeats):
        for name, f in parts.items():
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    step = medians["FedAvg local epoch"] / args.steps
    report = {
        "command": " ".join(["python benchmarks/moon_step.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "batch": BATCH,
        "steps": args.steps,
        "median_ms": medians,
        "moon_over_fedavg_epoch": medians["MOON local epoch"] / medians["FedAvg local epoch"],
    }
    per_step = {k: v / args.steps for k, v in medians.items()}
    lines = [
        "# MOON local training vs FedAvg local training",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; {report['machine']}; moon_cnn, batch {BATCH}, one local epoch = {args.steps} "
        f"batches through `local_train` (augmentation included), median of {args.repeats} round-robin runs.",
        "",
        "| part | median ms per batch | x FedAvg step |",
        "|---|---:|---:|",
        *[f"| {k} | {v:.2f} | {v / step:.2f} |" for k, v in per_step.items()],
        "",
        f"MOON / FedAvg local epoch: **{report['moon_over_fedavg_epoch']:.2f}x**.",
        "",
        "The two frozen forwards are work MOON cannot skip (their inputs are freshly augmented each epoch). "
        "`local_train` runs them stacked as one network (`federated/frozen.py`: one convolution with the "
        "output channels of both first convolutions, a grouped second convolution, batched linear layers); "
        "the one-by-one row is the plain way, for comparison. Without autograd the CNN's pools take strided "
        "maxima instead of `max_pool2d` (`nn.backbones.MaxPool2x2`, same values). Inputs go to the "
        "convolutions in channels-last layout for every algorithm (`federated/local.py`).",
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "moon_step.json").write_text(json.dumps(report, indent=2))
    (args.out / "moon_step.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
