"""`raycells report --examples N`: per class, the test images the networks got right with the
highest probability and the mistakes they made with the highest, each beside its class
activation map (for the class the network chose), in one HTML page: report/examples.html.

Every picture is scored by its own fold's network, the one that never trained on it; the map
is that network's too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.schemes import full_names, scheme_for
from ..errors import RaycellsError
from ..runs.results import PREDICTIONS, prob_column
from ..runs.rundir import RunDir
from ..use.explain import Explained, Explainer
from ..use.gallery import Item, Section, write_gallery
from ..use.networks import RunNetworks

FILE = "examples.html"


def write_examples(run_dir: str | Path, per_class: int, *,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """Write report/examples.html for the finished folds of `run_dir`: `per_class` correct
    images and `per_class` mistakes per class. Returns the page's path."""
    run = RunDir(run_dir)
    folds = run.model_folds()
    chosen = choose_examples(run, folds, per_class)
    explained: dict[int, Explained] = {}
    done = 0
    for k, rows in chosen.groupby("fold"):
        explainer = Explainer.of(RunNetworks.of(run.path, fold=int(k)))
        try:
            found = explainer.explain(rows["path"].tolist(), rows["predicted"].tolist())
        except OSError as error:
            raise RaycellsError(f"{error.filename or run.manifest}: a test image cannot be read "
                                f"here ({error.strerror}). Make the report where the run's images "
                                "are.") from None
        explained.update(zip(rows.index, found))
        done += len(rows)
        if progress:
            progress(done, len(chosen))
    classes = list(run.read_config().get("data", {}).get("classes") or sorted(chosen["label"].unique()))
    scheme = scheme_for(classes)
    order = [code for code in scheme.table_order if code in classes] if scheme else classes
    names = full_names(classes)
    sections = []
    for code in order:
        rows = chosen[chosen["label"] == code]
        right = [_item(explained[i], row, wrong=False) for i, row in rows[~rows["mistake"]].iterrows()]
        wrong = [_item(explained[i], row, wrong=True) for i, row in rows[rows["mistake"]].iterrows()]
        sections.append(Section(f"{code}: {names[code]}", [
            ("Correct, highest probability first", right),
            ("Mistakes, most confident first", wrong)]))
    return write_gallery(
        run.report / FILE, f"Examples: {run.path}", sections,
        note=f"Test images of folds {', '.join(map(str, folds))}, each scored by its own fold's "
             f"network. Up to {per_class} correct images and {per_class} mistakes per class. "
             "Beside each cell, the Grad-CAM map of the class the network chose: warm colours "
             "mark the regions whose features raised that class's score.")


def choose_examples(run: RunDir, folds: list[int], per_class: int) -> pd.DataFrame:
    """The test predictions to show: per class, the `per_class` most probable correct ones and
    the `per_class` most confident mistakes; columns path, label, predicted, fold, probability
    (of the predicted class), mistake."""
    frames = []
    for k in folds:
        table = pd.read_parquet(run.fold(k) / PREDICTIONS)
        table["fold"] = k
        columns = [table.columns.get_loc(prob_column(code)) for code in table["predicted"]]
        table["probability"] = table.to_numpy()[np.arange(len(table)), columns].astype(float)
        frames.append(table[["path", "label", "predicted", "fold", "probability"]])
    table = pd.concat(frames, ignore_index=True)
    table["mistake"] = table["label"] != table["predicted"]
    table = table.sort_values(["probability", "path"], ascending=[False, True], kind="stable")
    picked = table.groupby(["label", "mistake"], sort=False).head(per_class)
    return picked.reset_index(drop=True)


def _item(explained: Explained, row: pd.Series, *, wrong: bool) -> Item:
    said = f"taken for {row['predicted']}" if wrong else row["predicted"]
    return Item(explained.picture, explained.overlay,
                [f"{said} ({row['probability']:.3f}), fold {row['fold']}", Path(row["path"]).name],
                wrong=wrong)
