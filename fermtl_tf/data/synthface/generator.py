"""SynthFace configuration and generator: identities x sequences x frames -> images + labels.

Determinism: every random draw comes from a numpy Generator seeded by a tuple of
integers -- ``(seed, identity)`` for the person, ``(seed, identity, sequence, k)`` for
the expression (k = 1) and scene (k = 4) of a sequence, ``(seed, identity, sequence,
frame, 2)`` for the per-frame camera noise and head jitter -- so an image never
depends on which other images were generated, and the same config gives the same bytes.

A sequence goes from neutral (frame 0: every AU at 0) to the apex (last frame) along a
smoothstep ramp. Every frame of a sequence carries the sequence's expression label,
the neutral-looking first frames too; AU, valence/arousal and landmarks follow the
ramp, so a consumer that wants apex-only expression labels keeps the last frames.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from fermtl_tf.data.synthface import geometry, labels
from fermtl_tf.data.synthface.domains import domain_preset, sample_scene
from fermtl_tf.data.synthface.identity import EXPRESSION_ATTRIBUTES, sample_identity
from fermtl_tf.data.synthface.render import draw_background, render_face
from fermtl_tf.knowledge.expression_au import expression_specs
from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS
from fermtl_tf.knowledge.vocabularies import vocabulary

#: Face half-width as a fraction of the image size at pose scale 1. MTCNN's confidence
#: falls as the face grows (the largest quarter of faces fell under prep's 0.9 cut-off two
#: to three times as often as the smallest), so the face leaves a margin: at 0.22 the 68
#: landmarks span about 56 px of a 128 px image (docs/synthface.md, "Measured figures").
FACE_UNIT = 0.22
#: Landmark resolution: posed points are rounded to 1/16 px, the drawing's fixed point.
_GRID = 16.0
_INTENSITIES = ("strong", "subtle", "mixed")
_FORMATS = ("png", "jpg")


@dataclass(frozen=True)
class SynthFaceConfig:
    """What to generate. ``intensity``: ``strong``, ``subtle`` (AUs at 1/3) or ``mixed``
    (each sequence strong or subtle with probability 1/2). ``include_neutral``: generate
    sequences of class ``neutral`` when the vocabulary has it."""

    seed: int = 0
    num_identities: int = 20
    sequences_per_identity: int = 2
    frames_per_sequence: int = 3
    vocabulary: str = "basic7"
    domain: str = "lab"
    intensity: str = "strong"
    image_size: int = 128
    image_format: str = "png"
    split_fractions: tuple = (0.7, 0.15, 0.15)
    include_neutral: bool = True

    def __post_init__(self):
        vocabulary(self.vocabulary)
        domain_preset(self.domain)
        checks = {
            "num_identities": self.num_identities >= 1,
            "sequences_per_identity": self.sequences_per_identity >= 1,
            "frames_per_sequence": self.frames_per_sequence >= 1,
            "image_size": self.image_size >= 32,
            "intensity": self.intensity in _INTENSITIES,
            "image_format": self.image_format in _FORMATS,
            "split_fractions": (len(self.split_fractions) == 3
                                and min(self.split_fractions) >= 0
                                and abs(sum(self.split_fractions) - 1.0) < 1e-6),
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"SynthFaceConfig.{key} is invalid: {getattr(self, key)!r}")
        object.__setattr__(self, "split_fractions", tuple(float(f) for f in self.split_fractions))

    def to_dict(self):
        return dataclasses.asdict(self) | {"split_fractions": list(self.split_fractions)}

    @classmethod
    def from_dict(cls, data):
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown SynthFaceConfig keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if k == "split_fractions" else v for k, v in data.items()})


class SynthFaceGenerator:
    """Renders faces and their exact labels for one :class:`SynthFaceConfig`."""

    def __init__(self, config: SynthFaceConfig):
        self.config = config
        self.preset = domain_preset(config.domain)
        self.vocabulary = vocabulary(config.vocabulary)
        self.classes = tuple(c for c in self.vocabulary
                             if config.include_neutral or c != "neutral")
        self.specs = expression_specs()
        self._identities = {}

    def identity(self, index):
        """The persistent :class:`~.identity.Identity` ``index`` (cached)."""
        if index not in self._identities:
            self._identities[index] = sample_identity(self.config.seed, index)
        return self._identities[index]

    def split_of(self, identity):
        """Split name of an identity: a seeded permutation cut by ``split_fractions``."""
        return self._split_table()[identity]

    def _split_table(self):
        if not hasattr(self, "_splits"):
            n = self.config.num_identities
            order = np.random.default_rng([self.config.seed, 99]).permutation(n)
            counts = np.floor(np.asarray(self.config.split_fractions) * n).astype(int)
            for i in np.argsort(-np.asarray(self.config.split_fractions)):
                if counts.sum() < n:
                    counts[i] += 1
            for i, f in enumerate(self.config.split_fractions):  # every used split non-empty
                if f > 0 and counts[i] == 0 and counts.max() > 1:
                    counts[i], counts[np.argmax(counts)] = 1, counts.max() - 1
            names = np.repeat(["train", "val", "test"], counts)
            self._splits = {int(i): str(s) for i, s in zip(order, names, strict=True)}
        return self._splits

    def sequence_expression(self, identity, sequence):
        """Class of a sequence: classes cycle over (identity, sequence) for balance."""
        k = identity * self.config.sequences_per_identity + sequence
        return self.classes[k % len(self.classes)]

    def render(self, identity, expression, intensity_scale=1.0, rng=None, ramp=1.0):
        """One face of ``identity`` showing ``expression``; scene and AUs drawn from ``rng``.

        Returns ``(image, labels)``: uint8 (S, S, 3) RGB and the label dict (see
        :meth:`_labels`).
        """
        rng = np.random.default_rng() if rng is None else rng
        if expression not in self.specs:
            raise KeyError(f"unknown SynthFace expression {expression!r}")
        sample = labels.sample_expression(expression, self.specs[expression],
                                          intensity_scale, rng)
        scene = sample_scene(self.preset, rng)
        background = draw_background(scene, self.config.image_size)
        return self._render_frame(identity, sample, scene, background, ramp, rng)

    def render_sequence(self, identity, sequence):
        """All frames of one sequence, deterministic: list of ``(image, labels)``."""
        cfg = self.config
        seq_rng = np.random.default_rng([cfg.seed, identity, sequence, 1])
        mixed_draw = seq_rng.random()
        strength = cfg.intensity if cfg.intensity != "mixed" else (
            "strong" if mixed_draw < 0.5 else "subtle")
        expression = self.sequence_expression(identity, sequence)
        sample = labels.sample_expression(expression, self.specs[expression],
                                          labels.INTENSITY_SCALES[strength], seq_rng)
        scene = sample_scene(self.preset, np.random.default_rng([cfg.seed, identity, sequence, 4]))
        background = draw_background(scene, cfg.image_size)
        frames = []
        for f in range(cfg.frames_per_sequence):
            rng = np.random.default_rng([cfg.seed, identity, sequence, f, 2])
            image, lab = self._render_frame(identity, sample, scene, background,
                                            labels.ramp(f, cfg.frames_per_sequence), rng)
            lab.update(sequence_id=f"id{identity:04d}_s{sequence:02d}", frame_index=f)
            frames.append((image, lab))
        return frames

    def _render_frame(self, identity, sample, scene, background, ramp, rng):
        ident = self.identity(identity)
        size = self.config.image_size
        sides = sample.sides * ramp
        jitter = rng.normal(0.0, 1.0, 3) * scene.motion_jitter
        pose = dict(scene.pose)
        pose["roll"] += sample.roll * ramp + jitter[0]
        pose["yaw"] += jitter[1]
        shape = geometry.expression_shape(ident.points, sides)
        unit = FACE_UNIT * size * pose["scale"]
        points = geometry.pose_transform(shape, pose, size, FACE_UNIT)
        points = np.round(points * _GRID) / _GRID
        gaze = (sample.gaze[0] * ramp + jitter[2] * 0.02, sample.gaze[1] * ramp)
        image = render_face(background, ident, points, sides, gaze, unit, scene, rng)
        valence, arousal = labels.valence_arousal(sample.expression, ramp,
                                                  sample.intensity_scale, rng)
        intensity, occurrence = labels.au_label_vectors(sides)
        gap = shape[66, 1] - shape[62, 1]
        expression_attrs = {"smiling": float(sides[geometry.AU_INDEX[12]].max() >= 1.0),
                            "mouth_open": float(gap > 0.04)}
        attributes = np.concatenate([
            ident.attribute_vector(),
            np.array([expression_attrs[n] for n in EXPRESSION_ATTRIBUTES], np.float32)])
        return image, {
            "landmarks": points[:NUM_LANDMARKS].astype(np.float64),
            "au_intensity": np.round(intensity, 4),
            "au": occurrence,
            "valence": round(valence, 4),
            "arousal": round(arousal, 4),
            "expression": sample.expression,
            "identity": int(identity),
            "attributes": attributes,
            "face_box": face_box(points),
            "pose": {**{k: float(v) for k, v in pose.items()},
                     "gaze_x": float(gaze[0]), "gaze_y": float(gaze[1])},
            "domain": self.config.domain,
            "intensity_scale": sample.intensity_scale,
        }


def face_box(points):
    """(x, y, w, h) of the 68 landmarks extended up to the forehead point."""
    pts = np.concatenate([points[:NUM_LANDMARKS], points[geometry.EXTRA["forehead_top"]]])
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
