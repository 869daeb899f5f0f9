"""SynthFace geometry: mean shape, identity deformation, AU displacement fields, pose.

All shapes live in a canonical frame whose unit is the face half-width: x grows to
the image right (the subject's left), y grows downwards, the eye line is y = 0 and the
face is centred on x = 0. Besides the 68 iBUG landmarks the frame carries a few
drawing-only points (forehead arc, hair outline, ears, neck, shoulders) so that one
vectorised transform moves everything the renderer draws; the landmarks are therefore
exact for the drawn face.

Expression is a sum of per-AU displacement fields, each given at FACS intensity 5
and scaled linearly. Every AU has a right-side and a left-side intensity; a field is
split between the sides by :data:`SIDE_WEIGHTS` (midline points take half of each),
so a one-sided AU12L moves the subject's left mouth corner (point 54) and not 48.
"""

import numpy as np

from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS

#: The 21 bilateral action units SynthFace animates, in label order.
BASE_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 20, 23, 24, 25, 26, 27, 43)
#: AUs that also get subject-side labels (AU<n>L / AU<n>R).
SIDED_AUS = (1, 2, 12, 14)
AU_INDEX = {au: i for i, au in enumerate(BASE_AUS)}


def _mirror(points):
    """Mirror image-left points (x < 0) to the image right, reversed order helper."""
    return [(-x, y) for x, y in points]


def _mean_landmarks():
    """Hand-designed frontal 68-point shape (iBUG order) in canonical units."""
    t = np.linspace(0.0, 1.0, 17)
    jaw_x = -np.cos(np.pi * t) * (1.0 - 0.12 * np.sin(np.pi * t) ** 2)
    jaw_y = 0.05 + 1.22 * np.sin(np.pi * t) ** 0.85
    jaw = list(zip(jaw_x, jaw_y, strict=True))
    right_brow = [(-0.82, -0.24), (-0.68, -0.34), (-0.5, -0.37), (-0.33, -0.35), (-0.16, -0.3)]
    left_brow = _mirror(right_brow[::-1])
    bridge = [(0.0, -0.15), (0.0, 0.04), (0.0, 0.23), (0.0, 0.42)]
    base = [(-0.2, 0.52), (-0.1, 0.56), (0.0, 0.58), (0.1, 0.56), (0.2, 0.52)]
    right_eye = [(-0.64, 0.0), (-0.52, -0.09), (-0.36, -0.09), (-0.24, 0.0), (-0.36, 0.07),
                 (-0.52, 0.07)]
    left_eye = _mirror([right_eye[i] for i in (3, 2, 1, 0, 5, 4)])
    outer_lips = [(-0.37, 0.84), (-0.24, 0.785), (-0.09, 0.765), (0.0, 0.775), (0.09, 0.765),
                  (0.24, 0.785), (0.37, 0.84), (0.24, 0.915), (0.1, 0.945), (0.0, 0.95),
                  (-0.1, 0.945), (-0.24, 0.915)]
    inner_lips = [(-0.31, 0.842), (-0.1, 0.83), (0.0, 0.835), (0.1, 0.83), (0.31, 0.842),
                  (0.1, 0.85), (0.0, 0.852), (-0.1, 0.85)]
    points = (jaw + right_brow + left_brow + bridge + base + right_eye + left_eye
              + outer_lips + inner_lips)
    return np.asarray(points, dtype=np.float64)


def _extra_points():
    """Drawing-only points, name -> (k, 2) array."""
    theta = np.pi * (1.0 - np.arange(1, 12) / 12.0)
    forehead = np.stack([np.cos(theta), 0.05 - 1.1 * np.sin(theta)], axis=1)
    phi = np.linspace(np.pi + 0.25, -0.25, 15)
    hair_outer = np.stack([1.14 * np.cos(phi), 0.08 - 1.36 * np.sin(phi)], axis=1)
    hairline = np.array([(-0.99, 0.0), (-0.9, -0.45), (-0.6, -0.66), (-0.2, -0.71), (0.0, -0.7),
                         (0.2, -0.71), (0.6, -0.66), (0.9, -0.45), (0.99, 0.0)])
    long_hair = np.array([(-1.25, 1.1), (-1.05, 1.75), (1.05, 1.75), (1.25, 1.1)])
    ears = np.array([(-1.0, 0.2), (1.0, 0.2)])
    forehead_top = np.array([(0.0, -0.55)])  # top of the labelled face box
    neck = np.array([(-0.4, 0.9), (-0.44, 1.9), (0.44, 1.9), (0.4, 0.9)])
    shoulders = np.array([(-0.55, 1.75), (-1.9, 2.2), (-2.3, 3.2), (2.3, 3.2), (1.9, 2.2),
                          (0.55, 1.75)])
    return {"forehead": forehead, "hair_outer": hair_outer, "hairline": hairline,
            "long_hair": long_hair, "ears": ears, "forehead_top": forehead_top, "neck": neck,
            "shoulders": shoulders}


def _layout():
    extras = _extra_points()
    slices, start = {}, NUM_LANDMARKS
    for name, pts in extras.items():
        slices[name] = slice(start, start + len(pts))
        start += len(pts)
    points = np.concatenate([_mean_landmarks()] + list(extras.values()), axis=0)
    return points, slices


#: Canonical mean shape: 68 landmarks followed by the drawing-only points.
CANONICAL, EXTRA = _layout()
NUM_POINTS = len(CANONICAL)


def _depth():
    """Depth (towards the camera) of every point: a cylinder-like head plus the nose."""
    x = CANONICAL[:, 0]
    z = 0.9 * np.sqrt(np.clip(1.0 - (x / 1.15) ** 2, 0.0, None))
    nose_extra = {27: 0.05, 28: 0.12, 29: 0.2, 30: 0.3, 31: 0.1, 32: 0.15, 33: 0.18, 34: 0.15,
                  35: 0.1}
    for i, dz in nose_extra.items():
        z[i] += dz
    for name in ("hair_outer", "ears", "neck", "shoulders", "long_hair"):
        z[EXTRA[name]] = np.minimum(z[EXTRA[name]], 0.3)
    return z


DEPTH = _depth()


def _side_weights():
    """(N, 2) weights of each point for the subject's right (x < 0) and left side."""
    x = CANONICAL[:, 0]
    right = np.where(x < -1e-6, 1.0, np.where(x > 1e-6, 0.0, 0.5))
    return np.stack([right, 1.0 - right], axis=1)


SIDE_WEIGHTS = _side_weights()


def _field(moves):
    """Build an (N, 2) field from ``{point: (dx_right_side, dy)}``, mirrored to the left.

    ``dx`` is given for the subject's right side (image left); the mirrored partner
    (by iBUG mirror pairs, found by position) gets ``-dx``. Midline points get dx = 0.
    """
    field = np.zeros((NUM_POINTS, 2))
    lm = CANONICAL[:NUM_LANDMARKS]
    for i, (dx, dy) in moves.items():
        field[i] = (dx, dy)
        mirror = int(np.argmin(np.sum((lm - lm[i] * (-1.0, 1.0)) ** 2, axis=1)))
        if mirror != i:
            field[mirror] = (-dx, dy)
        else:
            field[i, 0] = 0.0
    return field


def _jaw_drop(amount, corner_in):
    moves = {8: (0, amount), 7: (0, amount * 0.93), 6: (0, amount * 0.8), 5: (0, amount * 0.6),
             4: (0, amount * 0.38), 3: (0, amount * 0.18), 2: (0, amount * 0.05),
             57: (0, amount), 56: (0, amount * 0.95), 55: (0, amount * 0.72),
             66: (0, amount * 0.98), 65: (0, amount * 0.9),
             48: (corner_in, amount * 0.3), 60: (corner_in, amount * 0.3),
             62: (0, -0.01), 61: (0, -0.008)}
    return moves


def _au_fields():
    """Per-AU displacement at intensity 5, keyed by AU number (right-side dx convention)."""
    f = {
        1: {21: (0, -0.16), 20: (0, -0.12), 19: (0, -0.06), 18: (0, -0.025)},
        2: {17: (0, -0.16), 18: (0, -0.15), 19: (0, -0.1), 20: (0, -0.04)},
        4: {21: (0.05, 0.09), 20: (0.035, 0.08), 19: (0.02, 0.06), 18: (0.01, 0.035),
            17: (0, 0.015), 37: (0, 0.012), 38: (0, 0.015)},
        5: {37: (0, -0.05), 38: (0, -0.05), 19: (0, -0.02), 20: (0, -0.02)},
        6: {41: (0, -0.03), 40: (0, -0.03), 36: (0, -0.012), 48: (-0.01, -0.02),
            60: (-0.01, -0.02), 2: (0, -0.02), 3: (0, -0.015)},
        7: {41: (0, -0.035), 40: (0, -0.035), 37: (0, 0.018), 38: (0, 0.018)},
        9: {31: (0.01, -0.05), 32: (0, -0.05), 33: (0, -0.045), 29: (0, -0.02), 30: (0, -0.03),
            21: (0, 0.035), 20: (0, 0.02), 49: (0, -0.04), 50: (0, -0.045), 51: (0, -0.045),
            61: (0, -0.03), 62: (0, -0.03), 41: (0, -0.015), 40: (0, -0.015)},
        10: {49: (0, -0.055), 50: (0, -0.085), 51: (0, -0.065), 61: (0, -0.075), 62: (0, -0.06),
             48: (0, -0.012), 60: (0, -0.012), 31: (0, -0.015)},
        11: {48: (-0.012, -0.018), 60: (-0.01, -0.015), 49: (0, -0.01)},
        12: {48: (-0.11, -0.14), 60: (-0.095, -0.12), 49: (-0.045, -0.05), 59: (-0.05, -0.04),
             61: (-0.02, -0.025), 67: (-0.02, -0.02), 50: (0, -0.012), 58: (0, -0.02),
             41: (0, -0.01), 40: (0, -0.01), 3: (-0.01, -0.01), 4: (-0.01, -0.01)},
        14: {48: (0.025, -0.02), 60: (0.022, -0.018), 49: (0.01, -0.008), 59: (0.01, -0.008)},
        15: {48: (0.01, 0.085), 60: (0.01, 0.075), 59: (0, 0.04), 49: (0, 0.03), 67: (0, 0.02),
             58: (0, 0.015)},
        16: {57: (0, 0.085), 58: (0, 0.08), 59: (0, 0.05), 66: (0, 0.085), 67: (0, 0.075)},
        17: {57: (0, -0.045), 58: (0, -0.04), 59: (0, -0.025), 66: (0, -0.03), 67: (0, -0.03),
             8: (0, -0.04), 7: (0, -0.035), 6: (0, -0.02), 50: (0, -0.012), 51: (0, -0.015)},
        20: {48: (-0.09, 0.02), 60: (-0.08, 0.015), 49: (-0.05, 0.005), 59: (-0.05, 0.0),
             61: (-0.02, 0.0), 67: (-0.02, 0.0), 50: (0, 0.01), 51: (0, 0.01),
             58: (0, -0.01), 57: (0, -0.01)},
        23: {48: (0.03, 0), 60: (0.03, 0), 49: (0.012, 0.012), 50: (0, 0.02), 51: (0, 0.02),
             59: (0.012, -0.012), 58: (0, -0.02), 57: (0, -0.02)},
        24: {48: (0.015, 0), 60: (0.015, 0), 49: (0, 0.02), 50: (0, 0.028), 51: (0, 0.028),
             59: (0, -0.02), 58: (0, -0.028), 57: (0, -0.028), 61: (0, 0.005), 62: (0, 0.005),
             67: (0, -0.005), 66: (0, -0.005)},
        25: {61: (0, -0.01), 62: (0, -0.012), 67: (0, 0.045), 66: (0, 0.05), 58: (0, 0.03),
             57: (0, 0.032), 59: (0, 0.018)},
        26: _jaw_drop(0.17, 0.015),
        27: _jaw_drop(0.23, 0.04),
        43: {37: (0, 0.11), 38: (0, 0.11), 36: (0, 0.005), 21: (0, 0.01), 17: (0, 0.01)},
    }
    return np.stack([_field(f[au]) for au in BASE_AUS])


#: Overall gain of the fields: strong expressions must read clearly at 128 px.
FIELD_GAIN = 1.4
#: (21, N, 2) displacement fields at intensity 5, in :data:`BASE_AUS` order.
AU_FIELDS = FIELD_GAIN * _au_fields()

#: Identity shape parameters and their (low, high) uniform sampling ranges.
IDENTITY_RANGES = {
    "face_width": (0.9, 1.08),
    "face_height": (0.93, 1.07),
    "jaw_width": (0.85, 1.1),
    "eye_size": (0.88, 1.15),
    "eye_height": (0.75, 1.2),
    "eye_spacing": (0.93, 1.07),
    "nose_length": (0.9, 1.12),
    "nose_width": (0.85, 1.35),
    "mouth_width": (0.88, 1.12),
    "lip_thickness": (0.75, 1.35),
    "brow_height": (-0.04, 0.04),
    "mouth_height": (-0.03, 0.03),
}

_RIGHT_EYE, _LEFT_EYE = list(range(36, 42)), list(range(42, 48))
_BROWS = list(range(17, 27))
_NOSE = list(range(27, 36))
_LIPS = list(range(48, 68))


def identity_shape(params):
    """Canonical points of one identity (no expression), from its shape ``params``."""
    p = CANONICAL.copy()
    for eye in (_RIGHT_EYE, _LEFT_EYE):
        centre = p[eye].mean(axis=0)
        p[eye] = centre + (p[eye] - centre) * (params["eye_size"],
                                                params["eye_size"] * params["eye_height"])
    p[_RIGHT_EYE + _BROWS[:5], 0] *= params["eye_spacing"]
    p[_LEFT_EYE + _BROWS[5:], 0] *= params["eye_spacing"]
    p[_BROWS, 1] += params["brow_height"]
    nose_top = p[27, 1]
    p[_NOSE, 1] = nose_top + (p[_NOSE, 1] - nose_top) * params["nose_length"]
    p[31:36, 0] *= params["nose_width"]
    shift = (params["nose_length"] - 1.0) * 0.3 + params["mouth_height"]
    mouth_y = p[_LIPS, 1].mean()
    p[_LIPS, 0] *= params["mouth_width"]
    outer = list(range(48, 60))
    p[outer, 1] = mouth_y + (p[outer, 1] - mouth_y) * params["lip_thickness"]
    p[_LIPS, 1] += shift
    lower = p[:, 1] > 0.3
    jaw_scale = 1.0 + (params["jaw_width"] - 1.0) * np.clip((p[:, 1] - 0.3) / 0.9, 0, 1)
    face_pts = np.r_[0:17, EXTRA["forehead"]]
    sel = np.zeros(NUM_POINTS, bool)
    sel[face_pts] = True
    p[sel & lower, 0] *= jaw_scale[sel & lower]
    p[:, 0] *= params["face_width"]
    p[:, 1] = np.where(p[:, 1] > 0, p[:, 1] * params["face_height"], p[:, 1])
    return p


def side_coefficients(au_sides):
    """(21, 2) right/left intensities -> (21, N) per-point field coefficients (/5)."""
    return (au_sides[:, :1] * SIDE_WEIGHTS[None, :, 0]
            + au_sides[:, 1:] * SIDE_WEIGHTS[None, :, 1]) / 5.0


def _enforce_order(p):
    """Keep lids and lips from crossing when several AUs pull the same points."""
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        p[upper, 1] = min(p[upper, 1], p[lower, 1] - 0.004)
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        p[lower, 1] = max(p[lower, 1], p[upper, 1] + 0.002)
    for outer, inner in ((50, 61), (51, 62), (52, 63)):
        p[outer, 1] = min(p[outer, 1], p[inner, 1] - 0.02)
    for outer, inner in ((58, 67), (57, 66), (56, 65)):
        p[outer, 1] = max(p[outer, 1], p[inner, 1] + 0.025)
    return p


def expression_shape(identity_points, au_sides):
    """Add the AU displacement fields: ``au_sides`` is (21, 2) right/left intensity 0-5."""
    coeff = side_coefficients(np.asarray(au_sides, dtype=np.float64))
    p = identity_points + np.einsum("an,ank->nk", coeff, AU_FIELDS)
    return _enforce_order(p)


def pose_transform(points, pose, image_size, face_unit):
    """Canonical points -> image pixels.

    ``pose``: dict with ``roll``, ``yaw`` (degrees), ``scale``, ``tx``, ``ty`` (fractions of
    the image size). Yaw is approximated by foreshortening: x' = x cos(yaw) + (z - z0)
    sin(yaw) with the per-point depth :data:`DEPTH`, which moves the nose towards the
    turn and compresses the far cheek. Roll is a rotation about the face centre.
    """
    yaw, roll = np.radians(pose["yaw"]), np.radians(pose["roll"])
    x = points[:, 0] * np.cos(yaw) + (DEPTH - 0.55) * np.sin(yaw)
    y = points[:, 1] - 0.15
    c, s = np.cos(roll), np.sin(roll)
    unit = face_unit * image_size * pose["scale"]
    px = (c * x - s * y) * unit + image_size * (0.5 + pose["tx"])
    py = (s * x + c * y) * unit + image_size * (0.5 + pose["ty"])
    return np.stack([px, py], axis=1)
