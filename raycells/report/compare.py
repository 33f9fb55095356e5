"""Comparing runs side by side (augmentation on and off, two architectures, transfer against
scratch): each run against the first, overall and per class, paired fold by fold where two runs
share the same fold plan. Runs on different fold plans are shown side by side but never paired.

The test is Nadeau and Bengio's corrected resampled t-test (Machine Learning 52, 2003; as
recommended for k-fold CV by Bouckaert and Frank, 2004): the folds' training parts overlap, so
their differences are correlated and the plain paired t-test is over-confident. The variance of
the mean difference is inflated from var/J to (1/J + n_test/n_train) * var, with n_test and
n_train the images a fold tests and trains on, from the fold plan (the inner validation hold-out
is not trained on, extra training images are; 1/(k-1) without either); two-sided, J-1 degrees of
freedom. The per-class p-values of each score carry a Holm correction over the classes (a family
of as many tests as classes).

Why a t-test: with 5 folds the Wilcoxon signed-rank test cannot reach p < 0.05 (its smallest
two-sided p is 1/16), so it could never flag a difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from ..data.schemes import scheme_for
from .scoring import RunScores

TEST = ("Nadeau-Bengio corrected resampled t-test over folds, two-sided; per-class p-values "
        "Holm-corrected over the classes")

OVERALL = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")
PER_CLASS = ("precision", "sensitivity", "f1")


@dataclass
class Comparison:
    baseline: RunScores
    other: RunScores
    paired: bool
    """True when both runs used the same fold plan; only then are p-values given."""
    folds: list[int]
    """Folds both runs have (the pairs, when paired)."""
    test_train_ratio: float | None
    """n_test/n_train of the shared plan, for the test's correction (None: no training part)."""
    overall: dict[str, dict[str, Any]]
    """score -> {baseline, other, difference, p_value}."""
    per_class: dict[str, dict[str, dict[str, Any]]]
    """class -> score -> {baseline, other, difference, p_value}."""


def compare(runs: list[RunScores]) -> list[Comparison]:
    """Every run after the first against the first."""
    return [_compare(runs[0], other) for other in runs[1:]]


def _compare(baseline: RunScores, other: RunScores) -> Comparison:
    paired = baseline.plan_id == other.plan_id
    folds = sorted(set(baseline.folds) & set(other.folds))
    ratio = baseline.test_train_ratio

    def entry(get):
        return _entry(baseline, other, folds if paired and ratio else [], ratio, get)

    overall = {key: entry(lambda f, key=key: f[key]) for key in OVERALL}
    scheme = scheme_for(baseline.classes)
    order = [c for c in scheme.table_order if c in baseline.classes] if scheme else baseline.classes
    classes = [code for code in order if code in other.classes]  # as the tables list them
    per_class = {code: {score: entry(lambda f, code=code, score=score: f["per_class"][code][score])
                        for score in PER_CLASS}
                 for code in classes}
    for score in PER_CLASS:
        adjusted = holm([per_class[code][score]["p_value"] for code in classes])
        for code, p in zip(classes, adjusted):
            per_class[code][score]["p_holm"] = p
    return Comparison(baseline=baseline, other=other, paired=paired, folds=folds,
                      test_train_ratio=ratio,
                      overall=overall, per_class=per_class)


def corrected_t_test(differences: np.ndarray, test_train_ratio: float) -> float | None:
    """Two-sided p-value of Nadeau and Bengio's corrected resampled t-test for the per-fold
    differences of a CV whose folds test n_test and train on n_train images (`test_train_ratio`
    = n_test/n_train; 1/(k-1) for a plain k-fold CV); None when it is undefined (fewer than 2
    pairs, or no variation)."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2:
        return None
    if np.ptp(d) < 1e-12:  # the same difference in every fold: the test says nothing
        return None
    statistic = d.mean() / np.sqrt(d.var(ddof=1) * (1 / len(d) + test_train_ratio))
    return float(2 * student_t.sf(abs(statistic), df=len(d) - 1))


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None: no test, left out)."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def _entry(baseline: RunScores, other: RunScores, pairs: list[int], ratio: float | None,
           get) -> dict[str, Any]:
    """A score of both runs (means over the folds where it is defined: None where it is in none)
    and, for `pairs`, the test over the folds where both define it."""
    a = [v for v in (get(baseline.per_fold[k]) for k in baseline.folds) if v is not None]
    b = [v for v in (get(other.per_fold[k]) for k in other.folds) if v is not None]
    differences = [get(other.per_fold[k]) - get(baseline.per_fold[k]) for k in pairs
                   if get(other.per_fold[k]) is not None and get(baseline.per_fold[k]) is not None]
    mean_a, mean_b = (float(np.mean(a)) if a else None), (float(np.mean(b)) if b else None)
    return {"baseline": mean_a, "other": mean_b,
            "difference": mean_b - mean_a if a and b else None,
            "p_value": corrected_t_test(differences, ratio) if differences else None}
