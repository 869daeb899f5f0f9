"""Masked losses against numpy; ResNet structure; baseline and multi-task model serialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.backbones.resnet import build_resnet
from fermtl_tf.losses.masked import (
    MaskedBinaryCrossEntropy,
    MaskedL1,
    MaskedSoftmaxCrossEntropy,
)
from fermtl_tf.methods.baseline.model import BaselineModel
from fermtl_tf.training.multitask import MultiTaskModel

RNG = np.random.default_rng(0)


def numpy_cross_entropy(labels, logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels]


# --- masked losses ---------------------------------------------------------------------


def test_masked_cross_entropy_averages_over_labelled_samples_only():
    logits = RNG.normal(size=(5, 4)).astype("float32")
    labels = np.array([0, 3, 1, 2, 2])
    mask = np.array([1, 0, 1, 1, 0], "float32")
    expected = numpy_cross_entropy(labels, logits)[mask > 0].mean()
    got = MaskedSoftmaxCrossEntropy()(labels, logits, sample_weight=mask)
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_masked_l1_is_the_mean_absolute_error_over_points_of_labelled_samples():
    target = RNG.uniform(size=(4, 68, 2)).astype("float32")
    predicted = RNG.uniform(size=(4, 68, 2)).astype("float32")
    mask = np.array([0, 1, 1, 0], "float32")
    expected = np.abs(target - predicted)[mask > 0].mean()
    got = MaskedL1()(target, predicted, sample_weight=mask)
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_masked_bce_averages_over_annotated_sample_au_pairs():
    labels = RNG.integers(0, 2, (3, 5)).astype("float32")
    logits = RNG.normal(size=(3, 5)).astype("float32")
    mask = RNG.integers(0, 2, (3, 5)).astype("float32")
    probs = 1 / (1 + np.exp(-logits.astype("float64")))
    bce = -(labels * np.log(probs) + (1 - labels) * np.log(1 - probs))
    expected = (bce * mask).sum() / mask.sum()
    got = MaskedBinaryCrossEntropy()(labels, logits, sample_weight=mask)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


@pytest.mark.parametrize("loss, labels, outputs", [
    (MaskedSoftmaxCrossEntropy(), np.zeros(3, "int32"), np.ones((3, 4), "float32")),
    (MaskedL1(), np.zeros((3, 68, 2), "float32"), np.ones((3, 68, 2), "float32")),
])
def test_all_unlabelled_batch_gives_zero_loss_and_zero_gradient(loss, labels, outputs):
    outputs = tf.Variable(outputs)
    with tf.GradientTape() as tape:
        value = loss(labels, outputs, sample_weight=np.zeros(3, "float32"))
    gradient = tape.gradient(value, outputs)
    assert float(value) == 0.0
    assert np.all(gradient.numpy() == 0.0)


@pytest.mark.parametrize("cls", [MaskedSoftmaxCrossEntropy, MaskedL1, MaskedBinaryCrossEntropy])
def test_masked_losses_round_trip_through_keras_serialisation(cls):
    loss = cls(epsilon=1e-3, name="custom")
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(revived) is cls
    assert revived.get_config() == {"name": "custom", "epsilon": 1e-3}


# --- backbone ----------------------------------------------------------------------------


def main_path_convs(model):
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D) and "shortcut" not in layer.name]


def test_resnet34_has_33_main_path_convolutions_and_512_features():
    backbone = build_resnet(depth=34, width=64)
    assert len(main_path_convs(backbone)) == 33  # Hu et al. 2018, §2.4
    assert backbone.output_shape == (None, 512)


def test_resnet_imagenet_stem_ends_96x96_input_at_3x3_like_the_paper():
    backbone = build_resnet(depth=18, width=8, input_shape=(96, 96, 3), stem="imagenet")
    assert tuple(backbone.get_layer("stage4_block2_out").output.shape) == (None, 3, 3, 64)
    assert len(main_path_convs(backbone)) == 17


def test_resnet_compact_stem_keeps_4x_the_resolution():
    backbone = build_resnet(depth=18, width=8, input_shape=(96, 96, 3), stem="compact")
    assert tuple(backbone.get_layer("stage4_block2_out").output.shape) == (None, 12, 12, 64)


def test_resnet_rejects_an_unsupported_depth():
    with pytest.raises(ValueError, match="depth"):
        build_resnet(depth=50)


# --- models ------------------------------------------------------------------------------


def tiny_baseline(task):
    return BaselineModel(task=task, num_classes=5, depth=18, width=4, input_size=32,
                         stem="compact")


@pytest.mark.parametrize("task, output, shape", [
    ("expression", "expression_logits", (2, 5)),
    ("landmarks", "landmarks", (2, 68, 2)),
])
def test_baseline_from_config_gives_the_same_outputs(task, output, shape):
    model = tiny_baseline(task)
    images = RNG.normal(size=(2, 32, 32, 3)).astype("float32")
    revived = BaselineModel.from_config(model.get_config())
    revived.set_weights(model.get_weights())
    expected = model(images)[output].numpy()
    assert expected.shape == shape
    np.testing.assert_allclose(revived(images)[output].numpy(), expected, atol=1e-6)


def test_baseline_keras_file_round_trip_gives_the_same_outputs(tmp_path):
    model = tiny_baseline("landmarks")
    images = RNG.normal(size=(2, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "model.keras")
    revived = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(revived, BaselineModel)
    assert revived.get_config() == model.get_config()
    np.testing.assert_allclose(revived(images)["landmarks"].numpy(),
                               model(images)["landmarks"].numpy(), atol=1e-6)


def test_functional_multitask_model_keras_round_trip_keeps_task_weights(tmp_path):
    inputs = keras.Input((6,))
    outputs = {"expression_logits": keras.layers.Dense(3, name="expression_logits")(inputs),
               "au_logits": keras.layers.Dense(4, name="au_logits")(inputs)}
    model = MultiTaskModel(inputs, outputs, task_weights={"expression": 1.0, "au": 0.5})
    model.save(tmp_path / "multitask.keras")
    revived = keras.saving.load_model(tmp_path / "multitask.keras")
    assert isinstance(revived, MultiTaskModel)
    assert revived.task_weights == {"expression": 1.0, "au": 0.5}
    x = RNG.normal(size=(2, 6)).astype("float32")
    np.testing.assert_allclose(revived(x)["au_logits"].numpy(), model(x)["au_logits"].numpy(),
                               atol=1e-6)
