"""The published results of Matek et al. 2019, as data: per-class precision and sensitivity
(mean ± std over the folds of their cross-validation) and the blast and atypical-cell ROC
AUCs. Shown beside a run's results when the run uses the AML scheme."""

from __future__ import annotations

CITATION = ("Matek C., Schwarz S., Spiekermann K., Marr C. (2019). Human-level recognition of "
            "blast cells in acute myeloid leukaemia with convolutional neural networks. "
            "Nature Machine Intelligence 1, 538-544.")

PER_CLASS: dict[str, dict[str, tuple[float, float]]] = {
    # class: precision (mean, std) and sensitivity (mean, std); images per class are
    # raycells.data.schemes.AML.counts
    "NGS": {"precision": (0.99, 0.00), "sensitivity": (0.96, 0.01)},
    "NGB": {"precision": (0.25, 0.03), "sensitivity": (0.59, 0.16)},
    "LYT": {"precision": (0.96, 0.01), "sensitivity": (0.95, 0.02)},
    "LYA": {"precision": (0.20, 0.40), "sensitivity": (0.07, 0.13)},
    "MON": {"precision": (0.90, 0.04), "sensitivity": (0.90, 0.05)},
    "EOS": {"precision": (0.95, 0.04), "sensitivity": (0.95, 0.01)},
    "BAS": {"precision": (0.48, 0.16), "sensitivity": (0.82, 0.07)},
    "MYO": {"precision": (0.94, 0.01), "sensitivity": (0.94, 0.02)},
    "PMO": {"precision": (0.63, 0.16), "sensitivity": (0.54, 0.20)},
    "PMB": {"precision": (0.45, 0.32), "sensitivity": (0.41, 0.37)},
    "MYB": {"precision": (0.46, 0.19), "sensitivity": (0.43, 0.07)},
    "MMZ": {"precision": (0.07, 0.13), "sensitivity": (0.13, 0.27)},
    "MOB": {"precision": (0.52, 0.30), "sensitivity": (0.58, 0.26)},
    "EBO": {"precision": (0.75, 0.20), "sensitivity": (0.87, 0.09)},
    "KSC": {"precision": (0.53, 0.28), "sensitivity": (0.77, 0.20)},
}

GROUP_AUC: dict[str, tuple[float, float]] = {"blast": (0.991, 0.002), "atypical": (0.992, 0.001)}
"""ROC AUC (mean, std) of P(blast) and P(atypical)."""
