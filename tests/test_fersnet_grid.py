"""Synthesis grid PNG: inputs in the first row, one row per target expression."""

import cv2
import numpy as np

from fermtl_tf.methods.fersnet.grid import (
    SynthesisGridCallback,
    gate_sheet,
    heat_overlay,
    synthesis_grid,
    to_pixels,
)
from fermtl_tf.methods.fersnet.model import FERSNetModel

TINY = dict(num_classes=3, image_size=(32, 32), encoder_widths=[4, 8, 8, 8],
            decoder_widths=[8, 8, 4, 4], classifier_units=8, transformer_channels=4,
            discriminator_widths=[4, 8, 8, 8])


def test_to_pixels_inverts_minus_one_one():
    np.testing.assert_array_equal(to_pixels(np.array([[[[-1.0, 0.0, 1.0]]]]), "minus_one_one"),
                                  [[[[0, 128, 255]]]])


def test_grid_rows_are_inputs_then_each_target_expression():
    model = FERSNetModel(**TINY)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    sheet = synthesis_grid(model, images, "minus_one_one")
    assert sheet.shape == (4 * 32, 2 * 32, 3)
    expected_input = np.rint((images[1] + 1) * 127.5).astype(np.uint8)
    np.testing.assert_array_equal(sheet[:32, 32:], expected_input)
    synthetic = model.synthesize(images, [2, 2]).numpy()
    expected = np.clip(np.rint((synthetic[0] + 1) * 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(sheet[3 * 32:, :32], expected)


def test_callback_writes_a_png_per_epoch(tmp_path):
    model = FERSNetModel(**TINY)
    images = np.zeros((2, 32, 32, 3), "float32")
    callback = SynthesisGridCallback(images, tmp_path, "minus_one_one", ["a", "b", "c"])
    callback.set_model(model)
    callback.on_epoch_end(0)
    picture = cv2.imread(str(tmp_path / "synthesis_epoch001.png"))
    assert picture.shape == (4 * 32, 90 + 2 * 32, 3)


def test_heat_overlay_blends_the_jet_colour_of_the_channel_mean():
    pixels = np.full((1, 8, 8, 3), 100, np.uint8)
    gate = np.zeros((1, 2, 2, 2), "float32")
    gate[..., 0], gate[..., 1] = 1.0, 0.0  # channel mean 0.5 everywhere
    jet = cv2.applyColorMap(np.array([[128]], np.uint8), cv2.COLORMAP_JET)[0, 0, ::-1]
    expected = np.rint(0.5 * 100 + 0.5 * jet.astype(float))
    np.testing.assert_allclose(heat_overlay(pixels, gate)[0, 3, 3], expected, atol=1)


def test_gate_sheet_has_the_inputs_and_sixteen_gate_rows():
    model = FERSNetModel(**TINY)
    images = np.zeros((2, 32, 32, 3), "float32")
    assert gate_sheet(model, images, "minus_one_one").shape == (17 * 32, 90 + 2 * 32, 3)
