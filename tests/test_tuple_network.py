"""2B(N+M)Softmax network (Liu et al. 2017, §4): wiring, losses, train step, save, export."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_tuple_losses import np_eq1, np_eq3, np_eq10
from test_tuple_sampling import EXPRESSION, IDENTITY, write_folder

from fermtl_tf.export import export_saved_model
from fermtl_tf.methods import get_method
from fermtl_tf.methods.tuple_clusters.build import build_model, serving_model
from fermtl_tf.methods.tuple_clusters.config import (
    InceptionFERNetwork,
    TupleClustersMethod,
    check,
)
from fermtl_tf.methods.tuple_clusters.data import train_dataset
from fermtl_tf.methods.tuple_clusters.network import LUMA, TupleClustersNet

TINY = dict(width=0.125, ec_units=[24, 16], ml_units=16, connect_units=12, embedding_dim=8)
RNG = np.random.default_rng(3)


def tiny_model(**kwargs):
    options = dict(num_classes=4, image_size=(48, 48), num_positives=3, num_negatives=3,
                   **TINY)
    options.update(kwargs)
    model = TupleClustersNet(**options)
    model.build((None, 48, 48, 3))
    return model


def tuple_batch(model, queries=2, seed=0):
    """A tuple batch with the sampler's layout and labels (images random)."""
    rng = np.random.default_rng(seed)
    size = model.tuple_size
    expression = rng.integers(0, 4, queries * size).astype("int32")
    return {
        "image": rng.normal(size=(queries * size, 48, 48, 3)).astype("float32"),
        "expression": expression,
        "expression_mask": np.ones(queries * size, "float32"),
        "tuple_role": np.tile([0] + [1] * model.positives_per_query
                              + [2] * model.options["num_negatives"], queries).astype("int32"),
    }


def np_softmax_ce(logits, labels):
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels].mean()


def test_outputs_and_the_1b_embedding_is_fc2():
    images = RNG.normal(size=(4, 48, 48, 3)).astype("float32")
    two = tiny_model()
    out = two(images)
    assert out["expression_logits"].shape == (4, 4) and out["embedding"].shape == (4, 8)
    one = tiny_model(branches="1B")
    out = one(images)
    assert out["embedding"].shape == (4, 16)
    # The classifier is a linear map of the 1B embedding (FC2).
    classifier = one.classifier
    np.testing.assert_allclose(
        out["expression_logits"].numpy(),
        out["embedding"].numpy() @ classifier.kernel.numpy() + classifier.bias.numpy(),
        rtol=1e-4, atol=1e-5)


def prelu(x, alpha):
    return np.where(x > 0, x, alpha * x)


def test_connecting_layer_is_eq13():
    model = tiny_model()
    images = RNG.normal(size=(3, 48, 48, 3)).astype("float32")
    grey = (images * np.array(LUMA, "float32")).sum(-1, keepdims=True)
    conv = model.backbone(grey).numpy()
    fc = conv
    for dense, act in model.ec_layers:
        fc = prelu(fc @ dense.kernel.numpy() + dense.bias.numpy(), act.alpha.numpy())
    dense, act = model.fc3
    fc3 = prelu(conv @ dense.kernel.numpy() + dense.bias.numpy(), act.alpha.numpy())
    P = model.connect[0].kernel.numpy()
    P1, P2 = P[:16], P[16:]
    fc4 = prelu(fc @ P1 + fc3 @ P2, model.connect[1].alpha.numpy())
    expected = fc4 @ model.embedding_layer.kernel.numpy() + model.embedding_layer.bias.numpy()
    np.testing.assert_allclose(model(images)["embedding"].numpy(), expected,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant", [
    dict(metric_loss="n_plus_m", threshold="adaptive"),
    dict(metric_loss="n_plus_m", threshold="fixed", reference_distance=3.0, margin=1.0),
    dict(metric_loss="n_plus_1", branches="1B", margin=0.5),
    dict(metric_loss="n_plus_m", query_in_positives=False, alpha=0.5),
])
def test_losses_are_softmax_on_queries_plus_alpha_metric(variant):
    model = tiny_model(**variant)
    batch = tuple_batch(model)
    outputs = model(batch["image"])
    losses, _ = model.compute_losses(batch, outputs)
    size, p = model.tuple_size, model.positives_per_query
    logits = outputs["expression_logits"].numpy().reshape(2, size, 4)[:, 0]
    labels = batch["expression"].reshape(2, size)[:, 0]
    np.testing.assert_allclose(losses["softmax_loss"], np_softmax_ce(logits, labels), rtol=1e-5)
    emb = outputs["embedding"].numpy().reshape(2, size, -1)
    negatives = emb[:, 1 + p:]
    opts = model.options
    if opts["metric_loss"] == "n_plus_1":
        expected = [np_eq1(e[0], e[1], n, opts["margin"]) for e, n in zip(emb, negatives,
                                                                          strict=True)]
    else:
        positives = emb[:, : 1 + p] if opts["query_in_positives"] else emb[:, 1:1 + p]
        if opts["threshold"] == "fixed":
            expected = [np_eq3(po, n, opts["reference_distance"], opts["margin"])
                        for po, n in zip(positives, negatives, strict=True)]
        else:
            A, B = (m.numpy() for m in model.adaptive.matrices())
            lin, b = model.adaptive.linear.numpy(), float(model.adaptive.bias.numpy())
            expected = [np_eq10(po, n, A, B, lin, b, 1, opts["margin"] / 2)
                        for po, n in zip(positives, negatives, strict=True)]
    np.testing.assert_allclose(losses["metric_loss"], np.mean(expected), rtol=1e-4)


def test_plain_batches_train_the_softmax_alone():
    model = tiny_model()
    batch = tuple_batch(model)
    del batch["tuple_role"]
    outputs = model(batch["image"])
    losses, _ = model.compute_losses(batch, outputs)
    assert set(losses) == {"softmax_loss"}
    np.testing.assert_allclose(losses["softmax_loss"],
                               np_softmax_ce(outputs["expression_logits"].numpy(),
                                             batch["expression"]), rtol=1e-5)


def test_a_batch_that_is_not_whole_tuples_is_an_error():
    model = tiny_model()
    batch = tuple_batch(model)
    batch = {key: value[:-1] for key, value in batch.items()}
    with pytest.raises(ValueError, match="not a whole number of tuples"):
        model.compute_losses(batch, model(batch["image"]))


def small_config(**method):
    return types.SimpleNamespace(
        method=TupleClustersMethod(network=InceptionFERNetwork(**TINY), **(
            dict(num_positives=3, num_negatives=3, queries_per_batch=2) | method)),
        tasks={"expression": types.SimpleNamespace(num_classes=4)},
        data=types.SimpleNamespace(image_size=(48, 48), normalization="per_image"))


def test_spec_and_builder():
    spec = get_method("tuple_clusters")
    assert spec.config is TupleClustersMethod
    model = spec.resolve("builder")(small_config(branches="1B", metric_loss="n_plus_1"), None)
    assert isinstance(model, TupleClustersNet) and model.options["branches"] == "1B"
    assert model.options["num_classes"] == 4 and model.adaptive is None


def test_config_check_names_the_bad_keys():
    config = small_config(threshold="fixed", reference_distance=0.5, margin=2.0)
    assert [key for key, _ in check(config)] == ["method.reference_distance"]
    config = small_config(num_positives=1)
    assert [key for key, _ in check(config)] == ["method.num_positives"]
    config.tasks = {}
    assert "tasks" in [key for key, _ in check(config)]
    assert list(check(small_config())) == []


@pytest.mark.slow
def test_fit_save_resume_and_export_the_ec_branch(tmp_path):
    folder = write_folder(str(tmp_path / "ds"), IDENTITY, EXPRESSION)
    config = small_config()
    model = build_model(config, None)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    dataset = train_dataset(config.method, folder, image_size=(48, 48), seed=1)
    assert dataset.element_spec["image"].shape[0] == 2 * (1 + 2 + 3)
    history = model.fit(dataset.take(3), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert 0 < history.history["kept_positives"][-1] <= 1
    A, B = (m.numpy() for m in model.adaptive.matrices())
    assert np.linalg.eigvalsh(A).min() >= -1e-4 and np.linalg.eigvalsh(B).max() <= 1e-4

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    images = RNG.normal(size=(2, 48, 48, 3)).astype("float32")
    for key in ("expression_logits", "embedding"):
        np.testing.assert_allclose(loaded(images)[key], model(images)[key], rtol=1e-5,
                                   atol=1e-5)
    assert loaded.get_config() == model.get_config()
    assert loaded.optimizer.iterations.numpy() == model.optimizer.iterations.numpy() == 6
    loaded.fit(dataset.take(1), epochs=1, verbose=0)  # resume
    assert loaded.optimizer.iterations.numpy() == 7

    served = serving_model(loaded)
    export = export_saved_model(served, tmp_path / "export", input_size=(48, 48),
                                normalization="none")
    restored = tf.saved_model.load(str(export))
    outputs = restored.serve(tf.constant(images))
    assert set(outputs) == {"expression_probs"}
    np.testing.assert_allclose(outputs["expression_probs"].numpy(),
                               tf.nn.softmax(loaded(images)["expression_logits"]).numpy(),
                               rtol=1e-5, atol=1e-6)
