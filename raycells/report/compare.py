"""Comparing runs side by side (augmentation on and off, two architectures, transfer against
scratch): each run against the first, overall and per class, with a paired t-test across folds
(scipy's `ttest_rel`, two-sided) where two runs share the same fold plan. Runs on different fold
plans are shown side by side but never paired.

Why the paired t-test: with 5 folds the Wilcoxon signed-rank test cannot reach p < 0.05 (its
smallest two-sided p is 1/16), so it could never flag a difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import ttest_rel

from .scoring import RunScores

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
    overall = {key: _entry(baseline, other, folds, paired, lambda f, key=key: f[key]) for key in OVERALL}
    classes = [code for code in baseline.classes if code in other.classes]
    per_class = {code: {score: _entry(baseline, other, folds, paired,
                                      lambda f, code=code, score=score: f["per_class"][code][score])
                        for score in PER_CLASS}
                 for code in classes}
    return Comparison(baseline=baseline, other=other, paired=paired, folds=folds, overall=overall,
                      per_class=per_class)


def _entry(baseline: RunScores, other: RunScores, folds: list[int], paired: bool, get) -> dict[str, Any]:
    a = [get(baseline.per_fold[k]) for k in baseline.folds]
    b = [get(other.per_fold[k]) for k in other.folds]
    entry = {"baseline": float(np.mean(a)), "other": float(np.mean(b)),
             "difference": float(np.mean(b) - np.mean(a)), "p_value": None}
    if paired and len(folds) >= 2:
        x = np.array([get(baseline.per_fold[k]) for k in folds])
        y = np.array([get(other.per_fold[k]) for k in folds])
        if np.any(x != y):
            entry["p_value"] = float(ttest_rel(y, x).pvalue)
    return entry
