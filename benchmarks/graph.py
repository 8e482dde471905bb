"""MVGRL reproduced on real graphs, with a torch_geometric reference timed in the same run.

Run:  python benchmarks/graph.py --data-root ../shared/data   (over an hour on 2 cores; IMDB-BINARY alone ~35 min)
      python benchmarks/graph.py --data-root ../shared/data --seeds 0 --graph-seeds 0   (quicker)

Accuracy (the shipped recipes through ``contrastkit.pipeline.train``, i.e. ``contrastkit train``):
node classification on Cora and CiteSeer (Planetoid public split; logistic regression x 50 on
frozen embeddings; mean ± std over training seeds) and graph classification on MUTAG, PTC_MR
and IMDB-BINARY (10-fold CV linear SVM; mean ± std over seeds of the CV means).

Speed on Cora (one process, epochs interleaved, median): our MVGRL epoch against a reference
MVGRL written directly on torch_geometric + torch (no contrastkit code) that follows the
official code — batch of 4 windows of 2000 nodes, dense GCN, ``nn.Bilinear`` discriminator —
and the same reference with the discriminator written as a matmul. Peak extra memory of one
epoch from the CPU allocator's events. Results: ``benchmarks/results/graph.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contrastkit.config import apply_overrides, load_recipe
from contrastkit.pipeline.run import train
from harness import peak_mib

RESULTS = Path(__file__).parent / "results"
PAPER = {"cora": 86.8, "citeseer": 73.3, "mutag": 89.7, "ptc_mr": 62.5, "imdb-binary": 74.2}
TARGET = {"cora": 83.5, "citeseer": 72.5, "mutag": 89.0, "ptc_mr": 61.0, "imdb-binary": 73.0}
NODE_RECIPES = {"cora": "mvgrl-cora", "citeseer": "mvgrl-citeseer"}
GRAPH_RECIPES = {"mutag": "mvgrl-mutag", "ptc_mr": "mvgrl-ptc", "imdb-binary": "mvgrl-imdb-b"}
RECORDED_SETTINGS = (
    "method.layers",
    "data.batch_size",
    "optim.epochs",
    "method.train_encoders",
    "method.official_padding",
)
"""Recipe settings stored with each graph-level run, so the report says what each number was trained with."""


# --- the reference: torch_geometric data utilities + plain torch, as the official node code -------


class _RefGCN(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.act = nn.PReLU()
        nn.init.xavier_uniform_(self.fc.weight)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return self.act(torch.bmm(adj, self.fc(x)) + self.bias)


class _RefMVGRL(nn.Module):
    def __init__(self, in_dim: int, hidden: int, bilinear: bool) -> None:
        super().__init__()
        self.gcn1, self.gcn2 = _RefGCN(in_dim, hidden), _RefGCN(in_dim, hidden)
        self.bilinear = bilinear
        self.disc = nn.Bilinear(hidden, hidden, 1)
        nn.init.xavier_uniform_(self.disc.weight)
        nn.init.zeros_(self.disc.bias)

    def score(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if self.bilinear:
            return self.disc(h, c.unsqueeze(1).expand_as(h).contiguous()).squeeze(-1)
        return (h @ (c @ self.disc.weight[0].t()).unsqueeze(-1)).squeeze(-1) + self.disc.bias

    def forward(self, x, adj, diff, x_neg) -> torch.Tensor:  # type: ignore[no-untyped-def]
        h1, h2 = self.gcn1(x, adj), self.gcn2(x, diff)
        c1, c2 = torch.sigmoid(h1.mean(1)), torch.sigmoid(h2.mean(1))
        h3, h4 = self.gcn1(x_neg, adj), self.gcn2(x_neg, diff)
        return torch.cat([self.score(h2, c1), self.score(h1, c2), self.score(h4, c1), self.score(h3, c2)], dim=1)


def _reference_data(root: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cora through torch_geometric: row-normalised features, A^ and exact PPR (GDC) dense."""
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import GDC
    from torch_geometric.utils import to_dense_adj

    scratch = tempfile.mkdtemp()
    shutil.copytree(Path(root) / "planetoid" / "Cora", Path(scratch) / "Cora")
    data = Planetoid(scratch, "Cora")[0]
    x = data.x / data.x.sum(1, keepdim=True).clamp_min(1e-12)
    a = to_dense_adj(data.edge_index, max_num_nodes=data.num_nodes)[0] + torch.eye(data.num_nodes)
    d = a.sum(1).rsqrt()
    a_hat = d[:, None] * a * d[None, :]
    gdc = GDC(
        self_loop_weight=1,
        normalization_in="sym",
        normalization_out=None,
        diffusion_kwargs={"method": "ppr", "alpha": 0.2},
        sparsification_kwargs={"method": "threshold", "eps": 1e-12},
    )
    diffused = gdc(data.clone())
    s = to_dense_adj(diffused.edge_index, edge_attr=diffused.edge_attr, max_num_nodes=data.num_nodes)[0]
    shutil.rmtree(scratch, ignore_errors=True)
    return x, a_hat, s


def _reference_epoch(model: _RefMVGRL, opt: torch.optim.Optimizer, x, a_hat, s, g: torch.Generator) -> None:  # type: ignore[no-untyped-def]
    size, batch = 2000, 4
    idx = torch.randint(0, x.shape[0] - size + 1, (batch,), generator=g).tolist()
    xs = torch.stack([x[i : i + size] for i in idx])
    adj = torch.stack([a_hat[i : i + size, i : i + size] for i in idx])
    diff = torch.stack([s[i : i + size, i : i + size] for i in idx])
    perm = torch.randperm(size, generator=g)
    logits = model(xs, adj, diff, xs[:, perm])
    labels = torch.cat([torch.ones(batch, 2 * size), torch.zeros(batch, 2 * size)], dim=1)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    opt.zero_grad()
    loss.backward()
    opt.step()


def run_speed(root: str, epochs: int, bilinear_epochs: int) -> dict[str, Any]:
    from torch.utils.data import DataLoader, TensorDataset  # noqa: F401  (ours runs outside Lightning here)

    from contrastkit.data.graphs import load_node_dataset
    from contrastkit.methods.mvgrl import MVGRL

    torch.manual_seed(0)
    x, a_hat, s = _reference_data(root)
    g = torch.Generator().manual_seed(0)
    contenders: dict[str, Any] = {}
    for label, bilinear in (("reference, nn.Bilinear (official)", True), ("reference, matmul discriminator", False)):
        model = _RefMVGRL(x.shape[1], 512, bilinear)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        contenders[label] = lambda m=model, o=opt: _reference_epoch(m, o, x, a_hat, s, g)
    ours = MVGRL(load_node_dataset("cora", root))
    opt = torch.optim.Adam(ours.parameters(), lr=1e-3)

    def ours_epoch() -> None:
        loss = ours.training_step(None, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    ours.after_step = lambda loss: None  # type: ignore[method-assign]  (no Trainer: skip logging/early stop)
    contenders["contrastkit MVGRL (same sampler)"] = ours_epoch
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():
        fn()
    for i in range(epochs):
        for name, fn in contenders.items():
            if "Bilinear" in name and i >= bilinear_epochs:
                continue
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    peaks = {k: peak_mib(fn) / 1024 for k, fn in contenders.items()}  # GiB
    ref = medians["reference, matmul discriminator"]
    return {
        "epochs_timed": {k: len(v) for k, v in times.items()},
        "median_epoch_s": medians,
        "vs_matmul_reference": {k: v / ref for k, v in medians.items()},
        "peak_extra_gib": peaks,
    }


def run_accuracy(
    root: str, seeds: list[int], graph_seeds: list[int], accelerator: str, partial: Path, datasets: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, recipe in {**NODE_RECIPES, **GRAPH_RECIPES}.items():
        if datasets and key not in datasets:
            continue
        runs = []
        for seed in seeds if key in NODE_RECIPES else graph_seeds:
            print(f"== {recipe} seed {seed}", flush=True)
            raw = apply_overrides(load_recipe(recipe), [f"trainer.seed={seed}", f"trainer.accelerator={accelerator}"])
            results = train(
                raw,
                data_root=root,
                runs_dir="runs/bench-graph",
                progress=False,
                command=f"contrastkit train {recipe} --data-root {root} --set trainer.seed={seed} "
                f"--accelerator {accelerator}",
            )
            metric = results["metrics"][0]["key"]
            runs.append(
                {
                    "seed": seed,
                    "accuracy": results["final"][metric],
                    "std": results["final"][f"{metric}_std"],
                    "random_init": results["random_init"][metric],
                    "train_seconds": results["train_seconds"],
                    "epochs": _epochs_run(results["run_dir"]),
                    "run_dir": results["run_dir"],
                    "settings": recipe_settings(raw),
                }
            )
            out[key] = runs
            partial.write_text(json.dumps(out, indent=2))  # survives an interrupted run
    return out


def recipe_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """The ``RECORDED_SETTINGS`` of a raw recipe (``None`` where it does not set one)."""
    out = {}
    for dotted in RECORDED_SETTINGS:
        node: Any = raw
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        out[dotted] = node
    return out


def describe_settings(report: dict[str, Any]) -> str:
    """One sentence per graph dataset saying which settings its runs used, from the run records."""
    parts = []
    for key, runs in report["accuracy"].items():
        if key not in GRAPH_RECIPES:
            continue
        seeds_by_setting: dict[str, list[int]] = {}
        for r in runs:
            s = r.get("settings")
            text = (
                f"{s['method.layers']} layers / batch {s['data.batch_size']} / {s['optim.epochs']} epochs"
                + ("" if s["method.train_encoders"] is False else ", encoders trained")
                + ("" if s["method.official_padding"] else ", corrected loss")
                if s
                else "settings not recorded"
            )
            seeds_by_setting.setdefault(text, []).append(r["seed"])
        if len(seeds_by_setting) == 1:
            parts.append(f"{key} {next(iter(seeds_by_setting))}")
        else:
            parts.append(
                f"{key} " + "; ".join(f"{t} (seeds {', '.join(map(str, ss))})" for t, ss in seeds_by_setting.items())
            )
    return ", ".join(parts)


def _epochs_run(run_dir: str) -> int:
    lines = (Path(run_dir) / "metrics.csv").read_text().splitlines()
    return max(0, len(lines) - 1)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# MVGRL on real graphs",
        "",
        f"Command: `{report['command']}`  ",
        f"Accuracy from: `{report.get('accuracy_command', report['command'])}` on "
        f"{report.get('accuracy_machine', report['machine'])}  ",
        f"Date: {report['date']}; {report['machine']}; wall time {report['wall_minutes']:.0f} min.",
        "",
        "| dataset | ours (mean ± std over seeds) | seeds | random-init encoder | target | paper |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, runs in report["accuracy"].items():
        accs = [r["accuracy"] for r in runs]
        init = [r["random_init"] for r in runs]
        spread = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else f" (± {runs[0]['std']:.2f} within run)"
        lines.append(
            f"| {key} | {statistics.mean(accs):.2f}{spread} | {len(accs)} | {statistics.mean(init):.2f} | "
            f">= {TARGET[key]} | {PAPER[key]} |"
        )
    lines += [
        "",
        "Node level: Planetoid public split (not the pyGCN split of the official Cora run, card pitfall 3), "
        "row-normalised features, exact PPR (alpha 0.2), official sampler (4 windows x 2000 nodes), early stopping "
        "on the training loss (patience 20), logistic regression x 50 per seed. Graph level: one-hot label + degree "
        "features, sparse batching, and as the official graph code does: GCN encoders left at their initialisation "
        "and only the heads trained (`method.train_encoders: false`), the loss of its zero-padded batches "
        "(`method.official_padding: true`); 10-fold CV LinearSVC on the raw embeddings (C grid-searched inside "
        "folds, primal solver) per seed. Settings of the runs (from their records): "
        f"{describe_settings(report)} (the MUTAG and PTC_MR recipes are the best of "
        "`benchmarks/results/graph_sweep_*.md`).",
    ]
    speed = report.get("speed")
    if speed:
        lines += [
            "",
            "## Speed and memory on Cora (same process, epochs interleaved)",
            "",
            "| implementation | median epoch (s) | x matmul reference | peak extra memory (GiB) | epochs timed |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, t in speed["median_epoch_s"].items():
            lines.append(
                f"| {name} | {t:.2f} | {speed['vs_matmul_reference'][name]:.2f} | "
                f"{speed['peak_extra_gib'][name]:.2f} | {speed['epochs_timed'][name]} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="node-level training seeds")
    parser.add_argument(
        "--graph-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="graph-level training seeds (official: 5)"
    )
    parser.add_argument("--speed-epochs", type=int, default=10)
    parser.add_argument("--bilinear-epochs", type=int, default=3, help="the nn.Bilinear reference is slow")
    parser.add_argument(
        "--skip-accuracy", action="store_true", help="re-time only; keep the last graph.json's accuracy"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--datasets", nargs="+", default=[], choices=[*NODE_RECIPES, *GRAPH_RECIPES])
    parser.add_argument(
        "--accelerator", default="cpu", help="where the accuracy runs train (the speed runs use the CPU)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.skip_speed:
        torch.set_num_threads(2)  # the speed comparison is of this 2-core machine class
    start = time.time()
    report: dict[str, Any] = {
        "command": f"python benchmarks/graph.py --data-root {args.data_root} --seeds {' '.join(map(str, args.seeds))} "
        f"--graph-seeds {' '.join(map(str, args.graph_seeds))} --accelerator {args.accelerator}"
        + (f" --datasets {' '.join(args.datasets)}" if args.datasets else ""),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if args.accelerator == "gpu" and torch.cuda.is_available() else ""),
    }
    if not args.skip_speed:
        report["speed"] = run_speed(args.data_root, args.speed_epochs, args.bilinear_epochs)
        print(json.dumps(report["speed"], indent=2), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "graph.json"
    if args.skip_accuracy and previous.exists():  # re-time only: keep the accuracy of the last full run
        old = json.loads(previous.read_text())
        report["accuracy"], report["accuracy_command"] = old["accuracy"], old.get("accuracy_command", old["command"])
        report["accuracy_machine"] = old.get("accuracy_machine", old["machine"])
    elif args.skip_accuracy:
        report["accuracy"] = {}
    else:
        partial = args.out / "graph_accuracy_partial.json"
        report["accuracy"] = run_accuracy(
            args.data_root, args.seeds, args.graph_seeds, args.accelerator, partial, args.datasets
        )
        report["accuracy_command"] = report["command"]
        report["accuracy_machine"] = report["machine"]
    report["wall_minutes"] = (time.time() - start) / 60
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "graph.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (args.out / "graph.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
