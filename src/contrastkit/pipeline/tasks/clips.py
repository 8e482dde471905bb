"""The ``clips`` task: labelled videos decoded once into frames, clip methods on dictionary
batches (``{"input": uint8 [B, 3, F, S, S], "label", "index"}``; the method takes its random
windows), and VideoMoCo's clip evaluation (``docs/methods/videomoco.md``): kNN and a linear
probe on frozen features of N clips per video, the probe again with 25% / 50% of the test
frames dropped, feature consistency under dropping; a report strip of a test clip with the
frames a frame-dropping generator drops."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from contrastkit.data.errors import DataError
from contrastkit.data.module import ArrayDataModule
from contrastkit.data.video_folders import (
    CLIPS_TASK,
    ClipData,
    DecodedVideos,
    VideoSet,
    cache_root,
    decode_videos,
    frame_label_tensor,
)
from contrastkit.evaluation.retrieval import RECALL_AT
from contrastkit.methods.clip_base import ClipMethod
from contrastkit.pipeline.tasks.base import (
    Evaluation,
    Plot,
    Task,
    build_method,
    data_settings,
    load_dataset,
    optimizer_settings,
    prepared_backbone,
)
from contrastkit.registry import register_task
from contrastkit.views.clips import ClipAugmentation
from contrastkit.views.image import build_augmentation

if TYPE_CHECKING:
    from contrastkit.config import Recipe

__all__ = ["ClipsTask", "DROP_FRACTIONS"]

DROP_FRACTIONS = (0.25, 0.5)
SEGMENTATION_WINDOW = 8  # frames around each frame (docs/methods/longshort.md)
SEGMENTATION_TRAIN_STRIDE = 4  # the segmentation probe trains on every 4th frame of the training videos


def _subset(files: list[Path], labels: list[int], count: int | None, seed: int) -> tuple[list[Path], list[int]]:
    """A class-stratified subset of ``count`` videos (all when None or larger)."""
    if count is None or count >= len(files):
        return files, labels
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(files), generator=g).tolist()
    classes = sorted(set(labels))
    per_class = {c: [i for i in order if labels[i] == c] for c in classes}
    picked: list[int] = []
    while len(picked) < count:
        for c in classes:
            if per_class[c] and len(picked) < count:
                picked.append(per_class[c].pop(0))
    picked.sort()
    return [files[i] for i in picked], [labels[i] for i in picked]


def _channel_stats(frames: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = frames[:256].float().div(255).transpose(0, 1).reshape(frames.shape[1], -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).clamp_min(1e-3).tolist())


@register_task(CLIPS_TASK)
class ClipsTask(Task):
    """Video pretraining on clips. Methods subclass ``ClipMethod`` (``methods/clip_base.py``):
    what they receive and what they may provide for the evaluation is written there."""

    samples = "videos"
    _train_features: torch.Tensor | None = None
    _segmentation_predictions: torch.Tensor | None = None

    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        super().__init__(recipe, root)
        d, seed = data_settings(recipe, ClipData), recipe.trainer.seed
        self.data = d
        span = (d.clip_length - 1) * d.clip_stride + 1
        if span > d.video_frames:
            raise DataError(
                f"data.clip_length {d.clip_length} at data.clip_stride {d.clip_stride} spans {span} frames, more than "
                f"the data.video_frames {d.video_frames} decoded per video: lower the clip or raise data.video_frames"
            )
        videos: VideoSet = load_dataset(recipe, root)
        cache = cache_root(d.cache_dir) / "decoded"
        self.videos = videos
        train_files, train_labels = _subset(videos.train_files, videos.train_labels, d.train_subset, seed)
        test_files, test_labels = _subset(videos.test_files, videos.test_labels, d.test_subset, seed + 1)
        self.train = self._decode(train_files, train_labels, cache, "train")
        self.test = self._decode(test_files, test_labels, cache, "test")
        mean, std = _channel_stats(self.train.frames)
        frames = build_augmentation(d.augmentation, d.image_size, mean, std)
        self.input_spec = {
            "channels": 3,
            "image_size": d.image_size,
            "clip_length": d.clip_length,
            "mean": mean,
            "std": std,
        }
        backbone = prepared_backbone(recipe, 3, d.image_size)
        self.method: ClipMethod = build_method(
            recipe,
            ClipMethod,
            backbone=backbone,
            augmentation=ClipAugmentation(frames, per_frame=d.per_frame_views),
            optimizer=optimizer_settings(recipe),
            num_classes=len(videos.classes),
            knn_k=recipe.eval.knn_k,
            knn_temperature=recipe.eval.knn_temperature,
            seed=seed,
            clip_length=d.clip_length,
            clip_stride=d.clip_stride,
        )
        self.frame_classes = videos.frame_classes
        self.train_frame_labels = self.test_frame_labels = None
        train_rows = {"input": self.train.frames, "label": self.train.labels}
        if videos.frame_labels is not None:
            self.train_frame_labels = frame_label_tensor(self.train.files, videos.frame_labels, d.video_frames)
            self.test_frame_labels = frame_label_tensor(self.test.files, videos.frame_labels, d.video_frames)
            train_rows["frame_label"] = self.train_frame_labels
        self.datamodule = ArrayDataModule(
            train_rows,
            d.batch_size,
            d.num_workers,
            seed,
            monitor=(
                {"input": self.train.frames, "label": self.train.labels},
                {"input": self.test.frames, "label": self.test.labels},
            ),
        )
        self.classes = videos.classes
        skipped = len(self.train.skipped) + len(self.test.skipped)
        self.source = videos.source + (f"; {skipped} unreadable video(s) skipped" if skipped else "")
        e = recipe.eval
        self.drop_fractions = [f for f in DROP_FRACTIONS if round(f * d.clip_length) >= 1]
        self.metrics = [
            ("knn_top1", f"kNN top-1 (k={e.knn_k})"),
            ("linear_probe_top1", "linear probe top-1"),
            *[(f"linear_probe_drop{round(100 * f)}", f"probe, {round(100 * f)}% dropped") for f in self.drop_fractions],
            *([("consistency_drop25", "consistency, 25% dropped (cos x 100)")] if self.drop_fractions else []),
            *[(f"retrieval_r{k}", f"retrieval R@{k}") for k in RECALL_AT],
            *self.method.extra_metric_labels().items(),
            *self._part_and_segmentation_metrics(),
        ]
        unit = "frames" if d.clip_length == 1 else f"clips of {d.clip_length} frames (stride {d.clip_stride})"
        self.protocol = (
            f"Frozen backbone features averaged over {e.clips_per_video} evenly spaced {unit} per video. kNN: "
            f"cosine, votes exp(sim / {e.knn_temperature}), bank = training videos. Linear probe on training "
            "features. Retrieval (docs/methods/vclr.md): test videos query the training videos by cosine; R@k = "
            "share of queries with a same-class video among the k nearest."
            + (
                " The dropped-frame columns evaluate that probe setting on test clips with 25% / 50% of frames "
                "replaced by their mean, drawn at random. Consistency: mean cosine between a test clip's feature "
                "and that of the same clip with 25% of its frames dropped."
                if self.drop_fractions
                else ""
            )
        )

    def _decode(self, files: list[Path], labels: list[int], cache: Path, split: str) -> DecodedVideos:
        d = self.data
        return decode_videos(
            files,
            labels,
            frames=d.video_frames,
            size=d.image_size,
            cache_dir=cache,
            desc=f"decoding {split} videos",
            backend=d.video_backend,
        )

    @classmethod
    def smoke(cls, raw: dict[str, Any]) -> None:
        data = raw.setdefault("data", {})
        data.update(train_subset=48, test_subset=24, batch_size=min(int(data.get("batch_size", 32)), 8))
        data["video_frames"] = min(int(data.get("video_frames", 32)), 16)
        data["clip_length"] = min(int(data.get("clip_length", 16)), 8)
        data["image_size"] = min(int(data.get("image_size", 32)), 32)
        raw.setdefault("eval", {})["clips_per_video"] = 2

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        from contrastkit.evaluation.clips import clip_consistency, clip_features
        from contrastkit.evaluation.knn import knn_accuracy
        from contrastkit.evaluation.linear_probe import linear_probe
        from contrastkit.evaluation.retrieval import retrieval_recall

        e, d, seed = self.recipe.eval, self.data, self.recipe.trainer.seed
        m = self.method
        encoder = m.clip_encoder

        def features(videos: torch.Tensor, drop: float = 0.0, name: str = "") -> torch.Tensor:
            return clip_features(
                encoder,
                m.preprocess,
                videos,
                length=d.clip_length,
                stride=d.clip_stride,
                clips_per_video=e.clips_per_video,
                drop_fraction=drop,
                seed=seed,
                desc=f"{desc} {name}",
                progress=progress and bool(name),
            )

        train, test = features(self.train.frames, name="train"), features(self.test.frames, name="test")
        self._train_features = train
        ytr, yte, classes = self.train.labels, self.test.labels, len(self.classes)
        numbers: dict[str, float | int | None] = {
            "knn_top1": knn_accuracy(train, ytr, test, yte, classes, e.knn_k, e.knn_temperature),
            "feature_dim": train.shape[1],
        }
        probe = dict(epochs=e.probe_epochs, seed=seed)
        numbers["linear_probe_top1"] = linear_probe(train, ytr, test, yte, classes, **probe) if e.linear_probe else None
        for fraction in self.drop_fractions:
            dropped = features(self.test.frames, fraction)
            key = f"linear_probe_drop{round(100 * fraction)}"
            numbers[key] = linear_probe(train, ytr, dropped, yte, classes, **probe) if e.linear_probe else None
        if self.drop_fractions:
            numbers["consistency_drop25"] = 100 * clip_consistency(
                encoder, m.preprocess, self.test.frames, length=d.clip_length, stride=d.clip_stride, seed=seed
            )
        recall = retrieval_recall(train, ytr, test, yte)
        numbers.update({f"retrieval_r{k}": value for k, value in recall.items()})
        numbers.update(m.extra_metrics(self.test.frames, seed))
        parts = m.feature_parts()
        for name, part in parts.items():
            numbers[f"linear_probe_{name}"] = linear_probe(train[:, part], ytr, test[:, part], yte, classes, **probe)
        if self.train_frame_labels is not None:
            numbers.update(self._segmentation(encoder, desc, progress))
        return Evaluation(numbers, test, yte)

    def _part_and_segmentation_metrics(self) -> list[tuple[str, str]]:
        out = [(f"linear_probe_{n}", f"probe on the {n} part") for n in self.method.feature_parts()]
        if self.train_frame_labels is not None:
            out += [
                ("seg_frame_acc", "segmentation frame accuracy"),
                ("seg_edit", "segmentation Edit"),
                *[(f"seg_f1@{k}", f"segmentation F1@{k}") for k in (10, 25, 50)],
            ]
            for n in self.method.feature_parts():
                out += [(f"seg_frame_acc_{n}", f"segmentation frame accuracy, {n} part")]
                out += [(f"temporal_variance_{n}", f"temporal variance of the {n} part (% of total)")]
        return out

    def _segmentation(self, encoder: torch.nn.Module, desc: str, progress: bool) -> dict[str, float]:
        """A window probe per frame (docs/methods/longshort.md): features of the window around each frame,
        a linear probe on every 4th training frame, scored on every test frame."""
        from contrastkit.evaluation.clips import temporal_variance, window_features
        from contrastkit.evaluation.linear_probe import linear_probe_predictions
        from contrastkit.evaluation.segmentation import segmentation_scores

        assert self.train_frame_labels is not None and self.test_frame_labels is not None
        m, seed = self.method, self.recipe.trainer.seed
        stride = SEGMENTATION_TRAIN_STRIDE
        train = window_features(
            encoder,
            m.preprocess,
            self.train.frames,
            window=SEGMENTATION_WINDOW,
            frame_stride=stride,
            desc=f"{desc} train windows",
            progress=progress,
        )
        test = window_features(
            encoder,
            m.preprocess,
            self.test.frames,
            window=SEGMENTATION_WINDOW,
            desc=f"{desc} test windows",
            progress=progress,
        )
        y_train = self.train_frame_labels[:, ::stride].flatten()
        y_test = self.test_frame_labels
        classes = max(len(self.frame_classes), int(y_train.max()) + 1)
        epochs = min(self.recipe.eval.probe_epochs, 30)

        def probe(part: slice) -> torch.Tensor:
            flat_train, flat_test = train[..., part].flatten(0, 1), test[..., part].flatten(0, 1)
            predicted = linear_probe_predictions(flat_train, y_train, flat_test, classes, epochs=epochs, seed=seed)
            return predicted.view(y_test.shape)

        predicted = probe(slice(None))
        self._segmentation_predictions = predicted
        scores = segmentation_scores(list(predicted), list(y_test))
        out = {f"seg_{k}": v for k, v in scores.items()}
        for name, part in self.method.feature_parts().items():
            out[f"seg_frame_acc_{name}"] = float((probe(part) == y_test).float().mean() * 100)
            out[f"temporal_variance_{name}"] = temporal_variance(test[..., part])
        return out

    def plots(self, run_dir: Path, final: Evaluation, random_init: dict[str, Any] | None) -> list[Plot]:
        from contrastkit.pipeline.report import plot_monitor

        out = []
        baseline = (random_init or {}).get("knn_top1")
        if plot_monitor(run_dir, "val/knn_top1", "kNN top-1 (%)", "knn.png", baseline, self.baseline_name()):
            out.append(Plot("knn.png", "Online kNN monitor per epoch (whole decoded videos)"))
        strip = self._frame_strip(run_dir)
        if strip is not None:
            out.append(strip)
        if self._train_features is not None and final.embeddings is not None:
            out.append(self._retrieval_grid(run_dir, final.embeddings))
        if self._segmentation_predictions is not None and self.test_frame_labels is not None:
            out.append(self._segmentation_strips(run_dir))
        return out + self.embedding_plot(run_dir, final)

    def _segmentation_strips(self, run_dir: Path, videos: int = 6) -> Plot:
        """True and predicted per-frame labels of a few test videos, one colour per class."""
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch

        assert self._segmentation_predictions is not None and self.test_frame_labels is not None
        count = min(videos, len(self.test_frame_labels))
        classes = max(len(self.frame_classes), int(self.test_frame_labels.max()) + 1)
        cmap = plt.get_cmap("tab10", classes)
        fig, axes = plt.subplots(count, 1, figsize=(7, 0.75 * count + 0.6), squeeze=False)
        for i, ax in enumerate(axes[:, 0]):
            rows = torch.stack([self.test_frame_labels[i], self._segmentation_predictions[i]])
            ax.imshow(rows.numpy(), aspect="auto", cmap=cmap, vmin=-0.5, vmax=classes - 0.5, interpolation="nearest")
            ax.set_yticks([0, 1], ["true", "predicted"], fontsize=7)
            ax.set_xticks([])
        axes[-1, 0].set_xlabel("frame")
        names = self.frame_classes or tuple(str(c) for c in range(classes))
        handles = [Patch(color=cmap(c), label=names[c]) for c in range(classes)]
        fig.legend(handles=handles, loc="upper center", ncol=classes, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.93))
        fig.savefig(run_dir / "segmentation.png", dpi=110)
        plt.close(fig)
        return Plot(
            "segmentation.png",
            "Per-frame labels of test videos: true (top) and the window probe's "
            "prediction on the whole feature (bottom)",
        )

    def _retrieval_grid(self, run_dir: Path, test_features: torch.Tensor, queries: int = 6, top: int = 5) -> Plot:
        """Middle frames of a few test queries and of their ``top`` nearest training videos."""
        import matplotlib.pyplot as plt
        import torch.nn.functional as F

        assert self._train_features is not None
        g = torch.Generator().manual_seed(self.recipe.trainer.seed)
        picks = torch.randperm(len(test_features), generator=g)[:queries]
        sims = F.normalize(test_features[picks].float(), dim=1) @ F.normalize(self._train_features.float(), dim=1).t()
        nearest = sims.topk(min(top, sims.shape[1]), dim=1).indices
        middle = self.test.frames.shape[2] // 2
        fig, axes = plt.subplots(
            len(picks), 1 + nearest.shape[1], figsize=(1.2 * (1 + nearest.shape[1]), 1.25 * len(picks)), squeeze=False
        )
        for row, (q, found) in enumerate(zip(picks.tolist(), nearest.tolist())):
            cells = [(self.test.frames[q, :, middle], "query", "k")]
            for rank, i in enumerate(found, 1):
                same = int(self.train.labels[i]) == int(self.test.labels[q])
                cells.append((self.train.frames[i, :, middle], f"#{rank}", "green" if same else "red"))
            for ax, (frame, title, colour) in zip(axes[row], cells):
                ax.imshow(frame.permute(1, 2, 0).numpy())
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(title, fontsize=7, color=colour)
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(2)
        fig.tight_layout()
        fig.savefig(run_dir / "retrieval.png", dpi=110)
        plt.close(fig)
        return Plot(
            "retrieval.png",
            f"Retrieval: test queries (left) and their top-{nearest.shape[1]} training videos "
            "by cosine (middle frames; green = same class, red = another class)",
        )

    @torch.no_grad()
    def _frame_strip(self, run_dir: Path) -> Plot | None:
        """The first test video's first clip, frames G would drop marked (plain strip without G)."""
        import matplotlib.pyplot as plt

        d = self.data
        if d.clip_length > 1:
            clip = self.test.frames[:1, :, : (d.clip_length - 1) * d.clip_stride + 1 : d.clip_stride]
        else:  # frame-level methods: the whole video, 12 evenly spaced frames
            picks = torch.linspace(0, self.test.frames.shape[2] - 1, min(12, self.test.frames.shape[2]))
            clip = self.test.frames[:1].index_select(2, picks.round().long())
        marked = self.method.dropped_frames(self.method.preprocess(clip))
        dropped = set(marked or ())
        frames = clip[0].permute(1, 2, 3, 0).numpy()
        fig, axes = plt.subplots(1, len(frames), figsize=(1.1 * len(frames), 1.6), squeeze=False)
        for t, ax in enumerate(axes[0]):
            ax.imshow(frames[t])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{t}" + (" drop" if t in dropped else ""), fontsize=7, color="red" if t in dropped else "k")
            if t in dropped:
                for spine in ax.spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(2)
        fig.tight_layout()
        fig.savefig(run_dir / "frames.png", dpi=110)
        plt.close(fig)
        caption = "Frames of a test clip" + (
            " (red: the frames the trained method drops)" if marked is not None else ""
        )
        return Plot("frames.png", caption)
