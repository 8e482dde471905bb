"""CrossCLR's card protocol on clustered video-text feature pairs: three arms over seeds, and the
objective's speed against the released loss and symmetric InfoNCE.

Run:  python benchmarks/crossmodal.py                       (arms x 5 seeds, then speed)
      python benchmarks/crossmodal.py --seeds 0 --epochs 5 (a smoke pass)
      python benchmarks/crossmodal.py --skip-accuracy      (speed only)
      python benchmarks/crossmodal.py --protocol captions --data-root ../shared/data --skip-speed
                                                           (the real-text protocol, recipe crossclr-captions)
      python benchmarks/crossmodal.py --protocol captions-clips --data-root ../shared/data --skip-speed
                                        (the same pairs end to end: recipe crossclr-captions-clips, 30 epochs)
      python benchmarks/crossmodal.py --text-speed         (MiniLM sentences/s, cache miss and hit)

Protocol (``crossclr.md`` §6, recipe ``crossclr-synthetic``): 60 clusters (6 hubs of 40
near-duplicates), ~516 train / 516 test pairs drawn per seed, MLP encoders 64-128-32, Adam 1e-3,
batch 64, 250 epochs (2000 steps), the same seeds for every arm:

- (A) symmetric InfoNCE: ``intra_weight=0``, no pruning, uniform weights;
- (B) + intra-modal negatives (lambda 0.8), no pruning, uniform weights;
- (C) full CrossCLR (gamma 0.7, tau_w 0.0035).

Connectivity uses cosine similarity (min-max normalised) because the protocol's inputs are
``tanh`` features of both signs (card pitfall 3). Reported: text->video R@1/R@5, median rank,
cluster-level R@1, R@1 of hub-cluster queries, video->text R@1, and the cosine between
different-cluster embeddings, mean ± std over seeds; the card's expected ordering
(C) >= (B) >= (A) on instance and cluster R@1, checked and reported as measured.

Speed (same process, round-robin, median): forward + backward of ``functional.crossclr``
(paper mode fused and on its reference path, official mode) at B in {256, 1024}, d = 256, against a line-by-line transcription
of the released ``CrossCLR_noq`` (CPU, no logger) and against symmetric InfoNCE.
Results: ``benchmarks/results/crossmodal.{json,md}`` (``crossmodal_captions.*`` for the captions
protocol: moving CIFAR-10 objects with written captions encoded by MiniLM, 80 class x direction
clusters, 4,000 train / 400 test pairs, 150 epochs; ``contrastkit.data.captions``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from contrastkit.functional.crossclr import crossclr
from harness import ArmBenchmark, arm_mean, arm_rows, finish, header, holds, median_times, new_report, paired

RECIPES = {
    "clustered": "crossclr-synthetic",
    "captions": "crossclr-captions",
    "captions-clips": "crossclr-captions-clips",
}
BENCH = ArmBenchmark(
    script="crossmodal",
    recipe=lambda args: RECIPES[args.protocol],
    runs_dir="runs/bench-crossmodal",
    seeds=[0, 1, 2, 3, 4],
    arms={
        "(A) symmetric InfoNCE": [
            "method.intra_weight=0",
            "method.prune_threshold=null",
            "method.weight_temperature=null",
        ],
        "(B) + intra negatives": ["method.prune_threshold=null", "method.weight_temperature=null"],
        "(C) CrossCLR": [],
    },
)
ARMS = BENCH.arms
KEYS = ("t2v_r1", "t2v_r5", "t2v_medr", "t2v_cluster_r1", "t2v_hub_r1", "v2t_r1", "video_different_cluster_cos")
HEADER = "t→v R@1 | t→v R@5 | t→v MedR | cluster R@1 | hub R@1 | v→t R@1 | video cos across clusters"


def released_noq(v: torch.Tensor, t: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The released ``CrossCLR_noq.forward`` transcribed line by line for CPU (numpy masks, the
    per-row loop for the diagonal, softmax then log), tau 0.03, tau_w 0.0035, lambda 0.8, gamma 0.7."""
    import numpy as np

    tau, tau_w, lam, gamma = 0.03, 0.0035, 0.8, 0.7
    v, t = F.normalize(v, dim=1), F.normalize(t, dim=1)
    vt, tv = v @ t.t() / tau, t @ v.t() / tau
    vv, tt = v @ v.t() / tau, t @ t.t() / tau
    b = v.shape[0]
    off = 1 - torch.from_numpy(np.eye(b))
    sim_v, sim_t = (x @ x.t()) * off, (y @ y.t()) * off
    avg_v, avg_t = sim_v.mean(1), sim_t.mean(1)
    sv, iv = torch.sort(avg_v)
    st, it = torch.sort(avg_t)
    sv, st = sv / sv.max(dim=-1, keepdim=True)[0], st / st.max(dim=-1, keepdim=True)[0]
    neg_v, neg_t = (vv * off)[:, iv[sv < gamma]], (tt * off)[:, it[st < gamma]]
    sv2, iv2 = torch.sort(avg_v)
    st2, it2 = torch.sort(avg_t)
    sv2, st2 = sv2 / sv2.max(dim=-1, keepdim=True)[0], st2 / st2.max(dim=-1, keepdim=True)[0]
    mask_v, mask_t = torch.ones_like(vt), torch.ones_like(tv)
    mask_v[:, iv2[sv2 > gamma]] = 0
    mask_t[:, it2[st2 > gamma]] = 0
    for i in range(b):
        if mask_v[i, i] == 0:
            mask_v[i, i] = 1
        if mask_t[i, i] == 0:
            mask_t[i, i] = 1
    logits_v = torch.cat([vt * mask_v, lam * neg_v], dim=1)
    logits_t = torch.cat([tv * mask_t, lam * neg_t], dim=1)
    eye = torch.from_numpy(np.eye(b))
    pos_v = torch.cat([eye, torch.zeros_like(neg_v)], dim=1)
    pos_t = torch.cat([eye, torch.zeros_like(neg_t)], dim=1)
    loss_v = -torch.log((F.softmax(logits_v, dim=1) * pos_v).sum(1))
    loss_t = -torch.log((F.softmax(logits_t, dim=1) * pos_t).sum(1))
    w_v, w_t = avg_v / sum(avg_v), avg_t / sum(avg_t)
    loss_v = sum(loss_v * torch.exp(w_v / tau_w)) / sum(torch.exp(w_v / tau_w))
    loss_t = sum(loss_t * torch.exp(w_t / tau_w)) / sum(torch.exp(w_t / tau_w))
    return (loss_v + loss_t) / 2


def run_speed(repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"repeats": repeats, "sizes": {}}
    for b in (256, 1024):
        g = torch.Generator().manual_seed(b)
        v0, t0 = torch.randn(b, 256, generator=g), torch.randn(b, 256, generator=g)
        x, y = torch.rand(b, 256, generator=g), torch.rand(b, 256, generator=g)

        def timed(fn: Any) -> Any:
            def run() -> None:
                v, t = v0.clone().requires_grad_(True), t0.clone().requires_grad_(True)
                fn(v, t).backward()

            return run

        def infonce(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            logits = F.normalize(v, dim=1) @ F.normalize(t, dim=1).t() / 0.03
            target = torch.arange(len(v))
            return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))

        contenders = {
            "symmetric InfoNCE": timed(infonce),
            "released CrossCLR_noq (transcribed)": timed(lambda v, t: released_noq(v, t, x, y)),
            "crossclr, official mode": timed(lambda v, t: crossclr(v, t, x, y, mode="official")),
            "crossclr, paper mode": timed(lambda v, t: crossclr(v, t, x, y)),
            "crossclr, paper mode, reference path": timed(lambda v, t: crossclr(v, t, x, y, fused=False)),
        }
        medians = median_times(contenders, repeats)
        out["sizes"][str(b)] = {
            "median_s": medians,
            "official_over_released": medians["crossclr, official mode"]
            / medians["released CrossCLR_noq (transcribed)"],
            "paper_over_released": medians["crossclr, paper mode"] / medians["released CrossCLR_noq (transcribed)"],
            "paper_over_infonce": medians["crossclr, paper mode"] / medians["symmetric InfoNCE"],
            "reference_over_infonce": medians["crossclr, paper mode, reference path"] / medians["symmetric InfoNCE"],
            "official_over_infonce": medians["crossclr, official mode"] / medians["symmetric InfoNCE"],
        }
        with torch.no_grad():
            diff = float(
                (
                    crossclr(v0.double(), t0.double(), x.double(), y.double(), mode="official")
                    - released_noq(v0.double(), t0.double(), x.double(), y.double())
                ).abs()
            )
        out["sizes"][str(b)]["abs_difference_float64"] = diff
    return out


def run_text_speed(count: int = 2000) -> dict[str, Any]:
    """Sentences per second of ``encode_texts`` with the offline MiniLM: a cache miss (encoding)
    and a hit (reading the cached array), on the captions protocol's sentences."""
    import tempfile

    from contrastkit.data.captions import caption
    from contrastkit.nn.text import MiniLMEncoder, encode_texts

    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    g = torch.Generator().manual_seed(0)
    sentences = [
        caption(names[int(torch.randint(10, (1,), generator=g))], i % 8, 1.0 + (i % 7) / 7, i % 6, i % 3)
        for i in range(count)
    ]
    encoder = MiniLMEncoder()
    encode_texts(sentences[:64], encoder)  # warm-up
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        encode_texts(sentences, encoder, cache_dir=cache)
        miss = time.perf_counter() - start
        hits = []
        for _ in range(5):
            start = time.perf_counter()
            encode_texts(sentences, encoder, cache_dir=cache)
            hits.append(time.perf_counter() - start)
    hit = statistics.median(hits)
    return {
        "sentences": count,
        "miss_per_s": count / miss,
        "hit_per_s": count / hit,
        "threads": torch.get_num_threads(),
    }


def markdown(report: dict[str, Any]) -> str:
    title = {
        "clustered": "clustered video-text feature pairs",
        "captions": "moving CIFAR-10 objects with written captions (real MiniLM text features)",
        "captions-clips": "the captions protocol end to end (tiny 3D CNN on raw clips, real MiniLM text features)",
    }[report.get("protocol", "clustered")]
    if report.get("text_speed"):
        title = "its text features: the offline MiniLM's throughput"
    lines = header(f"CrossCLR on {title}", report)
    runs = report.get("accuracy")
    if runs:
        first = next(iter(runs.values()))
        keys = [k for k in KEYS if k in first[0]["final"]]  # no hub queries in the captions protocol
        columns = " | ".join(h for k, h in zip(KEYS, HEADER.split(" | "), strict=True) if k in keys)
        lines += [f"| arm | {columns} |", "|---|" + "---:|" * len(keys), *arm_rows(runs, keys)]
        a, b, c = list(ARMS)
        lines += ["", "Expected (card §6): (C) >= (B) >= (A) on instance and cluster R@1. Measured (means):"]
        for key, name in (
            ("t2v_r1", "instance R@1"),
            ("t2v_cluster_r1", "cluster R@1"),
            ("t2v_hub_r1", "hub-query R@1"),
        ):
            if key not in keys:
                continue
            va, vb, vc = (arm_mean(runs, arm, key) for arm in (a, b, c))
            lines.append(f"- {name}: (C) {vc:.2f}, (B) {vb:.2f}, (A) {va:.2f} — {holds(vc >= vb >= va)}")
            pairs = paired(runs[a], runs[c])
            wins = sum(rc["final"][key] >= ra["final"][key] for ra, rc in pairs)
            lines.append(f"  - (C) >= (A) in {wins}/{len(pairs)} seeds")
    text = report.get("text_speed")
    if text:
        lines += [
            "",
            f"## Text features (`encode_texts`, offline MiniLM, {text['sentences']} caption sentences, "
            f"{text['threads']} threads)",
            "",
            f"- cache miss (encoding): **{text['miss_per_s']:.0f} sentences/s**",
            f"- cache hit (reading the cached array; median of 5): **{text['hit_per_s']:.0f} sentences/s**",
        ]
    speed = report.get("speed")
    if speed:
        lines += [
            "",
            f"## Speed (forward + backward, one process, round-robin, median of {speed['repeats']}; d = 256)",
            "",
            "| B | symmetric InfoNCE (s) | released, transcribed (s) | official mode (s) | paper mode (s) | "
            "paper, reference path (s) | official / released | paper / released | paper / InfoNCE | "
            "reference path / InfoNCE |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for b, s in speed["sizes"].items():
            m = s["median_s"]
            reference = m.get("crossclr, paper mode, reference path", float("nan"))
            lines.append(
                f"| {b} | {m['symmetric InfoNCE']:.4f} | {m['released CrossCLR_noq (transcribed)']:.4f} | "
                f"{m['crossclr, official mode']:.4f} | {m['crossclr, paper mode']:.4f} | {reference:.4f} | "
                f"{s['official_over_released']:.2f}x | {s['paper_over_released']:.2f}x | {s['paper_over_infonce']:.2f}x | "
                f"{s.get('reference_over_infonce', float('nan')):.2f}x |"
            )
        lines += [
            "",
            "Paper mode is the default call (`fused=None`: the fused kernel on CPU); the reference path is "
            "`fused=False`. Targets: <= 1.0x the released loss, <= 3x symmetric InfoNCE. "
            "Official mode and the transcription agree to "
            + ", ".join(f"{s['abs_difference_float64']:.1e} (B={b})" for b, s in speed["sizes"].items())
            + " in float64.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = BENCH.parser(__doc__.splitlines()[0], speed=True, merge_only=True)
    parser.add_argument("--protocol", choices=sorted(RECIPES), default="clustered")
    parser.add_argument("--data-root", help="a folder with cifar10/ (the captions protocol)")
    parser.add_argument("--text-speed", action="store_true", help="only the text-feature throughput")
    args = parser.parse_args()
    start = time.time()
    command = BENCH.command(parser, args)
    if args.merge_only:
        args.seeds, args.skip_accuracy, args.skip_speed = [], True, True
    report = {"protocol": args.protocol, **new_report(command, [] if args.skip_accuracy else args.seeds)}
    if args.text_speed:
        report["seeds"] = []
        report["text_speed"] = run_text_speed()
    else:
        if not args.skip_accuracy:
            report["accuracy"] = BENCH.run_arms(args)
        if not args.skip_speed:
            report["speed"] = run_speed(args.speed_repeats)
    stem = "crossmodal" + ("" if args.protocol == "clustered" else f"_{args.protocol}")
    stem += "_smoke" if args.epochs else ""
    stem += "_speed" if args.skip_accuracy and not args.merge_only else ""
    finish(report, args, "crossmodal_text_speed" if args.text_speed else stem, markdown, start)


if __name__ == "__main__":
    main()
