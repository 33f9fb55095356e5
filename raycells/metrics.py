"""Classification metrics with scikit-learn, per fold, and their mean ± standard deviation over
folds. The standard deviation is the sample one (ddof=1), as over cross-validation folds."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

DDOF = 1
"""Degrees of freedom of every standard deviation over folds."""


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1 and per-class precision, sensitivity (recall), F1
    and support for integer labels indexing `classes`."""
    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    return {
        "images": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            code: {"precision": float(precision[i]), "sensitivity": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, code in enumerate(classes)
        },
    }


def group_probability(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                      members: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(is the image in the group, P(group) = the sum of its members' probabilities)."""
    index = [classes.index(code) for code in members if code in classes]
    return np.isin(y_true, index), probs[:, index].sum(axis=1)


def group_scores(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                 members: tuple[str, ...], threshold: float = 0.5) -> dict[str, float | None]:
    """For a group of classes (e.g. blasts = MYO + MOB): ROC AUC of the summed probability
    P(group) against membership, and sensitivity and specificity of P(group) >= threshold.
    None where the fold lacks positives or negatives."""
    positive, score = group_probability(y_true, probs, classes, members)
    called = score >= threshold
    both = positive.any() and (~positive).any()
    return {
        "roc_auc": float(roc_auc_score(positive, score)) if both else None,
        "sensitivity": float(called[positive].mean()) if positive.any() else None,
        "specificity": float((~called[~positive]).mean()) if (~positive).any() else None,
        "positives": int(positive.sum()),
    }


def one_vs_rest_auc(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, float | None]:
    """ROC AUC of each class against the rest; None for a class absent from (or alone in) the fold."""
    out = {}
    for index, code in enumerate(classes):
        positive = y_true == index
        out[code] = (float(roc_auc_score(positive, probs[:, index]))
                     if positive.any() and (~positive).any() else None)
    return out


def confusion_scores(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 from a confusion matrix (rows: truth), for the
    validation passes that only add up confusion matrices across workers."""
    confusion = np.asarray(confusion, dtype=np.float64)
    hits = np.diag(confusion)
    truth, predicted = confusion.sum(1), confusion.sum(0)
    present = truth > 0
    recall = np.divide(hits, truth, out=np.zeros_like(hits), where=present)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(hits),
                   where=precision + recall > 0)
    return {
        "accuracy": float(hits.sum() / max(confusion.sum(), 1)),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1.mean()),  # over all classes, as f1_score(labels=all, zero_division=0)
    }


PAPER_DDOF = 0
"""Matek et al. 2019's standard deviations are consistent with ddof=0 (LYA precision 0.20 ± 0.40
from the fold values 1, 0, 0, 0, 0); ours beside theirs are computed the same way."""


def mean_std(values: list[float], ddof: int = DDOF) -> tuple[float, float]:
    """Mean and standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=ddof)) if len(array) > ddof else 0.0
    return float(array.mean()), std


def summarize_folds(per_fold: dict[int, dict[str, Any]], ddof: int = DDOF) -> dict[str, Any]:
    """Mean ± std (with `ddof`) over folds of every score the folds hold (`fold_metrics`' plus,
    where present, weighted F1, per-class ROC AUC and the group scores); a score that is None in a
    fold (undefined there) is left out of its mean."""
    folds = sorted(per_fold)

    def over_folds(get) -> tuple[float, float] | None:
        values = [value for value in (get(per_fold[k]) for k in folds) if value is not None]
        return mean_std(values, ddof) if values else None

    first = per_fold[folds[0]] if folds else {"per_class": {}}
    summary: dict[str, Any] = {"ddof": ddof, "folds": folds}
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1"):
        if key in first:
            summary[key] = over_folds(lambda fold, key=key: fold[key])
    scores = [score for score in ("precision", "sensitivity", "f1", "roc_auc")
              if score in next(iter(first["per_class"].values()), {})]
    summary["per_class"] = {
        code: {
            **{score: over_folds(lambda fold, code=code, score=score: fold["per_class"][code][score])
               for score in scores},
            "support": int(sum(per_fold[k]["per_class"][code]["support"] for k in folds)),
        }
        for code in first["per_class"]
    }
    summary["groups"] = {
        name: {score: over_folds(lambda fold, name=name, score=score: fold["groups"][name][score])
               for score in ("roc_auc", "sensitivity", "specificity")}
        for name in first.get("groups", {})
    }
    return summary
