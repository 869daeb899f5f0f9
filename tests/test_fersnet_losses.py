"""FERSNet losses (Zhao et al., Eq. 6-9) and the λ4 ramp against numpy."""

import numpy as np
import pytest

from fermtl_tf.losses import (
    discriminator_loss,
    generator_loss,
    linear_ramp,
    squared_error,
)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture
def patch_logits():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((3, 4, 4, 1)).astype("float32") * 2,
            rng.standard_normal((3, 4, 4, 1)).astype("float32") * 2)


def test_discriminator_loss_is_minus_eq6(patch_logits):
    real, fake = patch_logits
    eq6 = np.mean(np.log(_sigmoid(real))) + np.mean(np.log(1 - _sigmoid(fake)))
    np.testing.assert_allclose(discriminator_loss(real, fake).numpy(), -eq6, rtol=1e-5)


def test_generator_minimax_is_second_term_of_eq6(patch_logits):
    _, fake = patch_logits
    expected = np.mean(np.log(1 - _sigmoid(fake)))
    np.testing.assert_allclose(generator_loss(fake, "minimax").numpy(), expected, rtol=1e-5)


def test_generator_non_saturating_is_minus_log_d(patch_logits):
    _, fake = patch_logits
    expected = -np.mean(np.log(_sigmoid(fake)))
    np.testing.assert_allclose(generator_loss(fake).numpy(), expected, rtol=1e-5)


def test_gan_losses_stay_finite_for_confident_discriminators():
    huge = np.full((2, 3, 3, 1), 200.0, "float32")
    assert np.isfinite(discriminator_loss(huge, -huge).numpy())
    np.testing.assert_allclose(generator_loss(-huge).numpy(), 200.0, rtol=1e-6)


def test_unknown_generator_objective_is_rejected(patch_logits):
    with pytest.raises(ValueError, match="non_saturating"):
        generator_loss(patch_logits[1], "wasserstein")


def test_squared_error_mean_is_per_pixel_mse_averaged_over_samples():
    rng = np.random.default_rng(1)
    synthetic, target = rng.standard_normal((2, 3, 5, 5, 3)).astype("float32")
    expected = np.mean([np.mean((synthetic[i] - target[i]) ** 2) for i in range(3)])
    np.testing.assert_allclose(squared_error(synthetic, target).numpy(), expected, rtol=1e-5)


def test_squared_error_sum_is_squared_l2_norm_averaged_over_samples():
    rng = np.random.default_rng(2)
    features, target = rng.standard_normal((2, 4, 256)).astype("float32")
    expected = np.mean(np.linalg.norm(features - target, axis=1) ** 2)
    np.testing.assert_allclose(squared_error(features, target, "sum").numpy(), expected,
                               rtol=1e-5)


def test_squared_error_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="reduction"):
        squared_error(np.zeros((1, 2)), np.zeros((1, 2)), "max")


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0.1), (250, 0.3), (500, 0.5), (10_000, 0.5)],
)
def test_identity_weight_ramps_from_0_1_to_0_5(step, expected):
    np.testing.assert_allclose(linear_ramp(step, 500, 0.1, 0.5).numpy(), expected, rtol=1e-6)


def test_identity_weight_without_ramp_is_the_final_value():
    np.testing.assert_allclose(linear_ramp(0, 0, 0.1, 0.5).numpy(), 0.5)
