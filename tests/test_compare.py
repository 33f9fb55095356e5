import numpy as np
from scipy.stats import ttest_rel

from raycells.report.compare import compare
from raycells.report.scoring import score_run

GOOD = [("MOB", [0.7, 0.2, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8]), ("NGS", [0.1, 0.2, 0.7])]
WORSE = [("MOB", [0.2, 0.7, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8]), ("NGS", [0.6, 0.2, 0.2])]


def test_same_fold_plan_is_paired_with_a_t_test(tmp_path, prediction_run):
    a = score_run(prediction_run(tmp_path / "a", {0: GOOD, 1: GOOD, 2: WORSE}))
    b = score_run(prediction_run(tmp_path / "b", {0: WORSE, 1: WORSE, 2: WORSE}))
    [result] = compare([a, b])
    assert result.paired and result.folds == [0, 1, 2]
    accuracy = result.overall["accuracy"]
    assert np.isclose(accuracy["baseline"], (1 + 1 + 0.5) / 3) and accuracy["other"] == 0.5
    assert np.isclose(accuracy["difference"], 0.5 - 2.5 / 3)
    assert np.isclose(accuracy["p_value"], ttest_rel([0.5, 0.5, 0.5], [1.0, 1.0, 0.5]).pvalue)


def test_different_fold_plans_are_never_paired(tmp_path, prediction_run):
    a = score_run(prediction_run(tmp_path / "a", {0: GOOD, 1: GOOD}))
    b = score_run(prediction_run(tmp_path / "b", {0: WORSE, 1: WORSE[:3]}))
    [result] = compare([a, b])
    assert not result.paired
    assert result.overall["accuracy"]["p_value"] is None
    assert all(entry["p_value"] is None for scores in result.per_class.values() for entry in scores.values())
