"""Where a MOON local step's time goes, against a FedAvg step on the same batch (one process).

Run:  python benchmarks/moon_step.py            (about 30 s on 2 cores)

A FedAvg step is forward + backward + SGD of the party's model; a MOON step adds two no-grad
forwards (the global model and the previous local model, both frozen, card moon.md) and the
model-contrastive term. Timed round-robin, median of 51, on the paper's CIFAR-10 CNN
(``moon_cnn``) with the paper's batch of 64: the ratio MOON step / FedAvg step is the floor a
MOON round can reach against a FedAvg round before data loading and evaluation are counted.
Results: ``benchmarks/results/moon_step.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from contrastkit.federated.model import FederatedModel
from contrastkit.functional import model_contrastive

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=51)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = FederatedModel("moon_cnn", 3, 32, 10)
    frozen = [copy.deepcopy(model).eval(), copy.deepcopy(model).eval()]
    for m in frozen:
        m.requires_grad_(False)
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(10, (args.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)

    def fedavg_step() -> None:
        loss = F.cross_entropy(model(x)[2], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def frozen_forwards() -> None:
        with torch.no_grad():
            frozen[0](x)
            frozen[1](x)

    def moon_step() -> None:
        _, z, logits = model(x)
        with torch.no_grad():
            z_glob, z_prev = frozen[0](x)[1], frozen[1](x)[1]
        loss = F.cross_entropy(logits, y) + 5.0 * model_contrastive(z, z_glob, z_prev[None], temperature=0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    parts = {"FedAvg step": fedavg_step, "two frozen forwards": frozen_forwards, "MOON step": moon_step}
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(3):
        for f in parts.values():
            f()
    for _ in range(args.repeats):
        for name, f in parts.items():
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    base = medians["FedAvg step"]
    report = {
        "command": "python benchmarks/moon_step.py",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "batch": args.batch,
        "median_ms": medians,
        "vs_fedavg_step": {k: v / base for k, v in medians.items()},
    }
    lines = [
        "# MOON local step vs FedAvg local step",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; {report['machine']}; moon_cnn, batch {args.batch}, median of {args.repeats} "
        "round-robin runs.",
        "",
        "| part | median ms | x FedAvg step |",
        "|---|---:|---:|",
        *[f"| {k} | {v:.2f} | {v / base:.2f} |" for k, v in medians.items()],
        "",
        "The two frozen forwards are work MOON cannot skip (their inputs are freshly augmented each epoch); "
        "with this small CNN a forward is a large share of a training step, so the MOON/FedAvg step ratio above "
        "is the floor for the round ratio in `federated_cifar10.md`.",
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "moon_step.json").write_text(json.dumps(report, indent=2))
    (args.out / "moon_step.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
