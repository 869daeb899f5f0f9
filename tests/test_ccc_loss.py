"""CCCLoss (FaceBehaviorNet Eq. 2, L_VA) against the whole-batch CCC formula."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.losses.ccc import CCCLoss

RNG = np.random.default_rng(0)


def numpy_ccc(y, y_hat):
    """Lin's CCC with population moments, written from the definition."""
    y, y_hat = np.asarray(y, np.float64), np.asarray(y_hat, np.float64)
    covariance = np.mean((y - y.mean()) * (y_hat - y_hat.mean()))
    return 2 * covariance / (y.var() + y_hat.var() + (y.mean() - y_hat.mean()) ** 2)


def va_batch(size):
    truth = RNG.uniform(-1, 1, (size, 2)).astype("float32")
    prediction = (0.6 * truth + RNG.normal(0, 0.3, (size, 2))).astype("float32")
    return truth, prediction


def test_loss_is_one_minus_mean_of_valence_and_arousal_ccc():
    truth, prediction = va_batch(16)
    expected = 1 - (numpy_ccc(truth[:, 0], prediction[:, 0])
                    + numpy_ccc(truth[:, 1], prediction[:, 1])) / 2
    np.testing.assert_allclose(float(CCCLoss()(truth, prediction)), expected, rtol=1e-5)


def test_one_dimensional_input_is_one_minus_its_ccc():
    truth, prediction = va_batch(10)
    expected = 1 - numpy_ccc(truth[:, 0], prediction[:, 0])
    got = CCCLoss()(truth[:, 0], prediction[:, 0])
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_unlabelled_samples_change_nothing_even_with_nan_fillers():
    truth, prediction = va_batch(12)
    mask = np.array([1, 0] * 6, "float32")
    labelled = mask > 0
    filled = truth.copy()
    filled[~labelled] = np.nan
    got = CCCLoss()(filled, prediction, sample_weight=mask)
    expected = CCCLoss()(truth[labelled], prediction[labelled])
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)


@pytest.mark.parametrize("labelled", [0, 1])
def test_fewer_than_two_labelled_samples_give_zero_loss_and_finite_gradient(labelled):
    truth, prediction = va_batch(4)
    prediction = tf.Variable(prediction)
    mask = np.array([1] * labelled + [0] * (4 - labelled), "float32")
    with tf.GradientTape() as tape:
        value = CCCLoss()(truth, prediction, sample_weight=mask)
    gradient = tape.gradient(value, prediction).numpy()
    assert float(value) == 0.0
    assert np.all(gradient == 0.0)


def test_identical_constants_give_loss_one_with_finite_gradient():
    truth = np.full((5, 2), 0.3, "float32")
    prediction = tf.Variable(truth.copy())
    with tf.GradientTape() as tape:
        value = CCCLoss()(truth, prediction)
    gradient = tape.gradient(value, prediction).numpy()
    assert float(value) == pytest.approx(1.0)
    assert np.all(np.isfinite(gradient))


def test_gradient_matches_numerical_derivative_of_the_formula():
    truth, prediction = va_batch(6)
    variable = tf.Variable(prediction.astype("float64"))
    with tf.GradientTape() as tape:
        value = CCCLoss()(truth, variable)
    gradient = tape.gradient(value, variable).numpy()
    step, (i, j) = 1e-5, (2, 1)
    plus, minus = prediction.astype("float64"), prediction.astype("float64")
    plus[i, j] += step
    minus[i, j] -= step
    numeric = -(numpy_ccc(truth[:, j], plus[:, j]) - numpy_ccc(truth[:, j], minus[:, j])) / (
        2 * step) / 2
    np.testing.assert_allclose(gradient[i, j], numeric, rtol=1e-4)


def test_ccc_loss_round_trips_through_keras_serialisation():
    loss = CCCLoss(epsilon=1e-4, name="va")
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(revived) is CCCLoss
    assert revived.get_config() == {"name": "va", "epsilon": 1e-4}


MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from fermtl_tf.losses.ccc import CCCLoss

    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3)).astype("float32")
    truth = rng.uniform(-1, 1, (8, 2)).astype("float32")
    # Replica 0 gets 3 labelled samples, replica 1 gets 2: shares must not be equal.
    mask = np.array([1, 1, 1, 0, 1, 0, 0, 1], "float32")
    weights = rng.normal(size=(3, 2)).astype("float32")

    def loss_and_gradient(w, x, truth, mask):
        with tf.GradientTape() as tape:
            value = CCCLoss()(truth, tf.matmul(x, w), sample_weight=mask)
        return value, tape.gradient(value, w)

    w = tf.Variable(weights)
    one_value, one_gradient = loss_and_gradient(w, x, truth, mask)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        w2 = tf.Variable(weights)
    data = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, truth, mask)).batch(8))
    batch = next(iter(data))
    values, gradients = strategy.run(lambda *b: loss_and_gradient(w2, *b), args=batch)
    value = strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)
    gradient = strategy.reduce(tf.distribute.ReduceOp.SUM, gradients, axis=None)
    np.testing.assert_allclose(float(value), float(one_value), rtol=1e-5)
    np.testing.assert_allclose(gradient.numpy(), one_gradient.numpy(), rtol=1e-4, atol=1e-6)
    print("EQUIVALENT")
""")


def test_two_cpu_replicas_give_the_one_device_loss_and_gradient():
    # Logical devices must be configured before TensorFlow starts: a fresh process.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "EQUIVALENT" in run.stdout
