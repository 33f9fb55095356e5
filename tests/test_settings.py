import json

import pytest

from raycells.errors import RaycellsError
from raycells.settings import AugmentSettings, Experiment, Sampling, build_settings, differences


def test_defaults_preset_file_then_flags(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"preset": "paper", "epochs": 7, "augment": {"noise": 0.9}}))
    experiment, placement = build_settings(config_file=tmp_path / "c.json",
                                           flags={"epochs": 3, "workers": 2, "lr": None})
    assert experiment.model == "resnext50" and experiment.image_size == 400  # preset from the file
    assert experiment.epochs == 3  # flag beats file
    assert experiment.lr == 0.01  # None flags are ignored
    assert experiment.augment.noise == 0.9 and experiment.augment.rotate == 1.0
    assert placement.workers == 2


def test_toml_and_yaml_files_and_augment_off(tmp_path):
    (tmp_path / "c.toml").write_text('model = "tiny_cnn"\naugment = "off"\n')
    (tmp_path / "c.yaml").write_text("model: densenet121\nfolds: 3\n")
    assert build_settings(config_file=tmp_path / "c.toml")[0].augment == AugmentSettings.off()
    assert build_settings(config_file=tmp_path / "c.yaml")[0].folds == 3


def test_bad_settings_name_the_file_and_the_field(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"epocs": 3}))
    with pytest.raises(RaycellsError, match=r"c.json: unknown settings epocs"):
        build_settings(config_file=tmp_path / "c.json")
    with pytest.raises(RaycellsError, match="folds = 1 is not valid"):
        build_settings(flags={"folds": 1})
    with pytest.raises(RaycellsError, match="unknown preset"):
        build_settings(preset="gpu-please")


def test_demo_preset_without_data_cpu_preset_with_data():
    assert build_settings()[0].model == "tiny_cnn"
    assert build_settings(flags={"data": "x"})[0].model == "resnet18"
    assert build_settings(preset="cpu")[0].model == "resnet18"


def test_differences_name_the_changed_fields():
    a, _ = build_settings(flags={"data": "x"})
    b, _ = build_settings(flags={"data": "x", "epochs": 2, "augment": {"noise": 0.0}})
    assert differences(a, b) == ["augment.noise: 0.3 -> 0.0", "epochs: 18 -> 2"]
    assert differences(a, a) == []


def test_sampling_from_a_name_a_table_and_flags(tmp_path):
    (tmp_path / "c.toml").write_text('sampling = "oversample"\n')
    (tmp_path / "d.toml").write_text('[sampling]\npolicy = "oversample"\ntarget = 500\n')
    assert build_settings(config_file=tmp_path / "c.toml")[0].sampling == Sampling("oversample")
    merged = build_settings(config_file=tmp_path / "d.toml", flags={"sampling": {"cap": 4.0}})[0]
    assert merged.sampling == Sampling("oversample", target=500, cap=4.0)
    renamed = build_settings(config_file=tmp_path / "c.toml", flags={"sampling": {"policy": "sqrt"}})[0]
    assert renamed.sampling == Sampling("sqrt")
    with pytest.raises(RaycellsError, match="unknown sampling settings goal"):
        build_settings(flags={"sampling": {"policy": "oversample", "goal": 3}})
    a, b = (build_settings(preset="cpu", flags=flags)[0]
            for flags in (None, {"sampling": {"policy": "sqrt"}}))
    assert differences(a, b) == ["sampling.policy: 'none' -> 'sqrt'"]
    # Another policy than the preset's starts afresh: demo's oversampling target does not stay.
    assert build_settings(flags={"sampling": {"policy": "sqrt"}})[0].sampling == Sampling("sqrt")
    assert build_settings(flags={"sampling": {"cap": 3.0}})[0].sampling == Sampling(
        "oversample", target=150, cap=3.0)


def test_config_file_extensions_are_read_in_any_case(tmp_path):
    from raycells.settings import read_config_file

    for name in ("run.JSON", "run.Toml", "run.YML"):
        path = tmp_path / name
        path.write_text('{"epochs": 3}' if name.endswith("JSON") else
                        "epochs = 3\n" if name.endswith("Toml") else "epochs: 3\n")
        assert read_config_file(path) == {"epochs": 3}


def test_values_of_the_wrong_type_or_out_of_range_are_named_with_their_key(tmp_path):
    from raycells.errors import RaycellsError

    for key, value, expected in (("folds", 2.7, "whole number"), ("epochs", True, "whole number"),
                                 ("folds", "two", "whole number"), ("lr", float("inf"), "finite"),
                                 ("image_size", 100000, "16 to 4096"),
                                 ("batch_size", 10 ** 9, "2 to 65536"),
                                 ("tta", "yes", "true or false")):
        with pytest.raises(RaycellsError, match=rf"{key} = .* is not valid: expected .*{expected}"):
            build_settings(flags={key: value})
    config = tmp_path / "bad.json"
    config.write_text('{"sampling": {"policy": "oversample", "target": 1.5}}')
    with pytest.raises(RaycellsError, match=r"bad.json: target = 1.5 is not valid: expected a whole"):
        build_settings(config_file=config)


def test_batch_scaling_sets_each_workers_batch_and_the_learning_rate():
    from raycells.train.job import FoldJob, step_batch

    def job(workers, **settings):
        return FoldJob(experiment=Experiment(batch_size=32, **settings), fold=0, classes=("a",),
                       workers=workers, threads=1, steps_per_epoch=1, loss_weights=None,
                       class_copies=None, train_images=0, shared=(), checkpoints="")

    # global (the default): the step's batch whatever the width, split over the workers.
    assert [(step_batch(job(w).experiment, w), job(w).worker_batch, job(w).lr_scale)
            for w in (1, 4, 64)] == [(32, 32, 1.0), (32, 8, 1.0), (32, 1, 1.0)]
    wide = job(4, batch_scaling="per-worker")
    assert (step_batch(wide.experiment, 4), wide.worker_batch, wide.lr_scale) == (128, 32, 4.0)
    with pytest.raises(ValueError, match="batch_scaling = 'linear' is not valid: expected global"):
        Experiment(batch_scaling="linear")
