"""SynthFace labels: expression -> AU sampling, AU label vectors, valence/arousal.

AU sampling follows the relatedness tables of :mod:`fermtl_tf.knowledge.expression_au`:
every AU of the class is active independently with its table probability. An active
AU gets an apex intensity uniform in [1.5, 5] times the intensity scale (strong = 1,
subtle = 1/3). Occurrence is ``intensity >= 0.5``: the intensity rounds to at least FACS
level A (trace), so an AU that is active in a subtle expression keeps its label and the
table stays the true P(AU | expression) for every intensity setting.

Labels of one-sided AUs: each AU has a right and a left intensity. The bilateral label
``AU<n>`` is the larger of the two (the AU is present on either side); ``AU<n>L`` /
``AU<n>R`` (the subject's sides) exist for :data:`~.geometry.SIDED_AUS`.
"""

from dataclasses import dataclass

import numpy as np

from fermtl_tf.data.synthface.geometry import AU_INDEX, BASE_AUS, SIDED_AUS
from fermtl_tf.knowledge.expression_au import VALENCE_AROUSAL, ExpressionSpec
from fermtl_tf.knowledge.vocabularies import au_name

#: AU label order: the 21 bilateral AUs, then L/R of the sided ones.
SYNTHFACE_AU_NAMES = tuple(au_name(a) for a in BASE_AUS) + tuple(
    au_name(a, side) for a in SIDED_AUS for side in ("L", "R")
)
#: Occurrence threshold on intensity (rounds to FACS level A or above).
OCCURRENCE_THRESHOLD = 0.5
#: Apex intensity range of an active AU at intensity scale 1.
APEX_RANGE = (1.5, 5.0)
#: Intensity scale of each intensity setting.
INTENSITY_SCALES = {"strong": 1.0, "subtle": 1.0 / 3.0}

_GAZE = {"aside": (0.55, 0.75), "down": (0.55, 0.8), "up": (0.45, 0.65)}


@dataclass(frozen=True)
class ExpressionSample:
    """Apex of one expression: per-side AU intensities and the non-AU cues."""

    expression: str
    sides: np.ndarray  # (21, 2) right/left intensity at apex
    gaze: tuple  # iris offset (x, y) in fractions of the eye half-size
    roll: float  # extra head roll in degrees at apex
    intensity_scale: float


def sample_expression(name, spec: ExpressionSpec, intensity_scale, rng):
    """Draw the apex AUs and cues of expression ``name`` (fixed number of draws)."""
    active = rng.random(len(BASE_AUS))
    apex = rng.uniform(*APEX_RANGE, size=len(BASE_AUS))
    side = int(rng.integers(2))
    gaze_draw, gaze_mag, gaze_sign, roll_mag, roll_sign = rng.random(5)
    jitter = rng.normal(0.0, 0.08, size=2)
    intensity = np.zeros(len(BASE_AUS))
    for au, p in spec.aus.items():
        i = AU_INDEX[int(au[2:])]
        if active[i] < p:
            intensity[i] = min(apex[i], spec.max_intensity) * intensity_scale
    sides = np.repeat(intensity[:, None], 2, axis=1)
    for au in spec.one_sided:
        sides[AU_INDEX[int(au[2:])], 1 - side] = 0.0
    gaze = tuple(jitter)
    if spec.gaze is not None and gaze_draw < spec.gaze_p:
        lo, hi = _GAZE[spec.gaze]
        mag = lo + (hi - lo) * gaze_mag
        sign = 1.0 if gaze_sign < 0.5 else -1.0
        gaze = {"aside": (sign * mag, jitter[1]), "down": (jitter[0], mag),
                "up": (sign * 0.35, -mag)}[spec.gaze]
    roll = spec.head_roll * (0.7 + 0.6 * roll_mag) * (1.0 if roll_sign < 0.5 else -1.0)
    return ExpressionSample(name, sides, gaze, float(roll), float(intensity_scale))


def au_label_vectors(sides):
    """(21, 2) side intensities -> (intensity (K,), occurrence (K,)) in label order."""
    bilateral = sides.max(axis=1)
    sided = [sides[AU_INDEX[a], 1 if s == "L" else 0] for a in SIDED_AUS for s in ("L", "R")]
    intensity = np.concatenate([bilateral, np.asarray(sided)]).astype(np.float32)
    return intensity, (intensity >= OCCURRENCE_THRESHOLD).astype(np.float32)


def valence_arousal(expression, ramp, intensity_scale, rng):
    """Circumplex position of the class, scaled by the sequence ramp and intensity, + noise.

    A subtle expression (scale 1/3) keeps 60 % of the position: people rate mild faces
    closer to neutral but not at a third of the distance (package choice).
    """
    v, a = VALENCE_AROUSAL[expression]
    gain = ramp * (0.4 + 0.6 * intensity_scale)
    noise = rng.normal(0.0, 0.05, size=2)
    return (float(np.clip(v * gain + noise[0], -1, 1)), float(np.clip(a * gain + noise[1], -1, 1)))


def ramp(frame_index, frames):
    """Neutral -> apex progression of frame ``frame_index`` of ``frames`` (smoothstep)."""
    if frames <= 1:
        return 1.0
    t = frame_index / (frames - 1)
    return float(t * t * (3.0 - 2.0 * t))
