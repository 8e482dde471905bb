"""The ``pairs`` task: aligned features of two modalities (video–text), dictionary batches
``{"video", "text", "index"[, "cluster"]}``, and cross-modal retrieval of the test pairs in both
directions (``docs/methods/crossclr.md``): R@1/5/10, median and mean rank, cluster-level R@1, R@1 of
queries from hub clusters, and the intra-modal similarity of different clusters. The report
shows the similarity matrix of the first 64 test pairs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import torch
from torch import Tensor

from contrastkit.data.module import ArrayDataModule
from contrastkit.data.pairs import PAIRS_TASK, PairSet
from contrastkit.pipeline.tasks.base import (
    Evaluation,
    Plot,
    Task,
    build_method,
    load_dataset,
    optimizer_settings,
    prepared_backbone,
)
from contrastkit.registry import register_task

if TYPE_CHECKING:
    from contrastkit.config import Recipe

__all__ = ["PairsTask"]


@runtime_checkable
class PairMethod(Protocol):
    """What the ``pairs`` task asks of a method (CrossCLR). It is built with ``video_dim``,
    ``text_dim``, ``optimizer``, ``seed`` and, for raw clips, ``video_backbone``; batches are
    ``{"video": [B, ...], "text": [B, ...], "index": [B]}``."""

    def embed_video(self, video: Tensor) -> Tensor:
        """``[N, D_v]`` features or ``[N, C, T, H, W]`` clips -> ``[N, d]`` (un-normalised)."""
        ...

    def embed_text(self, text: Tensor) -> Tensor:
        """``[N, D_t]`` (or ``[N, L, D_t]``) text features -> ``[N, d]``."""
        ...

    def describe(self) -> str:
        """The encoders in one line, for the report."""
        ...


@register_task(PAIRS_TASK)
class PairsTask(Task):
    """Paired video and text features; methods meet ``PairMethod``."""

    samples = "pairs"

    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        super().__init__(recipe, root)
        d, seed = recipe.data, recipe.trainer.seed
        pairs: PairSet = load_dataset(recipe, root)
        self.pairs = pairs
        self.clips = pairs.train_video.dim() == 5
        inputs: dict[str, Any] = {}
        if self.clips:  # raw clips [N, C, T, H, W]: the recipe's clip backbone trains end to end
            video = pairs.train_video
            inputs["video_backbone"] = prepared_backbone(recipe, video.shape[1], video.shape[-1])
        self.method = build_method(
            recipe,
            PairMethod,
            video_dim=pairs.train_video.shape[-1],
            text_dim=pairs.train_text.shape[-1],
            optimizer=optimizer_settings(recipe),
            seed=seed,
            **inputs,
        )
        rows = {"video": pairs.train_video, "text": pairs.train_text}
        self.datamodule = ArrayDataModule(rows, min(d.batch_size, len(pairs.train_video)), d.num_workers, seed)
        self.source = pairs.source
        clusters = pairs.test_clusters is not None
        self.metrics = [
            ("t2v_r1", "text→video R@1"),
            ("t2v_r5", "text→video R@5"),
            ("t2v_r10", "text→video R@10"),
            ("t2v_medr", "text→video median rank"),
            ("t2v_mnr", "text→video mean rank"),
            ("v2t_r1", "video→text R@1"),
            ("v2t_r5", "video→text R@5"),
            ("v2t_medr", "video→text median rank"),
        ]
        if clusters:
            self.metrics.append(("t2v_cluster_r1", "text→video cluster R@1"))
            if pairs.hub_clusters:
                self.metrics.append(("t2v_hub_r1", "text→video R@1, hub-cluster queries"))
            self.metrics += [
                ("video_different_cluster_cos", "video cosine across clusters"),
                ("text_different_cluster_cos", "text cosine across clusters"),
            ]
        self.protocol = (
            f"Test pairs ({len(pairs.test_video)}): every text queries all test videos (and every video all texts) "
            "by cosine of the learned embeddings; R@k = share of queries whose own pair ranks within k, median / "
            "mean rank of the own pair. Cluster R@1: the top-1 video is from the query's cluster. Cosine across "
            "clusters: mean similarity of one modality's embeddings from different clusters (lower = more spread)."
        )

    @classmethod
    def smoke(cls, raw: dict[str, Any]) -> None:
        raw.setdefault("data", {})["batch_size"] = min(int(raw.get("data", {}).get("batch_size", 64)), 32)

    def model_line(self) -> str:
        described = cast(PairMethod, self.method).describe()
        if not self.clips:
            return described
        return f"video: {self.recipe.model.backbone} on raw clips{self.started_from()}; {described}"

    @torch.no_grad()
    def _embed(self) -> tuple[torch.Tensor, torch.Tensor]:
        m: Any = self.method
        was = m.training
        m.eval()
        try:
            video = torch.cat([m.embed_video(part).float() for part in self.pairs.test_video.split(256)])
            return video, m.embed_text(self.pairs.test_text).float()
        finally:
            m.train(was)

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        from contrastkit.evaluation.crossmodal import (
            cluster_recall_at_1,
            different_cluster_similarity,
            paired_ranks,
            retrieval_scores,
        )

        video, text = self._embed()
        numbers: dict[str, float | int | None] = {"feature_dim": video.shape[1]}
        numbers.update({f"t2v_{k}": v for k, v in retrieval_scores(text, video).items()})
        numbers.update({f"v2t_{k}": v for k, v in retrieval_scores(video, text).items()})
        clusters = self.pairs.test_clusters
        if clusters is not None:
            numbers["t2v_cluster_r1"] = cluster_recall_at_1(text, video, clusters, clusters)
            if self.pairs.hub_clusters:
                hub = torch.isin(clusters, torch.tensor(self.pairs.hub_clusters))
                numbers["t2v_hub_r1"] = float((paired_ranks(text, video)[hub] == 1).float().mean() * 100)
            numbers["video_different_cluster_cos"] = different_cluster_similarity(video, clusters)
            numbers["text_different_cluster_cos"] = different_cluster_similarity(text, clusters)
        return Evaluation(numbers, video, clusters)

    def plots(self, run_dir: Path, final: Evaluation, random_init: dict[str, Any] | None) -> list[Plot]:
        import matplotlib.pyplot as plt
        import torch.nn.functional as F

        video, text = self._embed()
        n = min(64, len(video))
        sim = F.normalize(text[:n], dim=1) @ F.normalize(video[:n], dim=1).t()
        fig, ax = plt.subplots(figsize=(4.6, 4))
        image = ax.imshow(sim.numpy(), cmap="viridis", vmin=-1, vmax=1)
        ax.set_xlabel("test video")
        ax.set_ylabel("test text")
        fig.colorbar(image, ax=ax, label="cosine")
        fig.tight_layout()
        fig.savefig(run_dir / "similarity_matrix.png", dpi=110)
        plt.close(fig)
        plot = Plot(
            "similarity_matrix.png", f"Text-video cosine similarity of the first {n} test pairs (pairs on the diagonal)"
        )
        examples = self._retrieval_examples(run_dir, video, text)
        return [plot, *examples, *self.embedding_plot(run_dir, final)]

    def _retrieval_examples(
        self, run_dir: Path, video: torch.Tensor, text: torch.Tensor, queries: int = 4
    ) -> list[Plot]:
        """Caption queries and their top-5 test videos (a frame each): green = the query's own
        video, orange = another video of the query's cluster."""
        import matplotlib.pyplot as plt
        import torch.nn.functional as F

        captions, frames, clusters = self.pairs.test_captions, self.pairs.test_thumbnails, self.pairs.test_clusters
        if not captions or frames is None:
            return []
        top = (F.normalize(text[:queries], dim=1) @ F.normalize(video, dim=1).t()).topk(5, dim=1).indices
        fig, axes = plt.subplots(len(top), 5, figsize=(7.5, 1.9 * len(top)), squeeze=False)
        for q, row in enumerate(top.tolist()):
            for rank, v in enumerate(row):
                ax = axes[q][rank]
                ax.imshow(frames[v].permute(1, 2, 0).numpy())
                same_cluster = clusters is not None and int(clusters[v]) == int(clusters[q])
                color = "tab:green" if v == q else "tab:orange" if same_cluster else "0.7"
                for spine in ax.spines.values():
                    spine.set_edgecolor(color)
                    spine.set_linewidth(3)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_xlabel(f"#{rank + 1}", fontsize=7)
            axes[q][0].set_title(f'"{captions[q]}"', fontsize=8, loc="left")
        fig.tight_layout()
        fig.savefig(run_dir / "retrieval_examples.png", dpi=110)
        plt.close(fig)
        return [
            Plot(
                "retrieval_examples.png",
                "Text→video examples: test captions and their top-5 test videos (green: its own video, orange: same "
                "class and direction)",
            )
        ]
