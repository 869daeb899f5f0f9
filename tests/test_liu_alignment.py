"""Liu et al. 2017 Sec. 5.1 alignment: the 49 points, the eye-line rotation, the 60x60
crop, and the MTCNN fallback; against geometry worked out in numpy."""

import cv2
import numpy as np
import pytest

from fermtl_tf.data import face
from fermtl_tf.knowledge.landmarks import LIU49
from tests.test_prep import read_records, run, write_dataset

ANGLE = 20.0  # degrees, the in-plane rotation of the hand-made face
SIZE, RATIO = 60, 0.2


def frontal_face():
    """A hand-made frontal 68-point face (iBUG order) in units of ~the eye distance."""
    jaw_t = np.linspace(np.pi, 0, 17)
    jaw = np.stack([np.cos(jaw_t), 0.1 + 1.1 * np.sin(jaw_t)], axis=1)
    brows = [[x, -0.55] for x in np.linspace(-0.8, -0.2, 5)]
    brows += [[x, -0.55] for x in np.linspace(0.2, 0.8, 5)]
    nose = [[0.0, y] for y in np.linspace(-0.4, 0.1, 4)]
    nose += [[x, 0.2] for x in np.linspace(-0.2, 0.2, 5)]
    hexagon = np.deg2rad([180, 120, 60, 0, -60, -120])
    eye = np.stack([0.15 * np.cos(hexagon), -0.08 * np.sin(hexagon)], axis=1)
    eyes = np.concatenate([eye + [-0.45, -0.3], eye + [0.45, -0.3]])
    outer_t = np.deg2rad(np.linspace(180, -150, 12))
    outer = np.stack([-0.4 * np.cos(outer_t), 0.6 + 0.15 * np.sin(outer_t)], axis=1)
    inner_t = np.deg2rad(np.linspace(180, -135, 8))
    inner = np.stack([-0.3 * np.cos(inner_t), 0.6 + 0.07 * np.sin(inner_t)], axis=1)
    return np.concatenate([jaw, brows, nose, eyes, outer, inner])


def posed(points, angle=ANGLE, scale=40.0, shift=(100.0, 90.0)):
    """``points`` rotated by ``angle`` degrees (clockwise on screen), scaled and shifted."""
    theta = np.deg2rad(angle)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return scale * points @ rotation.T + shift


def expected_crop_points(frontal, size=SIZE, ratio=RATIO):
    """Where the frontal face's points land in the aligned crop, from the frontal face
    alone: its 49 points' box, grown by 1 + ratio, longer side -> ``size``, centred."""
    region = frontal[list(LIU49)]
    low, high = region.min(0), region.max(0)
    side = (1 + ratio) * (high - low).max()
    return (frontal - (low + high) / 2) * size / side + size / 2


def test_the_49_points_drop_the_jaw_and_the_inner_mouth_corners():
    assert len(LIU49) == 49 and len(set(LIU49)) == 49
    assert sorted(set(range(68)) - set(LIU49)) == [*range(17), 60, 64]


def test_liu49_levels_the_eye_line_and_frames_the_49_points():
    frontal = frontal_face()
    landmarks = posed(frontal)
    matrix = face.liu49_matrix(landmarks, SIZE, RATIO)
    scale = np.sqrt(np.linalg.det(matrix[:, :2]))
    rotation_deg = np.rad2deg(np.arctan2(matrix[1, 0], matrix[0, 0]))
    assert rotation_deg == pytest.approx(-ANGLE, abs=1e-9)  # undoes the 20 deg pose
    np.testing.assert_allclose(face.map_landmarks(landmarks, matrix),
                               expected_crop_points(frontal), atol=1e-9)
    assert scale == pytest.approx(SIZE / (1 + RATIO) / (40 * 1.6), rel=1e-9)  # brows..lips


def test_liu49_ignores_the_jaw_and_the_inner_mouth_corners_only():
    landmarks = posed(frontal_face())
    matrix = face.liu49_matrix(landmarks, SIZE, RATIO)
    moved = landmarks.copy()
    moved[[0, 8, 16, 60, 64]] += [[-30, 5], [0, 60], [25, -4], [3, 9], [-3, 9]]
    np.testing.assert_allclose(face.liu49_matrix(moved, SIZE, RATIO), matrix, atol=1e-12)
    moved[57] += [0, 30]  # the outer lower lip is one of the 49
    assert not np.allclose(face.liu49_matrix(moved, SIZE, RATIO), matrix)


def blob_centres(image):
    """Intensity-weighted centroids of the bright blobs of a gray uint8 image, in our
    convention (pixel (i, j) centred at (j + 0.5, i + 0.5)), sorted by x."""
    count, labels = cv2.connectedComponents((image > 10).astype(np.uint8))
    rows, cols = np.indices(image.shape)
    centres = []
    for label in range(1, count):
        weight = np.where(labels == label, image.astype(np.float64), 0.0)
        centres.append([(weight * (cols + 0.5)).sum() / weight.sum(),
                        (weight * (rows + 0.5)).sum() / weight.sum()])
    return np.array(sorted(centres))


def test_the_crop_of_a_drawn_face_has_level_eyes_where_the_geometry_puts_them():
    frontal = frontal_face()
    landmarks = posed(frontal, scale=60.0, shift=(110.0, 100.0))
    eyes = np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0)])
    image = np.zeros((220, 220, 3), np.uint8)
    for x, y in [*eyes, landmarks[30]]:  # two eyes and the nose tip as white discs
        centre = (int(round((x - 0.5) * 16)), int(round((y - 0.5) * 16)))  # OpenCV: centres at i
        cv2.circle(image, centre, 5 * 16, (255,) * 3, -1, lineType=cv2.LINE_AA, shift=4)
    crop, _ = face.crop_and_resize(image, face.liu49_matrix(landmarks, SIZE, RATIO), SIZE)
    found = blob_centres(crop[..., 0])
    expected = expected_crop_points(frontal)
    want = np.array(sorted([expected[36:42].mean(0), expected[42:48].mean(0), expected[30]],
                           key=lambda p: p[0]))
    np.testing.assert_allclose(found, want, atol=0.1)
    assert abs(found[0, 1] - found[2, 1]) < 0.1  # the eyes share a row


def test_the_fallback_levels_mtcnn_eyes_and_centres_the_square_face_box():
    eyes = posed(np.array([[-0.45, -0.3], [0.45, -0.3]]))
    box = np.array([60.0, 40.0, 150.0, 150.0])  # 90 wide, 110 high
    matrix = face.eye_line_box_matrix(eyes, box, SIZE, RATIO)
    mapped_eyes = face.map_landmarks(eyes, matrix)
    assert mapped_eyes[0, 1] == pytest.approx(mapped_eyes[1, 1], abs=1e-9)
    assert mapped_eyes[0, 0] < mapped_eyes[1, 0]
    centre = face.map_landmarks([[105.0, 95.0]], matrix)[0]
    np.testing.assert_allclose(centre, [SIZE / 2, SIZE / 2], atol=1e-9)
    assert np.sqrt(np.linalg.det(matrix[:, :2])) == pytest.approx(SIZE / (1.2 * 110))


def test_prep_align_liu49_writes_60px_crops_with_level_eyes(tmp_path):
    frontal = frontal_face()
    csv_path, _ = write_dataset(tmp_path, [{"landmarks": posed(frontal)}], shape=(180, 200))
    assert run(csv_path, tmp_path / "out", "--align", "liu49", "--size", "60") == 0
    manifest, (record,) = read_records(tmp_path / "out")
    assert manifest["crops"] == {"annotation+liu49": 1}
    assert manifest["options"]["align"] == "liu49" and manifest["image_size"] == [60, 60]
    stored = record["landmarks"].reshape(68, 2)
    np.testing.assert_allclose(stored, expected_crop_points(frontal), atol=2e-3)  # CSV: 3 dp


def test_prep_refuses_an_unknown_alignment(tmp_path, capsys):
    csv_path, _ = write_dataset(tmp_path, [{}])
    with pytest.raises(SystemExit):
        run(csv_path, tmp_path / "out", "--align", "liu68")
    assert "liu49" in capsys.readouterr().err
