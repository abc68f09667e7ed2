"""Pictures for the lessons: image grids, predictions, feature maps, feature embeddings, learning curves,
confusion matrices and result comparisons."""
from __future__ import annotations

import numpy as np

__all__ = ["show_images", "show_predictions", "show_feature_maps", "plot_embedding", "plot_similarity",
           "plot_history", "plot_confusion_matrix", "plot_comparison"]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def show_images(images, titles=None, ncols: int = 4, size: float = 2.6):
    """A grid of uint8 images (or images in [0, 1]) with optional titles."""
    plt = _plt()
    images = list(images)
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(np.asarray(image), cmap="gray" if np.asarray(image).ndim == 2 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    fig.tight_layout()
    return fig


def show_predictions(images, predictions, names=None, k: int = 3):
    """Each image beside a bar chart of its top-``k`` classes; ``predictions`` as from ``classify_images``."""
    plt = _plt()
    n = len(predictions)
    fig, axes = plt.subplots(n, 2, figsize=(8, 2.2 * n), squeeze=False, gridspec_kw={"width_ratios": [1, 1.6]})
    for i, (image, preds) in enumerate(zip(images, predictions)):
        axes[i, 0].imshow(image)
        axes[i, 0].axis("off")
        if names is not None:
            axes[i, 0].set_title(names[i], fontsize=9)
        labels, probs = zip(*preds[:k])
        axes[i, 1].barh(range(k)[::-1], probs, color="tab:blue")
        axes[i, 1].set_yticks(range(k)[::-1], labels, fontsize=9)
        axes[i, 1].set_xlim(0, 1)
    axes[-1, 1].set_xlabel("probability")
    fig.tight_layout()
    return fig


def show_feature_maps(maps: dict, channels: int = 6, size: float = 1.6):
    """One row per layer: the first ``channels`` activation maps ``(H, W, C)`` of each."""
    plt = _plt()
    fig, axes = plt.subplots(len(maps), channels, figsize=(size * channels, size * len(maps) + 0.3), squeeze=False)
    for row, (name, fmap) in enumerate(maps.items()):
        # Show the most active channels: they carry the most visible structure.
        order = np.argsort(-fmap.reshape(-1, fmap.shape[-1]).std(0))[:channels]
        for col, c in enumerate(order):
            ax = axes[row, col]
            ax.imshow(fmap[..., c], cmap="viridis")
            ax.set_xticks([]), ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"stage {name}\n{fmap.shape[0]}×{fmap.shape[1]}×{fmap.shape[2]}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_embedding(features, labels, class_names, title: str = "", method: str = "pca", ax=None):
    """2-D view of feature vectors coloured by class (PCA, or t-SNE with ``method='tsne'``)."""
    plt = _plt()
    features = np.asarray(features, dtype=np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=0).fit_transform(features)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, perplexity=min(30, len(features) - 1), random_state=0).fit_transform(features)
    else:
        raise ValueError(f"method must be 'pca' or 'tsne'; received {method!r}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    labels = np.asarray(labels)
    for i, name in enumerate(class_names):
        pts = xy[labels == i]
        ax.scatter(pts[:, 0], pts[:, 1], s=18, label=name, alpha=0.8)
    ax.set_title(title)
    ax.set_xticks([]), ax.set_yticks([])
    ax.legend(fontsize=7, loc="best")
    return ax


def plot_similarity(matrix, row_labels, col_labels, title: str = ""):
    """A similarity matrix as a heat map with class labels."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(matrix, cmap="magma", vmin=min(0.0, float(np.min(matrix))), vmax=1.0)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=60, fontsize=7)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_history(history, title: str | None = None, phases=None):
    """Loss and accuracy per epoch, train (solid) vs validation (dashed); a dotted line where each of
    ``phases`` (epoch numbers) began, e.g. the start of fine-tuning."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = np.arange(1, len(history) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history.metrics:
                ax.plot(epochs, history[key], style, marker="o", ms=3, label=key)
        for start in phases or ():
            ax.axvline(start + 0.5, color="gray", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm, class_names, title: str = "", normalize: bool = False, ax=None):
    """Rows are true classes, columns predictions; the diagonal holds the correct ones."""
    plt = _plt()
    cm = np.asarray(cm, dtype=np.float64)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * len(class_names) + 2.5, 0.45 * len(class_names) + 2))
    ax.imshow(shown, cmap="Blues")
    for i in range(len(cm)):
        for j in range(len(cm)):
            if cm[i, j]:
                ax.text(j, i, f"{shown[i, j]:.2f}" if normalize else int(cm[i, j]), ha="center", va="center",
                        fontsize=7, color="white" if shown[i, j] > shown.max() / 2 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return ax


def plot_comparison(results: dict, metric: str = "accuracy", title: str = "", split: str = "validation"):
    """Bar chart of ``{method: [value per seed]}`` with the mean as the bar and each seed as a dot; ``split`` names
    the data the values were measured on (``"validation"`` or ``"test"``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 * len(results) + 1.5, 3.2))
    for i, (name, values) in enumerate(results.items()):
        values = np.atleast_1d(np.asarray(values, dtype=np.float64))
        ax.bar(i, values.mean(), color=f"C{i}", alpha=0.75)
        ax.scatter(np.full(len(values), i), values, color="black", s=12, zorder=3)
        ax.text(i, values.mean() + 0.02, f"{values.mean():.2f}", ha="center", fontsize=9)
    ax.set_xticks(range(len(results)), list(results), fontsize=9)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel(f"{split} {metric}")
    ax.set_title(title)
    fig.tight_layout()
    return fig
