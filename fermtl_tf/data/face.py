"""Face detection, box geometry, 5-point and 49-point (eye-line) alignment and cropping.

Coordinates
-----------
All points and boxes are continuous pixel coordinates with the origin at the top-left
*corner* of the top-left pixel (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``), the
convention of :mod:`fermtl_tf.data.schema`. Boxes are ``(x0, y0, x1, y1)`` floats.
A crop is described by a 2x3 affine ``matrix`` mapping original-image points to crop
points, so :func:`map_landmarks` puts the landmarks on the same facial points in the crop.

Detection
---------
MTCNN (Zhang et al. 2016) through the ``mtcnn`` 1.0.0 package. That package unpickles
its weight files with joblib and looks for ``pnet.lz4`` etc. in the *current directory*
before its bundled copies, so a stray file there would be unpickled (arbitrary code).
:func:`build_detector` therefore passes the bundled files by absolute path.
"""

import functools
import importlib.resources
from dataclasses import dataclass

import cv2
import numpy as np

from fermtl_tf.knowledge.landmarks import LIU49, five_points

#: The published 5-point template of the 112x112 ArcFace crop (Deng et al. 2019), divided
#: by 112: image-left eye, image-right eye, nose tip, image-left and image-right mouth
#: corner; the same order as MTCNN keypoints and ``knowledge.landmarks.five_points``.
ALIGNMENT_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
) / 112.0

#: Border mode for crop pixels outside the image: constant black (documented in README).
BORDER_VALUE = 0

_WEIGHT_FILES = ("pnet.lz4", "rnet.lz4", "onet.lz4")


@dataclass(frozen=True)
class Detection:
    """One detected face: ``box`` (x0, y0, x1, y1), ``confidence``, ``keypoints`` (5, 2)."""

    box: np.ndarray
    confidence: float
    keypoints: np.ndarray


def bundled_weight_paths():
    """Absolute paths of the weight files shipped inside the ``mtcnn`` package."""
    folder = importlib.resources.files("mtcnn.assets.weights")
    return tuple(str(folder / name) for name in _WEIGHT_FILES)


@functools.cache
def build_detector(device="CPU:0"):
    """An ``mtcnn.MTCNN`` whose three stages load the bundled weights by absolute path.

    Cached: building the three networks takes about a second.
    """
    from mtcnn import MTCNN
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    pnet, rnet, onet = bundled_weight_paths()
    stages = [StagePNet(weights=pnet), StageRNet(weights=rnet), StageONet(weights=onet)]
    return MTCNN(stages=stages, device=device)


def _parse_mtcnn_rows(rows, count):
    """Split mtcnn's numpy output (image id, x0, y0, x1, y1, conf, 5 x's, 5 y's) per image."""
    per_image = [[] for _ in range(count)]
    for row in np.asarray(rows, dtype=np.float64).reshape(-1, 16):
        keypoints = np.stack([row[6:11], row[11:16]], axis=1)
        per_image[int(row[0])].append(Detection(row[1:5].copy(), float(row[5]), keypoints))
    return per_image


def detection_copy(image, max_side):
    """``(copy, (sx, sy))``: ``image`` area-averaged so its longer side is at most
    ``max_side`` (``0``: unchanged), and the factors that took it there.

    MTCNN's cost grows with the pixels of its first pyramid level; on a 1920x1080 frame
    at full resolution it is seconds, on a 640-px copy a tenth of that, and faces big
    enough to crop for expression recognition are still 20 px or more there.
    """
    height, width = image.shape[:2]
    longer = max(height, width)
    if not max_side or longer <= max_side:
        return image, (1.0, 1.0)
    new_w = max(1, round(width * max_side / longer))
    new_h = max(1, round(height * max_side / longer))
    copy = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return copy, (new_w / width, new_h / height)


def _scaled(detection, sx, sy):
    """``detection`` found on a copy scaled by (sx, sy), in the original's coordinates."""
    box = detection.box / np.array([sx, sy, sx, sy])
    return Detection(box, detection.confidence, detection.keypoints / np.array([sx, sy]))


def detect_faces(images, min_confidence=0.9, batch_size=16, detector=None, max_side=0):
    """Detect faces in a list of RGB uint8 images with MTCNN, in batches.

    With ``max_side``, each image is searched on its :func:`detection_copy` and the
    detections are mapped back to the image's own coordinates. Images (copies) of
    equal shape are grouped and sent ``batch_size`` at a time, so mtcnn stacks them
    without padding. ``batch_size=1`` is the per-image loop (the throughput baseline in
    ``benchmarks/prep_throughput.py``).

    Returns one list of :class:`Detection` per image (those with confidence
    ``>= min_confidence``), in the input order.
    """
    detector = detector or build_detector()
    copies = [detection_copy(np.asarray(image), max_side) for image in images]
    images = [copy for copy, _ in copies]
    results = [[] for _ in images]
    by_shape = {}
    for index, image in enumerate(images):
        by_shape.setdefault(np.shape(image), []).append(index)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = [np.asarray(images[i], dtype=np.float32) for i in chunk]
            rows = detector.detect_faces(batch, output_type="numpy", box_format="xyxy")
            for i, found in zip(chunk, _parse_mtcnn_rows(rows, len(chunk)), strict=True):
                sx, sy = copies[i][1]
                results[i] = [_scaled(d, sx, sy) for d in found if d.confidence >= min_confidence]
    return results


def box_centre(box):
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    return np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])


def choose_face(detections, image_shape, centre_weight=1.0):
    """Pick the largest face nearest the image centre, or ``None`` if there is none.

    Score = ``sqrt(area) - centre_weight * distance(box centre, image centre)``. Both
    terms are lengths in pixels, so the choice does not depend on image resolution: a
    face wins over a smaller one unless it lies farther from the centre by more than
    the difference of their (geometric-mean) side lengths. Ties keep the first.
    """
    if not detections:
        return None
    height, width = image_shape[:2]
    centre = np.array([width / 2.0, height / 2.0])

    def score(detection):
        x0, y0, x1, y1 = detection.box
        area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
        distance = np.linalg.norm(box_centre(detection.box) - centre)
        return np.sqrt(area) - centre_weight * distance

    return max(detections, key=score)


def box_iou(a, b):
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 when they do not meet)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def match_face(detections, reference, min_iou=0.3):
    """The detection overlapping the annotated face ``reference`` best, or ``None``.

    ``reference`` is the annotation's box (e.g. the tight box of its landmarks). In a
    photo with several people the annotated face is the one to crop, not the largest
    or most central one (issue 13, item 1); a detection with IoU below ``min_iou`` is
    another face. Ties keep the first.
    """
    best, best_iou = None, 0.0
    for detection in detections:
        overlap = box_iou(detection.box, reference)
        if overlap >= min_iou and overlap > best_iou:
            best, best_iou = detection, overlap
    return best


def tight_box(points):
    """The smallest box (x0, y0, x1, y1) holding the (N, 2) points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def extend_box(box, ratio=0.2):
    """Scale a box about its centre by ``1 + ratio`` in width and height.

    Hu et al. (2018), Sec. 4 "Facial Landmarks": "The detected bounding boxes are
    extended with a scale ratio of 0.2, aiming to cover the whole face area". We read
    this as each side length multiplied by 1.2 (0.1 added on every side).
    """
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    half_w, half_h = (x1 - x0) * (1 + ratio) / 2.0, (y1 - y0) * (1 + ratio) / 2.0
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])


def square_box(box):
    """The square with the box's centre and its longer side, so resizing keeps aspect."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    half = max(x1 - x0, y1 - y0) / 2.0
    return np.array([cx - half, cy - half, cx + half, cy + half])


def centre_square(image_shape, ratio=0.2):
    """The image's centred square of its shorter side, shrunk by ``1 / (1 + ratio)`` so
    that :func:`extend_box` brings it back to that side: the crop of a frame where no
    face was detected (``--undetected centre``), without black borders."""
    height, width = image_shape[:2]
    half = min(height, width) / 2.0 / (1.0 + ratio)
    cx, cy = width / 2.0, height / 2.0
    return np.array([cx - half, cy - half, cx + half, cy + half])


def box_from_landmarks(landmarks, ratio=0.2):
    """Tight box around the (N, 2) landmarks, extended by ``ratio`` (see :func:`extend_box`)."""
    return extend_box(tight_box(landmarks), ratio)


def similarity_transform(src, dst):
    """Least-squares similarity (rotation, uniform scale, translation) taking src to dst.

    Umeyama (1991), "Least-squares estimation of transformation parameters between two
    point patterns", Eqs. (34)-(42), in 2-D without reflection. Returns the 2x3 matrix
    ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    mean_src, mean_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mean_src, dst - mean_dst
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    variance_src = (src_c**2).sum() / len(src)
    scale = np.trace(np.diag(singular) @ sign) / variance_src
    translation = mean_dst - scale * rotation @ mean_src
    return np.hstack([scale * rotation, translation[:, None]])


def box_to_matrix(box, size):
    """Affine matrix mapping ``box`` onto a ``size`` x ``size`` crop."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    return np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy]])


def alignment_matrix(keypoints, size, ratio=0.2):
    """Similarity matrix taking five keypoints onto the template, with margin ``ratio``.

    The template (:data:`ALIGNMENT_TEMPLATE`) is shrunk about the crop centre by
    ``1 / (1 + ratio)``, so the box-extension ratio widens aligned crops the same way it
    widens box crops; ``ratio=0`` gives the published 112x112 ArcFace framing.
    """
    template = 0.5 + (ALIGNMENT_TEMPLATE - 0.5) / (1.0 + ratio)
    return similarity_transform(keypoints, template * size)


def eye_line_rotation(eyes):
    """2x3 matrix rotating the image about the eyes' midpoint so the eye line is level.

    ``eyes`` (2, 2): the image-left and the image-right eye centre. The in-plane angle
    is ``theta = atan2(dy, dx)`` of the line from the first to the second; points are
    rotated by ``-theta`` (Liu et al. 2017 Sec. 5.1: "face alignment is done to reduce
    in-plane rotation").
    """
    left, right = np.asarray(eyes, dtype=np.float64).reshape(2, 2)
    theta = np.arctan2(right[1] - left[1], right[0] - left[0])
    cos, sin = np.cos(theta), np.sin(theta)
    rotation = np.array([[cos, sin], [-sin, cos]])
    middle = (left + right) / 2.0
    return np.hstack([rotation, (middle - rotation @ middle)[:, None]])


def liu49_matrix(landmarks, size, ratio=0.2):
    """Liu et al. (2017, Sec. 5.1) alignment from 68-point landmarks: eye-line rotation,
    then the square around the 49 IntraFace points
    (:data:`~fermtl_tf.knowledge.landmarks.LIU49`), extended by ``ratio``, onto a
    ``size`` x ``size`` crop (60 in the paper).

    The eye centres are the means of points 36-41 and 42-47. The crop is the tight box
    of the *rotated* 49 points, scaled by ``1 + ratio`` (:func:`extend_box`) and made
    square with its longer side (:func:`square_box`); the paper gives no margin.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    rotation = eye_line_rotation(five_points(landmarks)[:2])
    region = tight_box(map_landmarks(landmarks[list(LIU49)], rotation))
    return _compose(box_to_matrix(square_box(extend_box(region, ratio)), size), rotation)


def eye_line_box_matrix(eyes, box, size, ratio=0.2):
    """The fallback of :func:`liu49_matrix` without landmarks: eye-line rotation from two
    eye points (MTCNN's first two keypoints), then the face ``box`` (a detection) carried
    into the rotated frame -- same width and height, centre rotated with the image --
    extended by ``ratio`` and squared, onto a ``size`` x ``size`` crop.

    The detection box reaches from forehead to chin, beyond the 49 points' box (brows to
    lower lip), so the face fills less of the crop than with landmarks.
    """
    rotation = eye_line_rotation(eyes)
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    centre = map_landmarks(box_centre(box), rotation)[0]
    half = np.array([x1 - x0, y1 - y0]) / 2.0
    rotated = np.concatenate([centre - half, centre + half])
    return _compose(box_to_matrix(square_box(extend_box(rotated, ratio)), size), rotation)


def _compose(outer, inner):
    """2x3 matrix of ``outer(inner(p))``."""
    full = np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]])
    return full[:2]


def _prefilter(image, matrix):
    """Shrink the image first when the crop downsamples by 2x or more, to avoid aliasing.

    Bilinear warping samples only 4 source pixels per output pixel; area averaging
    by an integer factor first keeps fine texture (wrinkles) from turning into noise.
    Returns the (possibly) shrunk image and the matrix adjusted to it.
    """
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    factor = int(np.floor(1.0 / scale)) if scale > 0 else 1
    if factor < 2:
        return image, matrix
    height, width = image.shape[:2]
    new_w, new_h = max(1, round(width / factor)), max(1, round(height / factor))
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    shrink = np.array([[width / new_w, 0.0, 0.0], [0.0, height / new_h, 0.0]])
    return small, _compose(matrix, shrink)


def crop_and_resize(image, box_or_matrix, size):
    """Crop a ``size`` x ``size`` face and return ``(crop, matrix)``.

    ``box_or_matrix`` is a box (x0, y0, x1, y1) or a 2x3 affine matrix (from
    :func:`alignment_matrix`). Parts of the crop outside the image are filled with
    black (constant border, :data:`BORDER_VALUE`). ``matrix`` maps original-image
    points to crop points (use :func:`map_landmarks`).
    """
    given = np.asarray(box_or_matrix, dtype=np.float64)
    matrix = box_to_matrix(given, size) if given.shape == (4,) else given.reshape(2, 3)
    source, warp = _prefilter(image, matrix)
    # OpenCV puts pixel centres at integers; our points put them at +0.5.
    to_centres = warp.copy()
    to_centres[:, 2] += warp[:, :2] @ np.array([0.5, 0.5]) - 0.5
    crop = cv2.warpAffine(
        source,
        to_centres,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(BORDER_VALUE,) * 3,
    )
    return crop, matrix


def map_landmarks(landmarks, matrix):
    """Apply the 2x3 crop ``matrix`` to (N, 2) points."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]
