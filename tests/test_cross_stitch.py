"""CrossStitch (Misra et al. 2016): output_t = Σ_s α_{t,s} x_s."""

import keras
import numpy as np
import pytest

from fermtl_tf.layers import CrossStitch
from fermtl_tf.layers.cross_stitch import cross_stitch_init


def test_init_puts_self_weight_on_diagonal_and_splits_the_rest():
    expected = [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]]
    np.testing.assert_allclose(cross_stitch_init(3, 0.9), expected)


def test_two_task_init_is_misra_09_01():
    layer = CrossStitch(2)
    layer.build((2, None, 4))
    np.testing.assert_allclose(layer.alpha.numpy(), [[0.9, 0.1], [0.1, 0.9]])


def test_output_is_alpha_weighted_sum_of_task_streams():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 5, 4)).astype("float32")
    layer = CrossStitch(3)
    layer.build(x.shape)
    alpha = rng.standard_normal((3, 3)).astype("float32")
    layer.alpha.assign(alpha)
    expected = np.stack([sum(alpha[t, s] * x[s] for s in range(3)) for t in range(3)])
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_per_channel_alpha_mixes_each_channel_separately():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    layer = CrossStitch(2, per_channel=True)
    layer.build(x.shape)
    assert layer.alpha.shape == (2, 2, 4)
    alpha = rng.standard_normal((2, 2, 4)).astype("float32")
    layer.alpha.assign(alpha)
    expected = np.stack([alpha[t, 0] * x[0] + alpha[t, 1] * x[1] for t in range(2)])
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_single_task_is_rejected():
    with pytest.raises(ValueError, match="num_tasks must be >= 2"):
        CrossStitch(1)


def test_config_round_trip():
    layer = CrossStitch(3, init_self=0.7, per_channel=True)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, CrossStitch)
    assert restored.get_config() == layer.get_config()
