"""The report's scores on hand-made run directories with known answers."""

import json
import re

import numpy as np
import pytest

from raycells.errors import RaycellsError
from raycells.report.scoring import score_run
from raycells.runs.rundir import RunDir

CLASSES = ["MOB", "MYO", "NGS"]  # the classes of the prediction_run fixture


def test_scores_match_hand_computation(tmp_path, prediction_run):
    fold0 = [("MOB", [0.7, 0.2, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8]), ("NGS", [0.6, 0.1, 0.3])]
    fold1 = [("MOB", [0.2, 0.7, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8]), ("NGS", [0.1, 0.2, 0.7])]
    scores = score_run(prediction_run(tmp_path, {0: fold0, 1: fold1}))
    assert scores.folds == [0, 1] and scores.missing == [] and scores.scheme == "aml"
    assert scores.per_fold[0]["accuracy"] == 0.75 and scores.per_fold[1]["accuracy"] == 0.75
    mob0 = scores.per_fold[0]["per_class"]["MOB"]
    assert mob0["precision"] == 0.5 and mob0["sensitivity"] == 1.0
    # P(MOB) in fold 0: the MOB image 0.7 against 0.1, 0.1, 0.6: ranked first
    assert mob0["roc_auc"] == 1.0
    # summary: mean and sample std over the two folds
    mob = scores.summary["per_class"]["MOB"]
    assert mob["sensitivity"] == (0.5, np.std([1.0, 0.0], ddof=1))
    assert mob["support"] == 2
    assert scores.summary["accuracy"] == (0.75, 0.0)
    # blasts = MYO + MOB: fold 1 P(blast) 0.9, 0.9 for blasts against 0.2, 0.3: AUC 1
    assert scores.per_fold[1]["groups"]["blast"]["roc_auc"] == 1.0
    assert scores.per_fold[1]["groups"]["blast"]["specificity"] == 1.0
    # fold 0: blasts 0.9, 0.9 against 0.2 and 0.7 -> AUC 1; the NGS at 0.7 is called a blast
    assert scores.per_fold[0]["groups"]["blast"]["specificity"] == 0.5
    # of the atypical classes only MYO and MOB occur here, so P(atypical) = P(blast)
    assert scores.per_fold[0]["groups"]["atypical"] == scores.per_fold[0]["groups"]["blast"]
    assert scores.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 3]]


def test_missing_folds_are_named_and_reported_on_the_rest(tmp_path, prediction_run):
    fold = [("MOB", [0.7, 0.2, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    scores = score_run(prediction_run(tmp_path, {0: fold, 2: fold}, total=3))
    assert scores.folds == [0, 2] and scores.missing == [1]


def test_no_predictions_is_a_clear_error(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.config.write_text(json.dumps({"data": {"classes": CLASSES}, "settings": {"experiment": {"folds": 2}}}))
    with pytest.raises(RaycellsError, match="no fold has predictions yet"):
        score_run(run.path)


def test_the_plan_fingerprint_tells_fold_plans_apart(tmp_path, prediction_run):
    fold = [("MOB", [0.7, 0.2, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    a = score_run(prediction_run(tmp_path / "a", {0: fold, 1: fold}))
    b = score_run(prediction_run(tmp_path / "b", {0: fold, 1: fold}))
    c = score_run(prediction_run(tmp_path / "c", {0: fold, 1: fold[:1]}))
    assert a.plan_id == b.plan_id != c.plan_id


def test_the_table_beside_the_paper_computes_standard_deviations_as_the_paper_does(
        tmp_path, prediction_run):
    """MOB sensitivity is 1 in fold 0 and 0 in fold 1: 0.50 ± 0.71 with ddof=1 in our tables,
    0.50 ± 0.50 (ddof=0) in the table beside Matek et al., and each table says which."""
    from raycells.report.writers import report_tables

    good = [("MOB", [0.7, 0.2, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    bad = [("MOB", [0.2, 0.7, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    tables = {t.title: t for t in report_tables(score_run(prediction_run(
        tmp_path, {0: good, 1: bad}, paper=True)))}
    ours = next(row for row in tables["Per class"].rows if row[0] == "MOB")
    beside = next(row for row in tables["Against Matek et al. 2019 (preset paper)"].rows if row[0] == "MOB")
    assert ours[3] == "0.500 ± 0.707" and beside[4] == "0.50 ± 0.50"
    assert "ddof=0" in tables["Against Matek et al. 2019 (preset paper)"].note
    assert "ddof=1" in tables["Overall"].note


def test_class_names_are_text_in_every_report_format(tmp_path):
    """A class named like markup or holding a table separator stays one cell of text in report.md
    (and report.html)."""
    import pandas as pd

    from raycells.report.writers import write_report
    from raycells.runs.rundir import write_plan

    classes = ["<img src=x onerror=alert(1)>", "a|b"]
    run = RunDir(tmp_path / "run")
    run.fold(0).mkdir(parents=True)
    run.config.write_text(json.dumps({"data": {"classes": classes},
                                      "settings": {"experiment": {"folds": 1}}}))
    frame = pd.DataFrame({"path": ["/1.png", "/2.png"], "label": classes, "predicted": classes,
                          f"prob_{classes[0]}": [0.9, 0.2], f"prob_{classes[1]}": [0.1, 0.8]})
    frame.to_parquet(run.fold(0) / "predictions.parquet")
    write_plan(frame[["path", "label"]].assign(fold=0), run.folds)
    written = write_report(score_run(run.path), run.report)
    markdown = written["report.md"].read_text()
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)&gt;" in markdown
    lines = markdown.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| a\\|b |"))
    header = lines[max(i for i in range(at) if lines[i].startswith("|---")) - 1]

    def cells(line):
        return len(re.split(r"(?<!\\)\|", line))

    assert cells(lines[at]) == cells(header)
    assert "<img" not in written["report.html"].read_text().split("<body>")[1].replace("<img alt=", "")


def test_the_mean_roc_curve_runs_from_the_origin_to_one():
    """Two folds whose curves rise to 0.9 and 0.8 at fpr 0: the mean still starts at (0, 0)
    (np.interp alone gives the curves' top there), ends at (1, 1), with each fold's AUC."""
    from raycells.report.plots import mean_roc

    curves = {0: (np.array([0.0, 0.0, 0.5, 1.0]), np.array([0.0, 0.9, 1.0, 1.0])),
              1: (np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.8, 1.0]))}
    grid, mean, std, aucs = mean_roc(curves)
    assert grid[0] == 0 and mean[0] == 0 and mean[-1] == 1
    assert mean[1] == pytest.approx((0.9 + 0.005 * 0.2 + 0.8 + 0.005 * 0.2) / 2)
    assert aucs.tolist() == pytest.approx([0.975, 0.9]) and std[1] > 0


def test_synthetic_runs_get_no_paper_table_and_confusions_follow_the_scheme(tmp_path,
                                                                             prediction_run):
    from raycells.report.writers import report_tables, write_report

    fold = [("MOB", [0.2, 0.7, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    scores = score_run(prediction_run(tmp_path, {0: fold, 1: fold}, paper=True))
    titles = [t.title for t in report_tables(scores, synthetic=True)]
    assert not any(t.startswith("Against Matek") for t in titles) and "Overall" in titles
    assert "Against Matek et al. 2019 (preset paper)" in [t.title for t in report_tables(scores)]
    # The paper's order (NGS ... MYO ... MOB), as every table; the MOB cells called MYO.
    seen = {}
    original = __import__("raycells.report.plots", fromlist=["x"]).confusion_png

    def spy(confusion, classes, path, *, normalise):
        seen[path.name] = (classes, confusion.tolist())
        return original(confusion, classes, path, normalise=normalise)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("raycells.report.plots.confusion_png", spy)
        write_report(scores, tmp_path / "report")
    assert seen["confusion_counts.png"] == (["NGS", "MYO", "MOB"], [[2, 0, 0], [0, 2, 0], [0, 2, 0]])


def test_a_class_missing_from_a_test_fold_is_shown_as_undefined(tmp_path, prediction_run):
    """MYO has no test image in fold 0: it is scored over fold 1 alone, the table says so, and
    fold 0's macro F1 is over the 2 classes it holds (not pulled down by a 0 for MYO)."""
    from raycells.report.writers import report_tables

    fold0 = [("MOB", [0.7, 0.2, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    fold1 = [("MOB", [0.7, 0.2, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    scores = score_run(prediction_run(tmp_path, {0: fold0, 1: fold1}))
    assert scores.per_fold[0]["per_class"]["MYO"]["sensitivity"] is None
    assert scores.per_fold[0]["macro_f1"] == 1.0 and scores.per_fold[0]["classes_scored"] == 2
    assert scores.summary["per_class"]["MYO"]["sensitivity"] == (1.0, 0.0)
    tables = {t.title: t for t in report_tables(scores)}
    assert "MYO (1 of 2)" in tables["Per class"].note
    assert "2 of 3 in fold 0" in tables["Overall"].note
    empty = score_run(prediction_run(tmp_path / "b", {0: fold0, 1: fold0}))
    row = next(r for r in report_tables(empty) if r.title == "Per class").rows
    assert next(r for r in row if r[0] == "MYO")[2:5] == ["–", "–", "–"]


def test_the_paper_table_only_stands_beside_runs_of_the_papers_protocol(tmp_path, prediction_run):
    """A cpu-preset run (or one whose preset is not recorded) on AML classes gets no table beside
    Matek et al. 2019, and the per-class table says why; a paper run on tcia-aml data gets it."""
    from raycells.report.writers import report_tables

    fold = [("MOB", [0.7, 0.2, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    other = {t.title: t for t in report_tables(score_run(prediction_run(tmp_path / "a", {0: fold, 1: fold})))}
    assert not any(title.startswith("Against Matek") for title in other)
    assert "preset not recorded, layout unknown" in other["Per class"].note
    paper = [t.title for t in report_tables(score_run(prediction_run(tmp_path / "b", {0: fold, 1: fold},
                                                                     paper=True)))]
    assert "Against Matek et al. 2019 (preset paper)" in paper


def test_the_run_table_shows_the_optimizer_steps_each_fold_took(tmp_path, prediction_run):
    import pandas as pd

    from raycells.report.writers import report_tables

    fold = [("MOB", [0.7, 0.2, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    run = prediction_run(tmp_path, {0: fold, 1: fold})
    for k, steps in ((0, [12, 12]), (1, [12, 11])):
        pd.DataFrame({"epoch": [1, 2], "steps": steps}).to_csv(run / f"fold-{k}" / "history.csv", index=False)
    rows = dict(map(tuple, next(t for t in report_tables(score_run(run)) if t.title == "Run").rows))
    assert rows["optimizer steps"] == "fold 0: 24, fold 1: 23 (11-12 per epoch)"
