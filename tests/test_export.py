"""SavedModel export: loads without fermtl_tf and reproduces the in-memory model."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import fermtl_tf
from fermtl_tf.backbones.resnet import build_resnet
from fermtl_tf.export import METADATA_FILE, export_saved_model
from fermtl_tf.knowledge.vocabularies import BASIC7
from fermtl_tf.methods.baseline.model import task_head
from fermtl_tf.training.multitask import MultiTaskModel

SIZE = 32
AU_NAMES = ["AU1", "AU12L", "AU12R"]

LOAD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    export_dir, arrays = sys.argv[1], np.load(sys.argv[2])
    loaded = tf.saved_model.load(export_dir)  # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(arrays["raw"]))
    assert "fermtl_tf" not in sys.modules, "the SavedModel pulled in fermtl_tf"
    assert sorted(served) == ["au_probs", "expression_probs", "landmarks"], sorted(served)
    for name in served:
        np.testing.assert_allclose(served[name].numpy(), arrays[name], atol=1e-5, rtol=0)
    print("SERVED_EQUAL")
""")


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A three-head model exported once, with raw inputs and the expected outputs."""
    keras.utils.set_random_seed(0)
    images = keras.Input((SIZE, SIZE, 3))
    features = build_resnet(18, 4, (SIZE, SIZE, 3), stem="compact")(images)
    outputs = {**task_head("expression", features, len(BASIC7)),
               **task_head("landmarks", features, 0),
               "au_logits": keras.layers.Dense(len(AU_NAMES), name="au_logits")(features)}
    model = MultiTaskModel(images, outputs, task_weights={"expression": 1.0})
    raw = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    in_memory = model(raw / 127.5 - 1.0, training=False)  # "minus_one_one" by definition
    expected = {
        "raw": raw,
        "expression_probs": softmax(in_memory["expression_logits"].numpy().astype("float64")),
        "landmarks": in_memory["landmarks"].numpy(),
        "au_probs": 1 / (1 + np.exp(-in_memory["au_logits"].numpy().astype("float64"))),
    }
    folder = tmp_path_factory.mktemp("export")
    export_dir = export_saved_model(
        model, folder / "saved_model", input_size=(SIZE, SIZE), normalization="minus_one_one",
        metadata={"expression_vocabulary": list(BASIC7), "au_names": AU_NAMES})
    np.savez(folder / "expected.npz", **expected)
    return export_dir, folder / "expected.npz"


def test_saved_model_serves_the_in_memory_outputs_without_importing_fermtl_tf(exported):
    export_dir, expected = exported
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(export_dir), str(expected)],
                         capture_output=True, text=True, env=env, timeout=300, cwd="/")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SERVED_EQUAL" in run.stdout


def test_export_metadata_records_inputs_outputs_and_vocabularies(exported):
    export_dir, _ = exported
    info = json.loads((export_dir / METADATA_FILE).read_text())
    assert info == {
        "input_size": [SIZE, SIZE],
        "normalization": "minus_one_one",
        "preprocess": None,
        "centre_crop": None,
        "outputs": ["au_probs", "expression_probs", "landmarks"],
        "expression_vocabulary": list(BASIC7),
        "au_names": AU_NAMES,
        "package_version": fermtl_tf.__version__,
    }


def test_export_rejects_an_unknown_normalization(tmp_path):
    x = keras.Input((4, 4, 3))
    model = MultiTaskModel(x, {"landmarks": keras.layers.Reshape((68, 2))(
        keras.layers.Dense(136)(keras.layers.Flatten()(x)))})
    with pytest.raises(ValueError, match="normalization"):
        export_saved_model(model, tmp_path / "m", input_size=4, normalization="imagenet")
