"""The report's pictures as PNG files (matplotlib, no display needed): confusion matrices summed
over folds (counts and row-normalised), ROC curves of the group scores (each fold thin, the mean
bold), and per-class precision and sensitivity bars with their standard deviations."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt
import numpy as np

from ..files import atomic_path

DPI = 100


def confusion_png(confusion: np.ndarray, classes: list[str], path: Path, *, normalise: bool) -> Path:
    """Heatmap of a confusion matrix (rows: truth); `normalise` divides each row by its total."""
    values = confusion.astype(np.float64)
    if normalise:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    size = max(5.0, 0.45 * len(classes) + 2)
    figure, axes = plt.subplots(figsize=(size, size), dpi=DPI)
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(len(classes)), classes, rotation=90)
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix, row-normalised" if normalise else "Confusion matrix, counts")
    threshold = values.max() / 2 if values.size else 0
    for i in range(len(classes)):
        for j in range(len(classes)):
            text = f"{values[i, j]:.2f}" if normalise else f"{int(values[i, j])}"
            if values[i, j] or i == j:
                axes.text(j, i, text, ha="center", va="center", fontsize=7,
                          color="white" if values[i, j] > threshold else "black")
    return _save(figure, path)


def roc_png(curves: dict[int, tuple[np.ndarray, np.ndarray]], title: str, path: Path) -> Path:
    """ROC curves, one thin line per fold and the mean (tpr interpolated on a common grid) bold."""
    figure, axes = plt.subplots(figsize=(5, 5), dpi=DPI)
    grid = np.linspace(0, 1, 201)
    interpolated = []
    for fold, (fpr, tpr) in sorted(curves.items()):
        axes.plot(fpr, tpr, linewidth=0.8, alpha=0.6, label=f"fold {fold}")
        interpolated.append(np.interp(grid, fpr, tpr))
    if interpolated:
        axes.plot(grid, np.mean(interpolated, axis=0), linewidth=2.5, color="black", label="mean")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=0.8)
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def per_class_png(classes: list[str], precision: list[tuple[float, float] | None],
                  sensitivity: list[tuple[float, float] | None], path: Path) -> Path:
    """Precision and sensitivity per class: bars at the mean, error bars of one std."""
    x = np.arange(len(classes))
    figure, axes = plt.subplots(figsize=(max(6.0, 0.55 * len(classes) + 2), 4), dpi=DPI)
    for offset, name, values in ((-0.2, "precision", precision), (0.2, "sensitivity", sensitivity)):
        means = [v[0] if v else 0.0 for v in values]
        stds = [v[1] if v else 0.0 for v in values]
        axes.bar(x + offset, means, width=0.4, yerr=stds, capsize=2, label=name)
    axes.set_xticks(x, classes, rotation=90)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("mean over folds")
    axes.legend(fontsize=8)
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return path
