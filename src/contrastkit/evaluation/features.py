"""Feature extraction from a frozen encoder, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["extract_features"]


@torch.no_grad()
def extract_features(
    encoder: nn.Module | Callable[[Tensor], Tensor],
    images: Tensor,
    preprocess: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    desc: str = "features",
    progress: bool = True,
) -> Tensor:
    """``[N, D]`` features of ``images`` (``uint8 [N, C, H, W]``), encoder in eval mode.

    The encoder's train/eval mode is restored afterwards.
    """
    was_training = isinstance(encoder, nn.Module) and encoder.training
    if isinstance(encoder, nn.Module):
        encoder.eval()
    out = []
    try:
        for start in tqdm(
            range(0, len(images), batch_size), desc=desc, disable=not progress, leave=False, unit="batch"
        ):
            batch = preprocess(images[start : start + batch_size].to(device))
            out.append(encoder(batch).float().cpu())
    finally:
        if isinstance(encoder, nn.Module):
            encoder.train(was_training)
    return torch.cat(out)
