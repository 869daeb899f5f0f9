"""Photometric preprocessing of face batches, identical at training, test and serving time.

Liu et al. (2017), Sec. 5.1: the faces are "transfer[red] to grayscale images. All the
images are processed with the standard histogram equalization and linear plane fitting
to remove unbalanced illumination. Finally, we normalize them to a zero mean and unit
variance vector." The last step is the pipeline's ``normalization: per_image``; this
module holds the three before it, as TF ops on a batch ``[B, H, W, 3]`` of raw pixel
values (0-255), applied after the crop/flip augmentations (so on the 48x48 model input)
and before the normalisation:

1. ``grayscale``: ITU-R BT.601 luma, repeated on the three channels (the model input
   keeps its shape);
2. ``histogram_equalization``: per image, 256 bins, the CDF mapping of OpenCV's
   ``cv2.equalizeHist`` (:func:`equalize_histogram`); needs ``grayscale``;
3. ``plane_fit``: the least-squares plane ``a x + b y + c`` of each image's intensities
   is subtracted (:func:`subtract_plane`).

The pipeline (:func:`fermtl_tf.data.pipeline.make_dataset`) and the exporter
(:func:`fermtl_tf.export.export_saved_model`) call :func:`preprocess_images` with the
same :class:`PreprocessConfig`, so a SavedModel fed raw pixels sees exactly what the
network saw in training.
"""

import dataclasses

import tensorflow as tf

#: Luma weights of ``tf.image.rgb_to_grayscale`` (ITU-R BT.601).
_LUMA = (0.2989, 0.5870, 0.1140)


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """Which preprocessing steps run (the ``data.preprocess`` config section).

    Attributes:
        grayscale: convert to 3-channel grayscale.
        histogram_equalization: equalise each image's gray levels (needs ``grayscale``:
            the paper equalises gray images; ``augment.equalize_prob`` equalises the
            luma of colour images as an augmentation).
        plane_fit: subtract each image's least-squares intensity plane (per channel).
    """

    grayscale: bool = False
    histogram_equalization: bool = False
    plane_fit: bool = False

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, bool):
                raise ValueError(f"preprocess {field.name!r} must be true or false, "
                                 f"got {value!r}")
        if self.histogram_equalization and not self.grayscale:
            raise ValueError("preprocess 'histogram_equalization' works on gray levels "
                             "(Liu et al. 2017 Sec. 5.1): set 'grayscale: true' too")

    @classmethod
    def from_dict(cls, values):
        """Build from a plain dict (YAML); unknown keys are errors naming them."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown preprocess key(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @property
    def active(self):
        return self.grayscale or self.histogram_equalization or self.plane_fit


def as_preprocess_config(preprocess):
    """``preprocess`` (None, a dict or a :class:`PreprocessConfig`) as a config or None."""
    if preprocess is None or isinstance(preprocess, PreprocessConfig):
        return preprocess
    if isinstance(preprocess, dict):
        return PreprocessConfig.from_dict(preprocess)
    raise TypeError(f"preprocess must be a dict, a PreprocessConfig or None, "
                    f"got {type(preprocess).__name__}")


def luma(images):
    """[..., H, W, 3] -> [..., H, W] BT.601 luma (``tf.image.rgb_to_grayscale``'s weights)."""
    return tf.tensordot(tf.cast(images, tf.float32), tf.constant(_LUMA, tf.float32), axes=1)


def equalize_histogram(gray):
    """Histogram-equalise each image of ``gray`` [B, H, W] (values 0-255, float).

    Values are rounded to the 256 integer levels first. Per image, with ``h`` the
    256-bin histogram, ``cdf`` its cumulative sum, ``N`` the pixel count and ``i`` the
    first level present, OpenCV's ``equalizeHist`` maps level ``j`` to
    ``round(cdf[j] * 255 / (N - h[i]))`` minus the same for ``i``, i.e.
    ``round((cdf[j] - h[i]) * (255 / (N - h[i])))`` (levels below ``i`` -> 0), with the
    scale computed once in float32 as OpenCV does; an image of one level is unchanged.
    """
    levels = tf.cast(tf.clip_by_value(tf.round(gray), 0.0, 255.0), tf.int32)
    shape = tf.shape(levels)
    batch, pixels = shape[0], shape[1] * shape[2]
    flat = tf.reshape(levels, [batch, pixels])
    # One bincount over the batch: image b's levels are offset into bins [256 b, 256 b + 256).
    offsets = (tf.range(batch) * 256)[:, tf.newaxis]
    counts = tf.math.bincount(tf.reshape(flat + offsets, [-1]), minlength=256 * batch,
                              maxlength=256 * batch)
    histogram = tf.reshape(counts, [batch, 256])
    cdf = tf.cumsum(histogram, axis=1)
    first = tf.argmax(tf.cast(histogram > 0, tf.int32), axis=1, output_type=tf.int32)
    first_count = tf.gather(histogram, first, batch_dims=1)[:, tf.newaxis]
    spread = tf.cast(pixels, tf.int32) - first_count
    scale = 255.0 / tf.cast(tf.maximum(spread, 1), tf.float32)
    lut = tf.round(tf.cast(tf.maximum(cdf - first_count, 0), tf.float32) * scale)
    identity = tf.broadcast_to(tf.range(256, dtype=tf.float32), tf.shape(lut))
    lut = tf.where(spread > 0, tf.clip_by_value(lut, 0.0, 255.0), identity)
    return tf.reshape(tf.gather(lut, flat, batch_dims=1), shape)


def subtract_plane(images):
    """Subtract from each image and channel of ``images`` [B, H, W, C] its least-squares
    plane ``a x + b y + c``.

    On a full pixel grid with centred coordinates the columns x, y and 1 of the design
    matrix are orthogonal, so the normal equations decouple: ``a = Σ x z / Σ x²``,
    ``b = Σ y z / Σ y²``, ``c = mean z`` -- the exact least-squares fit, no solver. The
    residual has zero mean; a linear illumination gradient is removed.
    """
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    y = tf.range(height) - (height - 1.0) / 2.0
    x = tf.range(width) - (width - 1.0) / 2.0
    y_grid = y[tf.newaxis, :, tf.newaxis, tf.newaxis]
    x_grid = x[tf.newaxis, tf.newaxis, :, tf.newaxis]
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    a = tf.reduce_sum(images * x_grid, axis=[1, 2], keepdims=True) / (
        height * tf.maximum(tf.reduce_sum(x * x), 1e-12))
    b = tf.reduce_sum(images * y_grid, axis=[1, 2], keepdims=True) / (
        width * tf.maximum(tf.reduce_sum(y * y), 1e-12))
    return images - (a * x_grid + b * y_grid + mean)


def preprocess_images(images, config):
    """Apply ``config`` (a :class:`PreprocessConfig`, a dict or None) to a batch
    ``[B, H, W, 3]`` of raw pixels: grayscale, histogram equalisation, plane fitting."""
    config = as_preprocess_config(config)
    images = tf.cast(images, tf.float32)
    if config is None or not config.active:
        return images
    if config.grayscale:
        gray = luma(images)
        if config.histogram_equalization:
            gray = equalize_histogram(gray)
        images = tf.repeat(gray[..., tf.newaxis], 3, axis=-1)
    if config.plane_fit:
        images = subtract_plane(images)
    return images
