"""Synthesis grids: what a person looks at to judge FERSNet's expression synthesis.

Columns are input faces; the first row shows them, row 1 + e shows G(e, I) for every
expression e (Zhao et al., Fig. 4 shows the same comparison). Written as PNG by
:func:`write_synthesis_grid` and, at every epoch end, by :class:`SynthesisGridCallback`.
"""

import os

import cv2
import keras
import numpy as np

from fermtl_tf.data.synthface.layouts._files import write_image

LABEL_WIDTH = 90


def to_pixels(images, normalization):
    """Model-normalised images -> uint8 RGB (the inverse of ``normalize_images``;
    ``per_image`` cannot be inverted and is min-max scaled per image)."""
    images = np.asarray(images, np.float32)
    if normalization == "minus_one_one":
        images = (images + 1.0) * 127.5
    elif normalization == "zero_one":
        images = images * 255.0
    elif normalization == "per_image":
        low = images.min(axis=(1, 2, 3), keepdims=True)
        high = images.max(axis=(1, 2, 3), keepdims=True)
        images = (images - low) / np.maximum(high - low, 1e-6) * 255.0
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def synthesis_grid(model, images, normalization, vocabulary=None):
    """uint8 RGB sheet: the inputs, then one row per target expression.

    With ``vocabulary`` (expression names), a left margin names each row.
    """
    images = np.asarray(images, np.float32)
    count, height, width = images.shape[:3]
    rows = [to_pixels(images, normalization)]
    for expression in range(model.num_classes):
        synthetic = model.synthesize(images, np.full(count, expression, np.int32))
        rows.append(to_pixels(synthetic, normalization))
    margin = LABEL_WIDTH if vocabulary else 0
    sheet = np.full((height * len(rows), margin + width * count, 3), 255, np.uint8)
    names = ["input", *(vocabulary or [])]
    for r, row in enumerate(rows):
        sheet[r * height:(r + 1) * height, margin:] = np.concatenate(list(row), axis=1)
        if vocabulary:
            cv2.putText(sheet, names[r], (4, r * height + height // 2), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def write_synthesis_grid(model, images, path, normalization, vocabulary=None):
    """Write :func:`synthesis_grid` as a PNG at ``path``; returns ``path``."""
    write_image(str(path), synthesis_grid(model, images, normalization, vocabulary))
    return path


class SynthesisGridCallback(keras.callbacks.Callback):
    """Write ``synthesis_epoch<NNN>.png`` in ``output_dir`` at the end of every epoch, for a
    fixed set of (normalised) input ``images``."""

    def __init__(self, images, output_dir, normalization, vocabulary=None):
        super().__init__()
        self.images = np.asarray(images, np.float32)
        self.output_dir = str(output_dir)
        self.normalization = normalization
        self.vocabulary = vocabulary

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.output_dir, f"synthesis_epoch{epoch + 1:03d}.png")
        write_synthesis_grid(self.model, self.images, path, self.normalization, self.vocabulary)
