"""Indexing: a dataset folder (or a CSV of path,label) becomes a Manifest.

Recognised layouts, decided by looking at the folder:

- ``tcia-aml``: the Munich AML tree ``AML-Cytomorphology_LMU/<CLS>/*.tiff`` (pass the tree or the
  folder holding it), with ``annotations.dat`` when present;
- ``pbc``: ``<class>/<PREFIX>_<id>.jpg`` with the 8 PBC class folders; the prefix is the fine label;
- ``demo``: the built-in synthetic dataset (see ``raycells.data.demo``);
- ``folders``: any other ``<class>/<image>`` tree;
- ``csv``: a CSV file with path and label columns (fine_label and group optional).

Images to predict need no labels: `index_images` takes folders (any layout), CSVs with a path
column, manifests and image files, and indexes them as layout ``images``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from ..errors import RaycellsError
from ..interrupts import held_signals
from . import probes
from .images import IMAGE_SUFFIXES, MAX_PIXELS, ImageFacts, UnreadableImage, is_image_name, probe
from .manifest import COLUMNS, Manifest, Problem, read_manifest
from .schemes import AML, PBC, PBC_FINE_LABELS

TCIA_FOLDER = "AML-Cytomorphology_LMU"
ANNOTATIONS_FILE = "annotations.dat"
DEMO_MARKER = "raycells-demo.json"

Progress = Callable[[int, int], None]
"""Called as progress(done, total) while image files are read."""

_PREFIX = re.compile(r"^([A-Za-z]+)_[^.]+\.\w+$")

_LAYOUT_HELP = (
    "Expected one of: the TCIA tree AML-Cytomorphology_LMU/<CLS>/*.tiff, the PBC tree "
    "<class>/<PREFIX>_<id>.jpg, any <class>/<image> tree (one subfolder per class), or a CSV "
    "file with path,label columns."
)


def open_dataset(path: str | os.PathLike, *, progress: Progress | None = None,
                 max_pixels: int = MAX_PIXELS, allow_outside: bool = False) -> Manifest:
    """The manifest of the dataset at `path`: a Parquet manifest is read, a folder or CSV is
    indexed (see `index_dataset`)."""
    if str(path).lower().endswith(".parquet") and Path(path).is_file():
        return read_manifest(path)
    return index_dataset(path, progress=progress, max_pixels=max_pixels,
                         allow_outside=allow_outside)


def index_dataset(path: str | os.PathLike, *, progress: Progress | None = None,
                  threads: int | None = None, max_pixels: int = MAX_PIXELS,
                  allow_outside: bool = False) -> Manifest:
    """Index the dataset at `path` (folder or CSV). Unreadable images (images larger than
    `max_pixels` among them) are listed in the result, never raised; a path that is not a
    dataset raises RaycellsError, as does a CSV listing images outside its folder unless
    `allow_outside`."""
    root = Path(path).expanduser()
    if not root.exists():
        raise RaycellsError(f"{root}: no such file or folder. Check the path (relative paths start "
                            f"from {Path.cwd()}).")
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return _index_csv(root.resolve(), progress, threads, max_pixels, allow_outside)
        raise RaycellsError(f"{root}: a file, but not a CSV. Pass a dataset folder or a CSV with "
                            "path,label columns. " + _LAYOUT_HELP)
    root = root.resolve()
    if (root / TCIA_FOLDER).is_dir():
        root = root / TCIA_FOLDER
    entries = [entry for entry in root.iterdir() if not entry.name.startswith(".")]
    if not entries:
        raise RaycellsError(f"{root}: the folder is empty. Point to the dataset's top folder, the "
                            "one that holds one subfolder per class.")
    class_dirs = sorted(entry for entry in entries if entry.is_dir())
    if not class_dirs:
        loose = [entry for entry in entries if is_image_name(entry)]
        hint = (f"It holds {len(loose)} images but no class subfolders: move each class into "
                "its own subfolder, or list them in a CSV with path,label columns. "
                if loose else "")
        raise RaycellsError(f"{root}: no recognised dataset layout. {hint}{_LAYOUT_HELP}")

    files = {folder.name: sorted(p for p in folder.rglob("*") if p.is_file()) for folder in class_dirs}
    layout = _detect_layout(root, files)
    warnings = [f"{root / name}: empty class folder, left out. Add its images or remove the folder."
                for name, paths in files.items() if not paths]

    rows, skipped = [], []
    for label, paths in files.items():
        for file in paths:
            if not is_image_name(file):
                skipped.append(str(file))
                continue
            row = {"path": str(file), "label": label, "fine_label": None, "group": None}
            if layout == "pbc":
                match = _PREFIX.match(file.name)
                row["fine_label"] = match.group(1).upper() if match else None
            rows.append(row)
    if not rows:
        raise RaycellsError(f"{root}: the class folders hold no image files "
                            f"({len(skipped)} other files). " + _LAYOUT_HELP)

    if layout == "tcia-aml" and (root / ANNOTATIONS_FILE).is_file():
        warnings += _apply_annotations(root / ANNOTATIONS_FILE, rows)
    if layout == "pbc":
        unknown = sorted({r["fine_label"] for r in rows} - set(PBC_FINE_LABELS) - {None})
        if unknown:
            warnings.append(f"{root}: unknown PBC file-name prefixes {', '.join(unknown)}; kept as "
                            "fine labels.")

    source = {"tcia-aml": "matek-aml", "pbc": "pbc", "demo": "demo-synthetic"}.get(layout, root.name)
    frame, unreadable = _probe_all(rows, source, progress, threads, max_pixels)
    return Manifest(frame=frame, root=str(root), layout=layout, source=source,
                    synthetic=layout == "demo", skipped=skipped, unreadable=unreadable,
                    warnings=warnings)


def index_images(sources: list[str | os.PathLike], *, progress: Progress | None = None,
                 max_pixels: int = MAX_PIXELS, allow_outside: bool = False) -> Manifest:
    """Index unlabelled images: every image under a folder (recursively, any layout), the `path`
    column of a CSV (relative to its folder), a Parquet manifest's rows, or image files. Labels
    are kept where a CSV or manifest has them. Unreadable images and files with other names are
    listed in the result, never raised; a source that does not exist raises RaycellsError."""
    rows: list[dict] = []
    skipped: list[str] = []
    unreadable: list[Problem] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            for file in sorted(p for p in path.resolve().rglob("*") if p.is_file()):
                if is_image_name(file):
                    rows.append({"path": str(file)})
                elif not file.name.startswith("."):
                    skipped.append(str(file))
        elif path.suffix.lower() == ".csv" and path.is_file():
            found, missing, _ = _csv_rows(path.resolve(), ("path",), allow_outside)
            rows += [{"path": row["path"], "label": row.get("label") or None} for row in found]
            unreadable += missing
        elif path.suffix.lower() == ".parquet" and path.is_file():
            rows += read_manifest(path).frame[["path", "label"]].to_dict("records")
        elif path.is_file() and is_image_name(path):
            rows.append({"path": str(path.resolve())})
        elif path.exists():
            raise RaycellsError(f"{path}: neither an image, a folder, a CSV with a path column nor "
                                "a Parquet manifest. Pass images, or folders holding them.")
        else:
            raise RaycellsError(f"{path}: no such file or folder. Check the path (relative paths "
                                f"start from {Path.cwd()}).")
    rows = list({row["path"]: {"label": None, "fine_label": None, "group": None, **row}
                 for row in rows}.values())
    if not rows:
        raise RaycellsError(f"{', '.join(map(str, sources))}: no image files there "
                            f"({len(skipped)} other files). Image files end in "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))}.")
    frame, more = _probe_all(rows, "images", progress, None, max_pixels)
    frame = frame.sort_values("path", kind="stable").reset_index(drop=True)
    return Manifest(frame=frame, root=str(sources[0]), layout="images", source="images",
                    skipped=skipped, unreadable=unreadable + more)


def _detect_layout(root: Path, files: dict[str, list[Path]]) -> str:
    names = set(files)
    if (root / DEMO_MARKER).is_file():
        marker = json.loads((root / DEMO_MARKER).read_text())
        if marker.get("synthetic"):
            return "demo"
    all_files = [p for paths in files.values() for p in paths]
    if names <= set(AML.classes) and (root.name == TCIA_FOLDER or
                                       any(p.suffix.lower() in (".tif", ".tiff") for p in all_files)):
        return "tcia-aml"
    if names <= set(PBC.classes):
        images = [p for p in all_files if is_image_name(p) and not p.name.startswith(".")]
        prefixed = sum(1 for p in images if _PREFIX.match(p.name))
        if images and prefixed >= 0.9 * len(images):
            return "pbc"
    return "folders"


def _apply_annotations(annotations: Path, rows: list[dict]) -> list[str]:
    """Label TCIA images by annotations.dat: columns path, first, second and third annotation
    (whitespace separated, 'nan' where absent). The first annotation is the label; the others are
    kept as annotation_2 and annotation_3. Images are matched by file name."""
    by_name: dict[str, list[str]] = {}
    bad_lines = 0
    for line in annotations.read_text(errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            bad_lines += 1
            continue
        values = [None if value.lower() == "nan" else value for value in parts[1:4]]
        by_name[Path(parts[0]).name] = values + [None] * (3 - len(values))
    warnings = []
    if bad_lines:
        warnings.append(f"{annotations}: {bad_lines} lines without an annotation were ignored.")
    not_listed = 0
    for row in rows:
        values = by_name.pop(Path(row["path"]).name, None)
        if values is None:
            not_listed += 1
            row["annotation_2"] = row["annotation_3"] = None
            continue
        if values[0]:
            row["label"] = values[0]
        row["annotation_2"], row["annotation_3"] = values[1], values[2]
    if not_listed:
        warnings.append(f"{annotations}: {not_listed} images are not listed; they keep their "
                        "folder's label.")
    if by_name:
        example = next(iter(by_name))
        warnings.append(f"{annotations}: {len(by_name)} listed files were not found "
                        f"(for example {example}).")
    return warnings


def _index_csv(csv: Path, progress: Progress | None, threads: int | None,
               max_pixels: int, allow_outside: bool) -> Manifest:
    found, unreadable, blank = _csv_rows(csv, ("path", "label"), allow_outside)
    if not found:
        raise RaycellsError(f"{csv}: none of the listed images was found. Relative paths start "
                            "at the CSV's folder.")
    rows = [{"path": row["path"], "label": row["label"], "fine_label": row.get("fine_label") or None,
             "group": row.get("group") or None} for row in found]
    frame, more = _probe_all(rows, csv.stem, progress, threads, max_pixels)
    warnings = [f"{csv}: {blank} rows without path or label were ignored."] if blank else []
    return Manifest(frame=frame, root=str(csv), layout="csv", source=csv.stem,
                    unreadable=unreadable + more, warnings=warnings)


def _csv_rows(csv: Path, required: tuple[str, ...],
              allow_outside: bool) -> tuple[list[dict], list[Problem], int]:
    """A CSV's rows with their `path` resolved against the CSV's folder: (rows whose file exists,
    the listed files not found, how many rows left a required column blank). Paths leading out
    of the CSV's folder are refused unless `allow_outside`."""
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise RaycellsError(f"{csv}: not a readable CSV ({error}). Write one row per image with "
                            f"{','.join(required)} columns.") from error
    table.columns = [column.strip().lower() for column in table.columns]
    missing = set(required) - set(table.columns)
    if missing:
        raise RaycellsError(f"{csv}: no {' or '.join(sorted(missing))} column (found: "
                            f"{', '.join(table.columns) or 'none'}). The first row must name the "
                            f"columns: {','.join(required)}[,fine_label][,group].")
    if table.empty:
        raise RaycellsError(f"{csv}: the CSV lists no images. Add one row per image.")
    rows, not_found, blank, outside = [], [], 0, []
    for record in table.to_dict("records"):
        if not all(record[column].strip() for column in required):
            blank += 1
            continue
        record = {key: value.strip() for key, value in record.items()}
        # Resolved first: a link inside the folder (etc -> /etc) leads outside it as well.
        file = (csv.parent / Path(record["path"]).expanduser()).resolve()
        if not file.is_relative_to(csv.parent):
            outside.append(record["path"])
        if not file.is_file():
            not_found.append(Problem(str(file), f"listed in {csv.name} but not found: fix the "
                                     "path (relative paths start at the CSV's folder)"))
            continue
        rows.append({**record, "path": str(file)})
    if outside and not allow_outside:
        raise RaycellsError(
            f"{csv}: {len(outside):,} listed paths lead outside the CSV's folder {csv.parent} "
            f"(absolute, with .. leading out, or through a link), such as {outside[0]}. Move the images (or the "
            "CSV) so that they lie under the CSV's folder, or pass --allow-outside if you trust "
            "this CSV to name the files it reads.")
    return rows, not_found, blank


def _probe_all(rows: list[dict], source: str, progress: Progress | None, threads: int | None,
               max_pixels: int) -> tuple[pd.DataFrame, list[Problem]]:
    """Hash and decode every image in parallel; Pillow's decoders release the GIL, so threads
    keep every core busy without pickling anything."""
    guard = Image.MAX_IMAGE_PIXELS  # Pillow's own guard refuses at twice this: raised meanwhile
    Image.MAX_IMAGE_PIXELS = max(guard or 0, max_pixels)
    try:
        return _probe_rows(rows, source, progress, threads, max_pixels)
    finally:
        Image.MAX_IMAGE_PIXELS = guard


def _probe_rows(rows: list[dict], source: str, progress: Progress | None, threads: int | None,
                max_pixels: int) -> tuple[pd.DataFrame, list[Problem]]:
    paths = [r["path"] for r in rows]
    outcomes: dict[str, ImageFacts | Problem] = probes.known(paths, max_pixels)
    unknown = [path for path in paths if path not in outcomes]
    total, done = len(rows), len(outcomes)
    if progress and done:
        progress(done, total)
    # Ctrl-C or SIGTERM stops the reading at the next image, then ends the command: raised
    # while the pool takes the images, it could leave the pool's locks taken (`held_signals`).
    with held_signals(signal.SIGINT, signal.SIGTERM) as asked:
        pool = ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1)
        try:
            for path, outcome in zip(unknown, pool.map(
                    functools.partial(_probe_one, max_pixels=max_pixels), unknown)):
                if asked:
                    break
                done += 1
                if progress and (done % 64 == 0 or done == total):
                    progress(done, total)
                outcomes[path] = outcome
        finally:
            pool.shutdown(cancel_futures=True)
    if unknown:
        probes.record(paths, {path: facts for path, facts in outcomes.items()
                              if isinstance(facts, ImageFacts)}, max_pixels)
    good, unreadable = [], []
    for row in rows:
        outcome = outcomes[row["path"]]
        if isinstance(outcome, Problem):
            unreadable.append(outcome)
            continue
        good.append({**row, "source": source, "sha1": outcome.sha1, "dhash": outcome.dhash,
                     "width": outcome.width, "height": outcome.height, "mode": outcome.mode,
                     "format": outcome.format, "file_bytes": outcome.file_bytes,
                     "quant": outcome.quant,
                     **{f"mean_{c}": float(v) for c, v in zip("rgb", outcome.mean)},
                     **{f"std_{c}": float(v) for c, v in zip("rgb", outcome.std)}})
    extra = [key for key in (good[0] if good else {}) if key not in COLUMNS]
    frame = pd.DataFrame(good, columns=list(COLUMNS) + extra)
    frame = frame.sort_values(["label", "path"], kind="stable").reset_index(drop=True)
    for column in ("width", "height"):
        frame[column] = frame[column].astype("int32")
    return frame, unreadable


def _probe_one(path: str, max_pixels: int):
    try:
        return probe(path, max_pixels)
    except UnreadableImage as error:
        return Problem(path, str(error))
