"""Where a pretraining step's time goes, and what the CPU-side options move: the SimCLR step of the
end-to-end benchmark (views on a uint8 batch, two encoder passes, NT-Xent, backward, Adam) on
ConvNetSmall (width 16) and ResNet-18 (width 64, the CIFAR stem) at 32 px, batch 256.

    python benchmarks/step_profile.py --data-root ../shared/data
    python benchmarks/step_profile.py --data-root ../shared/data --backbones convnet_small --repeats 3  (smoke)

Variants, each on a fresh method from the same seed, timed round-robin in one process (median
after a warm-up):

- ``NCHW``: the encoder's convolutions on contiguous NCHW images (what ``contrastkit train`` ran
  before 2026-12-06: ``backbone.memory_format = torch.contiguous_format``);
- ``as shipped``: what ``contrastkit train`` runs — the images turned channels-last inside the
  backbone (``Backbone.memory_format``), the weights as they are;
- ``+ channels_last weights``: the encoder's weights converted to channels-last as well;
- ``fused Adam`` / ``foreach Adam``: the optimiser's other implementations;
- ``torch.compile``: the encoder compiled by inductor (compilation is not timed; ``--no-compile``
  leaves it out, it takes a minute or two).

The NCHW step is also profiled (torch.profiler, top operators by self CPU time).
Results: ``benchmarks/results/step_profile.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch

from contrastkit.config import apply_overrides, load_recipe, validate
from contrastkit.pipeline.tasks.images import image_method, image_splits
from harness import RESULTS, machine_line, median_times, method_step, profile_lines, profile_ops


def _method(backbone: str, data_root: str) -> Any:
    sets = ["data.dataset=cifar10", "data.image_size=32", "data.batch_size=256", "data.train_subset=512"]
    sets += [f"model.backbone={backbone}", f"model.width={16 if backbone == 'convnet_small' else 64}"]
    recipe = validate(apply_overrides(load_recipe("simclr-folder"), sets))
    splits = image_splits(recipe, data_root)
    torch.manual_seed(0)
    return image_method(recipe, splits), splits.train_images[:256]


def variants(backbone: str, data_root: str, compile_: bool) -> dict[str, Callable[[], None]]:
    out = {}
    for name in ("NCHW", "as shipped", "+ channels_last weights", "fused Adam", "foreach Adam", "torch.compile"):
        if name == "torch.compile" and not compile_:
            continue
        method, images = _method(backbone, data_root)
        kwargs = {"fused Adam": {"fused": True}, "foreach Adam": {"foreach": True}}.get(name, {})
        optimizer = torch.optim.Adam(method.parameters(), lr=1e-3, weight_decay=1e-6, **kwargs)
        if name == "NCHW":
            method.backbone.memory_format = torch.contiguous_format
        if name == "+ channels_last weights":
            method.backbone.to(memory_format=torch.channels_last)
        if name == "torch.compile":
            method.backbone.forward = torch.compile(method.backbone.forward)
        out[name] = method_step(method, images, optimizer)
        if name == "torch.compile":
            start = time.perf_counter()
            out[name]()
            print(f"{backbone}: compiled in {time.perf_counter() - start:.0f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--backbones", nargs="+", default=["convnet_small", "resnet18"])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--keep-others", action="store_true", help="keep the other backbones of the last result")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    command = f"python benchmarks/step_profile.py --data-root {args.data_root} --repeats {args.repeats}"
    command += f" --backbones {' '.join(args.backbones)}" + (" --no-compile" if args.no_compile else "")
    report: dict[str, Any] = {
        "command": command + (" --keep-others" if args.keep_others else ""),
        "machine": machine_line(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "backbones": {},
    }
    earlier = RESULTS / "step_profile.json"
    if args.keep_others and earlier.is_file():
        old = json.loads(earlier.read_text())
        report["backbones"] = {k: v for k, v in old["backbones"].items() if k not in args.backbones}
        report["command"] = (
            old["command"] + "`, then `" + report["command"] + " --backbones " + " ".join(args.backbones)
        )
    for backbone in args.backbones:
        steps = variants(backbone, args.data_root, not args.no_compile)
        medians = median_times(steps, args.repeats)
        report["backbones"][backbone] = {
            "repeats": args.repeats,
            "median_s": medians,
            "images_per_s": {k: 256 / v for k, v in medians.items()},
            "over_nchw": {k: medians["NCHW"] / v for k, v in medians.items()},
            "profile": profile_ops(steps["NCHW"], calls=2, top=10),
        }
        print(json.dumps(report["backbones"][backbone]["over_nchw"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "step_profile.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "step_profile.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Where a SimCLR step's time goes (32 px, batch 256), and what CPU options move",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; {report['machine']}.",
    ]
    for backbone, b in report["backbones"].items():
        lines += ["", f"## {backbone} (median of {b['repeats']} round-robin steps)", ""]
        lines += ["| variant | median step (s) | images/s | speed-up over NCHW |"]
        lines += ["|---|---:|---:|---:|"]
        for name, seconds in b["median_s"].items():
            lines.append(f"| {name} | {seconds:.3f} | {b['images_per_s'][name]:.0f} | {b['over_nchw'][name]:.2f}x |")
        lines += profile_lines({f"the NCHW step ({backbone})": b["profile"]})
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
