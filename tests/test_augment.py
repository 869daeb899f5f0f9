"""Augmentations keep labels on the right facial parts; checked against numpy and OpenCV."""

import math

import cv2
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.data import augment
from fermtl_tf.data.augment import AugmentConfig
from fermtl_tf.knowledge.landmarks import LEFT_EYE, RIGHT_EYE


def asymmetric_face():
    """A hand-placed 68-point frontal face, iBUG order, shifted right and with a larger
    left eye so that a flip cannot be mistaken for the identity."""
    pts = np.zeros((68, 2))
    t = np.linspace(-1, 1, 17)
    # jaw, image left to right
    pts[0:17] = np.stack([0.5 + 0.4 * t, 0.45 + 0.4 * np.sqrt(1 - 0.9 * t**2)], 1)
    pts[17:22] = np.stack([np.linspace(0.2, 0.42, 5), np.full(5, 0.3)], 1)  # subject's right brow
    pts[22:27] = np.stack([np.linspace(0.58, 0.8, 5), np.full(5, 0.3)], 1)
    pts[27:31] = np.stack([np.full(4, 0.5), np.linspace(0.38, 0.55, 4)], 1)
    pts[31:36] = np.stack([np.linspace(0.43, 0.57, 5), np.full(5, 0.6)], 1)
    ring = np.array([[-1, 0], [-0.5, -0.5], [0.5, -0.5], [1, 0], [0.5, 0.5], [-0.5, 0.5]])
    pts[36:42] = [0.31, 0.4] + 0.06 * ring  # subject's right eye: outer corner 36 leftmost
    pts[42:48] = [0.69, 0.4] + 0.09 * ring  # left eye: inner corner 42, outer corner 45 rightmost
    angles = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    pts[48:60] = np.stack([0.5 + 0.15 * np.cos(angles), 0.75 - 0.05 * np.sin(angles)], 1)
    angles = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    pts[60:68] = np.stack([0.5 + 0.1 * np.cos(angles), 0.75 - 0.02 * np.sin(angles)], 1)
    pts[:, 0] += 0.05
    return pts.astype(np.float32)


def render_dot(point, height, width, sigma=1.2):
    """Image with a bright Gaussian blob at ``point`` ((0, 1) coords, pixel centres at (i+.5)/W)."""
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy = point[0] * width - 0.5, point[1] * height - 0.5
    blob = 255.0 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
    return np.repeat(blob[..., None], 3, axis=2).astype(np.float32)


def dot_centroid(image):
    """Intensity centroid of a dot image, in (0, 1) coordinates."""
    weight = np.asarray(image)[..., 0].astype(np.float64)
    height, width = weight.shape
    ys, xs = np.mgrid[0:height, 0:width]
    return np.array([((xs + 0.5) * weight).sum() / weight.sum() / width,
                     ((ys + 0.5) * weight).sum() / weight.sum() / height])


def example(image, landmarks, au=(1.0, 1.0, 0.0), au_mask=(1.0, 1.0, 0.0)):
    au = tf.constant(au, tf.float32)
    return {
        "image": tf.constant(image, tf.float32),
        "landmarks": tf.constant(landmarks, tf.float32),
        "au": au, "au_mask": tf.constant(au_mask, tf.float32), "au_intensity": 3.0 * au,
    }


AU_NAMES = ["AU1", "AU12L", "AU12R"]


# --------------------------------------------------------------------------- config


def test_from_dict_rejects_unknown_key_naming_it():
    with pytest.raises(KeyError, match="rotaton_deg"):
        AugmentConfig.from_dict({"flip": True, "rotaton_deg": 10})


def test_config_rejects_reversed_scale_range():
    with pytest.raises(ValueError, match="scale"):
        AugmentConfig(scale=(1.2, 0.8))


# --------------------------------------------------------------------------- flip


def test_flip_twice_is_identity():
    rng = np.random.default_rng(0)
    ex = example(rng.uniform(0, 255, (20, 30, 3)), asymmetric_face())
    perm = tf.constant([0, 2, 1])
    twice = augment.flip_horizontal(augment.flip_horizontal(ex, perm), perm)
    for key in ("image", "landmarks", "au", "au_mask", "au_intensity"):
        np.testing.assert_allclose(twice[key].numpy(), ex[key].numpy(), atol=1e-6, err_msg=key)


def test_flipped_left_eye_lands_on_right_eye():
    face = asymmetric_face()
    flipped = augment.flip_horizontal(example(np.zeros((8, 8, 3)), face))["landmarks"].numpy()
    right_eye, left_eye = list(RIGHT_EYE), list(LEFT_EYE)
    mirrored_left_centre = [1.0 - face[left_eye, 0].mean(), face[left_eye, 1].mean()]
    np.testing.assert_allclose(flipped[right_eye].mean(0), mirrored_left_centre, atol=1e-6)
    assert flipped[right_eye, 0].mean() < 0.5 < flipped[left_eye, 0].mean()
    # The outer corner of the subject's right eye (36) is still its image-leftmost point.
    assert flipped[36, 0] == flipped[right_eye, 0].min()
    assert flipped[45, 0] == flipped[left_eye, 0].max()


def test_flip_moves_pixels_with_the_eye_label():
    face = asymmetric_face()
    left_eye_centre = face[list(LEFT_EYE)].mean(0)
    ex = example(render_dot(left_eye_centre, 40, 50), face)
    flipped = augment.flip_horizontal(ex)
    expected = flipped["landmarks"].numpy()[list(RIGHT_EYE)].mean(0)
    assert np.abs((dot_centroid(flipped["image"]) - expected) * [50, 40]).max() < 1.0


def test_flip_swaps_left_and_right_aus():
    ex = example(np.zeros((4, 4, 3)), asymmetric_face(), au=(1, 1, 0), au_mask=(1, 1, 0))
    perm = tf.constant([0, 2, 1])  # au_mirror_permutation(["AU1", "AU12L", "AU12R"])
    flipped = augment.flip_horizontal(ex, perm)
    np.testing.assert_array_equal(flipped["au"].numpy(), [1, 0, 1])
    np.testing.assert_array_equal(flipped["au_mask"].numpy(), [1, 0, 1])
    np.testing.assert_array_equal(flipped["au_intensity"].numpy(), [3, 0, 3])


# --------------------------------------------------------------------------- affine


def numpy_affine(points, input_hw, rotation_deg, scale, shift, crop_fraction, crop_offset):
    """Rotation/scale about the centre in pixel units, shift, then crop window, by hand."""
    height, width = input_hw
    size = np.array([width, height], np.float64)
    pixels = points * size - size / 2
    theta = math.radians(rotation_deg)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    moved = (scale * pixels @ rotation.T + size / 2) / size + np.asarray(shift)
    return (moved - np.asarray(crop_offset)) / crop_fraction


def test_affine_matrix_matches_numpy_rotation_maths():
    params = dict(rotation_deg=30.0, scale=1.1, shift=(0.05, -0.03), crop_fraction=0.8,
                  crop_offset=(0.1, 0.05))
    face = asymmetric_face()
    matrix = augment.affine_matrix((60, 80), **params).numpy()
    got = face @ matrix[:2, :2].T + matrix[:2, 2]
    np.testing.assert_allclose(got, numpy_affine(face, (60, 80), **params), atol=1e-5)


def test_positive_rotation_turns_clockwise_on_screen():
    # A point right of the centre moves down (y grows downwards) under a +90 degree turn.
    matrix = augment.affine_matrix((10, 10), rotation_deg=90.0).numpy()
    np.testing.assert_allclose(matrix[:2] @ [0.75, 0.5, 1.0], [0.5, 0.75], atol=1e-6)


@pytest.mark.parametrize("index", [30, 36, 45, 48, 8])
def test_warp_moves_dot_to_transformed_landmark(index):
    face = asymmetric_face()
    ex = example(render_dot(face[index], 48, 64), face)
    matrix = augment.affine_matrix((48, 64), rotation_deg=25.0, scale=1.15, shift=(0.04, -0.05),
                                   crop_fraction=0.9, crop_offset=(0.03, 0.06))
    out = augment.apply_affine(ex, matrix, (40, 44))
    error_px = (dot_centroid(out["image"]) - out["landmarks"].numpy()[index]) * [44, 40]
    assert np.abs(error_px).max() < 1.0


def test_identity_warp_equals_bilinear_resize():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (30, 40, 3)).astype(np.float32)
    out = augment.apply_affine(example(image, asymmetric_face()), tf.eye(3), (24, 32))
    expected = cv2.resize(image, (32, 24), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(out["image"].numpy(), expected, atol=1e-2)


def test_centre_crop_maps_window_onto_frame():
    face = asymmetric_face()
    out = augment.centre_crop(example(np.zeros((50, 50, 3)), face), 0.8, (20, 20))
    np.testing.assert_allclose(out["landmarks"].numpy(), (face - 0.1) / 0.8, atol=1e-6)


def test_sampled_affine_params_stay_in_configured_ranges():
    config = AugmentConfig(rotation_deg=30, scale=(0.8, 1.2), shift=0.1, random_crop=0.9)
    draws = [augment.sample_affine_params(config, tf.constant([7, i])) for i in range(40)]
    rotations = np.array([float(d["rotation_deg"]) for d in draws])
    scales = np.array([float(d["scale"]) for d in draws])
    shifts = np.array([[float(v) for v in d["shift"]] for d in draws])
    offsets = np.array([[float(v) for v in d["crop_offset"]] for d in draws])
    assert np.abs(rotations).max() <= 30 and rotations.std() > 5
    assert 0.8 <= scales.min() and scales.max() <= 1.2 and scales.std() > 0.05
    assert np.abs(shifts).max() <= 0.1 and shifts.std() > 0.02
    assert offsets.min() >= 0 and offsets.max() <= 0.1 + 1e-6


def test_random_composition_keeps_dot_on_its_landmark():
    face = asymmetric_face()
    config = AugmentConfig(flip=True, rotation_deg=30, scale=(0.8, 1.2), shift=0.08,
                           random_crop=0.9)
    fn = augment.make_augment_fn(config, (48, 48), AU_NAMES)
    ex = example(render_dot(face[45], 64, 64), face)
    labels_hit = set()
    for i in range(8):
        out = fn(ex, tf.constant([3, i]))
        centre = dot_centroid(out["image"])
        errors = {k: np.abs((centre - out["landmarks"].numpy()[k]) * 48).max() for k in (36, 45)}
        label = min(errors, key=errors.get)
        assert errors[label] < 1.0
        labels_hit.add(label)
    assert labels_hit == {36, 45}  # both flipped and unflipped draws happened


# --------------------------------------------------------------------------- photometric


def test_equalize_matches_opencv_on_gray_image():
    rng = np.random.default_rng(2)
    gray = np.clip(rng.normal(100, 20, (32, 32)), 0, 255).astype(np.uint8)
    image = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    out = augment.equalize_histogram(tf.constant(image)).numpy()
    expected = cv2.equalizeHist(gray).astype(np.float32)
    for channel in range(3):
        assert np.abs(out[..., channel] - expected).max() <= 1.0


def test_grayscale_is_bt601_luma_on_every_channel():
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 255, (6, 7, 3)).astype(np.float32)
    out = augment.to_grayscale(tf.constant(image)).numpy()
    luma = image @ np.array([0.299, 0.587, 0.114])
    for channel in range(3):
        np.testing.assert_allclose(out[..., channel], luma, atol=0.05)


def test_noise_has_configured_std_and_leaves_landmarks():
    face = asymmetric_face()
    fn = augment.make_augment_fn(AugmentConfig(noise_std=10.0), (64, 64))
    base = np.full((64, 64, 3), 128.0, np.float32)
    out = fn(example(base, face), tf.constant([0, 1]))
    assert abs((out["image"].numpy() - 128.0).std() - 10.0) < 0.5
    np.testing.assert_array_equal(out["landmarks"].numpy(), face)


def test_same_seed_gives_same_augmentation():
    config = AugmentConfig(flip=True, rotation_deg=20, scale=(0.9, 1.1), shift=0.05,
                           noise_std=5, grayscale_prob=0.5, equalize_prob=0.5)
    fn = augment.make_augment_fn(config, (32, 32), AU_NAMES)
    rng = np.random.default_rng(4)
    ex = example(rng.uniform(0, 255, (40, 40, 3)), asymmetric_face())
    first, second = fn(ex, tf.constant([5, 9])), fn(ex, tf.constant([5, 9]))
    for key in ("image", "landmarks", "au"):
        np.testing.assert_array_equal(first[key].numpy(), second[key].numpy(), err_msg=key)
