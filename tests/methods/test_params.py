"""One declaration per option: every registered method built from Python with no options is the
method its params class's defaults build, and registration refuses a constructor that cannot pass
its base class's arguments on."""

from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch

from contrastkit.data.graphs import sbm_graph, sbm_graph_set
from contrastkit.methods import (
    AECR,
    CCL,
    MVGRL,
    VCLR,
    ContrastiveMethod,
    CrossCLR,
    DenseCL,
    LongShortViews,
    MoCHi,
    MoCo,
    MoCoParams,
    MVGRLGraph,
    SimCLR,
    VideoMoCo,
)
from contrastkit.nn import ConvNetSmall, TinyClipCNN
from contrastkit.registry import METHODS, MethodParams, RegistryError, RenamedOption, register_method
from contrastkit.views import build_augmentation
from contrastkit.views.clips import ClipAugmentation

IMAGES = build_augmentation("digits", 16, (0.3,), (0.3,))
CLIPS = ClipAugmentation(build_augmentation("moco_v2", 16, (0.5,) * 3, (0.25,) * 3))
GRAPH = sbm_graph(num_nodes=60, num_classes=3, seed=0)
GRAPHS = sbm_graph_set(num_graphs=12, seed=0)

# the inputs each task hands its methods (AECR: a random extractor; the default loads VGG-19 weights)
INPUTS = {
    SimCLR: lambda: {"backbone": ConvNetSmall(1, 8), "augmentation": IMAGES},
    MoCo: lambda: {"backbone": ConvNetSmall(1, 8), "augmentation": IMAGES},
    MoCHi: lambda: {"backbone": ConvNetSmall(1, 8), "augmentation": IMAGES},
    DenseCL: lambda: {"backbone": ConvNetSmall(1, 8), "augmentation": IMAGES},
    VideoMoCo: lambda: {"backbone": TinyClipCNN(3, 8), "augmentation": CLIPS, "clip_length": 4},
    VCLR: lambda: {"backbone": ConvNetSmall(3, 8), "augmentation": CLIPS, "clip_length": 1},
    LongShortViews: lambda: {"backbone": TinyClipCNN(3, 8), "augmentation": CLIPS},
    CCL: lambda: {
        "backbone": TinyClipCNN(3, 8),
        "augmentation": CLIPS,
        "num_classes": 3,
        "teacher_dims": {"audio": 32, "image": 32},
    },
    CrossCLR: lambda: {"video_dim": 12, "text_dim": 10},
    AECR: lambda: {"extractor": "random-vgg19", "extractor_width_divisor": 16},
    MVGRL: lambda: {"graph": GRAPH},
    MVGRLGraph: lambda: {"dataset": GRAPHS},
}
CLASSES = {"simclr": [SimCLR], "moco": [MoCo], "mochi": [MoCHi], "densecl": [DenseCL], "videomoco": [VideoMoCo],
           "vclr": [VCLR], "longshort": [LongShortViews], "ccl": [CCL], "crossclr": [CrossCLR], "aecr": [AECR],
           "mvgrl": [MVGRL, MVGRLGraph]}  # fmt: skip


def test_every_registered_method_is_covered():
    assert sorted(name for name in METHODS.names() if not name.startswith("toy")) == sorted(CLASSES)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _inputs_and_options(cls, params_type):
    """The task's inputs (random weights drawn from seed 0) and the options they carry."""
    L.seed_everything(0, verbose=False)
    inputs = INPUTS[cls]()
    options = {k: inputs.pop(k) for k in list(inputs) if k in params_type.model_fields}
    return inputs, options | ({"level": "graph"} if cls is MVGRLGraph else {})


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_python_defaults_are_the_params_defaults(name):
    entry = METHODS.get(name)
    for cls in CLASSES[name]:
        inputs, options = _inputs_and_options(cls, entry.params)
        from_python = cls(**inputs, **options)
        inputs, options = _inputs_and_options(cls, entry.params)
        from_params = entry.build(entry.params(**options), **inputs)
        assert type(from_params) is cls
        assert from_python.params == from_params.params == entry.params(**options)
        _same(from_python, from_params)


def test_videomoco_keeps_its_own_scale_from_python():
    model = VideoMoCo(TinyClipCNN(3, 8), CLIPS)
    assert (model.params.temperature, model.params.queue_size, model.params.proj_dim) == (0.07, 1024, 32)
    assert model.criterion.temperature == 0.07 and model.criterion.queue.size == 1024
    assert model.projection[-1].out_features == 32


def test_keyword_options_are_validated_like_a_recipe():
    with pytest.raises(ValueError, match="MoCoParams: temperature: Input should be greater than 0"):
        MoCo(ConvNetSmall(1, 8), IMAGES, temperature=-1.0)
    with pytest.raises(ValueError, match="params must be MoCoParams, got SimCLRParams"):
        MoCo(ConvNetSmall(1, 8), IMAGES, METHODS.get("simclr").params())
    model = MoCo(ConvNetSmall(1, 8), IMAGES, MoCoParams(queue_size=64), temperature=0.1)
    assert (model.params.queue_size, model.params.temperature) == (64, 0.1)


def test_the_old_momentum_key_still_works_with_a_one_line_note():
    with pytest.warns(RenamedOption, match=r"method.momentum is now method.ema_momentum \(the key encoder's EMA"):
        params = MoCoParams.model_validate({"name": "moco", "momentum": 0.9})
    assert params.ema_momentum == 0.9
    with pytest.warns(RenamedOption):
        assert MoCo(ConvNetSmall(1, 8), IMAGES, momentum=0.5).ema_momentum == 0.5
    with pytest.raises(ValueError, match="momentum and ema_momentum name one option"):
        MoCoParams.model_validate({"name": "moco", "momentum": 0.9, "ema_momentum": 0.9})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MoCoParams.model_validate({"name": "moco", "ema_momentum": 0.9})


class _ToyParams(MethodParams):
    name: str = "toy-no-base"
    temperature: float = 0.1


def test_registration_refuses_a_constructor_without_the_base_arguments():
    class Forgetful(ContrastiveMethod):
        def __init__(self, backbone, augmentation, *, temperature: float) -> None:
            super().__init__(backbone, augmentation)

    with pytest.raises(RegistryError) as err:
        register_method("toy-no-base", _ToyParams, task="images")(Forgetful)
    message = str(err.value)
    assert "\n" not in message and "toy-no-base" not in METHODS.names()
    assert "Forgetful.__init__ cannot take ContrastiveMethod's arguments (optimizer, num_classes" in message
    assert "add **base" in message

    class Careful(ContrastiveMethod):
        def __init__(self, backbone, augmentation, *, temperature: float, **base) -> None:
            super().__init__(backbone, augmentation, **base)

    try:
        register_method("toy-no-base", _ToyParams, task="images")(Careful)
        assert (
            METHODS.get("toy-no-base")
            .build(_ToyParams(), backbone=ConvNetSmall(1, 8), augmentation=IMAGES, seed=3)
            .seed
            == 3
        )
    finally:
        METHODS.remove("toy-no-base")


class _Bare(ContrastiveMethod):
    """A plugin-style method whose ``step`` returns the loss tensor itself."""

    answer = "loss"

    def step(self, batch):
        loss = self.backbone(self.views(batch["input"], 1)[0]).pow(2).mean()
        return loss if self.answer == "loss" else {"loss": loss}


def _fit_one_epoch(model):
    from contrastkit.data.module import ArrayDataModule

    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    trainer.fit(model, datamodule=ArrayDataModule({"input": images}, batch_size=8))


def test_step_may_return_the_bare_loss_and_anything_else_is_named():
    from contrastkit.methods import OptimizerSettings

    model = _Bare(ConvNetSmall(1, 8), IMAGES, optimizer=OptimizerSettings("sgd", lr=0.1))
    before = [p.detach().clone() for p in model.backbone.parameters()]
    _fit_one_epoch(model)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))
    model.answer = "dict"
    with pytest.raises(TypeError, match=r"_Bare.step\(\) must return the loss tensor or a StepOutput, got dict"):
        _fit_one_epoch(model)
