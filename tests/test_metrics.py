import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score

from raycells.metrics import METRICS, OVERALL, PER_CLASS, confusion_scores, mean_std, score_fold, summarize_folds


def _probs(y_pred, classes):
    """One-hot probabilities that predict `y_pred`."""
    return np.eye(classes)[y_pred]


def test_score_fold_on_known_predictions():
    classes = ["a", "b", "c"]
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    m = score_fold(y_true, _probs(y_pred, 3), classes)
    assert m["accuracy"] == 6 / 8 and m["classes_scored"] == 3
    assert {k: m["per_class"]["a"][k] for k in ("precision", "sensitivity", "f1", "support")} == {
        "precision": 3 / 4, "sensitivity": 3 / 4, "f1": 3 / 4, "support": 4}
    assert m["per_class"]["b"]["precision"] == 1 / 2 and m["per_class"]["b"]["sensitivity"] == 1 / 2
    assert np.isclose(m["balanced_accuracy"], (3 / 4 + 1 / 2 + 1) / 3)
    assert np.isclose(m["macro_f1"], f1_score(y_true, y_pred, average="macro"))


def test_a_class_without_test_images_is_undefined_not_zero():
    """A class absent from the fold's test part gets no score (it used to get 0, pulling the
    macro F1 down for a reason that is not the model); macro averages are over the classes
    present, and say how many."""
    classes = ["a", "b", "c"]
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 0, 1, 2])  # c predicted once, never true
    m = score_fold(y_true, _probs(y_pred, 3), classes)
    assert all(m["per_class"]["c"][metric.name] is None for metric in PER_CLASS)
    assert m["per_class"]["c"]["support"] == 0
    assert m["classes_scored"] == 2 and m["classes"] == 3
    assert np.isclose(m["macro_f1"], (1 + 2 / 3) / 2)  # a: 1, b: precision 1 recall 1/2
    assert np.isclose(m["balanced_accuracy"], (1 + 1 / 2) / 2)


def test_every_registered_metric_is_scored_once():
    """A new metric is one entry in METRICS: score_fold and the summaries take it from there."""
    m = score_fold(np.array([0, 1, 1]), _probs(np.array([0, 1, 0]), 2), ["x", "y"])
    assert {metric.name for metric in OVERALL} <= set(m)
    assert set(m["per_class"]["x"]) == {metric.name for metric in PER_CLASS} | {"support"}
    assert len({metric.name for metric in METRICS}) == len(METRICS)
    summary = summarize_folds({0: m, 1: m})
    assert {metric.name for metric in OVERALL} <= set(summary)
    assert set(summary["per_class"]["x"]) == {metric.name for metric in PER_CLASS} | {"support", "folds"}


def test_confusion_scores_match_score_fold():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    y_pred[:100] = y_true[:100]
    scores = confusion_scores(confusion_matrix(y_true, y_pred, labels=range(6)))
    reference = score_fold(y_true, _probs(y_pred, 6), list("abcdef"))
    assert reference["classes_scored"] == 5  # f has no images: left out of the macro scores
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert np.isclose(scores[key], reference[key])
    assert np.isclose(scores["macro_f1"], f1_score(y_true, y_pred, labels=range(5), average="macro"))


def test_mean_and_sample_std_over_folds():
    assert mean_std([0.9, 0.8, 1.0]) == (0.9, np.std([0.9, 0.8, 1.0], ddof=1))
    assert mean_std([0.5]) == (0.5, 0.0)
    per_fold = {k: score_fold(np.array([0, 1, 1]), _probs(np.array([0, 1, k % 2]), 2), ["x", "y"])
                for k in range(3)}
    summary = summarize_folds(per_fold)
    assert summary["ddof"] == 1 and summary["folds"] == [0, 1, 2]
    accs = [per_fold[k]["accuracy"] for k in range(3)]
    assert np.isclose(summary["accuracy"][0], np.mean(accs))
    assert np.isclose(summary["accuracy"][1], np.std(accs, ddof=1))
    assert summary["per_class"]["y"]["support"] == 6 and summary["per_class"]["y"]["folds"] == 3


def test_a_class_scored_in_some_folds_is_averaged_over_those():
    classes = ["x", "y", "z"]
    with_z = score_fold(np.array([0, 1, 2]), _probs(np.array([0, 1, 1]), 3), classes)  # z missed
    without_z = score_fold(np.array([0, 1, 1]), _probs(np.array([0, 1, 1]), 3), classes)
    summary = summarize_folds({0: with_z, 1: without_z, 2: without_z})
    assert summary["per_class"]["z"]["sensitivity"] == (0.0, 0.0)  # one fold: its 0, not 0/3
    assert summary["per_class"]["z"]["folds"] == 1 and summary["per_class"]["x"]["folds"] == 3
    assert summarize_folds({1: without_z})["per_class"]["z"]["sensitivity"] is None


def test_group_scores_sum_member_probabilities():
    from raycells.metrics import group_scores

    classes = ["MOB", "MYO", "NGS"]
    y_true = np.array([0, 1, 2, 2])
    probs = np.array([[0.3, 0.3, 0.4],    # blast, P(blast) 0.6
                      [0.1, 0.5, 0.4],    # blast, P(blast) 0.6
                      [0.2, 0.2, 0.6],    # not,   P(blast) 0.4
                      [0.35, 0.3, 0.35]])  # not,  P(blast) 0.65: ranked above both blasts
    blast = group_scores(y_true, probs, classes, ("MYO", "MOB"), threshold=0.5)
    # positives 0.6, 0.6 against negatives 0.4, 0.65: 2 of 4 pairs ordered right
    assert blast["roc_auc"] == 0.5
    assert blast["sensitivity"] == 1.0 and blast["specificity"] == 0.5 and blast["positives"] == 2
    scored = score_fold(y_true, probs, classes, groups={"blast": ("MYO", "MOB")})
    auc = {code: row["roc_auc"] for code, row in scored["per_class"].items()}
    assert auc["NGS"] == 0.5 and np.isclose(auc["MOB"], 2 / 3)  # counted by hand over pairs
    assert scored["groups"]["blast"] == blast
    assert group_scores(np.array([2, 2]), probs[2:], classes, ("MYO",))["roc_auc"] is None


def test_a_fold_of_one_class_has_no_roc_auc():
    m = score_fold(np.array([0, 0]), np.array([[0.9, 0.1], [0.4, 0.6]]), ["a", "b"])
    assert m["per_class"]["a"]["roc_auc"] is None and m["per_class"]["a"]["sensitivity"] == 0.5


@pytest.mark.parametrize("ddof", [0, 1])
def test_summaries_keep_their_ddof(ddof):
    m = score_fold(np.array([0, 1]), _probs(np.array([0, 1]), 2), ["a", "b"])
    assert summarize_folds({0: m}, ddof=ddof)["ddof"] == ddof
