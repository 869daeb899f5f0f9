"""GradientReversal: identity forward, -scale * gradient backward (Hu et al. 2018, §2.3)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.layers import GradientReversal, GradientReversalSchedule, ganin_lambda


def gradient_through(layer, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * upstream)
    return y.numpy(), tape.gradient(loss, x).numpy()


def test_forward_is_identity():
    x = np.arange(6, dtype="float32").reshape(2, 3)
    y, _ = gradient_through(GradientReversal(2.0), x, np.ones((2, 3), "float32"))
    np.testing.assert_array_equal(y, x)


def test_backward_negates_and_scales_gradient():
    upstream = np.array([[1.0, -2.0, 3.0]], "float32")
    _, grad = gradient_through(GradientReversal(0.25), np.ones((1, 3), "float32"), upstream)
    np.testing.assert_allclose(grad, [[-0.25, 0.5, -0.75]])


def test_default_scale_negates_gradient():
    _, grad = gradient_through(GradientReversal(), np.ones((2,), "float32"),
                               np.array([4.0, -1.0], "float32"))
    np.testing.assert_allclose(grad, [-4.0, 1.0])


def test_set_scale_takes_effect_inside_compiled_step():
    layer = GradientReversal(1.0)
    x = tf.ones((3,))

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, x)

    np.testing.assert_allclose(grad().numpy(), [-1.0] * 3)
    layer.set_scale(3.0)
    np.testing.assert_allclose(grad().numpy(), [-3.0] * 3)


def test_config_round_trip():
    layer = GradientReversal(0.3, name="grl")
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, GradientReversal)
    assert restored.get_config() == layer.get_config()


def test_scheduled_scale_survives_a_keras_save_and_load(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, GradientReversal(1.0, name="grl")(inputs))
    model.get_layer("grl").set_scale(0.37)
    path = tmp_path / "grl.keras"
    model.save(path)
    restored = keras.saving.load_model(path).get_layer("grl")
    assert restored.get_config()["scale"] == 1.0
    assert float(restored.scale_variable.numpy()) == pytest.approx(0.37)


# --- Ganin & Lempitsky's schedule ----------------------------------------------------------


@pytest.mark.parametrize("gamma, max_scale", [(10.0, 1.0), (5.0, 0.5)])
def test_ganin_lambda_is_the_formula(gamma, max_scale):
    for p in (0.0, 0.1, 0.25, 0.5, 1.0):
        expected = max_scale * (2 / (1 + np.exp(-gamma * p)) - 1)
        assert ganin_lambda(p, gamma, max_scale) == pytest.approx(expected, rel=1e-12)
    assert ganin_lambda(0.0) == 0.0
    assert ganin_lambda(2.0) == ganin_lambda(1.0)  # progress is clipped to [0, 1]


def linear_grl_model():
    """h = w x (trainable), GRL, y = h (fixed): SGD moves w by +lr·scale·dL/dw."""
    inputs = keras.Input((1,))
    hidden = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", name="w")(inputs)
    model = keras.Model(inputs, GradientReversal(1.0, name="grl")(hidden))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def test_schedule_reaches_the_compiled_train_step_every_batch():
    x = np.array([[1.0], [2.0], [-1.0], [0.5]], "float32")
    t = np.array([[0.3], [-0.2], [0.1], [0.4]], "float32")
    epochs, steps = 3, 2  # batch 2 -> 2 steps per epoch, p = k / 6
    model = linear_grl_model()
    schedule = GradientReversalSchedule(gamma=10.0, max_scale=0.8)
    history = model.fit(x, t, batch_size=2, epochs=epochs, shuffle=False, verbose=0,
                        callbacks=[schedule])
    # NumPy: the same SGD with the reversed, scheduled gradient of the MSE.
    w = 1.0
    for k in range(epochs * steps):
        xb, tb = x[2 * (k % 2):2 * (k % 2) + 2, 0], t[2 * (k % 2):2 * (k % 2) + 2, 0]
        scale = 0.8 * (2 / (1 + np.exp(-10.0 * k / 6)) - 1)
        gradient = np.mean(2 * (w * xb - tb) * xb)
        w -= 0.05 * (-scale * gradient)
    assert float(model.get_layer("w").kernel.numpy()[0, 0]) == pytest.approx(w, rel=1e-5)
    assert history.history["reversal_scale"][-1] == pytest.approx(
        0.8 * (2 / (1 + np.exp(-10.0 * 5 / 6)) - 1))


def test_schedule_per_epoch_and_with_total_steps():
    x, t = np.ones((4, 1), "float32"), np.zeros((4, 1), "float32")
    model = linear_grl_model()
    per_epoch = GradientReversalSchedule(per="epoch")
    model.fit(x, t, batch_size=2, epochs=4, verbose=0, callbacks=[per_epoch])
    assert per_epoch.scale == pytest.approx(ganin_lambda(3 / 4))
    counted = GradientReversalSchedule(total_steps=10)
    model.fit(x, t, batch_size=2, epochs=2, verbose=0, callbacks=[counted])
    assert counted.scale == pytest.approx(ganin_lambda(3 / 10))  # the 4th step: 3 done
    assert float(model.get_layer("grl").scale_variable.numpy()) == pytest.approx(counted.scale)


def test_schedule_without_a_reversal_layer_is_an_error():
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="no GradientReversal layer"):
        model.fit(np.ones((2, 1)), np.ones((2, 1)), verbose=0,
                  callbacks=[GradientReversalSchedule()])
