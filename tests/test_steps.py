"""MultiTaskSteps as a mixin, per-sample losses and the Weighting object, against numpy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.losses.masked import (
    MaskedBinaryCrossEntropy,
    MaskedBinaryCrossEntropyPerImage,
    reduce_per_sample,
)
from fermtl_tf.training.multitask import MultiTaskModel
from fermtl_tf.training.steps import MultiTaskSteps
from fermtl_tf.training.weighting import PerSample, Weighting


def bce(labels, logits):
    p = 1 / (1 + np.exp(-logits))
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


AU_LABELS = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], np.float32)
AU_LOGITS = np.array([[2.0, -1.0, 0.5], [0.3, 0.1, -2.0], [1.0, 1.0, 1.0]], np.float32)
AU_MASK = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], np.float32)


def test_per_sample_values_reduce_to_the_masked_mean_over_elements():
    values, weights = MaskedBinaryCrossEntropy().per_sample(AU_LABELS, AU_LOGITS, AU_MASK)
    elements = bce(AU_LABELS, AU_LOGITS)
    want_values = [elements[0, :2].mean(), elements[1, 0], 0.0]
    np.testing.assert_allclose(values.numpy(), want_values, rtol=1e-6)
    np.testing.assert_allclose(weights.numpy(), [2, 1, 0])
    want = (elements * AU_MASK).sum() / AU_MASK.sum()
    assert float(reduce_per_sample(values, weights)) == pytest.approx(want, rel=1e-6)
    assert float(MaskedBinaryCrossEntropy()(AU_LABELS, AU_LOGITS, AU_MASK)) == pytest.approx(
        want, rel=1e-6)


def test_per_image_au_loss_weighs_each_annotated_image_once():
    values, weights = MaskedBinaryCrossEntropyPerImage().per_sample(AU_LABELS, AU_LOGITS, AU_MASK)
    elements = bce(AU_LABELS, AU_LOGITS)
    np.testing.assert_allclose(weights.numpy(), [1, 1, 0])
    want = (elements[0, :2].mean() + elements[1, 0]) / 2
    assert float(reduce_per_sample(values, weights)) == pytest.approx(want, rel=1e-6)


def test_sample_scales_reweight_samples_but_keep_the_denominator():
    values, weights = np.array([1.0, 2.0, 5.0]), np.array([1.0, 1.0, 0.0])
    scaled = reduce_per_sample(values, weights, scale=np.array([0.5, 2.0, 9.0]))
    assert float(scaled) == pytest.approx((0.5 * 1.0 + 2.0 * 2.0) / 2)


def test_weighting_combines_fixed_and_ramped_lambdas():
    weighting = Weighting({"expression": 2.0}, ramps={"identity": (0.1, 0.5)}, total_steps=10)
    losses = {"expression": PerSample(tf.constant([1.0, 3.0]), tf.constant([1.0, 1.0])),
              "identity": tf.constant(4.0)}
    for step, lam in [(0, 0.1), (5, 0.3), (10, 0.5), (20, 0.5)]:
        total = weighting.combine(losses, step=tf.constant(step))
        assert float(total) == pytest.approx(2.0 * 2.0 + lam * 4.0, rel=1e-6)
    assert Weighting.from_config(weighting.get_config()).get_config() == weighting.get_config()
    with pytest.raises(ValueError, match="total_steps"):
        Weighting(ramps={"identity": (0.1, 0.5)})


class SubclassedNet(MultiTaskSteps, keras.Model):
    """A subclassed model trained by the mixin."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.head = keras.layers.Dense(3, kernel_initializer="zeros")
        self.init_multitask(task_weights={"expression": 1.0})

    def call(self, images):
        return {"expression_logits": self.head(images)}


def test_a_subclassed_model_trains_with_the_mixin_after_a_functional_one_exists():
    inputs = keras.Input((4,))
    MultiTaskModel(inputs, {"expression_logits": keras.layers.Dense(3)(inputs)},
                   task_weights={"expression": 1.0})  # Keras now knows a functional subclass
    model = SubclassedNet()
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    x = np.ones((2, 4), np.float32)
    batch = {"image": x, "expression": np.array([0, 2], np.int32),
             "expression_mask": np.array([1.0, 1.0], np.float32)}
    history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    # zero logits: CE = log 3; the gradient of the mean CE w.r.t. the bias is p - onehot
    assert history.history["expression_loss"][0] == pytest.approx(np.log(3), rel=1e-5)
    want_bias = -np.mean([[1 / 3 - 1, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3 - 1]], axis=0)
    np.testing.assert_allclose(model.head.bias.numpy(), want_bias, atol=1e-6)


def test_landmark_tasks_log_the_inter_pupil_nme_of_labelled_faces():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0.2, 0.8, (4, 68, 2)).astype(np.float32)
    predicted = truth + rng.normal(0, 0.02, truth.shape).astype(np.float32)
    mask = np.array([1, 0, 1, 1], np.float32)
    inputs = keras.Input((68, 2))
    model = MultiTaskModel(inputs, {"landmarks": keras.layers.Identity()(inputs)},
                           task_weights={"landmarks": 1.0})
    model.compile(optimizer="sgd")
    batch = {"image": predicted, "landmarks": truth, "landmarks_mask": mask}
    logs = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    pupils = truth[:, 36:42].mean(axis=1) - truth[:, 42:48].mean(axis=1)
    per_face = (np.linalg.norm(predicted - truth, axis=-1).mean(axis=1)
                / np.linalg.norm(pupils, axis=-1) * 100)
    assert logs["landmarks_nme"] == pytest.approx(per_face[mask > 0].mean(), rel=1e-4)
