"""``contrastkit export`` (issue 21 item 4): state dicts that load into our backbone and into
torchvision's model, and ONNX graphs whose output equals PyTorch's within 1e-4."""

from __future__ import annotations

import pytest
import torch
import yaml

from contrastkit.cli import main
from contrastkit.nn.backbones import build_backbone


def _run_folder(tmp_path, backbone_name: str, channels: int = 3, size: int = 32, width: int | None = 8):
    backbone = build_backbone(backbone_name, channels, width, size)
    torch.nn.init.normal_(next(backbone.parameters()))  # not the init a rebuild would give
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    recipe = {
        "method": {"name": "simclr"},
        "model": {"backbone": backbone_name, "width": width},
        "data": {"image_size": size},
    }
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()} | {"head.0.weight": torch.zeros(2, 2)}
    torch.save({"state_dict": state, "epoch": 0, "global_step": 1}, run / "checkpoints" / "last.ckpt")
    return run, backbone.eval()


def test_state_dict_loads_into_our_backbone(tmp_path, capsys):
    run, trained = _run_folder(tmp_path, "convnet_small", channels=1, size=16)
    assert main(["export", str(run), "--out", str(tmp_path / "b.pt")]) == 0
    backbone = build_backbone("convnet_small", 1, 8, 16)
    backbone.load_state_dict(torch.load(tmp_path / "b.pt", weights_only=True))
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(backbone.eval()(x), trained(x))


def test_torchvision_format_loads_into_torchvision_resnet(tmp_path):
    import torchvision

    run, trained = _run_folder(tmp_path, "torchvision/resnet18", width=None)
    assert main(["export", str(run), "--format", "torchvision", "--out", str(tmp_path / "tv.pt")]) == 0
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    model.load_state_dict(torch.load(tmp_path / "tv.pt", weights_only=True))
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x), trained(x))


def test_torchvision_format_of_a_cifar_stem_run_is_one_line(tmp_path, capsys):
    run, _ = _run_folder(tmp_path, "resnet18")
    assert main(["export", str(run), "--format", "torchvision", "--out", str(tmp_path / "x.pt")]) == 2
    assert "needs a torchvision/<name> backbone" in capsys.readouterr().err


def test_onnx_output_equals_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the export extra")
    pytest.importorskip("onnxscript", reason="onnxscript is in the export extra")
    run, trained = _run_folder(tmp_path, "convnet_small")
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "b.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "b.onnx"))
    x = torch.rand(5, 3, 32, 32)  # another batch size than the export's example
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), trained(x).detach(), rtol=1e-4, atol=1e-4)
    # one file with the weights inside (no .onnx.data beside it), its spec inside and beside it
    assert sorted(p.name for p in tmp_path.glob("b.onnx*")) == ["b.onnx", "b.onnx.json"]
    import json

    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "b.onnx")).metadata_props}
    assert json.loads(props["contrastkit"])["backbone"] == "convnet_small"


def test_a_one_channel_torchvision_export_loads_as_the_docs_say(tmp_path):
    import json

    import torchvision

    run, trained = _run_folder(tmp_path, "torchvision/resnet18", channels=1, width=None)
    assert main(["export", str(run), "--format", "torchvision", "--out", str(tmp_path / "tv.pt")]) == 0
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    channels = json.loads((tmp_path / "tv.pt.json").read_text())["channels"]
    if channels != 3:  # docs/images.md: a grayscale run's stem takes one channel
        model.conv1 = torch.nn.Conv2d(channels, 64, 7, 2, 3, bias=False)
    model.load_state_dict(torch.load(tmp_path / "tv.pt", weights_only=True))
    x = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(model.eval()(x), trained(x))


def test_an_export_records_what_the_backbone_takes(tmp_path):
    import json

    runs = tmp_path / "runs"
    assert main(["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs)]) == 0
    (run,) = (runs / "moco-digits").iterdir()
    assert main(["export", str(run), "--out", str(tmp_path / "b.pt")]) == 0
    spec = json.loads((tmp_path / "b.pt.json").read_text())
    assert spec["backbone"] == "convnet_small" and spec["channels"] == 1
    assert spec["input"]["image_size"] == 16 and len(spec["input"]["mean"]) == len(spec["input"]["std"]) == 1


def test_a_run_without_backbone_is_refused(tmp_path, capsys):
    run = tmp_path / "graph"
    (run / "checkpoints").mkdir(parents=True)
    (run / "recipe.yaml").write_text(yaml.safe_dump({"method": {"name": "mvgrl"}}))
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, run / "checkpoints" / "last.ckpt")
    assert main(["export", str(run), "--out", str(tmp_path / "x.pt")]) == 2
    assert "has no backbone to export" in capsys.readouterr().err


def test_external_backbones_by_name():
    from contrastkit.config import ModelSettings

    assert ModelSettings(backbone="torchvision/resnet18").backbone == "torchvision/resnet18"
    backbone = build_backbone("torchvision/resnet18", 1)
    assert backbone(torch.rand(2, 1, 32, 32)).shape == (2, 512)
    assert backbone.model.conv1.kernel_size == (7, 7)  # the ImageNet stem
    with pytest.raises(ValueError, match="no classification model 'nonet'"):
        build_backbone("torchvision/nonet")
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"pip install 'contrastkit\[timm\]'"):
            build_backbone("timm/resnet18")
    else:
        assert build_backbone("timm/resnet18")(torch.rand(2, 3, 32, 32)).shape == (2, 512)


def test_out_naming_a_folder_is_one_line(tmp_path, capsys):
    run, _ = _run_folder(tmp_path, "convnet_small", channels=1, size=16)
    (tmp_path / "exports").mkdir()
    assert main(["export", str(run), "--out", str(tmp_path / "exports")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a folder" in err[0]
