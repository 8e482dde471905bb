"""CrossCLR's objective (Zolfaghari et al., ICCV 2021; ``docs/methods/crossclr.md``): cross-modal InfoNCE with
intra-modality negatives, pruning of influential samples from the negative sets, and anchor
weights that grow with connectivity.

For aligned pairs ``(v_i, t_i)`` and pre-encoder inputs ``(x_i, y_i)``:

- connectivity ``c_i = (1/B) sum_{j != i} x_i . x_j`` (per modality; divided by ``B`` as the
  official code does), ``cn_i = c_i / max_j c_j``; influential samples: ``cn_k > gamma``.
  ``connectivity="cosine"`` uses cosine similarities and min-max normalisation instead, for
  inputs that are not non-negative (``docs/methods/crossclr.md``; a deviation from the code);
- ``mode="paper"`` (default): for a video anchor,
  ``l_i = -log d(v_i,t_i) / (d(v_i,t_i) + sum_{k!=i,k!in P} d(v_i,t_k) + lambda sum_{k!=i,k!in P} d(v_i,v_k))``
  with ``d(a,b) = exp(a.b/tau)`` and ``P`` the anchor modality's influential set: pruned
  samples are removed (``-inf`` logits);
- ``mode="official"``: ``CrossCLR_noq`` as released: a pruned cross column's logit is set to
  0 (still one unit in the denominator), the diagonal always kept; the intra block has its
  diagonal logit set to 0, keeps the columns with ``cn < gamma`` (strict: ``cn == gamma``
  leaves the intra block but stays in the cross block) and its logits are multiplied by
  ``lambda`` (0.8 scales logits, not exp terms);
- ``mode="intra_only"``: ``CrossCLR_onlyIntraModality``: the official form without pruning and
  weights;
- weights ``w_i = exp((c_i / sum_j c_j) / tau_w)`` per anchor (uniform when ``tau_w`` is inf
  or in ``intra_only``); ``L = (weighted mean of l^v + weighted mean of l^t) / 2``.

Everything is computed in float32 (float64 stays float64) in log space (``logsumexp``), so
float16 / bfloat16 embeddings give finite losses; no gradient reaches the inputs ``x``, ``y``.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.functional._crossclr_kernel import PaperCrossCLR, eligible
from contrastkit.functional._validation import check_finite as check_finite_inputs
from contrastkit.functional.contrastive import reduce_rows

__all__ = ["MODES", "anchor_weights", "connectivity", "crossclr", "crossclr_rows"]

MODES = ("paper", "official", "intra_only")


@torch.no_grad()
def connectivity(inputs: Tensor, kind: str = "dot") -> tuple[Tensor, Tensor]:
    """``(c, cn)`` ``[B]`` of pre-encoder features ``[B, D]``: the mean similarity to the other rows
    (sum over ``j != i`` divided by ``B``) and its normalised form.

    Args:
        inputs: ``[B, D]`` features (never receives a gradient).
        kind: ``"dot"`` (official: raw dot products, ``cn = c / max c``) or ``"cosine"``
            (cosine similarities, ``cn`` min-max normalised to [0, 1]; then ``c = cn``, so the
            anchor weights stay non-negative).
    """
    if kind not in ("dot", "cosine"):
        raise ValueError(f"connectivity must be 'dot' or 'cosine', got {kind!r}")
    x = inputs.detach().to(torch.promote_types(inputs.dtype, torch.float32))
    if kind == "cosine":
        x = F.normalize(x, dim=1)
    # sum_{j != i} x_i . x_j = x_i . (sum_j x_j) - |x_i|^2: O(B D), no B x B product
    c = (x @ x.sum(dim=0) - (x * x).sum(dim=1)) / x.shape[0]
    if kind == "dot":
        return c, c / c.max()
    span = (c.max() - c.min()).clamp_min(torch.finfo(c.dtype).tiny)
    cn = (c - c.min()) / span
    return cn, cn


def anchor_weights(c: Tensor, temperature: float) -> Tensor:
    """``exp((c_i / sum_j c_j) / tau_w)`` ``[B]``, rescaled by a constant (a weighted mean does not
    change); uniform for ``tau_w = inf``, or, with a warning, when ``sum c <= 0``."""
    if math.isinf(temperature):
        return torch.ones_like(c)
    total = c.sum()
    if not bool(total > 0):
        warnings.warn(
            f"connectivities sum to {float(total):.3g} <= 0: anchor weights would flip; using uniform weights "
            "(use connectivity='cosine' for inputs that are not non-negative)",
            stacklevel=3,
        )
        return torch.ones_like(c)
    z = (c / total) / temperature
    return torch.exp(z - z.max())


class _SelfSimilarity(torch.autograd.Function):
    """``a @ a.T`` ``[B, B]`` whose backward is one product, ``(G + G.T) @ a``, where autograd
    would compute two (one per operand); equal to ``a @ a.t()`` in value and gradient."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, a: Tensor) -> Tensor:
        ctx.save_for_backward(a)
        return a @ a.t()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        (a,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return (grad + grad.t()) @ a


def crossclr_rows(
    anchor: Tensor,
    other: Tensor,
    normalized_connectivity: Tensor,
    *,
    temperature: float = 0.03,
    intra_weight: float = 0.8,
    prune_threshold: float = 0.7,
    mode: str = "paper",
) -> Tensor:
    """Per-anchor losses ``[B]`` for anchors of one modality (``anchor`` ``[B, D]``, normalised
    here) against the paired ``other`` modality, with the anchor modality's ``cn`` ``[B]``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    compute = torch.promote_types(anchor.dtype, torch.float32)
    a, o = F.normalize(anchor.to(compute), dim=1), F.normalize(other.to(compute), dim=1)
    return _rows(
        a @ o.t() / temperature, a @ a.t() / temperature, normalized_connectivity, intra_weight, prune_threshold, mode
    )


def _rows(cross: Tensor, intra: Tensor, cn: Tensor, intra_weight: float, prune_threshold: float, mode: str) -> Tensor:
    """Row losses from the anchors' cross logits ``[B, B]`` (positives on the diagonal) and their
    intra logits ``[B, B]``, both already divided by the temperature."""
    b, compute, device = cross.shape[0], cross.dtype, cross.device
    eye = torch.eye(b, dtype=torch.bool, device=device)
    positive = cross.diagonal()
    cn = cn.to(device)
    minus_inf = torch.tensor(float("-inf"), dtype=compute, device=device)
    if mode == "paper":
        # log of the denominator: the kept cross terms, plus lambda times the kept intra terms
        pruned = (cn > prune_threshold)[None, :] & ~eye
        denominator = torch.logsumexp(cross.masked_fill(pruned, float("-inf")), dim=1)
        if intra_weight > 0:
            intra_part = torch.logsumexp(intra.masked_fill(pruned | eye, float("-inf")), dim=1)
            denominator = torch.logaddexp(denominator, intra_part + math.log(intra_weight))
        return denominator - positive
    if mode == "official":
        zeroed = (cn > prune_threshold)[None, :] & ~eye
        cross = cross.masked_fill(zeroed, 0.0)
        kept_columns = (cn < prune_threshold)[None, :].expand(b, b)
    else:
        kept_columns = torch.ones_like(eye)
    intra = intra_weight * intra.masked_fill(eye, 0.0)
    intra = torch.where(kept_columns, intra, minus_inf)
    logits = torch.cat([cross, intra], dim=1)
    return torch.logsumexp(logits, dim=1) - positive


def crossclr(
    video: Tensor,
    text: Tensor,
    video_inputs: Tensor,
    text_inputs: Tensor,
    *,
    temperature: float = 0.03,
    intra_weight: float = 0.8,
    prune_threshold: float = 0.7,
    weight_temperature: float = 0.0035,
    mode: str = "paper",
    connectivity_kind: str = "dot",
    reduction: str = "mean",
    check_finite: bool | None = None,
    fused: bool | None = None,
) -> Tensor:
    """CrossCLR between ``video`` and ``text`` embeddings ``[B, d]`` (row ``i`` of each a pair).

    Args:
        video, text: learned embeddings (normalised here).
        video_inputs, text_inputs: ``[B, D_v]``, ``[B, D_t]`` pre-encoder features for
            connectivity (no gradient flows into them).
        temperature: ``tau`` (0.03).
        intra_weight: ``lambda`` (0.8): exp-term weight in ``paper`` mode, logit scale otherwise;
            0 removes the intra block in ``paper`` mode.
        prune_threshold: ``gamma`` (0.7); ``inf`` prunes nothing.
        weight_temperature: ``tau_w`` (0.0035 at B = 64; ``inf`` = uniform weights).
        mode: ``"paper"``, ``"official"`` or ``"intra_only"`` (see the module docstring).
        connectivity_kind: ``"dot"`` (official) or ``"cosine"``.
        reduction: ``"mean"`` (the weighted means, averaged over the two directions) or
            ``"none"``: ``[2, B]`` row losses (video anchors, then text anchors), unweighted.
        fused: paper mode's fast path (``_crossclr_kernel``: both directions in one autograd
            function, no double backward). ``None`` picks it on CPU where it applies (paper
            mode, ``2 / temperature <= 80`` in float32), ``False`` keeps the readable reference
            path, ``True`` asks for it anywhere it applies.

    Examples:
        >>> v, t = torch.randn(8, 16), torch.randn(8, 16)
        >>> x, y = torch.rand(8, 32), torch.rand(8, 24)
        >>> float(crossclr(v, t, x, y)) > 0
        True
    """
    check_finite_inputs(check_finite, video=video, text=text, video_inputs=video_inputs, text_inputs=text_inputs)
    if video.shape != text.shape or video.dim() != 2:
        raise ValueError(f"video and text must both be [B, d], got {tuple(video.shape)} and {tuple(text.shape)}")
    if video_inputs.shape[0] != video.shape[0] or text_inputs.shape[0] != video.shape[0]:
        raise ValueError("the connectivity inputs need one row per pair")
    if video.shape[0] < 2:
        raise ValueError("CrossCLR needs at least 2 pairs")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    c_v, cn_v = connectivity(video_inputs, connectivity_kind)
    c_t, cn_t = connectivity(text_inputs, connectivity_kind)
    compute = torch.promote_types(video.dtype, torch.float32)
    applies = mode == "paper" and eligible(temperature, compute)
    if fused and not applies:
        raise ValueError("fused=True needs mode='paper' and 2 / temperature <= 80 (float32) or <= 700 (float64)")
    v, t = F.normalize(video.to(compute), dim=1), F.normalize(text.to(compute), dim=1)
    if fused or (fused is None and applies and not video.is_cuda):
        scale = temperature**-0.5  # logits = (scale v) . (scale t)
        keep_v, keep_t = ~(cn_v > prune_threshold).to(v.device), ~(cn_t > prune_threshold).to(v.device)
        rows_v, rows_t = PaperCrossCLR.apply(v * scale, t * scale, keep_v, keep_t, 1.0 / temperature, intra_weight)
    else:
        cross = v @ t.t() / temperature  # one product serves both directions (text anchors: its transpose)
        rows_v = _rows(cross, _SelfSimilarity.apply(v) / temperature, cn_v, intra_weight, prune_threshold, mode)
        rows_t = _rows(cross.t(), _SelfSimilarity.apply(t) / temperature, cn_t, intra_weight, prune_threshold, mode)
    if reduction == "none":
        return torch.stack([rows_v, rows_t])
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if mode == "intra_only":
        return 0.5 * (rows_v.mean() + rows_t.mean())
    w_v, w_t = anchor_weights(c_v, weight_temperature), anchor_weights(c_t, weight_temperature)
    return 0.5 * (reduce_rows(rows_v, weights=w_v) + reduce_rows(rows_t, weights=w_t))
