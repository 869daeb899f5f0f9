"""Safe reruns: resume only the same config, never overwrite a finished run, restore the
best value, and training refuses what cannot work (issue 13, items 6, 7 and 9)."""

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import yaml
from tensorflow.python.framework import config as tf_config
from test_training import write_prepared_folder

from fermtl_tf.cli import evaluate as evaluate_cli
from fermtl_tf.cli import train as train_cli
from fermtl_tf.errors import ConfigError
from fermtl_tf.experiments.config import parse_config, save_config
from fermtl_tf.experiments.experiment import op_determinism
from fermtl_tf.experiments.run_folder import (
    RUN_OUTPUTS,
    best_so_far,
    config_differences,
    is_finished_run,
    prepare_run_folder,
    restored_history,
)
from fermtl_tf.training.callbacks import make_callbacks


def raw_config(data, output, **changes):
    """A tiny baseline config on the hand-written folder ``data``."""
    config = {
        "output_dir": str(output), "seed": 0, "method": {"name": "baseline"},
        # shuffled and augmented: the resumed stream must continue, not restart
        "data": {"train": [{"folder": str(data), "batch_size": 4,
                            "augment": {"flip": True, "rotation_deg": 10}}],
                 "validation": [{"folder": str(data), "split": "val", "batch_size": 4}],
                 "image_size": [32, 32], "shuffle_buffer": 64},
        "backbone": {"depth": 18, "width": 4, "stem": "compact"},
        "tasks": {"expression": {}}, "epochs": 1, "deterministic": True,
    }
    config.update(changes)
    return config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume") / "data"
    write_prepared_folder(folder)
    return folder


def interrupted_run(output, config, epoch):
    """What an interrupted run leaves: its config.yaml and a backup after ``epoch``."""
    (output / "backup").mkdir(parents=True)
    (output / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": epoch,
                                                                          "batch": 0}))
    save_config(config, output / "config.yaml")


# --- item 7: what a rerun may do ---------------------------------------------------------


def test_config_differences_name_every_changed_leaf():
    old = {"epochs": 2, "optimizer": {"name": "adam", "learning_rate": 0.1},
           "data": {"train": [{"batch_size": 4}]}}
    new = {"epochs": 3, "optimizer": {"name": "adam", "learning_rate": 0.01, "clipnorm": 1.0},
           "data": {"train": [{"batch_size": 8}]}}
    assert config_differences(old, new) == ["data.train", "epochs", "optimizer.clipnorm",
                                            "optimizer.learning_rate"]
    assert config_differences(old, old) == []


def test_resume_refuses_a_changed_config_naming_the_keys_but_allows_more_epochs(data,
                                                                                 tmp_path):
    output = tmp_path / "run"
    interrupted_run(output, parse_config(raw_config(data, output, epochs=3)), epoch=2)
    longer = parse_config(raw_config(data, output, epochs=5))
    assert prepare_run_folder(longer) == 2
    changed = raw_config(data, output, epochs=3, seed=1)
    changed["optimizer"] = {"name": "momentum", "learning_rate": 0.5}
    with pytest.raises(ConfigError, match=r"optimizer\.learning_rate, seed differ.*--restart"):
        prepare_run_folder(parse_config(changed))
    assert (output / "backup").is_dir()  # nothing removed by a refusal
    (output / "config.yaml").unlink()
    with pytest.raises(ConfigError, match="without its config.yaml"):
        prepare_run_folder(longer)


def test_a_finished_run_is_refused_and_restart_removes_only_the_runs_files(data, tmp_path):
    output = tmp_path / "run"
    config = parse_config(raw_config(data, output))
    interrupted_run(output, config, epoch=1)
    for name in RUN_OUTPUTS:
        path = output / name
        if not path.exists():
            path.mkdir() if "." not in name else path.write_text("old")
    (output / "notes.txt").write_text("the user's")
    with pytest.raises(ConfigError, match=r"finished run \(model\.keras\).*--restart"):
        prepare_run_folder(config)
    assert prepare_run_folder(config, restart=True) == 0
    assert sorted(os.listdir(output)) == ["notes.txt"]


def test_a_finished_run_is_reusable_only_with_the_same_config(data, tmp_path):
    output = tmp_path / "run"
    config = parse_config(raw_config(data, output))
    output.mkdir()
    save_config(config, output / "config.yaml")
    assert not is_finished_run(config)  # no model.keras yet
    (output / "model.keras").write_text("")
    assert is_finished_run(config)
    assert not is_finished_run(parse_config(raw_config(data, output, epochs=2)))


def test_restored_history_cuts_back_to_the_backed_up_epochs_and_gives_their_best(tmp_path):
    (tmp_path / "history.csv").write_text(
        "epoch,loss,val_loss\n0,2.0,1.5\n1,1.0,0.75\n2,0.5,0.25\n3,0.4,0.")  # row 3 cut
    rows = restored_history(tmp_path, 2)
    assert (tmp_path / "history.csv").read_text() == "epoch,loss,val_loss\n0,2.0,1.5\n1,1.0,0.75\n"
    assert [row["val_loss"] for row in rows] == ["1.5", "0.75"]
    assert best_so_far(rows) == 0.75
    assert best_so_far([{"loss": "1.0"}]) is None
    assert restored_history(tmp_path, 0) == []


@pytest.mark.parametrize("best, saved", [(1e-12, False), (None, True), (1e12, True)])
def test_best_checkpoint_is_saved_only_below_the_restored_best(tmp_path, best, saved):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0,
              callbacks=make_callbacks(tmp_path, validation=True, tensorboard=False, best=best))
    assert (tmp_path / "checkpoints" / "best.keras").exists() == saved


# --- item 6: one-line refusals ---------------------------------------------------------


def run_cli(tmp_path, config, *extra):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return train_cli.main([str(path), "--verbose", "0", "--no-export", *extra])


def one_error_line(capsys, program="fermtl-train"):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{program}: error: "), err
    return err[0]


def test_a_task_no_training_record_labels_is_refused_naming_task_and_folder(tmp_path, capsys):
    unlabelled = tmp_path / "unlabelled"
    write_prepared_folder(unlabelled, expression_mask=0)
    config = raw_config(unlabelled, tmp_path / "run")
    config["tasks"] = {"expression": {"num_classes": 7}}
    assert run_cli(tmp_path, config) == 2
    line = one_error_line(capsys)
    assert "tasks.expression" in line and str(unlabelled) in line and "mask" in line
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_keep_tasks_leaving_a_task_unlabelled_everywhere_is_refused(data, tmp_path, capsys):
    config = raw_config(data, tmp_path / "run")
    config["data"]["train"][0]["keep_tasks"] = ["landmarks"]
    assert run_cli(tmp_path, config) == 2
    assert "no training record has expression labels" in one_error_line(capsys)


@pytest.mark.parametrize("problem", ["split", "manifest", "folder", "folds"])
def test_dataset_problems_are_one_line(data, tmp_path, capsys, problem):
    config = raw_config(data, tmp_path / "run")
    extra = ["--folds", "all"] if problem == "folds" else []
    if problem == "split":
        config["data"]["train"][0]["split"] = "nosuch"
        expected = "split(s) ['nosuch'] not in"
    elif problem in ("manifest", "folds"):
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "manifest.json").write_text("{not json")
        config["data"]["train"][0]["folder"] = str(broken)
        expected = "malformed JSON in"
    else:
        config["data"]["train"][0]["folder"] = str(tmp_path / "absent")
        expected = "no manifest.json in dataset folder"
    assert run_cli(tmp_path, config, *extra) == 2
    line = one_error_line(capsys)
    assert expected in line
    assert extra or line.startswith(f"fermtl-train: error: {tmp_path / 'exp.yaml'}: ")


@pytest.mark.parametrize("override, expected", [
    ("epochs=[1", "key 'epochs': --set value '[1' is not YAML"),
    ("epochs.sub=1", "key 'epochs': cannot set a sub-key of a scalar"),
    ("noequals", "--set expects key.sub=value"),
])
def test_malformed_set_values_are_one_line(data, tmp_path, capsys, override, expected):
    assert run_cli(tmp_path, raw_config(data, tmp_path / "run"), "--check",
                   "--set", override) == 2
    assert expected in one_error_line(capsys)


def test_a_full_disk_is_one_line(data, tmp_path, capsys, monkeypatch):
    import fermtl_tf.experiments.experiment as experiment

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "model.keras"))

    monkeypatch.setattr(experiment, "run_experiment", full_disk)
    assert run_cli(tmp_path, raw_config(data, tmp_path / "run")) == 2
    line = one_error_line(capsys)
    assert os.strerror(errno.ENOSPC) in line and "model.keras" in line


def test_fermtl_eval_checks_out_before_evaluating(tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("evaluated although --out cannot be written")

    monkeypatch.setattr(evaluate_cli, "evaluate_saved_model", never)
    (tmp_path / "a_file").write_text("")
    assert evaluate_cli.main(["--model", str(tmp_path), "--data", str(tmp_path),
                              "--out", str(tmp_path / "a_file" / "eval")]) == 2
    line = one_error_line(capsys, "fermtl-eval")
    assert str(tmp_path / "a_file" / "eval") in line


def test_rerunning_a_finished_run_is_refused_unless_restart(data, tmp_path, capsys):
    config = raw_config(data, tmp_path / "run")
    assert run_cli(tmp_path, config) == 0
    capsys.readouterr()
    first = (tmp_path / "run" / "history.csv").read_text()
    assert run_cli(tmp_path, config) == 2
    assert "holds a finished run" in one_error_line(capsys)
    assert run_cli(tmp_path, config, "--restart") == 0
    # deterministic: true, the same config: the restarted run logs the same numbers
    assert (tmp_path / "run" / "history.csv").read_text() == first


# --- item 9: op determinism ------------------------------------------------------------


def test_op_determinism_is_on_during_a_deterministic_run_and_restored_after():
    assert not tf_config.is_op_determinism_enabled()
    with op_determinism(True):
        assert tf_config.is_op_determinism_enabled()
    assert not tf_config.is_op_determinism_enabled()
    with op_determinism(False):
        assert not tf_config.is_op_determinism_enabled()


# --- item 7: a real process killed with SIGKILL ------------------------------------------


def train_command(config_path, output):
    return [sys.executable, "-m", "fermtl_tf.cli.train", str(config_path), "--output",
            str(output), "--verbose", "0", "--no-export"]


def history_rows(output):
    with open(output / "history.csv") as handle:
        return list(csv.DictReader(handle))


def model_weights(path):
    import fermtl_tf.methods.baseline.model  # noqa: F401 (registers BaselineModel)

    return [w.numpy() for w in keras.saving.load_model(path).weights]


@pytest.mark.slow
def test_a_run_killed_with_sigkill_and_rerun_ends_as_an_uninterrupted_run(data, tmp_path):
    config = raw_config(data, tmp_path / "unused", epochs=4)
    config["optimizer"] = {"name": "adam", "learning_rate": 0.01}
    config_path = tmp_path / "exp.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(),
                                                       os.environ.get("PYTHONPATH")]))}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(train_command(config_path, whole), env=env, check=True)

    process = subprocess.Popen(train_command(config_path, killed), env=env)
    metadata = killed / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if metadata.is_file() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "model.keras").exists()
    subprocess.run(train_command(config_path, killed), env=env, check=True)

    assert history_rows(killed) == history_rows(whole)
    for name in ("model.keras", "checkpoints/best.keras"):
        for a, b in zip(model_weights(whole / name), model_weights(killed / name), strict=True):
            np.testing.assert_array_equal(b, a, err_msg=name)
