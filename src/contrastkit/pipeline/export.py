"""``contrastkit export``: the trained backbone of a run folder as a file other code can load.

- ``state_dict``: the backbone's weights (``torch.load(FILE, weights_only=True)``), which load into
  ``contrastkit.nn.build_backbone(name, channels, width, image_size)``;
- ``torchvision``: for ``torchvision/<name>`` backbones, torchvision's own keys, which load into
  ``torchvision.models.get_model(name)`` once its classifier is ``nn.Identity()``;
- ``onnx``: the backbone as an ONNX graph (images ``[batch, C, H, W]`` or clips
  ``[batch, C, T, H, W]`` -> features ``[batch, D]``, dynamic batch), through ``torch.onnx``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from contrastkit.nn.backbones import load_run_backbone

__all__ = ["FORMATS", "export_run"]

FORMATS = ("state_dict", "torchvision", "onnx")


def export_run(run_dir: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str]) -> Path:
    """Write the backbone of ``run_dir`` to ``out`` in ``fmt`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the file to write, e.g. {out / 'backbone.pt'}")
    backbone, recipe, channels = load_run_backbone(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    name = recipe.get("model", {}).get("backbone", "")
    if fmt == "state_dict":
        torch.save(backbone.state_dict(), out)
    elif fmt == "torchvision":
        if not name.startswith("torchvision/"):
            raise ValueError(
                f"--format torchvision needs a torchvision/<name> backbone (ImageNet stem); this run trained {name!r} "
                "(use --format state_dict, or train with --set model.backbone=torchvision/resnet18)"
            )
        weights = {k.removeprefix("model."): v for k, v in backbone.state_dict().items()}
        torch.save(weights, out)
    else:
        data = recipe.get("data", {})
        size = int(data.get("image_size", 32))
        is_clip = any(v.dim() == 5 for v in backbone.state_dict().values())
        shape = (2, channels, int(data.get("clip_length", 16)), size, size) if is_clip else (2, channels, size, size)
        example = torch.zeros(shape)
        try:
            import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
        except ImportError:
            raise ValueError("--format onnx needs onnx and onnxscript: pip install 'contrastkit[export]'") from None
        torch.onnx.export(
            backbone,
            (example,),
            str(out),
            dynamo=True,
            verbose=False,
            external_data=False,  # one file: the weights inside, no .onnx.data beside it
            input_names=["inputs"],
            output_names=["features"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}},
        )
    _write_input_spec(run_dir, recipe, channels, fmt, out)
    return out


def _write_input_spec(
    run_dir: str | os.PathLike[str], recipe: dict[str, Any], channels: int, fmt: str, out: Path
) -> Path:
    """``<out>.json`` beside an export: the backbone, what it takes (channels, size, the mean / std
    of [0, 1] pixels it was trained on) and where it came from; ONNX files also carry it inside."""
    import json

    results_file = Path(run_dir) / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    model = recipe.get("model", {})
    spec = {
        "format": fmt,
        "backbone": model.get("backbone"),
        "width": model.get("width"),
        "channels": channels,
        "input": results.get("input"),
        "recipe": recipe.get("name") or results.get("recipe"),
        "run": str(Path(run_dir).resolve()),
    }
    sidecar = out.with_name(out.name + ".json")
    sidecar.write_text(json.dumps(spec, indent=2))
    if fmt == "onnx":
        import onnx

        graph = onnx.load(str(out))
        onnx.helper.set_model_props(graph, {"contrastkit": json.dumps(spec)})
        onnx.save(graph, str(out))
    return sidecar
