"""`raycells data ...`: index a dataset into a manifest, inspect it, write the demo dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from ..data.images import MAX_PIXELS
from ..errors import RaycellsError
from ..files import check_writable
from .common import EXIT_UNREADABLE, console, load_dataset, print_problems, reported_errors, status
from .options import MaxPixels, takes_settings

if TYPE_CHECKING:
    from ..data.summary import DatasetSummary

app = typer.Typer(help="Index and inspect datasets.", no_args_is_help=True)

DatasetArg = Annotated[
    Path | None,
    typer.Argument(help="Dataset folder, CSV of path,label, or manifest (.parquet). "
                        "Default: the built-in synthetic demo dataset.", show_default=False),
]


@app.command()
@takes_settings("allow_outside")
def index(
    flags: dict[str, Any],
    path: DatasetArg = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest file to write.")] = Path("manifest.parquet"),
    max_pixels: MaxPixels = MAX_PIXELS,
) -> None:
    """Index a dataset folder (or CSV) into a Parquet manifest, one row per image."""
    from ..data.manifest import write_manifest

    with reported_errors():
        check_writable(out, folder=False)
        manifest = load_dataset(path, max_pixels, allow_outside=bool(flags["allow_outside"]))
        try:
            write_manifest(manifest, out)
        except OSError as error:
            raise RaycellsError(f"{out}: cannot write the manifest ({error.strerror}); nothing "
                                "was written. Free some space or choose another --out.") from error
    classes = manifest.class_counts()
    console.print(f"Indexed [bold]{len(manifest):,}[/] images in {len(classes)} classes "
                  f"(layout {manifest.layout}, source {manifest.source}) -> {out}")
    print_problems(manifest)
    if manifest.unreadable:
        raise typer.Exit(EXIT_UNREADABLE)


@app.command()
@takes_settings("allow_outside")
def inspect(
    flags: dict[str, Any],
    path: DatasetArg = None,
    folds: Annotated[int, typer.Option(min=2, help="Warn about classes smaller than this many folds.")] = 5,
    labels: Annotated[str, typer.Option(help="Judge duplicates and shortcuts by the class or the "
                                             "fine label (as a run with --labels would).")] = "class",
    max_pixels: MaxPixels = MAX_PIXELS,
) -> None:
    """Show class counts, image sizes and modes, skipped and unreadable files, duplicates and
    near-duplicates, the shortcut check (can the label be read from image size, file format or
    colour alone?), and classes too small for k-fold cross-validation."""
    from ..data.summary import summarize

    with reported_errors():
        manifest = load_dataset(path, max_pixels, allow_outside=bool(flags["allow_outside"]))
        with status.status("Checking for duplicates and shortcuts"):
            summary = summarize(manifest, folds=folds, labels=labels)
    _render(summary)
    if manifest.unreadable:
        raise typer.Exit(EXIT_UNREADABLE)


@app.command()
def demo(
    out: Annotated[Path, typer.Argument(help="Folder to write the demo images into.")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same images.")] = 0,
) -> None:
    """Write the built-in SYNTHETIC demo dataset (15 AML classes, drawn cells) to a folder."""
    from ..data.demo import write_demo

    with reported_errors():
        check_writable(out, folder=True, option="OUT")
    with status.status(f"Drawing demo cells into {out}"):
        write_demo(out, seed=seed)
    console.print(f"Wrote the synthetic demo dataset (seed {seed}) to {out}")


def _print_sets(sets: list, shown: int = 20) -> None:
    for found in sets[:shown]:
        apart = f"{found.bits} bits: " if found.bits else ""
        pairs = ", ".join(f"{path} ({label})" for path, label in zip(found.paths, found.labels))
        console.print(f"  {apart}{pairs}", highlight=False)
    if len(sets) > shown:
        console.print(f"  ... and {len(sets) - shown} more")


def _render(summary: DatasetSummary) -> None:
    from ..data.duplicates import MAX_NEAR_GROUP, NEAR_BITS
    from ..data.shortcuts import AUC_LIMIT

    facts = (f"{summary.images:,} images · {len(summary.classes)} classes · layout "
             f"{summary.layout} · source {summary.source}"
             + (f" · scheme {summary.scheme}" if summary.scheme else ""))
    title = "[bold yellow]SYNTHETIC demo data: drawn cells, not real images[/]\n" if summary.synthetic else ""
    console.print(Panel(f"{title}{summary.root}\n{facts}", title="Dataset", expand=False))

    has_fine = any(row.fine for row in summary.classes)
    classes = Table(title="Classes", title_justify="left")
    for header in ("class", "name", "images", "share"):
        classes.add_column(header, justify="right" if header in ("images", "share") else "left")
    if has_fine:
        classes.add_column("fine labels")
    small = dict(summary.too_small)
    for row in summary.classes:
        count = f"[red]{row.count:,}[/]" if row.code in small else f"{row.count:,}"
        cells = [row.code, row.name, count, f"{100 * row.count / summary.images:.1f}%"]
        if has_fine:
            cells.append(", ".join(f"{label} {n:,}" for label, n in row.fine.items()))
        classes.add_row(*cells)
    console.print(classes)

    sizes = Table(title="Image sizes", title_justify="left")
    sizes.add_column("width x height")
    sizes.add_column("images", justify="right")
    for width, height, n in summary.sizes[:10]:
        sizes.add_row(f"{width} x {height}", f"{n:,}")
    if len(summary.sizes) > 10:
        sizes.add_row(f"... {len(summary.sizes) - 10} more sizes", "")
    modes = Table(title="Modes", title_justify="left")
    modes.add_column("mode")
    modes.add_column("images", justify="right")
    modes.add_column("on load")
    for mode, n, note in summary.modes:
        modes.add_row(mode, f"{n:,}", f"the image {note}" if note else "used as is")
    console.print(sizes)
    console.print(modes)

    console.print(f"\n[bold]Skipped files[/] (not images): {len(summary.skipped)}")
    for path in summary.skipped[:10]:
        console.print(f"  {path}", highlight=False)
    if len(summary.skipped) > 10:
        console.print(f"  ... and {len(summary.skipped) - 10} more")

    console.print(f"[bold]Unreadable images[/]: {len(summary.unreadable)}")
    for problem in summary.unreadable:
        console.print(f"  [red]{problem.path}[/]: {problem.reason}", highlight=False)

    conflicts = [found for found in summary.duplicates if found.conflicting]
    console.print(f"[bold]Exact duplicates[/] (identical bytes): {len(summary.duplicates)} sets, "
                  f"{len(conflicts)} under different labels (label conflicts: `cv --drop-conflicts` "
                  "leaves them out); every set stays in one fold")
    _print_sets(conflicts + [found for found in summary.duplicates if not found.conflicting])
    console.print(f"[bold]Near-duplicates[/] (difference hashes at most {NEAR_BITS} bits apart): "
                  f"{len(summary.near_duplicates)} pairs; `cv --group-near-duplicates` keeps each "
                  "pair in one fold")
    _print_sets(summary.near_duplicates)
    trade = "; ".join(f"{row['bits']} bits: {row['pairs']:,} pairs, largest group {row['largest_group']:,}"
                      for row in summary.near_thresholds)
    console.print(f"  The threshold's trade-off ({NEAR_BITS} is used; a looser one chains pairs into "
                  f"groups, a group over {MAX_NEAR_GROUP:.0%} of the images is not kept together): "
                  f"{trade}", highlight=False)

    check = summary.shortcuts
    console.print(f"[bold]Shortcut check[/] ({summary.labels} labels: image facts alone, a random "
                  f"forest, one-vs-rest ROC AUC ≥ {AUC_LIMIT}): "
                  + (f"not run, {check.skipped}" if check.skipped else
                     f"{len(check.shortcuts)} classes readable without the cell"))
    for warning in check.warnings():
        console.print(f"[bold red]warning:[/] {warning}", highlight=False)
    for note in check.notes():
        console.print(f"[yellow]note:[/] {note}", highlight=False)

    for code, n in summary.too_small:
        console.print(f"[yellow]warning:[/] class {code} has {n} images, fewer than {summary.folds} "
                      f"folds: use --folds {max(2, n)} or leave the class out.", highlight=False)
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
