import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from raycells.metrics import confusion_scores, fold_metrics, mean_std, summarize_folds


def test_fold_metrics_on_known_predictions():
    classes = ["a", "b", "c"]
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    m = fold_metrics(y_true, y_pred, classes)
    assert m["accuracy"] == 6 / 8
    assert m["per_class"]["a"] == {"precision": 3 / 4, "sensitivity": 3 / 4, "f1": 3 / 4, "support": 4}
    assert m["per_class"]["b"]["precision"] == 1 / 2 and m["per_class"]["b"]["sensitivity"] == 1 / 2
    assert np.isclose(m["balanced_accuracy"], (3 / 4 + 1 / 2 + 1) / 3)


def test_confusion_scores_match_sklearn():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    y_pred[:100] = y_true[:100]
    scores = confusion_scores(confusion_matrix(y_true, y_pred, labels=range(6)))
    reference = fold_metrics(y_true, y_pred, list("abcdef"))
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert np.isclose(scores[key], reference[key])
    assert np.isclose(scores["macro_f1"], f1_score(y_true, y_pred, labels=range(6), average="macro", zero_division=0))


def test_mean_and_sample_std_over_folds():
    assert mean_std([0.9, 0.8, 1.0]) == (0.9, np.std([0.9, 0.8, 1.0], ddof=1))
    assert mean_std([0.5]) == (0.5, 0.0)
    per_fold = {k: fold_metrics(np.array([0, 1, 1]), np.array([0, 1, k % 2]), ["x", "y"]) for k in range(3)}
    summary = summarize_folds(per_fold)
    assert summary["ddof"] == 1 and summary["folds"] == [0, 1, 2]
    accs = [per_fold[k]["accuracy"] for k in range(3)]
    assert np.isclose(summary["accuracy"][0], np.mean(accs))
    assert np.isclose(summary["accuracy"][1], np.std(accs, ddof=1))
    assert summary["per_class"]["y"]["support"] == 6


def test_group_scores_sum_member_probabilities():
    from raycells.metrics import group_scores, one_vs_rest_auc

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
    auc = one_vs_rest_auc(y_true, probs, classes)
    assert auc["NGS"] == 0.5 and np.isclose(auc["MOB"], 2 / 3)  # counted by hand over pairs
    assert group_scores(np.array([2, 2]), probs[2:], classes, ("MYO",))["roc_auc"] is None
