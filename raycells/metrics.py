"""Classification metrics with scikit-learn, per fold, and their mean ± standard deviation over
folds. The standard deviation is the sample one (ddof=1), as over cross-validation folds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

DDOF = 1
"""Degrees of freedom of every standard deviation over folds."""


@dataclass(frozen=True)
class FoldTruth:
    """A fold's test images: true labels (integers indexing `classes`) and class probabilities;
    what every metric is computed from."""

    y_true: np.ndarray
    probs: np.ndarray
    classes: list[str]

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def present(self) -> np.ndarray:
        """The classes (indices) with at least one test image in the fold."""
        return np.unique(self.y_true)


@dataclass(frozen=True)
class Metric:
    """One score of a fold's test predictions: its name (the key in metrics.json), how tables
    name it, how it is computed, whether higher is better, and, for a per-class score, whether it
    is defined for a class with no test image in the fold (none is: such a class gets no value,
    not 0, and summaries average over the folds where it has one)."""

    name: str
    label: str
    compute: Callable[..., float | None]
    """(FoldTruth) -> value; per class: (FoldTruth, class index) -> value."""
    per_class: bool = False
    higher_is_better: bool = True
    defined_when_absent: bool = False


def _recall(truth: FoldTruth, index: int) -> float:
    positive = truth.y_true == index
    return float((truth.y_pred[positive] == index).mean())


def _precision(truth: FoldTruth, index: int) -> float:
    called = truth.y_pred == index
    return float((truth.y_true[called] == index).mean()) if called.any() else 0.0


def _sklearn():
    """scikit-learn's metrics, imported when first used: a training worker, which scores only
    confusion matrices (`confusion_scores`), starts without them."""
    import sklearn.metrics

    return sklearn.metrics


def _f1(truth: FoldTruth, index: int) -> float:
    precision, recall = _precision(truth, index), _recall(truth, index)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _roc_auc(truth: FoldTruth, index: int) -> float | None:
    positive = truth.y_true == index
    return float(_sklearn().roc_auc_score(positive, truth.probs[:, index])) if (~positive).any() else None


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "accuracy", lambda t: float(_sklearn().accuracy_score(t.y_true, t.y_pred))),
    Metric("balanced_accuracy", "balanced accuracy",
           lambda t: float(np.mean([_recall(t, i) for i in t.present]))),
    Metric("macro_f1", "macro F1", lambda t: float(_sklearn().f1_score(
        t.y_true, t.y_pred, labels=t.present, average="macro", zero_division=0))),
    Metric("weighted_f1", "weighted F1", lambda t: float(_sklearn().f1_score(
        t.y_true, t.y_pred, labels=t.present, average="weighted", zero_division=0))),
    Metric("precision", "precision", _precision, per_class=True),
    Metric("sensitivity", "sensitivity", _recall, per_class=True),
    Metric("f1", "F1", _f1, per_class=True),
    Metric("roc_auc", "ROC AUC", _roc_auc, per_class=True),
)
"""Every score of a fold, in table order. Balanced accuracy and the macro and weighted F1 average
over the classes present in the fold's test part (`classes_scored` says how many)."""

OVERALL = tuple(m for m in METRICS if not m.per_class)
PER_CLASS = tuple(m for m in METRICS if m.per_class)


def score_fold(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
               groups: dict[str, tuple[str, ...]] | None = None,
               threshold: float = 0.5) -> dict[str, Any]:
    """Every metric of `METRICS` for a fold's test images (integer labels indexing `classes`,
    class probabilities), per class where the metric is, with None where it is undefined; the
    group scores of `groups` (name -> member classes) at `threshold`. The one way a fold is
    scored: the fold's metrics.json, `raycells evaluate` and the report all use it."""
    truth = FoldTruth(np.asarray(y_true), np.asarray(probs, dtype=np.float64), list(classes))
    present = set(truth.present.tolist())
    scores: dict[str, Any] = {"images": len(truth.y_true), "classes_scored": len(present),
                              "classes": len(classes)}
    for metric in OVERALL:
        scores[metric.name] = metric.compute(truth) if present else None
    scores["per_class"] = {
        code: {**{metric.name: metric.compute(truth, index)
                  if index in present or metric.defined_when_absent else None
                  for metric in PER_CLASS},
               "support": int((truth.y_true == index).sum())}
        for index, code in enumerate(classes)}
    if groups:
        scores["groups"] = {name: group_scores(truth.y_true, truth.probs, classes, members, threshold)
                            for name, members in groups.items()}
    return scores


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
        "roc_auc": float(_sklearn().roc_auc_score(positive, score)) if both else None,
        "sensitivity": float(called[positive].mean()) if positive.any() else None,
        "specificity": float((~called[~positive]).mean()) if (~positive).any() else None,
        "positives": int(positive.sum()),
    }


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
        # Over the classes present, as score_fold's: an absent class is not a failure.
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
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
    """Mean ± std (with `ddof`) over folds of every score of `METRICS` the folds hold, and of
    the group scores; a score that is None in a fold (undefined there: a class without test
    images) is left out of its mean, and each class's `folds` counts the folds it is scored in."""
    folds = sorted(per_fold)

    def over_folds(get) -> tuple[float, float] | None:
        values = [value for value in (get(per_fold[k]) for k in folds) if value is not None]
        return mean_std(values, ddof) if values else None

    first = per_fold[folds[0]] if folds else {"per_class": {}}
    summary: dict[str, Any] = {"ddof": ddof, "folds": folds}
    for metric in OVERALL:
        if metric.name in first:
            summary[metric.name] = over_folds(lambda fold, key=metric.name: fold.get(key))
    summary["per_class"] = {
        code: {
            **{metric.name: over_folds(lambda fold, code=code, key=metric.name:
                                       fold["per_class"][code].get(key))
               for metric in PER_CLASS if metric.name in first["per_class"][code]},
            "support": int(sum(per_fold[k]["per_class"][code]["support"] for k in folds)),
            "folds": sum(per_fold[k]["per_class"][code]["support"] > 0 for k in folds),
        }
        for code in first["per_class"]
    }
    summary["groups"] = {
        name: {score: over_folds(lambda fold, name=name, score=score: fold["groups"][name][score])
               for score in ("roc_auc", "sensitivity", "specificity")}
        for name in first.get("groups", {})
    }
    return summary
