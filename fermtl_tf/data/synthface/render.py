"""SynthFace drawing with OpenCV primitives, at the target size (no supersampling).

Everything is drawn from the posed point set of :mod:`.geometry`, so the 68 landmark
labels are the exact points the strokes go through. Coordinates passed in are pixel
coordinates with the origin at the top-left pixel *corner* (the record-schema
convention); OpenCV addresses pixel centres, so drawing subtracts 0.5. Polygons use
4 fractional bits (``shift=4``) and anti-aliasing, which keeps small faces smooth.

Order: background, long hair, clothes and neck, ears, face, AU wrinkles, hair cap,
beard, nose, eyes, brows, mouth (cavity, teeth, lips), glasses, then the camera:
light gradient and colour cast, blur, noise, JPEG.
"""

import cv2
import numpy as np

from fermtl_tf.data.synthface.geometry import AU_INDEX, EXTRA

_SHIFT = 4
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA
_SCLERA = (232.0, 228.0, 220.0)
_MOUTH = (72.0, 22.0, 28.0)
_TEETH = (238.0, 234.0, 222.0)
_LASH = (28.0, 20.0, 20.0)
_LAB_BACKGROUNDS = ((128, 130, 132), (92, 108, 135), (150, 150, 145), (105, 116, 102),
                    (70, 74, 82), (170, 172, 175))


def _fixed(points):
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


def _fill(img, points, colour):
    cv2.fillPoly(img, [_fixed(points)], colour, _AA, _SHIFT)


def _polyline(img, points, colour, thickness, closed=False):
    thickness = max(1, int(round(thickness)))
    cv2.polylines(img, [_fixed(points)], closed, colour, thickness, _AA, _SHIFT)


def _ellipse(img, centre, axes, angle, colour, thickness=-1):
    axes = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
    cv2.ellipse(img, tuple(int(v) for v in _fixed(centre)), axes, float(angle), 0, 360,
                colour, thickness, _AA, _SHIFT)


def _shade(colour, k):
    return tuple(float(min(255.0, c * k)) for c in colour)


def _mix(a, b, t):
    return tuple(float(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))


class _Frame:
    """Face-aligned drawing frame: unit length ``u`` px, right ``ex`` and down ``ey``."""

    def __init__(self, q, unit):
        ex = q[45] - q[36]
        self.ex = ex / max(np.linalg.norm(ex), 1e-6)
        self.ey = np.array([-self.ex[1], self.ex[0]])
        self.u = unit
        self.angle = float(np.degrees(np.arctan2(self.ex[1], self.ex[0])))

    def at(self, p, dx, dy):
        """Point ``p`` moved by (dx, dy) face units along the face axes."""
        return p + (dx * self.ex + dy * self.ey) * self.u


def draw_background(scene, size):
    """The scene's background: plain studio colour (lab) or blurred clutter (wild)."""
    rng = np.random.default_rng(scene.background_seed)
    if not scene.clutter:
        base = np.array(_LAB_BACKGROUNDS[rng.integers(len(_LAB_BACKGROUNDS))], np.float32)
        ramp = np.linspace(1.04, 0.94, size, dtype=np.float32)[:, None, None]
        return np.clip(base * ramp * np.ones((1, size, 1), np.float32), 0, 255).astype(np.uint8)
    img = np.empty((size, size, 3), np.uint8)
    grey = float(rng.integers(60, 200))
    img[:] = rng.integers(30, 230, 3)
    for _ in range(int(rng.integers(8, 16))):
        colour = tuple(float(0.6 * c + 0.4 * grey) for c in rng.integers(0, 256, 3))
        kind = rng.integers(4)
        a, b = rng.uniform(-0.2, 1.2, 2) * size, rng.uniform(-0.2, 1.2, 2) * size
        if kind == 0:
            cv2.rectangle(img, _fixed(a), _fixed(b), colour, -1, _AA, _SHIFT)
        elif kind == 1:
            _ellipse(img, a, rng.uniform(0.05, 0.3, 2) * size, rng.uniform(0, 180), colour)
        elif kind == 2:
            _polyline(img, [a, b], colour, rng.uniform(1, 0.06 * size))
        else:
            _fill(img, rng.uniform(-0.1, 1.1, (int(rng.integers(3, 6)), 2)) * size, colour)
    sigma = rng.uniform(0.8, 2.5) * size / 128.0
    return cv2.GaussianBlur(img, (0, 0), sigma)


#: Darkening of AU creases relative to the drawn depth; real creases are soft shading,
#: and dark line drawings make faces look less like faces to detectors.
CREASE_GAIN = 0.5


def _crease(skin, depth):
    """Skin colour of a crease of relative ``depth`` (0-1 times the crease's weight)."""
    return _shade(skin, 1.0 - CREASE_GAIN * depth)


def _strength(sides, au, side=None):
    """Wrinkle strength 0-1 of an AU (max of both sides unless ``side`` 0=R / 1=L)."""
    row = sides[AU_INDEX[au]]
    value = row.max() if side is None else row[side]
    return float(np.clip((value - 0.4) / 3.0, 0.0, 1.0))


def _draw_body(img, q, ident, frame):
    if ident.attributes["long_hair"]:
        _fill(img, np.concatenate([q[EXTRA["hair_outer"]], q[EXTRA["long_hair"]][::-1]]),
              ident.hair)
    _fill(img, q[EXTRA["shoulders"]], ident.clothes)
    _fill(img, q[EXTRA["neck"]], _shade(ident.skin, 0.8))
    for centre in q[EXTRA["ears"]]:
        _ellipse(img, centre, (0.11 * frame.u, 0.21 * frame.u), frame.angle,
                 _shade(ident.skin, 0.9))
    face = np.concatenate([q[0:17], q[EXTRA["forehead"]][::-1]])
    centre = frame.at(q[29], 0.0, -0.1)
    for shrink, light in ((1.0, 0.88), (0.9, 0.95), (0.74, 1.0)):
        _fill(img, centre + (face - centre) * shrink, _shade(ident.skin, light))
    _polyline(img, q[0:17], _shade(ident.skin, 0.78), 0.03 * frame.u)


#: Orbit shading, outer to inner: ((half-width, half-height) in face units, skin factor).
#: A dark band across the eyes is what MTCNN keys on (glasses alone cut its misses at
#: the 0.9 cut-off eightfold); one small 0.82 ellipse left 6 % of faces under 0.9.
SOCKET_LAYERS = (((0.42, 0.27), 0.82), ((0.36, 0.21), 0.68), ((0.3, 0.16), 0.55))


def _draw_eye_sockets(img, q, skin, frame):
    """Darker orbits, graded from the brow ridge to the lids: the eye region is darker than
    the cheeks and the nose bridge on real faces."""
    for idx in (slice(36, 42), slice(42, 48)):
        centre = frame.at(q[idx].mean(axis=0), 0.0, -0.05)
        for (ax, ay), light in SOCKET_LAYERS:
            _ellipse(img, centre, (ax * frame.u, ay * frame.u), frame.angle, _shade(skin, light))


def _draw_forehead_lines(img, q, sides, skin, frame):
    k = max(_strength(sides, 1), _strength(sides, 2))
    if k <= 0.05:
        return
    colour = _crease(skin, 0.3 * k)
    mid = (q[19] + q[24]) / 2
    for dy in (-0.14, -0.24):
        line = [frame.at(mid, dx, dy + 0.03 * abs(dx)) for dx in (-0.35, 0.0, 0.35)]
        _polyline(img, line, colour, 1)


def _draw_hair_cap(img, q, ident):
    if ident.attributes["bald"]:
        return
    _fill(img, np.concatenate([q[EXTRA["hair_outer"]], q[EXTRA["hairline"]][::-1]]),
          ident.hair)


def _draw_beard(img, q, ident, frame):
    colour = _mix(ident.hair, ident.skin, 0.65)
    if ident.attributes["beard"]:
        upper = [frame.at(q[13], -0.05, -0.05), frame.at(q[54], 0.1, -0.03),
                 frame.at(q[35], 0.02, 0.1), frame.at(q[33], 0.0, 0.08),
                 frame.at(q[31], -0.02, 0.1), frame.at(q[48], -0.1, -0.03),
                 frame.at(q[3], 0.05, -0.05)]
        _fill(img, np.concatenate([q[3:14], upper]), colour)
    if ident.attributes["mustache"]:
        top = [frame.at(q[i], 0.0, 0.035) for i in range(31, 36)]
        bottom = [frame.at(q[i], 0.0, -0.012) for i in range(54, 47, -1)]
        _fill(img, top + [frame.at(q[54], 0.04, 0.0)] + bottom + [frame.at(q[48], -0.04, 0.0)],
              _shade(colour, 0.8))


def _draw_nose(img, q, sides, skin, frame):
    shadow = _shade(skin, 0.78)
    bridge = [frame.at(q[i], 0.07, 0.0) for i in (27, 28, 29)] + [frame.at(q[30], 0.1, 0.03)]
    _polyline(img, bridge, _shade(skin, 0.86), 0.04 * frame.u)
    _polyline(img, [frame.at(q[i], -0.02, 0.0) for i in (27, 28, 29, 30)], _shade(skin, 1.08),
              0.03 * frame.u)
    _polyline(img, [q[31], frame.at(q[32], 0, 0.01), q[33], frame.at(q[34], 0, 0.01), q[35]],
              shadow, 0.025 * frame.u)
    for a, b in ((31, 32), (35, 34)):
        centre = 0.55 * q[a] + 0.45 * q[b]
        _ellipse(img, centre, (0.045 * frame.u, 0.022 * frame.u), frame.angle,
                 _shade(skin, 0.42))
    k = _strength(sides, 9)
    if k > 0.05:
        colour = _crease(skin, 0.35 * k)
        for i in (28, 29):
            _polyline(img, [frame.at(q[i], -0.08, 0), frame.at(q[i], 0.08, 0)], colour, 1)


def _draw_wrinkles(img, q, sides, skin, frame):
    """AU-driven lines: glabella (AU4), nasolabial folds (AU10/11/12), crow's feet and
    lower-lid bulge (AU6), dimples (AU14), marionette lines (AU15), chin (AU17)."""
    k = _strength(sides, 4)
    if k > 0.05:
        colour = _crease(skin, 0.4 * k)
        mid = (q[21] + q[22]) / 2
        for dx in (-0.05, 0.05):
            _polyline(img, [frame.at(mid, dx, -0.02), frame.at(mid, dx * 0.7, -0.14)], colour, 1)
    for side, sign, wing, corner, outer_eye in ((0, -1, 31, 48, 36), (1, 1, 35, 54, 45)):
        k = max(_strength(sides, 12, side), _strength(sides, 10), _strength(sides, 11),
                0.5 * _strength(sides, 9))
        if k > 0.05:
            fold = [frame.at(q[wing], sign * 0.07, -0.02), frame.at(q[wing], sign * 0.13, 0.1),
                    frame.at(q[corner], sign * 0.08, -0.02)]
            _polyline(img, fold, _crease(skin, 0.12 * k), 1)
        k = _strength(sides, 6)
        if k > 0.05:
            colour = _crease(skin, 0.25 * k)
            for dy in (-0.05, 0.0, 0.05):
                _polyline(img, [frame.at(q[outer_eye], sign * 0.05, dy * 0.5),
                                frame.at(q[outer_eye], sign * 0.11, dy * 1.3)], colour, 1)
            lid = [frame.at(q[i], 0, 0.06) for i in ((36, 41, 40, 39) if side == 0
                                                      else (42, 47, 46, 45))]
            _polyline(img, lid, colour, 1)
        k = _strength(sides, 14, side)
        if k > 0.05:
            _polyline(img, [frame.at(q[corner], sign * 0.07, -0.04),
                            frame.at(q[corner], sign * 0.08, 0.04)], _crease(skin, 0.4 * k), 1)
        k = _strength(sides, 15)
        if k > 0.05:
            _polyline(img, [frame.at(q[corner], sign * 0.03, 0.04),
                            frame.at(q[corner], sign * 0.06, 0.2)], _crease(skin, 0.35 * k), 1)
    k = _strength(sides, 17)
    if k > 0.05:
        centre = (q[57] + q[8]) / 2
        _polyline(img, [frame.at(centre, -0.12, 0.02), frame.at(centre, 0, -0.02),
                        frame.at(centre, 0.12, 0.02)], _crease(skin, 0.35 * k), 1)


def _draw_eye(img, q, idx, iris, skin, gaze, frame):
    """Sclera, iris and pupil clipped to the lid opening, then lashes and lower lid."""
    eye = q[list(idx)]
    corner_a, corner_b = eye[0], eye[3]
    half_w = np.linalg.norm(corner_b - corner_a) / 2
    h, w = img.shape[:2]
    x0, y0 = np.maximum(np.floor(eye.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(eye.max(axis=0)).astype(int) + 2, (w, h))
    opening = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    if x1 - x0 >= 2 and y1 - y0 >= 2 and opening > 0.3:
        roi = img[y0:y1, x0:x1]
        offset = np.array([x0, y0], np.float64)
        mask = np.zeros(roi.shape[:2], np.uint8)
        _fill(mask, eye - offset, 255)
        layer = np.empty_like(roi)
        layer[:] = _mix(_SCLERA, _shade(skin, 0.85), 0.35)
        radius = 0.6 * half_w
        centre = (corner_a + corner_b) / 2 - offset
        centre = centre + (gaze[0] * 0.5 * half_w * frame.ex + gaze[1] * 0.35 * half_w * frame.ey)
        _ellipse(layer, centre, (radius, radius), 0, iris)
        _ellipse(layer, centre, (0.45 * radius, 0.45 * radius), 0, (12.0, 10.0, 10.0))
        _ellipse(layer, centre - 0.35 * radius, (0.18 * radius, 0.18 * radius), 0,
                 (250.0, 250.0, 250.0))
        alpha = mask[..., None].astype(np.float32) / 255.0
        roi[:] = (roi * (1 - alpha) + layer * alpha).astype(np.uint8)
    _polyline(img, eye[[0, 1, 2, 3]], _LASH, 0.045 * frame.u + 0.4)
    _polyline(img, eye[[3, 4, 5, 0]], (90.0, 60.0, 55.0), 1)


def _draw_brows(img, q, ident, frame):
    colour = _mix(ident.hair, (35.0, 25.0, 20.0), 0.65)
    for brow in (q[17:22], q[22:27]):
        _polyline(img, brow, colour, ident.brow_thickness * frame.u)


def _draw_mouth(img, q, ident, frame):
    gap = float(np.linalg.norm(q[66] - q[62]))
    lips = ident.lips
    if gap > 0.04 * frame.u:
        _fill(img, q[60:68], _MOUTH)
        down = (q[66] - q[62]) / gap
        height = min(0.55 * gap, 0.08 * frame.u)
        top = [0.2 * q[62] + 0.8 * q[60], q[61], q[62], q[63], 0.2 * q[62] + 0.8 * q[64]]
        _fill(img, top + [p + down * height for p in top[::-1]], _TEETH)
        if gap > 0.16 * frame.u:
            bottom = [0.3 * q[66] + 0.7 * q[64], q[65], q[66], q[67], 0.3 * q[66] + 0.7 * q[60]]
            lift = min(0.25 * gap, 0.05 * frame.u)
            _fill(img, bottom + [p - down * lift for p in bottom[::-1]], _shade(_TEETH, 0.9))
    _fill(img, np.concatenate([q[48:55], q[60:65][::-1]]), _shade(lips, 0.92))
    _fill(img, np.concatenate([q[54:60], q[48:49], q[60:61], q[64:68][::-1]]), lips)
    _polyline(img, q[60:65], _shade(lips, 0.5), 1)


def _draw_glasses(img, q, frame):
    colour = (25.0, 25.0, 30.0)
    thickness = max(1, int(round(0.035 * frame.u)))
    for idx, ear in ((range(36, 42), 0), (range(42, 48), 16)):
        centre = q[list(idx)].mean(axis=0)
        _ellipse(img, frame.at(centre, 0, 0.01), (0.25 * frame.u, 0.17 * frame.u), frame.angle,
                 colour, thickness)
        side = -1 if ear == 0 else 1
        _polyline(img, [frame.at(centre, side * 0.25, -0.02), frame.at(q[ear], 0, -0.1)],
                  colour, thickness)
    left, right = q[36:42].mean(axis=0), q[42:48].mean(axis=0)
    _polyline(img, [frame.at(left, 0.25, -0.02), frame.at((left + right) / 2, 0, -0.05),
                    frame.at(right, -0.25, -0.02)], colour, thickness)


def _camera(img, scene, rng):
    """Light gradient and colour cast, blur, sensor noise and JPEG of the scene."""
    size = img.shape[0]
    coords = (np.arange(size, dtype=np.float32) - size / 2) / (size / 2)
    light = 1.0 + scene.light * (np.cos(scene.light_angle) * coords[None, :]
                                 + np.sin(scene.light_angle) * coords[:, None])
    out = img.astype(np.float32) * light[..., None] * np.asarray(scene.gains, np.float32)
    if scene.blur > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), scene.blur * size / 128.0)
    if scene.noise > 0:
        out += rng.standard_normal(out.shape, dtype=np.float32) * scene.noise
    out = np.clip(out, 0, 255).astype(np.uint8)
    if scene.jpeg is not None:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(scene.jpeg)])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out


def render_face(background, ident, points, sides, gaze, unit, scene, rng):
    """Draw one face on a copy of ``background`` and apply the scene's camera.

    ``points``: posed (N, 2) pixel coordinates (corner origin); ``sides``: (21, 2) AU
    intensities used for wrinkles; ``gaze``: iris offset; ``unit``: face unit in px.
    Returns a uint8 RGB image.
    """
    img = background.copy()
    q = points - 0.5
    frame = _Frame(q, unit)
    _draw_body(img, q, ident, frame)
    _draw_forehead_lines(img, q, sides, ident.skin, frame)
    _draw_hair_cap(img, q, ident)
    _draw_wrinkles(img, q, sides, ident.skin, frame)
    _draw_beard(img, q, ident, frame)
    _draw_eye_sockets(img, q, ident.skin, frame)
    _draw_nose(img, q, sides, ident.skin, frame)
    _draw_eye(img, q, range(36, 42), ident.iris, ident.skin, gaze, frame)
    _draw_eye(img, q, range(42, 48), ident.iris, ident.skin, gaze, frame)
    _draw_brows(img, q, ident, frame)
    _draw_mouth(img, q, ident, frame)
    if ident.attributes["eyeglasses"]:
        _draw_glasses(img, q, frame)
    return _camera(img, scene, rng)
