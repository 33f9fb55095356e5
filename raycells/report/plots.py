"""The report's pictures (matplotlib, no display needed), each as PNG for the report and as SVG
and PDF beside it for papers: confusion matrices summed over folds (counts and row-normalised),
ROC curves of the group scores (each fold thin, the mean bold with a band of one standard
deviation), per-class precision and sensitivity bars with their standard deviations, and the
training curves of every fold."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from ..files import atomic_path
from ..metrics import DDOF, mean_std

if TYPE_CHECKING:
    import pandas as pd

DPI = 100

plain_text = matplotlib.rc_context({"text.parse_math": False})
"""Every figure is drawn in it: class names and paths are text, and a class named `$\\frac{$` must
not be read as TeX (matplotlib's mathtext stops on it)."""


@plain_text
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


@plain_text
def roc_png(curves: dict[int, tuple[np.ndarray, np.ndarray]], title: str, path: Path) -> Path:
    """ROC curves, one thin line per fold with its AUC, and the mean over folds bold (each fold's
    sensitivity interpolated on a common grid, from the origin) with its AUC as mean ± std and a
    band of one standard deviation, as scikit-learn's ROC-with-cross-validation example."""
    figure, axes = plt.subplots(figsize=(5, 5), dpi=DPI)
    for fold, (fpr, tpr) in sorted(curves.items()):
        axes.plot(fpr, tpr, linewidth=0.8, alpha=0.6,
                  label=f"fold {fold} (AUC {np.trapezoid(tpr, fpr):.3f})")
    if curves:
        grid, mean, std, aucs = mean_roc(curves)
        axes.fill_between(grid, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1),
                          color="grey", alpha=0.25, label="± 1 std")
        auc_mean, auc_std = mean_std(aucs.tolist())  # as the tables compute it
        axes.plot(grid, mean, linewidth=2.5, color="black",
                  label=f"mean (AUC {auc_mean:.3f} ± {auc_std:.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=0.8)
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def mean_roc(curves: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """(grid of 1 - specificity, mean sensitivity, its std, each fold's AUC) over folds' ROC
    curves (fpr, tpr): every fold's sensitivity interpolated on the grid, from (0, 0) to (1, 1)."""
    grid = np.linspace(0, 1, 201)
    lines = []
    for fpr, tpr in curves.values():
        line = np.interp(grid, fpr, tpr)
        line[0] = 0.0  # at fpr 0 np.interp takes the last of several points: the curve's top
        lines.append(line)
    mean = np.mean(lines, axis=0)
    mean[-1] = 1.0
    aucs = np.array([np.trapezoid(tpr, fpr) for fpr, tpr in curves.values()])
    std = np.std(lines, axis=0, ddof=DDOF) if len(lines) > DDOF else np.zeros_like(mean)
    return grid, mean, std, aucs


@plain_text
def curves_png(histories: dict[int, pd.DataFrame], path: Path) -> Path:
    """Training curves from each fold's history.csv: training and validation loss, and the
    validation macro F1 (which picks the epoch), per epoch, one colour per fold."""
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=DPI)
    for fold, history in sorted(histories.items()):
        colour = f"C{fold % 10}"
        dots = {"marker": "o", "markersize": 3 if len(history) > 1 else 6}  # one epoch: a point
        losses.plot(history["epoch"], history["train_loss"], color=colour, **dots)
        losses.plot(history["epoch"], history["val_loss"], color=colour, linestyle="--", **dots)
        scores.plot(history["epoch"], history["val_macro_f1"], color=colour, label=f"fold {fold}",
                    **dots)
    values = np.concatenate([h[column].to_numpy(dtype=float) for h in histories.values()
                             for column in ("train_loss", "val_loss")] or [np.zeros(1)])
    values = values[np.isfinite(values)]
    typical = np.percentile(values, 90) if values.size else 0.0
    if values.size and values.max() > 3 * typical > 0:  # an epoch that spiked: the rest readable
        losses.set_ylim(0, 1.5 * typical)
        losses.set_title(f"losses above {1.5 * typical:.2g} (up to {values.max():.3g}) are off the "
                         "scale", fontsize=8)
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss (dashed: inner validation)")
    scores.set_xlabel("epoch")
    scores.set_ylabel("inner-validation macro F1")
    scores.set_ylim(0, 1)
    scores.legend(fontsize=7)
    for axes in (losses, scores):
        axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return _save(figure, path)


@plain_text
def per_class_png(classes: list[str], precision: list[list[float]], sensitivity: list[list[float]],
                  path: Path) -> Path:
    """Precision and sensitivity per class: a bar at the mean over the folds where the score is
    defined, and each fold's value as a dot on it (the spread, which a mean ± std bar would draw
    past 1)."""
    x = np.arange(len(classes))
    figure, axes = plt.subplots(figsize=(max(6.0, 0.55 * len(classes) + 2), 4), dpi=DPI)
    for n, (offset, name, values) in enumerate(((-0.2, "precision", precision),
                                                (0.2, "sensitivity", sensitivity))):
        axes.bar(x + offset, [np.mean(v) if v else 0.0 for v in values], width=0.4, label=name,
                 color=f"C{n}", alpha=0.75)
        for i, folds in enumerate(values):
            axes.scatter(np.full(len(folds), x[i] + offset), folds, s=9, color="black", zorder=3,
                         label="each fold" if n == 0 and i == 0 else None)
    axes.set_xticks(x, classes, rotation=90)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("mean over folds; dots: each fold")
    axes.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


FORMATS = ("png", "svg", "pdf")
"""Every figure is written in each: PNG for the reports, SVG and PDF (vector) for papers."""


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    for fmt in FORMATS:
        with atomic_path(path.with_suffix(f".{fmt}")) as tmp:
            figure.savefig(tmp, format=fmt)
    plt.close(figure)
    return path
