"""Experiment configs: validation errors name key and file; overrides; shipped configs; CLI."""

import dataclasses
import textwrap
from pathlib import Path

import pytest

from fermtl_tf.cli.train import main as train_main
from fermtl_tf.training import config as config_module
from fermtl_tf.training.config import (
    ConfigError,
    load_config,
    parse_config,
    register_variant,
    save_config,
)

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """\
output_dir: runs/test
data:
  train: [{folder: prepared/x, batch_size: 8}]
tasks: {expression: {num_classes: 7}}
"""


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path, overrides=None):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


@pytest.mark.parametrize("name", ["expression_synthface", "landmarks_synthface"])
def test_shipped_baseline_configs_validate(name):
    path = REPO / "train" / "configs" / "baseline" / f"{name}.yaml"
    config = load_config(path)
    task = name.split("_")[0]
    assert list(config.tasks) == [task]
    assert config.backbone.depth == 34 and config.data.image_size == (96, 96)
    assert path.read_text().startswith(f"# fermtl-train train/configs/baseline/{name}.yaml")


def test_minimal_config_takes_documented_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.data.train[0].batch_size == 8
    assert config.data.train[0].split == "train"
    assert config.sharing.name == "single_task" and config.strategy == "auto"
    assert config.tasks["expression"].num_classes == 7


def test_unknown_key_error_names_the_key_and_the_file(tmp_path):
    path = write(tmp_path, MINIMAL + "optimizer: {name: adam, lr: 0.1}\n")
    message = error_of(path)
    assert str(path) in message and "'optimizer.lr'" in message and "unknown key" in message


def test_wrong_type_error_names_the_key_and_the_file(tmp_path):
    path = write(tmp_path, MINIMAL + "epochs: ten\n")
    message = error_of(path)
    assert str(path) in message and "'epochs'" in message and "expected int" in message


def test_nested_list_item_type_error_names_its_index(tmp_path):
    path = write(tmp_path, MINIMAL.replace("batch_size: 8", "batch_size: 8.5"))
    assert "'data.train[0].batch_size'" in error_of(path)


def test_bool_is_not_accepted_as_an_int(tmp_path):
    assert "'epochs'" in error_of(write(tmp_path, MINIMAL + "epochs: true\n"))


def test_choice_outside_the_allowed_values_is_rejected(tmp_path):
    message = error_of(write(tmp_path, MINIMAL + "precision: float64\n"))
    assert "'precision'" in message and "mixed_float16" in message


def test_unknown_sharing_variant_lists_the_known_ones(tmp_path):
    message = error_of(write(tmp_path, MINIMAL + "sharing: {name: magic}\n"))
    assert "'sharing.name'" in message and "single_task" in message


def test_unknown_task_is_rejected(tmp_path):
    path = write(tmp_path, MINIMAL.replace("expression: {num_classes: 7}", "gaze: {}"))
    assert "'tasks.gaze'" in error_of(path)


def test_missing_required_key_is_named(tmp_path):
    path = write(tmp_path, MINIMAL.replace("output_dir: runs/test\n", ""))
    assert "'output_dir'" in error_of(path) and "missing" in error_of(path)


def test_single_task_sharing_needs_exactly_one_task(tmp_path):
    path = write(tmp_path, MINIMAL.replace("{expression: {num_classes: 7}}",
                                           "{expression: {}, landmarks: {}}"))
    assert "'tasks'" in error_of(path)


def test_set_overrides_are_parsed_as_yaml_values(tmp_path):
    path = write(tmp_path, MINIMAL)
    config = load_config(path, ["optimizer.learning_rate=1e-3", "data.train.0.batch_size=4",
                                "data.image_size=[64, 64]", "jit_compile=true"])
    assert config.optimizer.learning_rate == 0.001
    assert config.data.train[0].batch_size == 4
    assert config.data.image_size == (64, 64)
    assert config.jit_compile is True


def test_set_override_of_an_unknown_key_is_an_error(tmp_path):
    assert "'optimizer.lrate'" in error_of(write(tmp_path, MINIMAL), ["optimizer.lrate=1"])


def test_saved_config_loads_back_equal(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ["schedule.name=step",
                                                   "schedule.boundaries=[3, 6]"])
    save_config(config, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == config


def test_registered_sharing_variant_is_validated_by_its_dataclass(monkeypatch):
    @dataclasses.dataclass
    class HardSharing:
        name: str = "hard"
        shared_layers: int = 6

    monkeypatch.setitem(config_module.VARIANTS, "sharing", dict(config_module.VARIANTS["sharing"]))
    register_variant("sharing", "hard", HardSharing)
    raw = {"output_dir": "o", "data": {"train": [{"folder": "f"}]},
           "tasks": {"expression": {}}, "sharing": {"name": "hard", "shared_layers": 14}}
    assert parse_config(raw).sharing == HardSharing(shared_layers=14)
    raw["sharing"]["shared_layers"] = "all"
    with pytest.raises(ConfigError, match="'sharing.shared_layers'"):
        parse_config(raw)


def test_cli_reports_a_config_error_in_one_line_with_exit_status_2(tmp_path, capsys):
    path = write(tmp_path, MINIMAL + "strategy: everywhere\n")
    assert train_main([str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fermtl-train: error: ") and str(path) in lines[0]
    assert "'strategy'" in lines[0]


def test_cli_reports_an_unreadable_config_with_exit_status_2(tmp_path, capsys):
    assert train_main([str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err
