"""Face geometry (hand-worked boxes, Umeyama, crop/landmark consistency) and MTCNN loading."""

import os
import pickle

import numpy as np
import pytest

from fermtl_tf.data import face


def test_extend_box_scales_each_side_about_the_centre():
    # width 40 -> 48, height 80 -> 96, centre (30, 60) kept
    np.testing.assert_allclose(face.extend_box((10, 20, 50, 100), 0.2), [6, 12, 54, 108])


def test_square_box_takes_the_longer_side():
    np.testing.assert_allclose(face.square_box((0, 0, 10, 20)), [-5, 0, 15, 20])


def test_box_from_landmarks_is_the_extended_tight_box():
    points = np.array([[10.0, 30.0], [50.0, 20.0], [30.0, 60.0]])
    # tight (10, 20, 50, 60): 40 x 40 about (30, 40); ratio 0.5 -> 60 x 60
    np.testing.assert_allclose(face.box_from_landmarks(points, 0.5), [0, 10, 60, 70])


def _detection(box):
    return face.Detection(np.asarray(box, float), 0.99, np.zeros((5, 2)))


def test_box_iou_by_hand():
    # overlap 5 x 10 = 50; areas 100 and 100 -> 50 / 150
    assert face.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert face.box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert face.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0


def test_match_face_takes_the_annotated_face_not_the_largest_one():
    # a large central bystander and the small annotated face at the right edge
    bystander, annotated = _detection((30, 30, 70, 70)), _detection((80, 40, 98, 58))
    reference = (82, 43, 97, 59)  # tight landmark box of the annotated face
    assert face.choose_face([bystander, annotated], (100, 100, 3)) is bystander
    assert face.match_face([bystander, annotated], reference) is annotated


def test_match_face_returns_none_below_the_iou_threshold():
    # IoU of (0,0,10,10) with (5,0,15,10) is 1/3
    detection = _detection((5, 0, 15, 10))
    assert face.match_face([detection], (0, 0, 10, 10), min_iou=0.3) is detection
    assert face.match_face([detection], (0, 0, 10, 10), min_iou=0.34) is None
    assert face.match_face([], (0, 0, 10, 10)) is None


def test_choose_face_prefers_a_centred_face_over_a_larger_offset_one():
    # 100 x 100 image, centre (50, 50).
    # big corner face: side 40, centre (20, 20), distance 42.43 -> score -2.43
    # small centred face: side 10, distance 0 -> score 10
    corner, small = _detection((0, 0, 40, 40)), _detection((45, 45, 55, 55))
    assert face.choose_face([corner, small], (100, 100, 3)) is small


def test_choose_face_prefers_the_larger_of_two_centred_faces():
    # side 40 at distance 0 (score 40) beats side 10 at distance 0 (score 10)
    small, large = _detection((45, 45, 55, 55)), _detection((30, 30, 70, 70))
    assert face.choose_face([small, large], (100, 100, 3)) is large


def test_choose_face_returns_none_without_detections():
    assert face.choose_face([], (100, 100, 3)) is None


def test_similarity_transform_recovers_rotation_scale_translation():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = np.deg2rad(30.0), 1.7, np.array([5.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rotation.T + shift
    expected = np.hstack([scale * rotation, shift[:, None]])
    np.testing.assert_allclose(face.similarity_transform(src, dst), expected, atol=1e-9)


def _blob_image(points, shape, sigma=2.0):
    """Gaussian blobs centred on ``points`` (pixel centres at +0.5), one per channel set."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    image = np.zeros(shape[:2])
    for x, y in points:
        image += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.repeat((255 * np.clip(image, 0, 1)).astype(np.uint8)[..., None], 3, axis=2)


def _centroid(crop, point, radius):
    """Intensity centroid of the crop in a window around ``point`` (pixel centres at +0.5)."""
    x0, y0 = (int(np.floor(v)) - radius for v in point)
    window = crop[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1, 0].astype(float)
    ys, xs = np.mgrid[0 : window.shape[0], 0 : window.shape[1]] + 0.5
    total = window.sum()
    return np.array([(window * xs).sum() / total + x0, (window * ys).sum() / total + y0])


POINTS = np.array([[60.3, 70.7], [100.5, 65.2], [80.0, 95.5], [70.8, 120.1], [95.2, 118.9]])


@pytest.mark.parametrize(
    "zoom, shape, geometry, sigma",
    [
        (1, (200, 180, 3), (40, 40, 140, 140), 2.0),  # upscale by 1.28
        (4, (600, 560, 3), (30, 50, 542, 562), 8.0),  # downscale by 4: area pre-filter path
    ],
)
def test_box_crop_puts_mapped_landmarks_on_the_drawn_dots(zoom, shape, geometry, sigma):
    points = POINTS * zoom
    image = _blob_image(points, shape, sigma)
    crop, matrix = face.crop_and_resize(image, geometry, 128)
    mapped = face.map_landmarks(points, matrix)
    radius = max(4, int(3 * sigma * matrix[0, 0]))
    for point in mapped:
        np.testing.assert_allclose(_centroid(crop, point, radius), point, atol=0.35)


def test_aligned_crop_puts_mapped_landmarks_on_the_drawn_dots():
    image = _blob_image(POINTS, (200, 180, 3), sigma=2.0)
    matrix = face.alignment_matrix(POINTS, 128, ratio=0.2)
    assert abs(matrix[0, 1]) > 0.05  # the template alignment really rotates here
    crop, used = face.crop_and_resize(image, matrix, 128)
    for point in face.map_landmarks(POINTS, used):
        np.testing.assert_allclose(_centroid(crop, point, 6), point, atol=0.35)


def test_box_outside_the_image_is_padded_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop, _ = face.crop_and_resize(image, (-50, 0, 50, 100), 100)  # left half outside
    assert crop[:, :49].max() == face.BORDER_VALUE
    assert crop[:, 51:].min() == 200


def test_bundled_weight_paths_are_absolute_files_inside_mtcnn():
    import mtcnn

    package = os.path.dirname(mtcnn.__file__)
    for path in face.bundled_weight_paths():
        assert os.path.isabs(path) and os.path.isfile(path)
        assert os.path.commonpath([path, package]) == package


class _Trap:
    """Unpickling this creates the directory ``marker`` (stands for arbitrary code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_detector_never_unpickles_weight_files_in_the_working_directory(tmp_path, monkeypatch):
    import joblib
    from mtcnn.utils import tensorflow as mtcnn_tf

    marker = tmp_path / "unpickled"
    for name in ("pnet.lz4", "rnet.lz4", "onet.lz4"):
        (tmp_path / name).write_bytes(pickle.dumps(_Trap(str(marker))))
    monkeypatch.chdir(tmp_path)
    opened = []
    real_load = joblib.load
    def recording_load(path, *args, **kwargs):
        opened.append(str(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(mtcnn_tf.joblib, "load", recording_load)

    detector = face.build_detector.__wrapped__()
    found = face.detect_faces([np.zeros((64, 64, 3), np.uint8)], detector=detector)

    assert found == [[]]
    assert not marker.exists()
    assert sorted(opened) == sorted(face.bundled_weight_paths())
    # the trap is real: mtcnn's own default lookup would have unpickled it
    mtcnn_tf.load_weights("pnet.lz4")
    assert marker.exists()


class _RecordingDetector:
    """Stands in for mtcnn: records the batch shapes and 'finds' one face per image at
    (10, 5, 30, 25) with keypoints at (12, 7) ... in the coordinates it was given."""

    def __init__(self):
        self.shapes = []

    def detect_faces(self, batch, output_type, box_format):
        assert (output_type, box_format) == ("numpy", "xyxy")
        self.shapes += [image.shape for image in batch]
        rows = [[i, 10, 5, 30, 25, 0.99, *([12.0] * 5), *([7.0] * 5)] for i in range(len(batch))]
        return np.array(rows)


def test_detection_copy_caps_the_longer_side_and_keeps_small_images():
    image = np.zeros((200, 400, 3), np.uint8)
    copy, scale = face.detection_copy(image, 100)
    assert copy.shape == (50, 100, 3) and scale == (0.25, 0.25)
    same, scale = face.detection_copy(image, 400)
    assert same is image and scale == (1.0, 1.0)
    assert face.detection_copy(image, 0)[0] is image


def test_detections_on_the_copy_are_mapped_back_to_the_full_image():
    detector = _RecordingDetector()
    images = [np.zeros((200, 400, 3), np.uint8), np.zeros((60, 80, 3), np.uint8)]
    large, small = face.detect_faces(images, detector=detector, max_side=100)
    assert sorted(detector.shapes) == [(50, 100, 3), (60, 80, 3)]
    # the 400-px image was searched at 1/4 size: coordinates times 4
    np.testing.assert_allclose(large[0].box, [40, 20, 120, 100])
    np.testing.assert_allclose(large[0].keypoints, [[48, 28]] * 5)
    np.testing.assert_allclose(small[0].box, [10, 5, 30, 25])  # small enough: unchanged
