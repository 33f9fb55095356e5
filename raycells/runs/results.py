"""A fold's results, the one place their files and the predictions' columns are named.

Every finished fold of a run directory (a cross-validation's, a transfer's, an evaluation's
single fold-0) holds:

- predictions.parquet: one row per test image: path, label, predicted, fold, then
  prob_<class> for every class in the run's class order;
- metrics.json: `raycells.metrics.score_fold` of those predictions plus how the fold ran;
  written last, atomically: it marks the fold finished;
- history.csv: one row per epoch (not for an evaluation, which trains nothing).

`raycells predict` writes a table of its own (`raycells.use.predict`) with the same
prob_<class> columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import atomic_path, write_csv, write_json

PREDICTIONS = "predictions.parquet"
METRICS = "metrics.json"
HISTORY = "history.csv"


def prob_column(code: str) -> str:
    """The column holding class `code`'s probability."""
    return f"prob_{code}"


def predictions_frame(plan: pd.DataFrame, classes: list[str], rows: np.ndarray,
                      probs: np.ndarray, fold: int) -> pd.DataFrame:
    """predictions.parquet's table for the plan's `rows` and their probabilities `probs`."""
    frame = pd.DataFrame({
        "path": plan["path"].to_numpy()[rows],
        "label": plan["label"].to_numpy()[rows],
        "predicted": np.asarray(classes)[probs.argmax(1)],
        "fold": fold,
    })
    for index, code in enumerate(classes):
        frame[prob_column(code)] = probs[:, index].astype(np.float32)
    return frame


def probabilities(predictions: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """The (images, classes) probabilities of a predictions table, in `classes`' order."""
    return predictions[[prob_column(code) for code in classes]].to_numpy(dtype=np.float64)


def read_predictions(fold_dir: Path, classes: list[str]) -> pd.DataFrame | str:
    """A fold's predictions, or what is wrong with its file (damaged, or columns missing)."""
    import pyarrow as pa

    path = fold_dir / PREDICTIONS
    try:
        predictions = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        return f"{path} cannot be read ({str(error).splitlines()[0] if str(error) else error!r})"
    lacking = [name for name in ["label", *map(prob_column, classes)] if name not in predictions.columns]
    if lacking:
        return f"{path} lacks the columns {', '.join(lacking)}"
    return predictions


def write_fold_results(fold_dir: Path, predictions: pd.DataFrame, metrics: dict[str, Any],
                       history: pd.DataFrame | None = None) -> None:
    """Write a fold's results, metrics.json last (so the fold counts as finished only once the
    others are complete)."""
    fold_dir.mkdir(parents=True, exist_ok=True)
    if history is not None:
        write_csv(history, fold_dir / HISTORY)
    with atomic_path(fold_dir / PREDICTIONS) as tmp:
        predictions.to_parquet(tmp, index=False)
    write_json(fold_dir / METRICS, metrics)


def read_metrics(fold_dir: Path) -> dict[str, Any]:
    """A finished fold's metrics.json."""
    import json

    return json.loads((fold_dir / METRICS).read_text())
