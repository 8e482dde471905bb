"""CCL (Chen et al., CVPR 2021; ``docs/methods/ccl.md``): supervised distillation into a video student from
frozen teachers of other modalities through compositional embeddings and a class-aware
contrastive loss.

Per teacher ``X`` (audio, image) with features ``f_x`` (frozen: precomputed, or a frozen network's
output): a composition ``f_m = f_x + W_c [normalize(f_x); normalize(f_v)] + b_c`` and its logits
``o_m``; the student's feature ``f_v`` and logits ``o_v``. With ``SNCE`` and the symmetric KL ``J``
of ``functional.class_contrastive`` (temperature per teacher: audio 0.5, image 0.1):

    L_student = CE(o_v, y) + w sum_X [SNCE(f_v, f_m) + SNCE(f_v, f_x) + J(o_v, o_m)]
    L_comp^X  = CE(o_m, y) + SNCE(f_v, f_m) + SNCE(f_m, f_x) + J(o_v, o_m)

``w`` is 1 with one teacher and ``loss_weight`` (0.5) with both. The step follows the official
order: ``L_comp`` backward (graph kept), the student's gradients zeroed, ``L_student`` backward,
both optimisers step; so the composition modules also receive ``L_student``'s gradient
(``official_grad_leak``, on by default as in the code; off detaches the compositions inside
``L_student``). Videos without audio (a zero vector) leave every audio term, not the CE.
``teachers="none"`` is the CE-only baseline; ``direct=True`` replaces the compositions by
``SNCE(f_v, f_x)`` alone (the paper's "direct alignment" arm).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from contrastkit.functional.class_contrastive import symmetric_class_contrastive, symmetric_kl
from contrastkit.methods.base import Batch, ContrastiveMethod, StepOutput
from contrastkit.nn.backbones import Backbone
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.clips import ClipAugmentation

__all__ = ["CCL", "CCLParams", "Composition", "official_update"]

TEMPERATURES = {"audio": 0.5, "image": 0.1}


class CCLParams(MethodParams):
    """Options of ``CCL``.

    Attributes:
        teachers: ``"audio"``, ``"image"``, ``"both"`` (CCL(AI)) or ``"none"`` (CE only).
        direct: align the student to the teachers directly (``SNCE(f_v, f_x)``), no composition.
        loss_weight: ``w`` with both teachers (0.5).
        audio_temperature, image_temperature: ``tau_A`` (0.5), ``tau_I`` (0.1).
        official_grad_leak: the composition modules also descend ``L_student`` (official order).
    """

    name: Literal["ccl"] = "ccl"
    teachers: Literal["audio", "image", "both", "none"] = "both"
    direct: bool = False
    loss_weight: float = Field(0.5, ge=0)
    audio_temperature: float = Field(0.5, gt=0)
    image_temperature: float = Field(0.1, gt=0)
    official_grad_leak: bool = True


class Composition(nn.Module):
    """``f_m = f_x + W_c [normalize(f_x); normalize(f_v)] + b_c`` and ``o_m = W_o f_m + b_o``."""

    def __init__(self, teacher_dim: int, student_dim: int, classes: int) -> None:
        super().__init__()
        self.residual = nn.Linear(teacher_dim + student_dim, teacher_dim)
        self.classifier = nn.Linear(teacher_dim, classes)

    def forward(self, teacher: Tensor, student: Tensor) -> tuple[Tensor, Tensor]:
        joint = torch.cat([F.normalize(teacher, dim=1), F.normalize(student, dim=1)], dim=1)
        composed = teacher + self.residual(joint)
        return composed, self.classifier(composed)


@register_method("ccl", CCLParams, task="distill", summary="CCL: compositional cross-modal distillation (audio/image)")
class CCL(ContrastiveMethod):
    """CCL with a clip-encoder student.

    Args:
        backbone: the student's clip encoder; its ``feature_dim`` must equal the teachers'.
        augmentation: a ``ClipAugmentation`` of the student's clips.
        num_classes: classes of the labels.
        teacher_dims: ``{"audio": D, "image": D}`` widths of the teacher features.
        params: the options (``CCLParams``); keywords named like its fields override them.
        **base: ``ContrastiveMethod`` arguments (optimizer, seed, ...).
    """

    params: CCLParams

    def __init__(
        self,
        backbone: Backbone,
        augmentation: ClipAugmentation,
        params: CCLParams | None = None,
        *,
        num_classes: int,
        teacher_dims: dict[str, int],
        **options: Any,
    ) -> None:
        p, base = CCLParams.resolve(params, options)
        super().__init__(backbone, augmentation, num_classes=num_classes, **base)  # type: ignore[arg-type]
        self.params = p
        teachers = p.teachers
        self.teacher_names = [] if teachers == "none" else ["audio", "image"] if teachers == "both" else [teachers]
        for name in self.teacher_names:
            if teacher_dims[name] != backbone.feature_dim:
                raise ValueError(
                    f"the {name} teacher's features are {teacher_dims[name]}-d but the student's "
                    f"{backbone.feature_dim}-d; CCL contrasts them directly, so they must match"
                )
        self.weight = p.loss_weight if len(self.teacher_names) == 2 else 1.0
        self.temperatures = {"audio": p.audio_temperature, "image": p.image_temperature}
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        self.compositions = nn.ModuleDict(
            {
                name: Composition(teacher_dims[name], backbone.feature_dim, num_classes)
                for name in self.teacher_names
                if not p.direct
            }
        )

    def players(self) -> dict[str, list[nn.Module]]:
        if len(self.compositions) == 0:
            return {"student": [self.backbone, self.classifier]}
        return {"student": [self.backbone, self.classifier], "composition": [self.compositions]}

    def teacher_mask(self, name: str, features: Tensor) -> Tensor:
        """Rows that have this teacher's features (audio: not the all-zero vector)."""
        return features.abs().sum(1) != 0 if name == "audio" else torch.ones(len(features), dtype=torch.bool)

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        """``{"student", "composition"}`` losses of a batch (``composition`` absent without one)."""
        x = self.augmentation(batch["input"], self.generator(0))
        labels = batch["label"]
        f_v = self.backbone(x)
        o_v = self.classifier(f_v)
        student = F.cross_entropy(o_v, labels)
        composition = torch.zeros((), device=f_v.device)
        for name in self.teacher_names:
            f_x, tau = batch[name].float(), self.temperatures[name]
            mask = self.teacher_mask(name, f_x).to(f_v.device)
            if int(mask.sum()) < 2:
                continue
            if self.params.direct:
                student = student + self.weight * symmetric_class_contrastive(f_v, f_x, labels, tau, mask=mask)
                continue
            f_m, o_m = self.compositions[name](f_x, f_v)
            comp_terms = symmetric_class_contrastive(f_v, f_m, labels, tau, mask=mask)
            comp_terms = comp_terms + symmetric_class_contrastive(f_m, f_x, labels, tau, mask=mask)
            ce_m = F.cross_entropy(o_m[mask], labels[mask])
            composition = composition + ce_m + comp_terms + symmetric_kl(o_v, o_m, mask=mask)
            f_m_s, o_m_s = (f_m, o_m) if self.params.official_grad_leak else (f_m.detach(), o_m.detach())
            terms = symmetric_class_contrastive(f_v, f_m_s, labels, tau, mask=mask)
            terms = terms + symmetric_class_contrastive(f_v, f_x, labels, tau, mask=mask)
            student = student + self.weight * (terms + symmetric_kl(o_v, o_m_s, mask=mask))
        out = {"student": student}
        if len(self.compositions):
            out["composition"] = composition
        return out

    def step(self, batch: Batch) -> StepOutput:
        out = self.losses(batch)
        if self.automatic_optimization:
            return StepOutput(out["student"])
        opt_s, opt_c = self.optimizers()  # type: ignore[attr-defined]
        sched = self.lr_schedulers()
        official_update(out, opt_s, opt_c, self.manual_backward)
        for s in sched if isinstance(sched, list) else [sched]:
            if s is not None:
                s.step()
        self.log_terms({"composition_loss": out["composition"]})
        return StepOutput(out["student"])

    @torch.no_grad()
    def predict_logits(self, clips: Tensor) -> Tensor:
        """Student logits of un-augmented clips (eval mode is the caller's choice)."""
        logits: Tensor = self.classifier(self.embed(clips))
        return logits


def official_update(losses: dict[str, Tensor], student: Any, composition: Any, backward: Any = Tensor.backward) -> None:
    """The official code's order: ``L_comp`` backward (graph kept), the student's gradients zeroed,
    ``L_student`` backward, both optimisers step. ``backward(loss, **kw)`` is Lightning's
    ``manual_backward`` in a run."""
    student.zero_grad()
    composition.zero_grad()
    backward(losses["composition"], retain_graph=True)
    student.zero_grad()  # the student learns from L_student only
    backward(losses["student"])
    student.step()
    composition.step()
