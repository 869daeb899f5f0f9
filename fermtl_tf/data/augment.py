"""Label-consistent augmentations of one face example, in TensorFlow ops for ``tf.data``.

An *example* here is a dict holding at least ``image`` (float32 [H, W, 3], pixel values
0-255), ``landmarks`` (float32 [68, 2], (x, y) in (0, 1) crop coordinates) and, when the
dataset has AUs, ``au``, ``au_mask``, ``au_intensity`` (float32 [K]). Every function
returns a new dict with the same keys, the labels moved with the pixels:

* horizontal flip mirrors x (``x -> 1 - x``) and relabels points with
  :data:`~fermtl_tf.knowledge.landmarks.MIRROR_PERMUTATION` (the subject's right eye,
  image left, becomes image right and so takes the left-eye indices), and swaps the
  ``AU<n>L``/``AU<n>R`` labels (:func:`~fermtl_tf.knowledge.vocabularies.au_mirror_permutation`);
* rotation, scale, shift and random crop are folded into *one* affine matrix per example;
  the image is resampled once with it (which also resizes to the output size) and the
  landmarks are multiplied by the very same matrix;
* noise, grayscale and histogram equalisation change pixels only.

Coordinate convention: (0, 1) coordinates put pixel column ``i`` of a ``W``-wide image at
``(i + 0.5) / W`` (its centre), matching ``tf.image.resize`` (half-pixel centres). So
resizing never moves a landmark, and a flip maps ``u`` to exactly ``1 - u``.

Randomness is stateless: every random function takes a ``seed`` (int tensor of shape [2])
and gives the same result for the same seed, which is what makes the pipeline's
deterministic mode possible. Landmarks pushed out of the frame by a rotation or shift keep
their (outside (0, 1)) coordinates: clipping them would write wrong labels.
"""

import dataclasses
import math

import tensorflow as tf

from fermtl_tf.data.preprocess import equalize_histogram as equalize_histogram_levels
from fermtl_tf.knowledge.landmarks import MIRROR_PERMUTATION
from fermtl_tf.knowledge.vocabularies import au_mirror_permutation

#: Border handling of the affine warp (``tf.raw_ops.ImageProjectiveTransformV3``).
FILL_MODES = ("constant", "nearest", "reflect", "wrap")

_AU_KEYS = ("au", "au_mask", "au_intensity")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations to apply at training time, and how strongly.

    Attributes:
        flip: mirror horizontally with probability 0.5 (landmark and AU labels swapped).
        rotation_deg: maximum absolute in-plane rotation, degrees; the angle is uniform
            in [-rotation_deg, rotation_deg]. Positive angles turn the face clockwise on
            screen (the image y axis points down).
        scale: (low, high) zoom factor range about the image centre, or None.
        shift: maximum translation as a fraction of the image size, per axis.
        random_crop: side of a random square-fraction window (e.g. 0.87 for 96 of 110
            pixels) cut out and resized back to the output size; None for no crop. At
            evaluation time the pipeline takes the centre window of the same size.
        noise_std: standard deviation of additive Gaussian pixel noise, 0-255 units.
        grayscale_prob: probability of converting to 3-channel grayscale.
        equalize_prob: probability of histogram equalisation (of the luma channel).
        fill_mode: how the affine warp fills pixels from outside the source image:
            ``"constant"`` (black), ``"nearest"``, ``"reflect"`` or ``"wrap"``.

    Example:
        >>> AugmentConfig.from_dict({"flip": True, "rotation_deg": 30, "scale": [0.8, 1.2]})
        ... # Hu et al. (2018) Sec. 5: flip, rotation (-30, 30), scale (0.8, 1.2)
    """

    flip: bool = False
    rotation_deg: float = 0.0
    scale: tuple | None = None
    shift: float = 0.0
    random_crop: float | None = None
    noise_std: float = 0.0
    grayscale_prob: float = 0.0
    equalize_prob: float = 0.0
    fill_mode: str = "constant"

    def __post_init__(self):
        if self.scale is not None:
            scale = tuple(float(s) for s in self.scale)
            if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
                raise ValueError(
                    f"augment 'scale' must be (low, high) with 0 < low <= high, got {self.scale!r}"
                )
            object.__setattr__(self, "scale", scale)
        if self.random_crop is not None and not 0 < self.random_crop <= 1:
            raise ValueError(f"augment 'random_crop' must be in (0, 1], got {self.random_crop!r}")
        for name in ("rotation_deg", "shift", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment {name!r} must be >= 0, got {getattr(self, name)!r}")
        for name in ("grayscale_prob", "equalize_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(
                    f"augment {name!r} must be a probability, got {getattr(self, name)!r}"
                )
        if self.fill_mode not in FILL_MODES:
            raise ValueError(
                f"augment 'fill_mode' must be one of {FILL_MODES}, got {self.fill_mode!r}"
            )

    @classmethod
    def from_dict(cls, values):
        """Build from a plain dict (e.g. a YAML config section); unknown keys are errors."""
        known = {field.name for field in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise KeyError(f"unknown augmentation key {key!r}; known: {sorted(known)}")
        return cls(**values)

    @property
    def geometric(self):
        """Whether any transform moves pixels (and so needs the affine warp)."""
        return bool(self.rotation_deg or self.scale or self.shift or self.random_crop)


# --------------------------------------------------------------------------- flip


def flip_horizontal(example, au_permutation=None):
    """Mirror the image left-right and relabel landmarks and AUs accordingly.

    ``au_permutation`` is :func:`au_mirror_permutation` of the dataset's AU names (None
    when the example has no AUs, or none with a side).
    """
    out = dict(example)
    out["image"] = tf.reverse(example["image"], axis=[-2])
    landmarks = example["landmarks"]
    mirrored = tf.stack([1.0 - landmarks[..., 0], landmarks[..., 1]], axis=-1)
    out["landmarks"] = tf.gather(mirrored, MIRROR_PERMUTATION, axis=-2)
    if au_permutation is not None:
        for key in _AU_KEYS:
            if key in example:
                out[key] = tf.gather(example[key], au_permutation, axis=-1)
    return out


def random_flip(example, seed, au_permutation=None):
    """:func:`flip_horizontal` with probability 0.5."""
    do_flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(
        do_flip, lambda: flip_horizontal(example, au_permutation), lambda: dict(example)
    )


# --------------------------------------------------------------------------- affine


def _matrix(rows):
    """3x3 float32 matrix from nested rows of Python numbers and scalar tensors."""
    return tf.stack([tf.stack([tf.cast(v, tf.float32) for v in row]) for row in rows])


def _translation(tx, ty):
    return _matrix([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def _linear(a, b, c, d):
    return _matrix([[a, b, 0.0], [c, d, 0.0], [0.0, 0.0, 1.0]])


def affine_matrix(input_hw, rotation_deg=0.0, scale=1.0, shift=(0.0, 0.0),
                  crop_fraction=1.0, crop_offset=(0.0, 0.0)):
    """Forward 3x3 affine matrix on (0, 1) coordinates: ``[u', v', 1] = M [u, v, 1]``.

    The face is rotated by ``rotation_deg`` (clockwise on screen) and zoomed by
    ``scale`` about the image centre, both in pixel units of ``input_hw`` so that a
    non-square crop is rotated rigidly; then shifted by ``shift`` (fractions of the
    size); then the window ``[offset, offset + crop_fraction]`` is cut out and stretched
    to the full frame.
    """
    theta = tf.cast(rotation_deg, tf.float32) * (math.pi / 180.0)
    scale = tf.cast(scale, tf.float32)
    height, width = (tf.cast(v, tf.float32) for v in (input_hw[0], input_hw[1]))
    cos, sin = tf.cos(theta) * scale, tf.sin(theta) * scale
    # Rotation-scale in pixel units: D^-1 (s R) D with D = diag(W, H).
    rotate = _linear(cos, -sin * height / width, sin * width / height, cos)
    shift_x, shift_y = (tf.cast(v, tf.float32) for v in shift)
    crop = tf.cast(crop_fraction, tf.float32)
    off_x, off_y = (tf.cast(v, tf.float32) for v in crop_offset)
    matrix = rotate @ _translation(-0.5, -0.5)
    matrix = _translation(0.5 + shift_x, 0.5 + shift_y) @ matrix
    return _linear(1.0 / crop, 0.0, 0.0, 1.0 / crop) @ _translation(-off_x, -off_y) @ matrix


def sample_affine_params(config, seed):
    """Draw the random parameters of :func:`affine_matrix` for ``config`` from ``seed``."""
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    rotation = tf.random.stateless_uniform([], seeds[0], -config.rotation_deg, config.rotation_deg)
    low, high = config.scale or (1.0, 1.0)
    scale = tf.random.stateless_uniform([], seeds[1], low, high)
    shift = tf.random.stateless_uniform([2], seeds[2], -config.shift, config.shift)
    crop = config.random_crop or 1.0
    offset = tf.random.stateless_uniform([2], seeds[3], 0.0, 1.0 - crop)
    return {
        "rotation_deg": rotation, "scale": scale, "shift": (shift[0], shift[1]),
        "crop_fraction": crop, "crop_offset": (offset[0], offset[1]),
    }


def _pixel_to_unit(height, width):
    """Matrix taking pixel indices (centre of pixel i at i) to (0, 1) coordinates."""
    return _linear(1.0 / width, 0.0, 0.0, 1.0 / height) @ _translation(0.5, 0.5)


def apply_affine(example, matrix, output_size, fill_mode="constant"):
    """Warp the image by ``matrix`` into ``output_size`` (h, w) and move the landmarks with it.

    The projective-transform op maps each *output* pixel index back to an input pixel
    index, so it receives ``P_in^-1 M^-1 P_out`` where ``P`` converts pixel indices to
    (0, 1) coordinates; the landmarks receive ``M`` itself.
    """
    image = example["image"]
    in_h, in_w = (tf.cast(v, tf.float32) for v in tf.unstack(tf.shape(image)[-3:-1]))
    out_h, out_w = (float(v) for v in output_size)
    to_input_pixels = tf.linalg.inv(_pixel_to_unit(in_h, in_w))
    pull_back = to_input_pixels @ tf.linalg.inv(matrix) @ _pixel_to_unit(out_h, out_w)
    transform = tf.reshape(pull_back / pull_back[2, 2], [9])[:8]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=tf.constant(output_size, tf.int32),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=fill_mode.upper(),
    )[0]
    out = dict(example)
    out["image"] = tf.ensure_shape(warped, [*output_size, 3])
    landmarks = example["landmarks"]
    out["landmarks"] = landmarks @ tf.transpose(matrix[:2, :2]) + matrix[:2, 2]
    return out


def centre_crop(example, crop_fraction, output_size):
    """Evaluation counterpart of the random crop: the centre window, resized to output."""
    offset = (1.0 - crop_fraction) / 2.0
    matrix = affine_matrix(
        tf.shape(example["image"])[-3:-1], crop_fraction=crop_fraction, crop_offset=(offset, offset)
    )
    return apply_affine(example, matrix, output_size)


# --------------------------------------------------------------------------- photometric


def add_gaussian_noise(image, std, seed):
    """Add N(0, std^2) noise (0-255 units) and clip back to [0, 255]."""
    noise = tf.random.stateless_normal(tf.shape(image), seed, stddev=std)
    return tf.clip_by_value(image + noise, 0.0, 255.0)


def to_grayscale(image):
    """ITU-R BT.601 luma, repeated on 3 channels so the model input keeps its shape."""
    return tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))


def equalize_histogram(image):
    """Histogram-equalise the luma (Y of YUV) and keep the chroma (U, V).

    Equalising the three RGB channels separately would shift colours; the luma goes
    through :func:`fermtl_tf.data.preprocess.equalize_histogram` (OpenCV's
    ``equalizeHist``, as Liu et al. 2017 Sec. 5.1 use it), so on a gray image this is
    exactly the classical equalisation.
    """
    yuv = tf.image.rgb_to_yuv(image / 255.0)
    new_luma = equalize_histogram_levels(yuv[tf.newaxis, ..., 0] * 255.0)[0] / 255.0
    rgb = tf.image.yuv_to_rgb(tf.stack([new_luma, yuv[..., 1], yuv[..., 2]], axis=-1))
    return tf.clip_by_value(rgb * 255.0, 0.0, 255.0)


def _maybe(probability, seed, function, image):
    if probability <= 0:
        return image
    if probability >= 1:
        return function(image)
    apply = tf.random.stateless_uniform([], seed) < probability
    return tf.cond(apply, lambda: function(image), lambda: image)


# --------------------------------------------------------------------------- composition


def make_augment_fn(config, output_size, au_names=(), training=True):
    """Return ``fn(example, seed) -> example`` applying ``config`` and resizing to output.

    Order: flip, one affine warp (rotation, scale, shift, crop and the resize to
    ``output_size``), grayscale, histogram equalisation, noise. With ``training=False``
    only the deterministic part remains: the centre crop when ``random_crop`` is set.
    """
    config = config or AugmentConfig()
    output_size = tuple(int(v) for v in output_size)
    permutation = au_mirror_permutation(list(au_names))
    swaps = permutation != sorted(permutation)
    au_permutation = tf.constant(permutation, tf.int32) if swaps else None

    def resize(example):
        out = dict(example)
        resized = tf.image.resize(example["image"], output_size)
        out["image"] = tf.ensure_shape(resized, [*output_size, 3])
        return out

    def evaluate(example, seed):
        del seed  # evaluation is deterministic
        if config.random_crop:
            return centre_crop(example, config.random_crop, output_size)
        return resize(example)

    def train(example, seed):
        seeds = tf.random.experimental.stateless_split(seed, num=5)
        if config.flip:
            example = random_flip(example, seeds[0], au_permutation)
        if config.geometric:
            params = sample_affine_params(config, seeds[1])
            matrix = affine_matrix(tf.shape(example["image"])[-3:-1], **params)
            example = apply_affine(example, matrix, output_size, config.fill_mode)
        else:
            example = resize(example)
        image = _maybe(config.grayscale_prob, seeds[2], to_grayscale, example["image"])
        image = _maybe(config.equalize_prob, seeds[3], equalize_histogram, image)
        if config.noise_std > 0:
            image = add_gaussian_noise(image, config.noise_std, seeds[4])
        return {**example, "image": image}

    return train if training else evaluate
