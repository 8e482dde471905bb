"""``nn.Module`` wrappers around the InfoNCE family: settings, queue, cross-rank gather."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from contrastkit.functional._kernel import ObjectiveConfig
from contrastkit.functional._validation import (
    as_negative_list,
    check_embeddings,
    check_hyperparameters,
    check_reduction,
    check_same_shape,
)
from contrastkit.functional.contrastive import estimator_loss, info_nce, nt_xent, unit_rows
from contrastkit.functional.distributed import (
    all_gather_no_grad,
    all_gather_with_grad,
    gather_row_counts,
    is_distributed,
    rank_and_world,
)
from contrastkit.functional.mixing import mix_hard_negatives, mochi_info_nce
from contrastkit.memory.queue import Queue

__all__ = ["InfoNCELoss", "MoCHiLoss", "NTXentLoss"]


class _GatherMixin(nn.Module):
    gather_distributed: bool
    gather_with_grad: bool

    def _gather(self, x: Tensor) -> tuple[Tensor, int]:
        """All ranks' rows of ``x`` and the offset of this rank's first row."""
        if not (self.gather_distributed and is_distributed()):
            return x, 0
        rank, _ = rank_and_world()
        offset = sum(gather_row_counts(x)[:rank])
        gathered = all_gather_with_grad(x) if self.gather_with_grad else all_gather_no_grad(x)
        if not self.gather_with_grad:
            start = offset
            gathered = torch.cat([gathered[:start], x, gathered[start + x.shape[0] :]])
        return gathered, offset


class InfoNCELoss(_GatherMixin):
    """InfoNCE / HCL loss with an optional MoCo queue of negatives.

    - Without a queue and without ``negatives``: in-batch negatives (the other rows'
      positives); under ``torch.distributed`` those of every rank, gathered with gradient.
    - With ``queue_size > 0``: negatives are the queue; after the loss the (detached)
      positives are enqueued, gathered across ranks. This is MoCo (``docs/methods/moco.md``).

    Args:
        temperature, beta, tau_plus, normalize, reduction: see ``functional.info_nce``.
        queue_size: ``K`` slots of a ``Queue`` owned by the loss (0 = none).
        dim: key dimension, required with a queue.
        gather_distributed: use every rank's positives as in-batch negatives.
        gather_with_grad: let gradients flow back through gathered negatives (default True).
        queue_decay: VideoMoCo's temporal decay ``t``: the queue's similarities are scaled by
            ``t ** age`` (``Queue.age``; ``docs/methods/videomoco.md``). 1 = MoCo.

    Examples:
        >>> loss_fn = InfoNCELoss(temperature=0.2, queue_size=64, dim=16)
        >>> q, k = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16)
        >>> loss = loss_fn(q, k)  # uses the queue, then enqueues k
        >>> int(loss_fn.queue.ptr)
        8
    """

    def __init__(
        self,
        temperature: float = 0.1,
        *,
        beta: float = 0.0,
        tau_plus: float = 0.0,
        normalize: bool = True,
        reduction: str = "mean",
        queue_size: int = 0,
        dim: int | None = None,
        gather_distributed: bool = True,
        gather_with_grad: bool = True,
        queue_decay: float = 1.0,
    ) -> None:
        super().__init__()
        check_hyperparameters(temperature, beta, tau_plus)
        if not 0 < queue_decay <= 1:
            raise ValueError(f"queue_decay must lie in (0, 1], got {queue_decay}")
        check_reduction(reduction)
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        if queue_size and dim is None:
            raise ValueError("dim is required when queue_size > 0")
        self.temperature = temperature
        self.beta = beta
        self.tau_plus = tau_plus
        self.normalize = normalize
        self.reduction = reduction
        self.gather_distributed = gather_distributed
        self.gather_with_grad = gather_with_grad
        self.queue_decay = queue_decay
        self.queue: Queue | None = Queue(queue_size, dim) if queue_size and dim else None

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, beta={self.beta}, tau_plus={self.tau_plus}"

    def queue_negatives(self) -> Tensor:
        """The queue's keys, safe to hold while the queue is updated."""
        assert self.queue is not None
        keys = self.queue.keys.detach()
        return keys.clone() if self.reduction == "none" else keys

    def forward(
        self,
        query: Tensor,
        positive: Tensor,
        negatives: Tensor | Sequence[Tensor] | None = None,
        *,
        enqueue: bool = True,
        sample_ids: Tensor | None = None,
    ) -> Tensor:
        """Loss of ``query`` ``[B, D]`` against ``positive`` ``[B, D]``.

        Args:
            query: anchors (gradient flows).
            positive: one positive per anchor (a key; detached before enqueueing).
            negatives: extra negatives (``[K, D]`` or ``[B, K, D]``), used with the queue
                if there is one, otherwise instead of in-batch negatives.
            enqueue: with a queue, enqueue ``positive`` after computing the loss.
            sample_ids: optional ``[B]`` dataset indices stored with enqueued keys.
        """
        kwargs = dict(
            temperature=self.temperature,
            beta=self.beta,
            tau_plus=self.tau_plus,
            normalize=self.normalize,
            reduction=self.reduction,
        )
        if self.queue is not None:
            extra = [] if negatives is None else as_negative_list(negatives, query)
            factors = None
            if self.queue_decay != 1.0:
                decay = torch.tensor(self.queue_decay, dtype=torch.float64, device=self.queue.keys.device)
                factors = [(decay ** self.queue.age()).float(), *[None] * len(extra)]
            loss = info_nce(
                query,
                positive,
                [self.queue_negatives(), *extra],
                negative_factors=factors,
                **kwargs,  # type: ignore[arg-type]
            )
            if enqueue:
                self.enqueue(positive, sample_ids)
            return loss
        if negatives is not None or not (self.gather_distributed and is_distributed()):
            return info_nce(query, positive, negatives, **kwargs)  # type: ignore[arg-type]
        return self._distributed_in_batch(query, positive)

    def enqueue(self, positive: Tensor, sample_ids: Tensor | None = None) -> None:
        """Write ``positive`` ``[n, D]`` (detached, normalised like the loss's keys) into the queue.

        A method that computes several losses in one step calls this once, after all of them.
        """
        if self.queue is None:
            raise ValueError("this loss has no queue (queue_size=0)")
        self.queue.enqueue(unit_rows(positive.detach()) if self.normalize else positive.detach(), sample_ids)

    def _distributed_in_batch(self, query: Tensor, positive: Tensor) -> Tensor:
        check_embeddings("query", query)
        check_same_shape("query", query, "positive", positive)
        q = unit_rows(query) if self.normalize else query
        k = unit_rows(positive) if self.normalize else positive
        keys, offset = self._gather(k)
        own = offset + torch.arange(q.shape[0], device=q.device)
        cfg = ObjectiveConfig(self.temperature, self.beta, self.tau_plus)
        pos = (q * k).sum(dim=-1) / self.temperature
        return estimator_loss(q, pos, [keys], [(own,)], cfg, normalize=self.normalize, reduction=self.reduction)


class MoCHiLoss(InfoNCELoss):
    """MoCo's queue loss plus MoCHi's synthetic hard negatives (``docs/methods/mochi.md``).

    The mixes are built from the queue *before* the new keys are enqueued and are never
    enqueued themselves. ``num_pair_mix = num_query_mix = 0`` is exactly ``InfoNCELoss``.

    Args:
        num_hard, num_pair_mix, num_query_mix: MoCHi's ``(N, s, s')``.
        mask_own_keys: when ``sample_ids`` are given, keys of the query's own image still
            in the queue are not used for mixing (``docs/methods/mochi.md``).
        **kwargs: as ``InfoNCELoss`` (``queue_size`` and ``dim`` are required).

    Examples:
        >>> loss_fn = MoCHiLoss(num_hard=16, num_pair_mix=4, num_query_mix=2, queue_size=64, dim=8)
        >>> loss = loss_fn(torch.randn(4, 8), torch.randn(4, 8))
    """

    def __init__(
        self,
        num_hard: int,
        num_pair_mix: int,
        num_query_mix: int,
        *,
        mask_own_keys: bool = True,
        generator: torch.Generator | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if self.queue is None:
            raise ValueError("MoCHiLoss needs a queue: pass queue_size > 0 and dim")
        if not 1 <= num_hard <= self.queue.size:
            raise ValueError(f"num_hard must lie in [1, queue_size={self.queue.size}], got {num_hard}")
        self.num_hard = num_hard
        self.num_pair_mix = num_pair_mix
        self.num_query_mix = num_query_mix
        self.mask_own_keys = mask_own_keys
        self.generator = generator
        self.mixing_enabled = True

    def forward(
        self,
        query: Tensor,
        positive: Tensor,
        negatives: Tensor | Sequence[Tensor] | None = None,
        *,
        enqueue: bool = True,
        sample_ids: Tensor | None = None,
    ) -> Tensor:
        assert self.queue is not None
        extra = [] if negatives is None else as_negative_list(negatives, query)
        if self.mixing_enabled and self.num_pair_mix + self.num_query_mix > 0:
            mask = None
            if self.mask_own_keys and sample_ids is not None:
                mask = sample_ids.to(self.queue.sample_ids.device)[:, None] == self.queue.sample_ids[None, :]
            if not extra and self.normalize:  # one fused call: the mixes are never materialised on CPU
                loss = mochi_info_nce(
                    query,
                    positive,
                    self.queue_negatives(),
                    num_hard=self.num_hard,
                    num_pair_mix=self.num_pair_mix,
                    num_query_mix=self.num_query_mix,
                    temperature=self.temperature,
                    beta=self.beta,
                    tau_plus=self.tau_plus,
                    reduction=self.reduction,
                    generator=self.generator,
                    mask=mask,
                )
                if enqueue:
                    self.enqueue(positive, sample_ids)
                return loss
            mixed = mix_hard_negatives(
                query,
                self.queue.keys,
                num_hard=self.num_hard,
                num_pair_mix=self.num_pair_mix,
                num_query_mix=self.num_query_mix,
                generator=self.generator,
                mask=mask,
            )
            extra.append(mixed)
        return super().forward(query, positive, extra or None, enqueue=enqueue, sample_ids=sample_ids)


class NTXentLoss(_GatherMixin):
    """SimCLR's NT-Xent (and HCL's image objective with ``beta``/``tau_plus``).

    Under ``torch.distributed`` every rank's views are negatives (gathered with gradient by
    default); the loss is the mean over this rank's 2B anchors, so with DDP's gradient
    averaging it matches one process over the global batch.

    Args:
        temperature, beta, tau_plus, normalize, reduction: see ``functional.nt_xent``.
        gather_distributed, gather_with_grad: as ``InfoNCELoss``.

    Examples:
        >>> loss_fn = NTXentLoss(temperature=0.5, beta=1.0, tau_plus=0.1)
        >>> loss = loss_fn(torch.randn(8, 16), torch.randn(8, 16))
    """

    def __init__(
        self,
        temperature: float = 0.5,
        *,
        beta: float = 0.0,
        tau_plus: float = 0.0,
        normalize: bool = True,
        reduction: str = "mean",
        gather_distributed: bool = True,
        gather_with_grad: bool = True,
    ) -> None:
        super().__init__()
        check_hyperparameters(temperature, beta, tau_plus)
        check_reduction(reduction)
        self.temperature = temperature
        self.beta = beta
        self.tau_plus = tau_plus
        self.normalize = normalize
        self.reduction = reduction
        self.gather_distributed = gather_distributed
        self.gather_with_grad = gather_with_grad

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, beta={self.beta}, tau_plus={self.tau_plus}"

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Loss over the pairs ``(z1[i], z2[i])``, both ``[B, D]``."""
        if not (self.gather_distributed and is_distributed()):
            return nt_xent(
                z1,
                z2,
                temperature=self.temperature,
                beta=self.beta,
                tau_plus=self.tau_plus,
                normalize=self.normalize,
                reduction=self.reduction,
            )
        check_embeddings("z1", z1)
        check_embeddings("z2", z2)
        check_same_shape("z1", z1, "z2", z2)
        a = unit_rows(z1) if self.normalize else z1
        b = unit_rows(z2) if self.normalize else z2
        all_a, offset = self._gather(a)
        all_b, _ = self._gather(b)
        total, n = all_a.shape[0], a.shape[0]
        local = offset + torch.arange(n, device=a.device)
        own = torch.cat([local, total + local])
        partner = torch.cat([total + local, local])
        pos = (a * b).sum(dim=-1) / self.temperature
        cfg = ObjectiveConfig(self.temperature, self.beta, self.tau_plus)
        return estimator_loss(
            torch.cat([a, b]),
            torch.cat([pos, pos]),
            [torch.cat([all_a, all_b])],
            [(own, partner)],
            cfg,
            normalize=self.normalize,
            reduction=self.reduction,
        )
