"""Writing a run's report: the same tables as Markdown, HTML (one self-contained file, pictures
embedded), JSON and CSV, plus the PNG pictures, into <run>/report/."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.schemes import SCHEMES, scheme_for
from ..files import atomic_path, write_csv, write_json
from ..metrics import PAPER_DDOF, summarize_folds
from ..settings import settings_text
from . import paper, plots
from .compare import TEST
from .scoring import RunScores


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""
    optional: tuple[str, ...] = ()
    """Headers of the columns a narrow terminal leaves out (the files keep every column)."""

    def numeric(self, index: int) -> bool:
        """Whether column `index` holds numbers only (aligned right, never split over lines)."""
        cells = [row[index] for row in self.rows if row[index]]
        return bool(cells) and all(NUMBER.match(cell) for cell in cells)


NUMBER = re.compile(r"^[-+]?[\d.,]+( ± [\d.,]+)?%?$|^n/a$|^–$")
"""A table cell that is a number, or a mean ± std (– where a score is undefined)."""


def report_tables(scores: RunScores, *, synthetic: bool = False,
                  warnings: list[str] = ()) -> list[Table]:
    """The report's tables, in order, as text cells (shared by every output format); `warnings`
    (the run's data warnings, from config.json) come first."""
    s = scores.summary
    scheme = SCHEMES.get(scores.scheme) if scores.scheme else None
    order = [c for c in scheme.table_order if c in scores.classes] if scheme else scores.classes
    missing = f"; missing folds: {', '.join(map(str, scores.missing))}" if scores.missing else ""
    tables = [run_table(scores)] if scores.config.get("settings") else []
    if warnings:
        tables.append(Table("Data warnings", ["warning"], [[text] for text in warnings],
                            note="Found when the run was prepared; read the scores with them in mind."))
    if scores.damaged:
        tables.append(Table(
            "Damaged files", ["fold", "problem"],
            [[str(k), reason] for k, reason in sorted(scores.damaged.items())],
            note="These folds are left out of every score below. `raycells cv --resume` (or "
                 "transfer's) redoes a fold whose files are damaged from its checkpoint."))
    tables.append(Table(
        "Overall", ["score", "mean ± std"],
        [[label, pm(s[key])] for key, label in (("accuracy", "accuracy"),
                                                ("balanced_accuracy", "balanced accuracy"),
                                                ("macro_f1", "macro F1"), ("weighted_f1", "weighted F1"))],
        note=(("SYNTHETIC demo data: these numbers say nothing about real cells. " if synthetic else "")
              + f"Folds {', '.join(map(str, scores.folds))}{missing}. Standard deviation over folds "
              f"with ddof={s['ddof']} (sample standard deviation)." + _classes_scored(scores))))
    tables.append(fold_table(scores))
    if scores.chosen:
        tables.append(Table(
            "Settings chosen in each fold", ["fold", "chose"],
            [[str(k), settings_text(chosen)]
             for k, chosen in sorted(scores.chosen.items())],
            note="Nested selection: each fold's search ran on its training part only (trials "
                 "scored on its inner validation split), so the scores estimate the whole "
                 "procedure, search included."))
    per_class = per_class_table(s, scores.classes)
    paper_run = paper_protocol(scores.config)
    if scores.scheme == "aml" and not synthetic and not paper_run:
        per_class = dataclasses.replace(per_class, note=" ".join(filter(None, (
            per_class.note, f"No comparison with Matek et al. 2019: it is made for runs of the "
            f"paper or paper-plus preset on the Munich AML images (layout tcia-aml); this run: "
            f"preset {scores.config.get('preset', 'not recorded')}, layout "
            f"{scores.config.get('data', {}).get('layout', 'unknown')}."))))
    tables.append(per_class)
    if s.get("groups"):
        tables.append(Table(
            "Blasts and atypical cells", ["group", "classes", "ROC AUC", f"sensitivity at {scores.threshold:g}",
                                          f"specificity at {scores.threshold:g}"],
            [[name, " + ".join(scheme.groups[name]), pm(g["roc_auc"]), pm(g["sensitivity"]),
              pm(g["specificity"])] for name, g in s["groups"].items()],
            note="P(group) is the sum of the member classes' probabilities."))
    if scores.scheme == "aml" and not synthetic and paper_run:  # as the paper's protocol
        beside = summarize_folds(scores.per_fold, ddof=PAPER_DDOF)  # as the paper computes them
        rows = []
        for code in order:
            ours, theirs = beside["per_class"][code], paper.PER_CLASS[code]
            rows.append([code, pm(ours["precision"], 2), pm(theirs["precision"], 2),
                         diff(ours["precision"], theirs["precision"]), pm(ours["sensitivity"], 2),
                         pm(theirs["sensitivity"], 2), diff(ours["sensitivity"], theirs["sensitivity"])])
        for name, (mean, std) in paper.GROUP_AUC.items():
            ours = beside["groups"].get(name, {}).get("roc_auc")
            rows.append([f"{name} ROC AUC", pm(ours, 3), pm((mean, std), 3), diff(ours, (mean, std), 3),
                         "", "", ""])
        tables.append(Table(
            f"Against Matek et al. 2019 (preset {scores.config['preset']})",
            ["class", "precision (ours)", "precision (paper)", "difference", "sensitivity (ours)",
             "sensitivity (paper)", "difference"],
            rows, note=f"Standard deviations over folds in this table with ddof={PAPER_DDOF} "
            "(population), ours and theirs alike: the paper's figures are consistent with it "
            "(LYA precision 0.20 ± 0.40 from the fold values 1, 0, 0, 0, 0). Other tables use "
            f"ddof={s['ddof']}. {paper.CITATION}", optional=("difference",)))
    return tables


PAPER_PRESETS = ("paper", "paper-plus")


def paper_protocol(config: dict[str, Any]) -> bool:
    """Whether a run's scores can stand beside Matek et al. 2019's: a paper or paper-plus run
    (config.json's preset) on the Munich AML images (tcia-aml layout)."""
    return (config.get("preset") in PAPER_PRESETS
            and config.get("data", {}).get("layout") == "tcia-aml")


def _steps(histories: dict[int, pd.DataFrame]) -> str:
    """The optimizer steps each fold took (per epoch when they differ), from history.csv."""
    folds = {k: h["steps"].astype(int).tolist() for k, h in sorted(histories.items())
             if "steps" in h}
    if not folds:
        return ""
    totals = {k: sum(steps) for k, steps in folds.items()}
    per_epoch = sorted({n for steps in folds.values() for n in steps})
    epochs = (f"{per_epoch[0]:,} per epoch" if len(per_epoch) == 1
              else f"{per_epoch[0]:,}-{per_epoch[-1]:,} per epoch")
    if len(set(totals.values())) == 1:
        return f"{next(iter(totals.values())):,} per fold ({epochs})"
    return ", ".join(f"fold {k}: {n:,}" for k, n in totals.items()) + f" ({epochs})"


def fold_table(scores: RunScores) -> Table:
    """Each test fold's scores, the epoch it kept, its optimizer steps and its time."""
    rows = []
    for k in scores.folds:
        fold, facts, history = scores.per_fold[k], scores.fold_facts.get(k, {}), scores.histories.get(k)
        steps = int(history["steps"].sum()) if history is not None and "steps" in history else None
        kept = facts.get("best_epoch")
        rows.append([str(k), f"{fold['images']:,}", f"{fold['accuracy']:.3f}",
                     f"{fold['balanced_accuracy']:.3f}", f"{fold['macro_f1']:.3f}",
                     f"{kept} of {facts['epochs']}" if kept and facts.get("epochs") else str(kept or UNDEFINED),
                     f"{steps:,}" if steps is not None else UNDEFINED,
                     f"{facts['seconds']:,.0f} s" if "seconds" in facts else UNDEFINED])
    return Table("Test folds", ["fold", "images", "accuracy", "balanced accuracy", "macro F1",
                                "epoch kept", "steps", "time"], rows,
                 note="Each fold's network on its test part; steps: optimizer steps over all its "
                      "epochs (history.csv); time: the fold's, start to metrics.json.",
                 optional=("steps", "time"))


def _classes_scored(scores: RunScores) -> str:
    """Which folds' test parts lack classes: their macro scores average over fewer."""
    short = {k: f["classes_scored"] for k, f in sorted(scores.per_fold.items())
             if f.get("classes_scored", len(scores.classes)) < len(scores.classes)}
    if not short:
        return ""
    return (" Balanced accuracy and the macro and weighted F1 average over the classes with test "
            "images in the fold: " + ", ".join(f"{n} of {len(scores.classes)} in fold {k}"
                                                for k, n in short.items()) + ".")


def run_table(scores: RunScores) -> Table:
    """How the results were made, from config.json and the folds' histories."""
    config, data = scores.config, scores.config.get("data", {})
    experiment = config["settings"].get("experiment", {})

    def table_text(value: Any) -> str:
        if not isinstance(value, dict):
            return str(value)
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None) or "off"

    steps = _steps(scores.histories)
    precisions = sorted({str(p) for h in scores.histories.values() if "precision" in h
                         for p in h["precision"].dropna().unique()})
    hardware = ", ".join(config.get("gpus") or []) or "CPU"
    revision = config.get("git_revision") or "unknown"
    rows = [
        ["dataset", f"{data.get('root', '?')} ({data.get('source', '?')}"
                    f"{', SYNTHETIC' if data.get('synthetic') else ''})"],
        ["images", f"{data.get('images', 0):,} images, {len(scores.classes)} classes"
                   + (f", fingerprint {data['fingerprint'][:12]}" if data.get("fingerprint") else "")],
        *([key.replace("_", " "), table_text(experiment[key])]
          for key in ("model", "image_size", "epochs", "batch_size", "sampling", "augment",
                      "keep_epoch", "seed") if key in experiment),
        *([["start", f"{config['weights']['file']} (head: {config['weights']['head']})"]]
          if config.get("weights") else []),
        ["raycells", f"{config.get('raycells', '?')}, git {revision[:10]}"
                     + (" with uncommitted changes" if config.get("git_dirty") else "")],
        *([["optimizer steps", steps]] if steps else []),
        ["hardware", hardware + (f" ({', '.join(precisions)})" if precisions else "")],
        ["command", config.get("command_line") or config.get("command", "?")],
    ]
    created = config.get("created")
    if created and scores.finished_at:
        started = dt.datetime.fromisoformat(created).timestamp()
        minutes = max(0.0, scores.finished_at - started) / 60
        rows.append(["wall time", f"{minutes:,.1f} min (start to last fold finished, pauses "
                                  "included)"])
    return Table("Run", ["", ""], rows, note=f"From {scores.run_dir}/config.json.")


def per_class_table(summary: dict[str, Any], classes: list[str], title: str = "Per class") -> Table:
    """Per-class precision, sensitivity, F1 (and ROC AUC where the summary has it) as mean ± std
    over folds, in the class scheme's table order."""
    scheme = scheme_for(classes)
    order = [c for c in scheme.table_order if c in classes] if scheme else classes
    names = scheme.classes if scheme else {}
    rows = summary["per_class"]
    scores = [(key, label) for key, label in (("precision", "precision"),
                                              ("sensitivity", "sensitivity"), ("f1", "F1"),
                                              ("roc_auc", "ROC AUC"))
              if key in rows[order[0]]]
    folds = len(summary.get("folds", []))
    partly = [f"{code} ({rows[code]['folds']} of {folds})" for code in order
              if "folds" in rows[code] and rows[code]["folds"] < folds]
    note = ("Scored only in the folds whose test part holds the class: "
            + ", ".join(partly) + f"; {UNDEFINED}: in none.") if partly else ""
    return Table(title, ["class", "name", *(label for _, label in scores), "images"],
                 [[code, names.get(code, ""), *(pm(rows[code][key]) for key, _ in scores),
                   f"{rows[code]['support']:,}"] for code in order], optional=("name",), note=note)


def comparison_tables(comparisons) -> list[Table]:
    """Side-by-side tables of each comparison (from raycells.report.compare)."""
    tables = []
    for c in comparisons:
        a, b = c.baseline.run_dir.name, c.other.run_dir.name
        how = (f"Same fold plan, paired over folds {', '.join(map(str, c.folds))}: {TEST}." if c.paired
               else "Different fold plans: shown side by side, not paired (no p-values).")
        headers = ["score", a, b, "difference", "p"]
        rows = [[key.replace("_", " "), _num(e["baseline"]), _num(e["other"]),
                 _num(e["difference"], "+.3f"), _p(e["p_value"])] for key, e in c.overall.items()]
        tables.append(Table(f"{b} against {a}: overall (means over folds)", headers, rows, note=how))
        rows = [[f"{code} {score}", _num(e["baseline"]), _num(e["other"]),
                 _num(e["difference"], "+.3f"), _p(e["p_value"]), _p(e["p_holm"])]
                for code, scores in c.per_class.items() for score, e in scores.items()]
        tables.append(Table(f"{b} against {a}: per class", [*headers, "p (Holm)"], rows,
                            note="p (Holm): corrected over the classes, for each score."
                            if c.paired else ""))
    return tables


def write_comparison(comparisons, folder: str | Path) -> dict[str, Path]:
    """comparison.md and comparison.json in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "comparison.md") as tmp:
        tmp.write_text(_markdown("raycells comparison", comparison_tables(comparisons), {}))
    write_json(folder / "comparison.json", [{
        "baseline": str(c.baseline.run_dir), "other": str(c.other.run_dir), "paired": c.paired,
        "test": TEST if c.paired else None,
        "folds": c.folds, "overall": c.overall, "per_class": c.per_class} for c in comparisons])
    return {"comparison.md": folder / "comparison.md", "comparison.json": folder / "comparison.json"}


def _num(value: float | None, spec: str = ".3f") -> str:
    return UNDEFINED if value is None else format(value, spec)


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def write_report(scores: RunScores, folder: str | Path, *, synthetic: bool = False,
                 warnings: list[str] = ()) -> dict[str, Path]:
    """Write report.md, report.html, metrics.json, per_class.csv and the figures (PNG, with SVG
    and PDF beside each); return their paths (the figures' PNGs)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    s = scores.summary
    scheme = SCHEMES.get(scores.scheme) if scores.scheme else None
    order = [c for c in scheme.table_order if c in scores.classes] if scheme else scores.classes
    index = [scores.classes.index(code) for code in order]  # the tables' order, not the alphabet
    confusion = scores.confusion[np.ix_(index, index)]
    pictures = {
        "confusion_counts.png": plots.confusion_png(confusion, order,
                                                    folder / "confusion_counts.png", normalise=False),
        "confusion_normalised.png": plots.confusion_png(confusion, order,
                                                        folder / "confusion_normalised.png", normalise=True),
        "per_class.png": plots.per_class_png(
            order, *([[f["per_class"][c][score] for f in scores.per_fold.values()
                       if f["per_class"][c].get(score) is not None] for c in order]
                     for score in ("precision", "sensitivity")), folder / "per_class.png"),
    }
    if scores.histories:
        pictures["training_curves.png"] = plots.curves_png(scores.histories,
                                                           folder / "training_curves.png")
    for name, curves in scores.curves.items():
        pictures[f"roc_{name}.png"] = plots.roc_png(curves, f"P({name}) ROC, {len(curves)} folds",
                                                    folder / f"roc_{name}.png")
    tables = report_tables(scores, synthetic=synthetic, warnings=warnings)
    title = f"raycells report: {scores.run_dir.name}"
    links = {"examples.html": "right and wrong test cells with their class activation maps"} if (
        folder / "examples.html").is_file() else {}
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text(_markdown(title, tables, pictures, synthetic=synthetic, links=links))
    with atomic_path(folder / "report.html") as tmp:
        tmp.write_text(_html(title, tables, pictures, synthetic=synthetic, links=links))
    write_json(folder / "metrics.json", _json_ready({
        "run_dir": str(scores.run_dir), "classes": scores.classes, "scheme": scores.scheme,
        "folds": scores.folds, "missing_folds": scores.missing,
        "damaged_folds": {str(k): reason for k, reason in scores.damaged.items()},
        "threshold": scores.threshold,
        "synthetic": synthetic, "warnings": list(warnings), "summary": s, "per_fold": scores.per_fold,
        "confusion": scores.confusion.tolist(), "plan_id": scores.plan_id,
        "paper": {"citation": paper.CITATION, "per_class": paper.PER_CLASS, "group_auc": paper.GROUP_AUC}
        if scores.scheme == "aml" else None}))
    rows = []
    for code in order:
        row = {"class": code}
        for score in ("precision", "sensitivity", "f1", "roc_auc"):
            value = s["per_class"][code][score]
            row[f"{score}_mean"], row[f"{score}_std"] = value if value else (None, None)
        row["images"] = s["per_class"][code]["support"]
        rows.append(row)
    write_csv(pd.DataFrame(rows), folder / "per_class.csv")
    return {"report.md": folder / "report.md", "report.html": folder / "report.html",
            "metrics.json": folder / "metrics.json", "per_class.csv": folder / "per_class.csv",
            **pictures}


UNDEFINED = "–"
"""How a table shows a score that is undefined (a class with no test image in any fold)."""


def pm(value: tuple[float, float] | None, digits: int = 3) -> str:
    return UNDEFINED if value is None else f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def diff(ours: tuple[float, float] | None, theirs: tuple[float, float], digits: int = 2) -> str:
    return UNDEFINED if ours is None else f"{ours[0] - theirs[0]:+.{digits}f}"


def _markdown(title: str, tables: list[Table], pictures: dict[str, Path], *,
              synthetic: bool = False, links: dict[str, str] | None = None) -> str:
    lines = [*([f"> **{_md(SYNTHETIC_BANNER)}**", ""] if synthetic else []), f"# {_md(title)}", "",
             *(f"See also [{_md(href)}]({href}): {_md(what)}.\n" for href, what in (links or {}).items())]
    for table in tables:
        lines += [f"## {_md(table.title)}", ""]
        if table.note:
            lines += [_md(table.note), ""]
        lines.append("| " + " | ".join(map(_md, table.headers)) + " |")
        lines.append("|" + "---|" * len(table.headers))
        lines += ["| " + " | ".join(map(_md, row)) + " |" for row in table.rows]
        lines.append("")
    if pictures:
        lines += ["## Pictures", ""] + [f"![{name}]({name})" for name in pictures] + [""]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text for a Markdown cell or line: HTML escaped (a class name is data, not markup), `|`
    escaped so it cannot split a table cell, line breaks folded."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


SYNTHETIC_BANNER = ("SYNTHETIC demo data: drawn cells, not real images. These numbers check the "
                    "set-up and say nothing about real cells.")


def _html(title: str, tables: list[Table], pictures: dict[str, Path], *, synthetic: bool = False,
          links: dict[str, str] | None = None) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.n{text-align:right}"
             "img{max-width:100%;margin:1em 0}#synthetic{background:#b00020;color:white;"
             "font-weight:bold;padding:0.8em 1em;font-size:1.2em}</style></head><body>",
             *([f"<div id='synthetic' role='alert'>{e(SYNTHETIC_BANNER)}</div>"] if synthetic else []),
             f"<h1>{e(title)}</h1>",
             *(f"<p class='link'>See also <a href='{e(href)}'>{e(href)}</a>: {e(what)}.</p>"
               for href, what in (links or {}).items())]
    for table in tables:
        parts.append(f"<h2>{e(table.title)}</h2>")
        if table.note:
            parts.append(f"<p>{e(table.note)}</p>")
        kind = ["n" if table.numeric(i) else "" for i in range(len(table.headers))]
        parts.append("<table>")
        if any(table.headers):
            parts.append("<tr>" + "".join(f"<th class='{k}'>{e(h)}</th>"
                                          for k, h in zip(kind, table.headers)) + "</tr>")
        parts += ["<tr>" + "".join(f"<td class='{k}'>{e(cell)}</td>" for k, cell in zip(kind, row))
                  + "</tr>" for row in table.rows]
        parts.append("</table>")
    parts.append("<h2>Pictures</h2>")
    for name, path in pictures.items():
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<figure><img alt='{e(name)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{e(name)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value
