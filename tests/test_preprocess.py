"""Liu et al. 2017 Sec. 5.1 preprocessing: checked against OpenCV and numpy, and the same
in the reader and in an exported SavedModel."""

import json

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.data.pipeline import make_dataset
from fermtl_tf.data.preprocess import (
    PreprocessConfig,
    equalize_histogram,
    preprocess_images,
    subtract_plane,
)
from fermtl_tf.export import export_saved_model
from tests.test_pipeline import CROP_HW, make_records, write_folder

LIU = {"grayscale": True, "histogram_equalization": True, "plane_fit": True}


def gray_images(rng, count, height=12, width=10):
    """uint8 gray images of varied histograms: full range, narrow band, skewed, two levels."""
    images = [rng.integers(0, 256, (height, width)),
              rng.integers(90, 110, (height, width)),
              (255 * rng.beta(0.5, 3.0, (height, width))).round(),
              rng.choice([17, 200], (height, width))]
    images += [rng.integers(0, 256, (height, width)) for _ in range(count - len(images))]
    return np.stack(images).astype(np.uint8)


def numpy_plane_residual(image):
    """z - X beta with beta from numpy's least squares on columns (x, y, 1)."""
    height, width = image.shape
    y, x = np.mgrid[0:height, 0:width]
    design = np.stack([x.ravel(), y.ravel(), np.ones(height * width)], axis=1).astype(np.float64)
    beta, *_ = np.linalg.lstsq(design, image.ravel().astype(np.float64), rcond=None)
    return (image.ravel() - design @ beta).reshape(height, width)


def numpy_liu_chain(gray_uint8):
    """equalizeHist -> plane residual -> zero mean, unit variance (std floored at 1/sqrt(N))."""
    out = []
    for image in gray_uint8:
        residual = numpy_plane_residual(cv2.equalizeHist(image))
        std = max(residual.std(), 1.0 / np.sqrt(residual.size))
        out.append((residual - residual.mean()) / std)
    return np.stack(out)


def test_histogram_equalization_matches_opencv():
    images = gray_images(np.random.default_rng(0), 8)
    got = equalize_histogram(tf.constant(images, tf.float32)).numpy()
    expected = np.stack([cv2.equalizeHist(image) for image in images]).astype(np.float32)
    np.testing.assert_array_equal(got, expected)


def test_histogram_equalization_leaves_a_flat_image_unchanged():
    flat = np.full((1, 6, 7), 93.0, np.float32)
    np.testing.assert_array_equal(equalize_histogram(tf.constant(flat)).numpy(), flat)
    np.testing.assert_array_equal(cv2.equalizeHist(flat[0].astype(np.uint8)), flat[0])


def test_plane_fit_matches_numpy_least_squares():
    rng = np.random.default_rng(1)
    height, width = 9, 13
    y, x = np.mgrid[0:height, 0:width]
    images = rng.uniform(0, 255, (3, height, width)) + 3.0 * x - 2.0 * y
    got = subtract_plane(tf.constant(images[..., None], tf.float32)).numpy()[..., 0]
    expected = np.stack([numpy_plane_residual(image) for image in images])
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_plane_fit_removes_a_linear_illumination_gradient():
    y, x = np.mgrid[0:8, 0:11]
    gradient = (40.0 + 5.0 * x + 7.5 * y)[None, ..., None]
    np.testing.assert_allclose(subtract_plane(tf.constant(gradient, tf.float32)).numpy(), 0.0,
                               atol=1e-3)


def test_grayscale_is_tensorflow_luma_on_three_channels():
    rgb = np.random.default_rng(2).uniform(0, 255, (2, 5, 6, 3)).astype(np.float32)
    got = preprocess_images(rgb, {"grayscale": True}).numpy()
    luma = tf.image.rgb_to_grayscale(rgb).numpy()
    np.testing.assert_allclose(got, np.repeat(luma, 3, axis=-1), atol=1e-4)


def test_inactive_preprocessing_is_the_identity():
    rgb = np.random.default_rng(3).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(preprocess_images(rgb, None).numpy(), rgb)
    np.testing.assert_array_equal(preprocess_images(rgb, {}).numpy(), rgb)


@pytest.mark.parametrize("values, message", [
    ({"histogram_equalization": True}, "grayscale"),
    ({"grayscale": True, "plane_fitting": True}, "plane_fitting"),
    ({"grayscale": "yes"}, "grayscale"),
])
def test_bad_preprocess_sections_are_refused_by_name(values, message):
    with pytest.raises((KeyError, ValueError), match=message):
        PreprocessConfig.from_dict(values)


def gray_records(count):
    """Pipeline test records whose crops are gray (R = G = B), so luma rounds to the level."""
    records = make_records(count, seed=5, split_of=lambda i: "test")
    gray = gray_images(np.random.default_rng(4), count, *CROP_HW)
    for record, image in zip(records, gray, strict=True):
        record["image"] = np.repeat(image[..., None], 3, axis=-1)
    return records, gray


def test_reader_applies_the_chain_in_evaluation_mode(tmp_path):
    records, gray = gray_records(6)
    folder = write_folder(str(tmp_path / "gray"), records)
    dataset = make_dataset(folder, split="test", batch_size=4, image_size=CROP_HW,
                           training=False, normalization="per_image", keep_metadata=True,
                           preprocess=LIU)
    by_id = {r["image_id"]: k for k, r in enumerate(records)}
    expected = numpy_liu_chain(gray)
    for batch in dataset.as_numpy_iterator():
        for image, image_id in zip(batch["image"], batch["image_id"], strict=True):
            want = expected[by_id[image_id.decode()]]
            np.testing.assert_allclose(image, np.repeat(want[..., None], 3, axis=-1), atol=2e-4)


def test_saved_model_applies_the_same_chain_to_raw_pixels(tmp_path):
    height, width = 10, 12
    gray = gray_images(np.random.default_rng(6), 4, height, width)
    raw = np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    pixels = keras.Input((height, width, 3))
    model = keras.Model(pixels, {"pixels": keras.layers.Flatten()(pixels)})
    export_dir = export_saved_model(model, tmp_path / "export", input_size=(height, width),
                                    normalization="per_image", preprocess=LIU)
    served = tf.saved_model.load(str(export_dir)).serve(tf.constant(raw))["pixels"].numpy()
    metadata = json.loads((export_dir / "fermtl_export.json").read_text())
    assert metadata["preprocess"] == LIU and metadata["centre_crop"] is None
    expected = np.repeat(numpy_liu_chain(gray)[..., None], 3, axis=-1).reshape(len(gray), -1)
    np.testing.assert_allclose(served, expected, atol=2e-4)


def test_evaluation_takes_the_centre_window_of_the_training_crop(tmp_path):
    """fermtl-eval's input with the export's ``centre_crop`` 0.8: the stored 40x50 face's
    centre 32x40 pixels, unresampled (Liu et al.'s single centre crop at test)."""
    from fermtl_tf.evaluation.runner import _evaluation_dataset

    records = make_records(4, seed=7, split_of=lambda i: "test")
    folder = write_folder(str(tmp_path / "faces"), records)
    dataset = _evaluation_dataset(folder, {"split": "test"}, 4, (32, 40), centre_crop=0.8)
    batch = next(dataset.as_numpy_iterator())
    by_id = {r["image_id"]: r["image"] for r in records}
    for image, image_id in zip(batch["image"], batch["image_id"], strict=True):
        np.testing.assert_allclose(image, by_id[image_id.decode()][4:36, 5:45], atol=1e-3)


def test_fold_validation_keeps_only_the_random_crop_of_the_training_augment():
    from fermtl_tf.experiments.folds import evaluation_augment

    assert evaluation_augment({"flip": True, "random_crop": 0.8}) == {"random_crop": 0.8}
    assert evaluation_augment({"flip": True}) is None and evaluation_augment(None) is None


def test_tuple_batches_are_preprocessed_like_the_reader(tmp_path):
    """Wiring: the tuple stage's images are grey, standardised and without a plane."""
    from fermtl_tf.data.tuple_sampling import make_tuple_dataset
    from tests.test_tuple_sampling import EXPRESSION, IDENTITY
    from tests.test_tuple_sampling import write_folder as write_tuple_folder

    folder = write_tuple_folder(str(tmp_path / "ds"), IDENTITY, EXPRESSION)
    kwargs = dict(queries_per_batch=2, positives_per_query=1, negatives_per_query=1,
                  image_size=(20, 20), seed=0)
    images = next(make_tuple_dataset(folder, preprocess=LIU, **kwargs).as_numpy_iterator())[
        "image"].astype(np.float64)
    np.testing.assert_allclose(images[..., 0], images[..., 2], atol=1e-5)
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(images.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    for image in images[..., 0]:
        np.testing.assert_allclose(numpy_plane_residual(image), image, atol=1e-3)
    plain = next(make_tuple_dataset(folder, **kwargs).as_numpy_iterator())["image"]
    assert not np.allclose(plain[..., 0], plain[..., 2], atol=1e-3)  # colour without it
