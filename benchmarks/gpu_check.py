"""Correctness and speed of the core on a CUDA GPU (run where one is available).

Run:  python benchmarks/gpu_check.py [--out benchmarks/results]

1. The fused InfoNCE / NT-Xent / HCL kernel on CUDA against the straightforward autograd path
   (``reduction="none"``) in float32, bfloat16 and float16 at temperature 0.01 and 0.2:
   loss and gradient agreement, finiteness.
2. MoCHi mixing, the queue and every image method's training step on CUDA.
3. A short ``moco-hcl-digits`` run through the pipeline on the GPU.
4. Forward+backward time of the losses at the loss benchmark's sizes (median of 20, CUDA
   events), ours against the hand-written minimum and the bare matmul in the same process.
Writes ``gpu_check.json`` and ``gpu_check.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from contrastkit.functional import info_nce, mix_hard_negatives, nt_xent

DEV = "cuda"


def check_kernel() -> list[dict[str, Any]]:
    rows = []
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for t in (0.01, 0.2):
            for beta, tau in ((0.0, 0.0), (1.0, 0.1)):
                q = (torch.randn(256, 128, device=DEV) * 10).to(dtype).requires_grad_()
                k = (torch.randn(256, 128, device=DEV) * 10).to(dtype)
                queue = torch.randn(16384, 128, device=DEV).to(dtype)
                kw = dict(temperature=t, beta=beta, tau_plus=tau)
                for name, fused, plain in (
                    (
                        "queue",
                        lambda: info_nce(q, k, queue, **kw),
                        lambda: info_nce(q, k, queue, reduction="none", **kw).mean(),
                    ),
                    ("nt_xent", lambda: nt_xent(q, k, **kw), lambda: nt_xent(q, k, reduction="none", **kw).mean()),
                ):
                    a = fused()
                    (ga,) = torch.autograd.grad(a, q)
                    b = plain()
                    (gb,) = torch.autograd.grad(b, q)
                    rows.append(
                        {
                            "case": name,
                            "dtype": str(dtype).split(".")[-1],
                            "temperature": t,
                            "beta": beta,
                            "tau_plus": tau,
                            "loss": float(a),
                            "loss_diff": abs(float(a) - float(b)),
                            "grad_rel_diff": float(
                                (ga.float() - gb.float()).norm() / gb.float().norm().clamp_min(1e-12)
                            ),
                            "finite": bool(torch.isfinite(a) and torch.isfinite(ga).all()),
                        }
                    )
    return rows


def check_methods() -> dict[str, Any]:
    from contrastkit.data import load_digits
    from contrastkit.methods import DenseCL, MoCHi, MoCo, SimCLR
    from contrastkit.nn import ConvNetSmall
    from contrastkit.views import build_augmentation

    digits = load_digits(16)
    aug = build_augmentation("digits", 16, digits.mean, digits.std)
    images = digits.train_images[:128].to(DEV)
    out = {}
    for name, cls, kw in (
        ("simclr_hcl", SimCLR, dict(beta=1.0, tau_plus=0.1)),
        ("moco", MoCo, dict(queue_size=512)),
        ("mochi", MoCHi, dict(queue_size=512, num_hard=64, num_pair_mix=32, num_query_mix=16)),
        ("densecl", DenseCL, dict(queue_size=512, dense_dim=32)),
    ):
        model = cls(ConvNetSmall(1, 8), aug, proj_hidden=64, proj_dim=32, **kw).to(DEV)
        loss = model.step({"input": images, "index": torch.arange(128, device=DEV)}).loss
        loss.backward()
        out[name] = {"loss": float(loss), "finite": bool(torch.isfinite(loss))}
    q, queue = torch.randn(64, 32, device=DEV), torch.randn(512, 32, device=DEV)
    mixed = mix_hard_negatives(q, queue, num_hard=64, num_pair_mix=16, num_query_mix=8)
    out["mochi_mix_unit_norm"] = bool(torch.allclose(mixed.norm(dim=-1), torch.ones(64, 24, device=DEV), atol=1e-5))
    return out


def check_pipeline(tmp: Path) -> dict[str, Any]:
    from contrastkit.config import apply_overrides, load_recipe
    from contrastkit.pipeline import train

    raw = apply_overrides(load_recipe("moco-hcl-digits"), ["trainer.accelerator=gpu", "optim.epochs=5"])
    r = train(raw, runs_dir=tmp, progress=False, command="contrastkit train moco-hcl-digits --accelerator gpu")
    return {
        "knn_top1": r["final"]["knn_top1"],
        "random_init_knn": r["random_init"]["knn_top1"],
        "train_seconds": r["train_seconds"],
        "images_per_second": r["images_per_second"],
    }


def _time(fn: Any, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def time_losses() -> list[dict[str, Any]]:
    rows = []
    t = 0.2
    for size in (4096, 16384, 65536):
        q = torch.randn(256, 128, device=DEV).requires_grad_()
        k = torch.randn(256, 128, device=DEV)
        queue = F.normalize(torch.randn(size, 128, device=DEV), dim=1)
        zeros = torch.zeros(256, dtype=torch.long, device=DEV)

        def floor() -> None:
            out = q @ queue.t()
            out.backward(torch.ones_like(out))

        def hand() -> None:
            qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
            logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ queue.t()], 1) / t
            F.cross_entropy(logits, zeros).backward()

        contenders = {
            "matmul floor": floor,
            "hand-written": hand,
            "contrastkit info_nce": lambda: info_nce(q, k, queue, temperature=t).backward(),
            "contrastkit HCL": lambda: info_nce(q, k, queue, temperature=t, beta=1.0, tau_plus=0.1).backward(),
        }
        ms = {name: _time(fn) for name, fn in contenders.items()}
        rows += [
            {"case": f"queue B=256 K={size}", "contender": n, "ms": v, "vs_hand": v / ms["hand-written"]}
            for n, v in ms.items()
        ]
    for n in (256, 1024, 4096):
        z1 = torch.randn(n, 128, device=DEV).requires_grad_()
        z2 = torch.randn(n, 128, device=DEV).requires_grad_()
        partner = (torch.arange(2 * n, device=DEV) + n) % (2 * n)
        eye = torch.eye(2 * n, dtype=torch.bool, device=DEV)

        def hand_nt() -> None:
            z = F.normalize(torch.cat([z1, z2]), dim=1)
            F.cross_entropy((z @ z.t() / t).masked_fill(eye, float("-inf")), partner).backward()

        contenders = {"hand-written": hand_nt, "contrastkit nt_xent": lambda: nt_xent(z1, z2, temperature=t).backward()}
        ms = {name: _time(fn) for name, fn in contenders.items()}
        rows += [
            {"case": f"in-batch N={n}", "contender": k2, "ms": v, "vs_hand": v / ms["hand-written"]}
            for k2, v in ms.items()
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check.py needs a CUDA GPU")
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    report["kernel"] = check_kernel()
    report["methods"] = check_methods()
    report["pipeline"] = check_pipeline(args.out / "gpu_runs")
    report["timing"] = time_losses()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    worst = max(report["kernel"], key=lambda r: r["grad_rel_diff"])
    lines = [
        f"# GPU check on {report['device']} (torch {report['torch']})",
        "",
        "Command: `python benchmarks/gpu_check.py`",
        "",
        f"- Reduced loss vs per-row path: {len(report['kernel'])} cases (fp32/bf16/fp16, t 0.01/0.2, plain/HCL), "
        f"all finite: {all(r['finite'] for r in report['kernel'])}; largest loss difference "
        f"{max(r['loss_diff'] for r in report['kernel']):.2e}; largest relative gradient difference "
        f"{worst['grad_rel_diff']:.2e} ({worst['case']}, {worst['dtype']}, t={worst['temperature']}).",
        f"- Method steps on CUDA: {json.dumps(report['methods'])}",
        f"- `moco-hcl-digits`, 5 epochs on the GPU: kNN {report['pipeline']['knn_top1']:.2f} "
        f"(random init {report['pipeline']['random_init_knn']:.2f}).",
        "",
        "| case | contender | median ms | x hand-written |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {r['case']} | {r['contender']} | {r['ms']:.3f} | {r['vs_hand']:.2f} |" for r in report["timing"]]
    (args.out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
