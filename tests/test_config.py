"""Experiment configs: validation errors name key and file; overrides; shipped configs; CLI."""

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from fermtl_tf import methods
from fermtl_tf.cli.train import main as train_main
from fermtl_tf.experiments.config import (
    ConfigError,
    load_config,
    parse_config,
    read_raw_config,
    save_config,
)
from fermtl_tf.methods import MethodSpec, register_method

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """\
output_dir: runs/test
method: {name: baseline}
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


def test_a_registered_method_brings_its_config_and_variants(monkeypatch):
    @dataclasses.dataclass
    class ToyMethod:
        name: str = "toy"
        depth: int = 2

    @dataclasses.dataclass
    class ToySharing:
        name: str = "toy_sharing"
        shared_layers: int = 6

    monkeypatch.setattr(methods.REGISTRY, "entries", dict(methods.REGISTRY.entries))
    register_method(MethodSpec(name="toy", config=ToyMethod, builder="x:y", tasks=("expression",),
                               summary="toy", variants={"sharing": {"toy_sharing": ToySharing}}))
    raw = {"output_dir": "o", "data": {"train": [{"folder": "f"}]}, "method": {"name": "toy"},
           "tasks": {"expression": {}}, "sharing": {"name": "toy_sharing", "shared_layers": 14}}
    config = parse_config(raw)
    assert config.method == ToyMethod() and config.sharing == ToySharing(shared_layers=14)
    raw["sharing"]["shared_layers"] = "all"
    with pytest.raises(ConfigError, match="'sharing.shared_layers'"):
        parse_config(raw)
    raw["sharing"]["shared_layers"] = 1
    raw["tasks"] = {"landmarks": {}}
    with pytest.raises(ConfigError, match="method 'toy' trains"):
        parse_config(raw)


def test_unknown_method_lists_the_registered_ones(tmp_path):
    message = error_of(write(tmp_path, MINIMAL.replace("{name: baseline}", "{name: magic}")))
    assert "'method.name'" in message and "hu2018" in message and "facebehaviornet" in message


@pytest.mark.parametrize("sharing, advice", [
    ("{name: stacked}", "method: {name: hu2018}"),
    ("{name: facebehaviornet}", "rename sharing.name 'facebehaviornet' to 'hard'"),
    ("{name: single_task}", "method: {name: baseline}"),
])
def test_a_config_from_before_the_method_section_says_what_to_rename(tmp_path, sharing, advice):
    text = MINIMAL.replace("method: {name: baseline}\n", "") + f"sharing: {sharing}\n"
    message = error_of(write(tmp_path, text))
    assert "'method'" in message and advice in message


def test_base_is_deep_merged_relative_to_the_file(tmp_path):
    (tmp_path / "common").mkdir()
    write(tmp_path / "common", MINIMAL + "optimizer: {name: adam, learning_rate: 0.5}\n"
          "coupling: {name: none}\n", "base.yaml")
    (tmp_path / "rows").mkdir()
    row = write(tmp_path / "rows", "base: ../common/base.yaml\noptimizer: {learning_rate: 0.1}\n"
                "epochs: 3\n", "row.yaml")
    config = load_config(row)
    assert config.optimizer.name == "adam" and config.optimizer.learning_rate == 0.1
    assert config.epochs == 3 and config.data.train[0].batch_size == 8


def test_a_row_naming_another_variant_or_other_tasks_replaces_the_base_section(tmp_path):
    base = {"sharing": {"name": "stacked", "trace_norm": {"method": "laf"}},
            "tasks": {"expression": {}, "landmarks": {"loss": "l2"}}, "epochs": 1}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "r.yaml").write_text("base: b.yaml\nsharing: {name: single_task}\n"
                                     "tasks: {expression: {num_classes: 3}}\n")
    raw = read_raw_config(tmp_path / "r.yaml")
    assert raw == {"sharing": {"name": "single_task"}, "tasks": {"expression": {"num_classes": 3}},
                   "epochs": 1}


def test_a_cycle_of_bases_is_an_error_naming_the_files(tmp_path):
    write(tmp_path, "base: b.yaml\n", "a.yaml")
    write(tmp_path, "base: a.yaml\n", "b.yaml")
    message = error_of(tmp_path / "a.yaml")
    assert "cycle" in message and "a.yaml" in message and "b.yaml" in message


def test_a_missing_base_names_the_row_that_includes_it(tmp_path):
    message = error_of(write(tmp_path, "base: nowhere.yaml\n" + MINIMAL))
    assert "nowhere.yaml" in message and "base of" in message and "exp.yaml" in message


def test_a_binary_config_file_is_one_line(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(bytes(range(256)) * 4)
    assert "not a text file" in error_of(path)


def test_print_shows_the_merged_config(tmp_path, capsys):
    write(tmp_path, MINIMAL, "base.yaml")
    row = write(tmp_path, "base: base.yaml\nepochs: 7\n", "row.yaml")
    assert train_main([str(row), "--print", "--set", "seed=3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["epochs"] == 7 and printed["seed"] == 3
    assert printed["method"] == {"name": "baseline"} and printed["data"]["train"][0]["batch_size"] == 8


def test_check_and_list_methods_do_not_import_tensorflow(tmp_path):
    path = write(tmp_path, MINIMAL)
    code = ("import sys; from fermtl_tf.cli.train import main; "
            f"assert main([{str(path)!r}, '--check']) == 0; assert main(['--list-methods']) == 0; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "\t" in line]
    assert [line.split("\t")[0] for line in lines] == sorted(s.name for s in methods.list_methods())


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


@pytest.mark.parametrize("override, key", [
    ("optimizer.learning_rate=0", "'optimizer.learning_rate'"),
    ("optimizer.learning_rate=-1e-3", "'optimizer.learning_rate'"),
    ("data.train.0.batch_size=0", "'data.train[0].batch_size'"),
    ("weighting={name: fixed, weights: {expression: -1}}", "'weighting.weights.expression'"),
])
def test_non_positive_rates_sizes_and_weights_are_config_errors(tmp_path, override, key):
    assert key in error_of(write(tmp_path, MINIMAL), [override])
