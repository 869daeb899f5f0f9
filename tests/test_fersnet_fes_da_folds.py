"""FES-DA under ``fermtl-train CONFIG --folds all`` (Zhao et al. §IV-D, Table VI 'w/ FES-DA'):
``{fold}`` in ``init_from`` and in a training folder, the round's syntheses written from the
round's training folds by the round's FERSNet, and the errors of a chain with a missing
link -- on a 2-fold SynthFace folder and tiny FERSNets."""

import copy
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from fermtl_tf.cli.prep import main as prep_main
from fermtl_tf.cli.train import main as train_main
from fermtl_tf.data.pipeline import make_dataset
from fermtl_tf.errors import ConfigError
from fermtl_tf.experiments.config import parse_config
from fermtl_tf.experiments.experiment import run_experiment
from fermtl_tf.experiments.folds import round_config
from fermtl_tf.methods.fersnet.augmentation import prepare_fes_da
from fermtl_tf.methods.fersnet.config import SMOKE_CONFIG

FOLDS = [0, 1]


def fersnet_raw(data, output_dir):
    """SMOKE_CONFIG's tiny FERSNet on every record of ``data``, one epoch, k-fold."""
    raw = copy.deepcopy(SMOKE_CONFIG)
    raw["data"]["train"] = [{"folder": str(data), "split": None, "batch_size": 4}]
    raw["data"].pop("validation")
    return {**raw, "output_dir": str(output_dir), "epochs": 1,
            "cross_validation": {"benchmark": "synthface"}}


def fes_da_raw(data, fersnets, root):
    """The FES-DA fine-tuning of the round's FERSNet on real + the round's syntheses."""
    raw = fersnet_raw(data, root / "fes_da")
    raw["method"] = {**raw["method"], "train_synthesis": False, "fes_da_source": 1}
    raw["init_from"] = str(fersnets / "fold_{fold}" / "model.keras")
    raw["data"]["train"].append({"folder": str(root / "synthetic_{fold}"), "split": None,
                                 "batch_size": 4})
    return raw


def write_yaml(path, raw):
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """24 SynthFace faces of 6 identities in 2 identity-independent folds, 32 px."""
    out = tmp_path_factory.mktemp("fes_da_folds") / "data"
    assert prep_main(["synthface", "--out", str(out), "--identities", "6",
                      "--sequences-per-identity", "2", "--frames-per-sequence", "2",
                      "--crop-from", "landmarks", "--size", "32", "--folds", "2",
                      "--quiet"]) == 0
    return out


def read_faces(folder):
    """{image_id: (fold, identity, expression, labelled)} of every record, read here."""
    faces = {}
    for batch in make_dataset(str(folder), split=None, batch_size=64, training=False,
                              image_size=(32, 32), keep_metadata=True).as_numpy_iterator():
        for i, image_id in enumerate(batch["image_id"]):
            faces[image_id.decode()] = (int(batch["fold"][i]), int(batch["identity"][i]),
                                        int(batch["expression"][i]),
                                        bool(batch["expression_mask"][i] > 0))
    return faces


def test_round_config_fills_the_fold_in_init_from_and_the_training_folders():
    raw = fes_da_raw("real", Path("runs/f"), Path("p"))
    raw["cross_validation"]["val_folds"] = 1
    config = parse_config(raw)
    run = round_config(config, 2, [0, 1, 2, 3], "out/fold_2")
    assert run.init_from == "runs/f/fold_2/model.keras"
    assert [s.folder for s in run.data.train] == ["real", "p/synthetic_2"]
    assert all("{" not in s.folder for s in run.data.validation)
    assert run.data.train[1].folds == [0, 1]  # fold 3 validates
    assert config.init_from.endswith("fold_{fold}/model.keras")  # the template is kept


@pytest.mark.parametrize("key, change", [
    ("init_from", {"init_from": "runs/{seed}/model.keras"}),
    ("data.train[1].folder", {"train_folder": "syn_{fold}_{round}"}),
    ("data.validation[0].folder", {"validation": [{"folder": "val_{fold}"}]}),
])
def test_an_unknown_or_unfillable_placeholder_names_its_key(key, change):
    raw = fes_da_raw("real", Path("runs/f"), Path("p"))
    if "init_from" in change:
        raw["init_from"] = change["init_from"]
    if "train_folder" in change:
        raw["data"]["train"][1]["folder"] = change["train_folder"]
    if "validation" in change:
        raw["data"]["validation"] = change["validation"]
    with pytest.raises(ConfigError, match=re.escape(f"key '{key}'")):
        parse_config(raw)


def test_a_fold_placeholder_outside_folds_is_an_error_naming_the_key(tmp_path):
    raw = fes_da_raw("real", tmp_path / "runs", tmp_path)
    with pytest.raises(ConfigError, match=r"key 'init_from': \{fold\} is filled per round"):
        run_experiment(raw)


@pytest.mark.parametrize("change, key", [
    ({"fes_da_source": 2}, "method.fes_da_source"),
    ({"fes_da_source": 0}, "method.fes_da_source"),
    ({"train_synthesis": True}, "method.train_synthesis"),
])
def test_fes_da_source_rules_name_their_key(change, key):
    raw = fes_da_raw("real", Path("runs/f"), Path("p"))
    raw["method"].update(change)
    with pytest.raises(ConfigError, match=re.escape(f"key '{key}'")):
        parse_config(raw)
    raw = fes_da_raw("real", Path("runs/f"), Path("p"))
    del raw["init_from"]
    with pytest.raises(ConfigError, match="key 'init_from'"):
        parse_config(raw)


def test_a_missing_round_fersnet_is_an_error_naming_the_path_and_its_run(
        data, tmp_path, capsys):
    fersnets = tmp_path / "fersnet"
    (fersnets / "fold_0").mkdir(parents=True)
    (fersnets / "fold_0" / "model.keras").write_bytes(b"")  # round 0 present, round 1 not
    config = write_yaml(tmp_path / "fes_da.yaml", fes_da_raw(data, fersnets, tmp_path))
    assert train_main([config, "--folds", "all", "--verbose", "0"]) == 2
    error = capsys.readouterr().err
    assert f"round 1's model {fersnets / 'fold_1' / 'model.keras'} does not exist" in error
    assert "fermtl-train CONFIG --folds 1" in error and f"output_dir: {fersnets}" in error
    assert not (tmp_path / "fes_da").exists()  # refused before round 0 trained


@pytest.fixture(scope="module")
def chained(data, tmp_path_factory):
    """Tiny FERSNets trained with --folds all, then the FES-DA config with --folds all."""
    root = tmp_path_factory.mktemp("chain")
    fersnets = root / "fersnet"
    assert train_main([write_yaml(root / "fersnet.yaml", fersnet_raw(data, fersnets)),
                       "--folds", "all", "--verbose", "0"]) == 0
    raw = fes_da_raw(data, fersnets, root)
    assert train_main([write_yaml(root / "fes_da.yaml", raw), "--folds", "all",
                       "--verbose", "0"]) == 0
    return root, fersnets, raw


@pytest.mark.slow
def test_each_round_synthesises_from_its_training_folds_only(data, chained):
    root, _, _ = chained
    real = read_faces(data)
    classes = len(json.loads((data / "manifest.json").read_text())
                  ["vocabularies"]["expression"])
    for fold in FOLDS:
        synthetic = read_faces(root / f"synthetic_{fold}")
        made = set()
        for image_id, (record_fold, identity, expression, labelled) in synthetic.items():
            source, target = image_id.split("~to")
            source_fold, source_identity, _, _ = real[source]
            assert source_fold != fold and record_fold == source_fold
            assert identity == source_identity and labelled and expression == int(target)
            made.add((source, expression))
        expected = {(image_id, target) for image_id, (f, _, expression, labelled)
                    in real.items() if f != fold and labelled
                    for target in range(classes) if target != expression}
        assert made == expected and len(synthetic) == len(expected)
        test_identities = {face[1] for face in real.values() if face[0] == fold}
        assert not test_identities & {face[1] for face in synthetic.values()}


@pytest.mark.slow
def test_each_round_starts_from_its_own_fersnet_and_is_evaluated(data, chained):
    root, fersnets, _ = chained
    load = lambda path: keras.saving.load_model(path, compile=False)  # noqa: E731
    sources = {fold: load(fersnets / f"fold_{fold}" / "model.keras") for fold in FOLDS}
    for fold in FOLDS:
        tuned = load(root / "fes_da" / f"fold_{fold}" / "model.keras")
        other = sources[1 - fold]
        # the decoder is not trained by FES-DA: it is the round's FERSNet's, not the other's
        for mine, theirs in zip(tuned.decoder.weights, sources[fold].decoder.weights,
                                strict=True):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
        assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in
                   zip(sources[fold].decoder.weights, other.decoder.weights, strict=True))
        assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in
                   zip(tuned.classifier.weights, sources[fold].classifier.weights,
                       strict=True))
    report = json.loads((root / "fes_da" / "folds" / "folds.json").read_text())
    counts = json.loads((data / "manifest.json").read_text())["folds"]
    assert report["folds"] == FOLDS
    assert [r["num_samples"] for r in report["per_fold"]] == [counts[str(f)] for f in FOLDS]


@pytest.mark.slow
def test_a_synthetic_folder_of_another_round_is_refused(chained):
    root, _, raw = chained
    config = round_config(parse_config(raw), 0, FOLDS, root / "elsewhere")
    config.data.train[1].folder = str(root / "synthetic_1")  # round 1's syntheses
    with pytest.raises(ConfigError, match=r"key 'data.train\[1\].folder'.*delete it"):
        prepare_fes_da(config)
