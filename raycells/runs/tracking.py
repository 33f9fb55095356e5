"""A run's record in MLflow: one MLflow run for the raycells run (its settings as parameters,
where it came from as tags, the mean test scores at the end) and one nested run per fold (the
fold's settings, every epoch's metrics as the first worker reports them, the fold's test
scores); `raycells report` adds the report's files as artifacts.

By default the record goes to the project's store: one SQLite file in the folder that holds the
run directory (runs/mlflow.db for runs/cv-..., artifacts in runs/mlartifacts), so that every run
of a project is side by side in `mlflow ui --backend-store-uri sqlite:///runs/mlflow.db`, with
no server to run and nothing in the current folder. `Placement.mlflow_uri` names another store,
such as a team's tracking server; `Placement.tracking` off records nothing. The MLflow ids go to
RUN/tracking.json, so a resumed run and its report add to the same MLflow runs. (A run directory
moved to another folder starts a new record in that folder's store when it resumes; its report
is not added to the old one.)

Only the driver writes: it logs what rank 0 posts to the progress board, from its own thread, so
a training step never waits for the store and workers need no access to it. A store that fails
ends the tracking with one `tracking_failed` event; the training and the run directory go on.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import RaycellsError
from ..files import write_json
from ..settings import Placement, dotted
from .rundir import RunDir

TRACKING_FILE = "tracking.json"
EXPERIMENT = "raycells"
"""The MLflow experiment of every raycells run (MLFLOW_EXPERIMENT_NAME overrides it)."""
EPOCH_METRICS = ("lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                 "val_balanced_accuracy", "val_macro_f1", "steps", "images_per_s",
                 "data_wait_seconds", "train_seconds", "val_seconds")
"""The history.csv columns logged for every epoch (step = epoch)."""
TEST_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def check_server(uri: str, seconds: float = 5.0) -> None:
    """Fail in seconds, before any work, when nothing answers at an MLflow server's address
    (`http(s)://host[:port]`): MLflow retries for minutes before it gives up."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return  # a local store (sqlite:///, file:), or a scheme MLflow resolves itself
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=seconds).close()
    except OSError as error:
        raise RaycellsError(f"nothing answers at --mlflow-uri {uri} ({error.strerror or error}): "
                            "start the server or fix the address, or pass --no-tracking (the run "
                            "directory keeps every result either way).") from None


def mlflow_key(name: str) -> str:
    """`name` as MLflow accepts a metric's or parameter's name (letters, digits, _ - . / and
    spaces): a class named `+(‹=` would otherwise stop the record."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)


STORE = "mlflow.db"


def local_uri(run: RunDir) -> str:
    """The project's tracking store: in the folder that holds the run directory (a run recorded
    by raycells before 2026-12-03 has its own, RUN/mlflow.db, and keeps it)."""
    here = run.path.resolve()
    return store_uri(here if (here / STORE).is_file() else here.parent)


def store_uri(folder: Path) -> str:
    """The SQLite tracking store of the runs in `folder`."""
    return f"sqlite:///{Path(folder).resolve() / STORE}"


def flat(values: dict[str, Any]) -> dict[str, str]:
    """Nested settings as MLflow parameters: {"augment": {"flip": 0.5}} -> {"augment.flip": "0.5"}."""
    return {key: str(value) for key, value in dotted(values).items()}


class Tracker:
    """The MLflow record of one run directory; every method is safe to call from any thread and
    does nothing once tracking is off or has failed."""

    def __init__(self, run: RunDir, uri: str | None, emit: Callable[..., None]) -> None:
        self.run, self.uri, self._emit = run, uri, emit
        self._lock = threading.Lock()
        self._client = None
        self._ids: dict[str, Any] = {}
        self._logged: dict[int, set[int]] = {}  # fold -> epochs already logged
        self.failed: str | None = None

    @classmethod
    def open(cls, run: RunDir, placement: Placement, config: dict[str, Any],
             emit: Callable[..., None]) -> Tracker:
        """The record of `run` (created, or reopened from tracking.json when the store is the
        same), with `config` (config.json's content) as the parent run's parameters and tags."""
        uri = (placement.mlflow_uri or local_uri(run)) if placement.tracking else None
        tracker = cls(run, uri, emit)
        if uri is not None:
            with _creating(uri):  # runs started at once in one folder make its store once
                tracker._guarded(lambda: tracker._start(config))
            if tracker.active:
                emit("tracking", uri=uri, run_id=tracker._ids["run_id"])
        return tracker

    @property
    def local(self) -> bool:
        return self.uri == local_uri(self.run)

    @property
    def active(self) -> bool:
        return self.uri is not None and self.failed is None and "run_id" in self._ids

    def fold_started(self, fold: int, settings: dict[str, Any]) -> None:
        """Open fold `fold`'s nested run (again, after a resume) with its settings."""
        self._guarded(lambda: self._fold_run(fold, settings))

    def epochs(self, fold: int, records: list[dict[str, Any]]) -> None:
        """Log the epochs of `records` (history rows: "epoch" and EPOCH_METRICS) not yet logged."""
        self._guarded(lambda: self._log_epochs(fold, records))

    def fold_finished(self, fold: int, metrics: dict[str, Any],
                      history: list[dict[str, Any]]) -> None:
        """Log the fold's epochs not logged yet, its test scores, and close its run."""
        def finish() -> None:
            from mlflow.entities import Metric

            self._log_epochs(fold, history)
            now = _millis()
            scores = [Metric(f"test_{key}", float(metrics[key]), now, 0) for key in TEST_METRICS]
            for code, row in metrics.get("per_class", {}).items():
                scores += [Metric(mlflow_key(f"test_{key}_{code}"), float(row[key]), now, 0)
                           for key in ("precision", "sensitivity") if row.get(key) is not None]
            run_id = self._ids["folds"][str(fold)]
            self._client.log_batch(run_id, metrics=scores)
            self._client.set_terminated(run_id, "FINISHED")
        self._guarded(finish)

    def finish(self, status: str, summary: dict[str, Any] | None = None) -> None:
        """Close the run with MLflow's `status` (FINISHED, FAILED, KILLED), the mean and std of
        the test scores over the finished folds in `summary`; folds still open get `status` too."""
        def close() -> None:
            from mlflow.entities import Metric

            now = _millis()
            if summary:
                scores = [Metric(f"test_{key}_{part}", float(value), now, 0)
                          for key in TEST_METRICS if summary.get(key) is not None
                          for part, value in zip(("mean", "std"), summary[key])]
                self._client.log_batch(self._ids["run_id"], metrics=scores)
            for run_id in self._ids["folds"].values():
                if self._client.get_run(run_id).info.status == "RUNNING":
                    self._client.set_terminated(run_id, status)
            self._client.set_terminated(self._ids["run_id"], status)
        self._guarded(close)

    def _start(self, config: dict[str, Any]) -> None:
        saved = _read_ids(self.run)
        self._client = _client(self.uri)
        stored = None if self.local else self.uri  # the project's store is beside the run
        same_place = not self.local or saved.get("run_dir") == str(self.run.path.resolve())
        if "run_id" in saved and saved.get("uri") == stored and same_place:
            self._ids = saved
            self._client.update_run(saved["run_id"], status="RUNNING")
            return
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            experiment_id = self._client.create_experiment(
                name, artifact_location=_artifacts(self.run).as_uri() if self.local else None)
        settings = config.get("settings", {})
        parent = self._client.create_run(experiment_id, run_name=self.run.path.name,
                                         tags=_tags(self.run, config))
        self._client.log_batch(parent.info.run_id, params=_params(settings.get("experiment", {})))
        self._ids = {"uri": stored, "run_dir": str(self.run.path.resolve()),
                     "experiment_id": experiment_id, "run_id": parent.info.run_id, "folds": {}}
        write_json(self.run.path / TRACKING_FILE, self._ids)

    def _fold_run(self, fold: int, settings: dict[str, Any]) -> None:
        run_id = self._ids["folds"].get(str(fold))
        if run_id is not None:
            self._client.update_run(run_id, status="RUNNING")
            self._logged[fold] = {int(m.step) for m in
                                  self._client.get_metric_history(run_id, "val_macro_f1")}
            return
        created = self._client.create_run(
            self._ids["experiment_id"], run_name=f"fold-{fold}",
            tags={"mlflow.parentRunId": self._ids["run_id"], "raycells.fold": str(fold)})
        self._client.log_batch(created.info.run_id, params=_params(settings))
        self._ids["folds"][str(fold)] = created.info.run_id
        self._logged[fold] = set()
        write_json(self.run.path / TRACKING_FILE, self._ids)

    def _log_epochs(self, fold: int, records: list[dict[str, Any]]) -> None:
        from mlflow.entities import Metric

        logged = self._logged.setdefault(fold, set())
        new = [record for record in records if int(record["epoch"]) not in logged]
        if not new:
            return
        metrics = [Metric(key, float(record[key]), int(1000 * record.get("ended_at", time.time())),
                          int(record["epoch"]))
                   for record in new for key in EPOCH_METRICS if record.get(key) is not None]
        self._client.log_batch(self._ids["folds"][str(fold)], metrics=metrics)
        logged.update(int(record["epoch"]) for record in new)

    def _guarded(self, work: Callable[[], None]) -> None:
        """Run `work` unless tracking is off or failed; a failure turns tracking off, once."""
        with self._lock:
            if self.uri is None or self.failed is not None:
                return
            try:
                work()
            except Exception as error:  # the store's trouble never stops the training
                self.failed = f"{type(error).__name__}: {error}"
                self._emit("tracking_failed", uri=self.uri, error=self.failed)


def report_artifacts(run: RunDir, folder: Path, uri: str | None = None) -> str | None:
    """Add the report in `folder` to the run's MLflow record as artifacts under report/; returns
    the MLflow run's id, or None when the run was not tracked. A record on a server is written
    only when the caller names that server (`uri`, --mlflow-uri): tracking.json comes with the
    run directory, which may be someone else's, and a run directory never sends data anywhere
    on its own."""
    saved = _read_ids(run)
    if "run_id" not in saved:
        return None
    if saved.get("uri") is not None and saved["uri"] != uri:
        raise RaycellsError(
            f"{run.path / TRACKING_FILE} says the run's MLflow record is at {saved['uri']}; the "
            f"report is not sent there unless you ask: pass --mlflow-uri {saved['uri']} to add it.")
    here = run.path.resolve()
    if saved.get("uri") is None and saved.get("run_dir") != str(here):
        raise RaycellsError(
            f"{run.path} was moved or copied from {saved.get('run_dir')}, whose folder's MLflow "
            f"store holds its record: the report is not added there. Open the record with "
            f"`mlflow ui --backend-store-uri {local_uri(RunDir(str(saved.get('run_dir'))))}`.")
    _client(saved.get("uri") or local_uri(run)).log_artifacts(saved["run_id"], str(folder),
                                                               artifact_path="report")
    return saved["run_id"]


@contextmanager
def _creating(uri: str) -> Iterator[None]:
    """Hold a lock beside an SQLite store (mlflow.db.lock) while the block makes its tables or
    the experiment: two runs starting at once in one folder would both make them, and one fail."""
    import fcntl

    path = Path(uri[len("sqlite:///"):] + ".lock") if uri.startswith("sqlite:///") else None
    if path is None or not path.parent.is_dir():  # no folder: making the store fails, guarded
        yield
        return
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _artifacts(run: RunDir) -> Path:
    return run.path.resolve().parent / "mlartifacts"


def _client(uri: str):
    """An MLflow client of `uri`, quiet (its INFO lines and alembic's would reach the terminal)
    and without MLflow's usage telemetry."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient  # configures MLflow's loggers: quieted after

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def _read_ids(run: RunDir) -> dict[str, Any]:
    file = run.path / TRACKING_FILE
    try:
        return json.loads(file.read_text()) if file.is_file() else {}
    except (OSError, ValueError):
        return {}  # unreadable: a new record is started


def _params(settings: dict[str, Any]):
    from mlflow.entities import Param

    return [Param(key, value[:6000]) for key, value in sorted(flat(settings).items())]


def _tags(run: RunDir, config: dict[str, Any]) -> dict[str, str]:
    data = config.get("data", {})
    tags = {"raycells.command": config.get("command"), "raycells.run_dir": str(run.path.resolve()),
            "raycells.version": config.get("raycells"), "raycells.command_line": config.get("command_line"),
            "mlflow.source.git.commit": config.get("git_revision"),
            "raycells.git_dirty": config.get("git_dirty"), "raycells.data": data.get("root"),
            "raycells.data_fingerprint": data.get("fingerprint"),
            "raycells.images": data.get("images"), "raycells.synthetic": data.get("synthetic"),
            "raycells.gpus": ", ".join(config.get("gpus") or []) or "none"}
    return {key: str(value) for key, value in tags.items() if value is not None}


def _millis() -> int:
    return int(time.time() * 1000)
