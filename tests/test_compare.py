import numpy as np
from scipy.stats import ttest_rel

from raycells.report.compare import compare, corrected_t_test, holm
from raycells.report.scoring import score_run

GOOD = [("MOB", [0.7, 0.2, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8]), ("NGS", [0.1, 0.2, 0.7])]
WORSE = [("MOB", [0.2, 0.7, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8]), ("NGS", [0.6, 0.2, 0.2])]


def test_same_fold_plan_is_paired_with_the_corrected_t_test(tmp_path, prediction_run):
    a = score_run(prediction_run(tmp_path / "a", {0: GOOD, 1: GOOD, 2: WORSE}))
    b = score_run(prediction_run(tmp_path / "b", {0: WORSE, 1: WORSE, 2: WORSE}))
    [result] = compare([a, b])
    assert result.paired and result.folds == [0, 1, 2]
    accuracy = result.overall["accuracy"]
    assert np.isclose(accuracy["baseline"], (1 + 1 + 0.5) / 3) and accuracy["other"] == 0.5
    assert np.isclose(accuracy["difference"], 0.5 - 2.5 / 3)
    # 3 folds of 4 test images, each trained on the other 8 (no inner split in this plan)
    assert result.test_train_ratio == 4 / 8
    assert np.isclose(accuracy["p_value"], corrected_t_test(np.array([-0.5, -0.5, 0.0]), 4 / 8))
    assert accuracy["p_value"] > ttest_rel([0.5, 0.5, 0.5], [1.0, 1.0, 0.5]).pvalue
    assert all("p_holm" in entry for scores in result.per_class.values() for entry in scores.values())


def test_the_corrected_t_test_widens_the_plain_one_by_the_training_overlap():
    """Nadeau-Bengio: variance x (1/J + 1/(k-1)) instead of x 1/J. With J = k = 5 the t statistic
    shrinks by sqrt(0.2 / 0.45), so p grows; a known value checks the arithmetic."""
    d = np.array([0.02, 0.03, 0.01, 0.04, 0.02])
    plain = ttest_rel(d, np.zeros(5)).pvalue
    corrected = corrected_t_test(d, 1 / 4)
    t = d.mean() / np.sqrt(d.var(ddof=1) * (1 / 5 + 1 / 4))
    from scipy.stats import t as student_t
    assert np.isclose(corrected, 2 * student_t.sf(t, 4)) and corrected > plain
    assert corrected_t_test(np.array([0.1, 0.1, 0.1]), 1 / 2) is None
    assert corrected_t_test(np.array([0.1]), 1 / 4) is None


def test_holm_adjusts_step_down_and_keeps_the_order():
    assert holm([0.01, 0.04, None, 0.03]) == [0.03, 0.06, None, 0.06]
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_different_fold_plans_are_never_paired(tmp_path, prediction_run):
    a = score_run(prediction_run(tmp_path / "a", {0: GOOD, 1: GOOD}))
    b = score_run(prediction_run(tmp_path / "b", {0: WORSE, 1: WORSE[:3]}))
    [result] = compare([a, b])
    assert not result.paired
    assert result.overall["accuracy"]["p_value"] is None
    assert all(entry["p_value"] is None for scores in result.per_class.values() for entry in scores.values())


def test_the_correction_counts_the_images_a_fold_really_trains_on():
    """The inner validation split is held out of training: n_train is smaller than (k-1)/k of
    the images, so n_test/n_train is larger than 1/(k-1) and the test more cautious; extra
    training images (fold -1) train in every fold."""
    import pandas as pd

    from raycells.report.scoring import test_train_ratio

    folds = np.repeat(np.arange(5), 20)  # 100 images, 20 per test fold
    plan = pd.DataFrame({"fold": folds})
    for k in range(5):  # 8 of each training part's 80 images are its inner validation split
        val = np.zeros(100, bool)
        val[np.flatnonzero(folds != k)[:8]] = True
        plan[f"val_{k}"] = val
    assert test_train_ratio(plan, 5) == 20 / 72
    extra = pd.concat([plan, pd.DataFrame({"fold": [-1] * 8, **{f"val_{k}": False for k in range(5)}})])
    assert test_train_ratio(extra, 5) == 20 / 80
    assert test_train_ratio(plan.drop(columns=[f"val_{k}" for k in range(5)]), 5) == 1 / 4
