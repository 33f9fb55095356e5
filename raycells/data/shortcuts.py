"""The shortcut check: can the label be read without looking at the cell?

If one class's images differ from the others in how they were acquired or saved (pixel size, file
format and mode, JPEG quantisation tables), a network can learn that instead of the morphology,
and its scores look better than they are. The check asks a simple classifier (a random forest,
scikit-learn) to predict the label from such facts of each image alone (the manifest's
APPEARANCE columns), under stratified cross-validation, and names every class it separates with
a one-vs-rest ROC AUC of at least AUC_LIMIT, with the facts that give it away. Whole-image
colour statistics and the compressed file size are checked separately: they depend on the
picture's content, the cell included (a granular cell compresses worse, an eosinophil is red), so
a class they separate is reported as worth a look, not as a shortcut.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

AUC_LIMIT = 0.95
PARALLEL_FROM = 2000
"""Images from which the check's forests are fitted in threads, one per core."""

FACTS = {
    "size": ("width", "height"),
    "file format and mode": ("format", "mode"),
    "JPEG quantisation tables": ("quant",),
}
"""How an image was acquired and saved, by name: each a way to read a label without the cell."""

CONTENT = {
    "colour statistics": ("mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b"),
    "file size": ("file_bytes",),
}
"""Facts of the whole picture that depend on its content, the cell included."""


@dataclass(frozen=True)
class Giveaway:
    """A class told apart from the others by facts about its images alone."""

    label: str
    auc: float
    """One-vs-rest ROC AUC of the classifier on all the facts of its kind."""
    facts: list[tuple[str, float]]
    """(fact, AUC on that fact alone), those that give the class away, strongest first."""


@dataclass
class ShortcutCheck:
    shortcuts: list[Giveaway] = field(default_factory=list)
    """Classes readable from acquisition facts (size, format and mode, quantisation tables)."""
    content: list[Giveaway] = field(default_factory=list)
    """Classes readable from colour statistics or file size (partly the cell itself)."""
    skipped: str | None = None
    """Why the check could not run, if it could not."""

    def warnings(self) -> list[str]:
        """What a user must hear: the shortcuts found (content findings are `notes`)."""
        if not self.shortcuts:
            return []
        named = "; ".join(_describe(found) for found in self.shortcuts)
        return [f"shortcut check: {named}. A network can learn these instead of the cells, and "
                "its scores for these classes then look better than they are. Make the images "
                "alike (crop or resize them to one size, save them one way) or read the per-class "
                "scores with this in mind."]

    def notes(self) -> list[str]:
        if not self.content:
            return []
        named = "; ".join(_describe(found) for found in self.content)
        return [f"whole-image statistics separate {named}. They are partly the cells' own look "
                "(staining, granularity); differences in illumination, background or "
                "compression between classes would be a shortcut."]


def check_shortcuts(frame: pd.DataFrame, *, seed: int = 0, limit: float = AUC_LIMIT) -> ShortcutCheck:
    """Run the shortcut check on a manifest frame (its `label` column)."""
    labels = frame["label"].astype(str).to_numpy()
    counts = pd.Series(labels).value_counts()
    splits = min(5, int(counts.min())) if len(counts) > 1 else 0
    if splits < 2:
        return ShortcutCheck(skipped="it needs at least two classes of two images or more")
    facts = {name: columns for name, columns in FACTS.items() if _known(frame, columns)}
    if not facts:
        return ShortcutCheck(skipped="the manifest records no image facts (it was written by an "
                                     "older raycells): index the dataset again")
    content = {name: columns for name, columns in CONTENT.items() if _known(frame, columns)}
    return ShortcutCheck(shortcuts=_giveaways(frame, facts, labels, splits, seed, limit),
                         content=_giveaways(frame, content, labels, splits, seed, limit))


def _giveaways(frame: pd.DataFrame, facts: dict[str, tuple[str, ...]], labels: np.ndarray,
               splits: int, seed: int, limit: float) -> list[Giveaway]:
    """The classes `facts` together separate, each with the facts that do it alone."""
    if not facts:
        return []
    together = _aucs(frame, [c for columns in facts.values() for c in columns], labels, splits, seed)
    flagged = [label for label, auc in together.items() if auc >= limit]
    if not flagged:
        return []
    alone = ({name: _aucs(frame, columns, labels, splits, seed) for name, columns in facts.items()}
             if len(facts) > 1 else {name: together for name in facts})
    return [_giveaway(label, together[label], alone, limit) for label in flagged]


def _giveaway(label: str, auc: float, alone: dict[str, dict[str, float]], limit: float) -> Giveaway:
    ranked = sorted(((name, aucs[label]) for name, aucs in alone.items()), key=lambda x: -x[1])
    strong = [(name, value) for name, value in ranked if value >= limit - 0.05]
    return Giveaway(label, auc, strong or ranked[:1])


def _describe(found: Giveaway) -> str:
    facts = ", ".join(f"{name} (AUC {auc:.2f})" for name, auc in found.facts)
    return f"{found.label} (AUC {found.auc:.2f}: {facts})"


def _known(frame: pd.DataFrame, columns) -> bool:
    return all(c in frame and frame[c].notna().any() for c in columns)


def _aucs(frame: pd.DataFrame, columns: list[str], labels: np.ndarray, splits: int,
          seed: int) -> dict[str, float]:
    """One-vs-rest ROC AUC per class of a random forest on `columns`, cross-validated."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    parts = []
    for column in columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values):
            parts.append(values.astype(float).fillna(-1.0).to_numpy()[:, None])
        else:  # a category: one column per value
            parts.append(pd.get_dummies(values.astype("string").fillna("?")).to_numpy(float))
    # Threads pay off from a few thousand images (PBC's 8,561: 3.8 s a cross-validation on 2
    # cores, 6.6 s in one thread); below, starting them costs more (160 images: 0.6 s, 0.35 s in
    # one). The forests, and so the scores, are the same either way.
    forest = RandomForestClassifier(n_estimators=50, min_samples_leaf=3, random_state=seed,
                                    n_jobs=-1 if len(labels) >= PARALLEL_FROM else 1)
    probabilities = cross_val_predict(forest, np.hstack(parts), labels, method="predict_proba",
                                      cv=StratifiedKFold(splits, shuffle=True, random_state=seed))
    classes = np.unique(labels)
    return {str(label): float(roc_auc_score(labels == label, probabilities[:, i]))
            for i, label in enumerate(classes)}
