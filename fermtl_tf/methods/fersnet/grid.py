"""Pictures a person looks at to judge FERSNet: synthesis grids and ConvFLU gate maps.

Both are sheets whose columns are input faces and whose first row shows them:

* synthesis grid: row 1 + e shows G(e, I) for every expression e (Zhao et al. compare
  syntheses the same way in Fig. 4); written by :func:`write_synthesis_grid` and, at
  every epoch end, by :class:`SynthesisGridCallback`;
* gate sheet: one row per ConvFLU gate (leaky r, memory z; FER <- FES and FES <- FER;
  blocks 1-4), the gate averaged over channels, upsampled to the face and drawn as a
  jet heat map over it (blue low, red high, as in Fig. 3); :func:`write_gate_sheet`.
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


def _sheet(rows, names=None):
    """Stack rows of uint8 images [N, H, W, 3] into one sheet; ``names`` label the rows in
    a left margin."""
    height, width = rows[0].shape[1:3]
    margin = LABEL_WIDTH if names else 0
    sheet = np.full((height * len(rows), margin + width * len(rows[0]), 3), 255, np.uint8)
    for r, row in enumerate(rows):
        sheet[r * height:(r + 1) * height, margin:] = np.concatenate(list(row), axis=1)
        if names:
            cv2.putText(sheet, names[r], (4, r * height + height // 2), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def synthesis_grid(model, images, normalization, vocabulary=None):
    """uint8 RGB sheet: the inputs, then one row per target expression.

    With ``vocabulary`` (expression names), a left margin names each row.
    """
    images = np.asarray(images, np.float32)
    rows = [to_pixels(images, normalization)]
    for expression in range(model.num_classes):
        synthetic = model.synthesize(images, np.full(len(images), expression, np.int32))
        rows.append(to_pixels(synthetic, normalization))
    return _sheet(rows, ["input", *vocabulary] if vocabulary else None)


def heat_overlay(pixels, gate, alpha=0.5):
    """Blend a jet heat map of ``gate`` [N, h, w, C] in [0, 1] (mean over channels,
    resized to the faces) over ``pixels`` uint8 [N, H, W, 3]."""
    height, width = pixels.shape[1:3]
    overlays = []
    for face, values in zip(pixels, np.asarray(gate, np.float32).mean(axis=-1), strict=True):
        heat = cv2.resize(values, (width, height), interpolation=cv2.INTER_LINEAR)
        heat = np.clip(np.rint(heat * 255.0), 0, 255).astype(np.uint8)
        colour = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        overlays.append(cv2.addWeighted(face, 1.0 - alpha, colour, alpha, 0.0))
    return np.stack(overlays)


def gate_sheet(model, images, normalization):
    """uint8 RGB sheet: the inputs, then one heat-map row per ConvFLU gate (Fig. 3)."""
    images = np.asarray(images, np.float32)
    pixels = to_pixels(images, normalization)
    gates = model.gate_maps(images)
    names = sorted(gates, key=lambda name: (name[-1], name))  # by block, then unit
    rows = [pixels, *(heat_overlay(pixels, gates[name]) for name in names)]
    return _sheet(rows, ["input", *(name.replace("_gate", "") for name in names)])


def write_gate_sheet(model, images, path, normalization):
    """Write :func:`gate_sheet` as a PNG at ``path``; returns ``path``."""
    write_image(str(path), gate_sheet(model, images, normalization))
    return path


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
