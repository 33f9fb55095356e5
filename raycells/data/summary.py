"""What `raycells data inspect` shows: class counts, sizes and modes, problems, duplicates and
near-duplicates of a manifest, the shortcut check, and the classes too small for k-fold
cross-validation."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .duplicates import DuplicateSet, exact_sets, near_pairs, threshold_tradeoff
from .images import mode_note
from .manifest import Manifest, Problem, training_labels
from .schemes import PBC_FINE_LABELS, scheme_for
from .shortcuts import ShortcutCheck, check_shortcuts


@dataclass(frozen=True)
class ClassRow:
    code: str
    name: str
    count: int
    fine: dict[str, int]
    """Images per fine label within the class (empty when the dataset has none)."""


@dataclass
class DatasetSummary:
    root: str
    layout: str
    source: str
    synthetic: bool
    scheme: str | None
    """Name of the class scheme the labels belong to, if any."""
    images: int
    classes: list[ClassRow]
    sizes: list[tuple[int, int, int]]
    """(width, height, images), most common first."""
    modes: list[tuple[str, int, str | None]]
    """(mode, images, how it is converted on load)."""
    skipped: list[str]
    unreadable: list[Problem]
    duplicates: list[DuplicateSet]
    """Byte-identical files; those under different labels are label conflicts."""
    near_duplicates: list[DuplicateSet]
    near_thresholds: list[dict[str, int]]
    """What each near-duplicate threshold would group (`threshold_tradeoff`)."""
    shortcuts: ShortcutCheck
    too_small: list[tuple[str, int]] = field(default_factory=list)
    """(class, images) for classes with fewer images than folds."""
    folds: int = 5
    labels: str = "class"
    """The labels duplicates and the shortcut check were judged by: class or fine."""
    warnings: list[str] = field(default_factory=list)


def summarize(manifest: Manifest, *, folds: int = 5, labels: str = "class") -> DatasetSummary:
    """Summarise `manifest` for a k-fold run with `folds` folds; duplicates and the shortcut check
    look at the labels a run would train on (`labels`: class or fine)."""
    frame = manifest.frame
    trained = training_labels(frame, labels, manifest.root)
    counts = manifest.class_counts()
    scheme = scheme_for(list(counts))
    names = dict(scheme.classes) if scheme else {}
    if scheme and scheme.name == "pbc":
        names.update({prefix: name for prefix, (_, name) in PBC_FINE_LABELS.items()})
    order = [code for code in (scheme.table_order if scheme else sorted(counts)) if code in counts]
    classes = []
    for code in order:
        fine = frame.loc[frame["label"] == code, "fine_label"].dropna().value_counts()
        classes.append(ClassRow(code=code, name=names.get(code, ""), count=counts[code],
                                fine={str(k): int(fine[k]) for k in sorted(fine.index)}))
    sizes = Counter(zip(frame["width"].astype(int), frame["height"].astype(int)))
    modes = Counter(frame["mode"].fillna("?"))
    return DatasetSummary(
        root=manifest.root, layout=manifest.layout, source=manifest.source,
        synthetic=manifest.synthetic, scheme=scheme.name if scheme else None, images=len(frame),
        classes=classes,
        sizes=[(w, h, n) for (w, h), n in sizes.most_common()],
        modes=[(mode, n, mode_note(mode)) for mode, n in modes.most_common()],
        skipped=list(manifest.skipped), unreadable=list(manifest.unreadable),
        duplicates=exact_sets(trained), near_duplicates=near_pairs(trained),
        near_thresholds=threshold_tradeoff(trained),
        shortcuts=check_shortcuts(trained),
        too_small=[(code, n) for code, n in counts.items() if n < folds],
        folds=folds, labels=labels, warnings=list(manifest.warnings),
    )
