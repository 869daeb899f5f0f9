"""Persistent SynthFace identities: face shape, appearance and the binary attributes.

An identity is drawn from a generator seeded by ``(seed, identity)`` only, so the same
person appears with the same face in every sequence, split and rendering domain.
Every identity attribute is a fact of the drawing (``eyeglasses`` means glasses are
drawn, ``big_nose`` means the nose-width parameter is in the top of its range).
"""

from dataclasses import dataclass

import numpy as np

from fermtl_tf.data.synthface.geometry import EXTRA, IDENTITY_RANGES, identity_shape

#: Attributes fixed per identity, in label order (CelebA-style names).
IDENTITY_ATTRIBUTES = (
    "male", "eyeglasses", "beard", "mustache", "bald", "black_hair", "blond_hair",
    "brown_hair", "gray_hair", "long_hair", "pale_skin", "dark_skin", "bushy_eyebrows",
    "big_nose", "narrow_eyes",
)
#: Attributes that depend on the expression of the image.
EXPRESSION_ATTRIBUTES = ("smiling", "mouth_open")
SYNTHFACE_ATTRIBUTE_NAMES = IDENTITY_ATTRIBUTES + EXPRESSION_ATTRIBUTES

_SKIN = {  # RGB anchors of the skin-tone continuum
    "pale": np.array([238.0, 204.0, 182.0]),
    "medium": np.array([208.0, 158.0, 120.0]),
    "dark": np.array([122.0, 82.0, 58.0]),
}
_HAIR = {
    "black": (28.0, 24.0, 22.0),
    "brown": (92.0, 58.0, 34.0),
    "blond": (196.0, 158.0, 92.0),
    "gray": (168.0, 166.0, 160.0),
}
_IRIS = ((70.0, 45.0, 25.0), (40.0, 30.0, 22.0), (70.0, 110.0, 150.0), (80.0, 110.0, 70.0))
_CLOTHES = ((40, 60, 110), (150, 30, 40), (30, 30, 35), (220, 220, 215), (60, 110, 70),
            (120, 90, 150), (200, 140, 40))


@dataclass(frozen=True)
class Identity:
    """One synthetic person: canonical shape points, colours and attribute vector."""

    index: int
    shape: dict
    points: np.ndarray
    skin: tuple
    lips: tuple
    hair: tuple
    iris: tuple
    clothes: tuple
    brow_thickness: float
    hairline: float
    attributes: dict

    def attribute_vector(self):
        return np.array([self.attributes[name] for name in IDENTITY_ATTRIBUTES], np.float32)


def _skin(rng):
    """Skin tone on a continuum, with the pale/dark attribute thresholds."""
    t = rng.random()
    if t < 0.5:
        colour = _SKIN["pale"] + (_SKIN["medium"] - _SKIN["pale"]) * (t / 0.5)
    else:
        colour = _SKIN["medium"] + (_SKIN["dark"] - _SKIN["medium"]) * ((t - 0.5) / 0.5)
    return colour, t < 0.3, t > 0.75


def _hair(rng, male):
    names = ("black", "brown", "blond", "gray")
    colour = names[rng.choice(4, p=(0.35, 0.3, 0.2, 0.15))]
    bald = bool(male and rng.random() < 0.2)
    long_hair = bool(not bald and rng.random() < (0.1 if male else 0.7))
    return colour, bald, long_hair


def sample_identity(seed, index):
    """Draw identity ``index`` of a dataset with seed ``seed`` (deterministic)."""
    rng = np.random.default_rng([int(seed), int(index), 7001])
    shape = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in IDENTITY_RANGES.items()}
    male = bool(rng.random() < 0.5)
    if male:
        shape["jaw_width"] = min(shape["jaw_width"] + 0.05, 1.12)
    skin, pale, dark = _skin(rng)
    hair_name, bald, long_hair = _hair(rng, male)
    beard = bool(male and rng.random() < 0.35)
    mustache = bool(male and (beard or rng.random() < 0.15))
    glasses = bool(rng.random() < 0.25)
    brow = float(rng.uniform(0.04, 0.08)) * (1.12 if male else 0.92)
    lips = skin * np.array([0.86, 0.58, 0.6]) + np.array([20.0, 0.0, 5.0])
    attributes = {
        "male": male, "eyeglasses": glasses, "beard": beard, "mustache": mustache,
        "bald": bald, "black_hair": hair_name == "black" and not bald,
        "blond_hair": hair_name == "blond" and not bald,
        "brown_hair": hair_name == "brown" and not bald,
        "gray_hair": hair_name == "gray" and not bald, "long_hair": long_hair,
        "pale_skin": pale, "dark_skin": dark, "bushy_eyebrows": brow > 0.07,
        "big_nose": shape["nose_width"] > 1.2, "narrow_eyes": shape["eye_height"] < 0.86,
    }
    hairline = float(rng.uniform(-0.08, 0.15))
    points = identity_shape(shape)
    points[EXTRA["hairline"], 1] += hairline * np.array([0.3, 0.7, 1, 1, 1, 1, 1, 0.7, 0.3])
    return Identity(
        index=int(index), shape=shape, points=points,
        skin=tuple(skin), lips=tuple(np.clip(lips, 0, 255)), hair=_HAIR[hair_name],
        iris=_IRIS[rng.integers(len(_IRIS))], clothes=_CLOTHES[rng.integers(len(_CLOTHES))],
        brow_thickness=brow, hairline=hairline,
        attributes={k: int(v) for k, v in attributes.items()},
    )
