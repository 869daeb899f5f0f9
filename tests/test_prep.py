"""fermtl-prep: manifest CSV import, skips with reasons, clear errors, protocols, resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import protocols, tfrecord
from fermtl_tf.data.prepare import PrepOptions
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import PrepError, get_source, list_sources
from fermtl_tf.knowledge.vocabularies import BASIC7

LANDMARK_COLUMNS = [f"{axis}{i}" for i in range(68) for axis in "xy"]


def _landmarks(rng, shape):
    height, width = shape
    centre = rng.uniform([0.4 * width, 0.4 * height], [0.6 * width, 0.6 * height])
    return centre + rng.uniform(-0.25, 0.25, size=(68, 2)) * [width, height]


def write_dataset(folder, rows, shape=(90, 100), seed=0):
    """Noise images + a manifest CSV; ``rows`` are dicts of extra cells per image.

    Every row gets random landmarks unless it sets ``"landmarks": None``.
    Returns (csv path, list of landmark arrays or None).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(folder / "images", exist_ok=True)
    table, all_landmarks = [], []
    for i, extra in enumerate(rows):
        extra = dict(extra)
        name = f"images/{i:03d}.png"
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (*shape, 3), dtype=np.uint8))
        points = extra.pop("landmarks", _landmarks(rng, shape))
        row = {"image_path": name, **extra}
        if points is not None:
            cells = [f"{v:.3f}" for v in np.ravel(points)]  # fewer than 136 on purpose too
            row.update(zip(LANDMARK_COLUMNS[: len(cells)], cells, strict=True))
        table.append(row)
        all_landmarks.append(None if points is None else np.round(points, 3))
    header = list(dict.fromkeys(key for row in table for key in row))
    path = folder / "labels.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(table)
    return path, all_landmarks


def run(csv_path, out, *extra):
    return main(["manifest", "--csv", str(csv_path), "--out", str(out), "--quiet",
                 "--crop-from", "landmarks", "--size", "64", *extra])


def read_records(out):
    manifest = tfrecord.read_manifest(out)
    sizes = manifest["num_aus"], manifest["num_attributes"]
    return manifest, [
        {k: v.numpy() for k, v in decode_example(r, *sizes).items()}
        for r in tfrecord.iter_records(out)
    ]


def test_landmarks_land_in_crop_pixels_of_the_extended_square_box(tmp_path):
    csv_path, landmarks = write_dataset(tmp_path, [{}, {}])
    assert run(csv_path, tmp_path / "out") == 0
    _, records = read_records(tmp_path / "out")
    for points, record in zip(landmarks, records, strict=True):
        # independent: tight box, side = 1.2 * longer side, same centre, scaled to 64
        low, high = points.min(0), points.max(0)
        side = 1.2 * (high - low).max()
        corner = (low + high) / 2 - side / 2
        expected = (points - corner) * 64 / side
        np.testing.assert_allclose(record["landmarks"].reshape(68, 2), expected, atol=1e-3)
        assert record["landmarks_mask"] == 1


def test_labels_are_mapped_and_missing_cells_are_masked(tmp_path):
    rows = [
        {"identity": "bob", "expression": "happiness", "AU12": "1", "AU12_intensity": "3",
         "AU4": "", "valence": "0.5", "arousal": "-0.25", "attr_glasses": "1", "split": "train",
         "domain": "lab"},
        {"identity": "alice", "expression": "", "AU12": "0", "AU12_intensity": "",
         "AU4": "1", "valence": "", "arousal": "", "attr_glasses": "", "split": "test",
         "domain": ""},
    ]
    csv_path, _ = write_dataset(tmp_path, rows)
    assert run(csv_path, tmp_path / "out") == 0
    manifest, (bob, alice) = read_records(tmp_path / "out")
    assert manifest["identities"] == {"alice": 0, "bob": 1}
    assert manifest["domains"] == ["lab", "manifest"]
    assert manifest["au_names"] == ["AU12", "AU4"]
    assert manifest["attribute_names"] == ["glasses"]
    assert (bob["identity"], bob["domain"], bob["split"]) == (1, 0, b"train")
    assert bob["expression"] == BASIC7.index("happiness") and bob["expression_mask"] == 1
    np.testing.assert_array_equal(bob["au"], [1, 0])
    np.testing.assert_array_equal(bob["au_intensity"], [3, 0])
    np.testing.assert_array_equal(bob["au_mask"], [1, 0])
    assert (bob["valence"], bob["arousal"], bob["va_mask"]) == (0.5, -0.25, 1)
    np.testing.assert_array_equal(bob["attributes_mask"], [1])
    assert (alice["identity"], alice["domain"]) == (0, 1)
    assert alice["expression_mask"] == 0 and alice["va_mask"] == 0
    np.testing.assert_array_equal(alice["au"], [0, 1])
    np.testing.assert_array_equal(alice["au_mask"], [1, 1])
    np.testing.assert_array_equal(alice["attributes_mask"], [0])


def test_bad_inputs_are_skipped_with_reasons_and_counted(tmp_path):
    rows = [{}, {"expression": "joy"}, {}, {}, {}, {"landmarks": np.zeros((5, 2))}]
    csv_path, _ = write_dataset(tmp_path, rows)
    images = tmp_path / "images"
    (images / "002.png").write_bytes(b"this is not a png")  # corrupt
    data = (images / "003.png").read_bytes()
    (images / "003.png").write_bytes(data[: len(data) // 2])  # truncated
    os.remove(images / "004.png")  # missing
    # row 6 lists only 5 landmark points: the other 126 cells are empty
    assert run(csv_path, tmp_path / "out") == 0
    manifest = tfrecord.read_manifest(tmp_path / "out")
    reasons = {s["where"]: s["reason"] for s in manifest["skipped"]}
    assert manifest["counts"] == {"rows": 6, "not_selected": 0, "inputs": 6,
                                  "written": 1, "skipped": 5}
    assert "'joy' is not in vocabulary basic7" in reasons["labels.csv line 3 (images/001.png)"]
    assert "cannot decode image" in reasons["labels.csv line 4 (images/002.png)"]
    assert "truncated" in reasons["labels.csv line 5 (images/003.png)"]
    assert "not found" in reasons["labels.csv line 6 (images/004.png)"]
    assert "10 of 136 coordinate cells" in reasons["labels.csv line 7 (images/005.png)"]


def test_landmark_count_other_than_68_in_pts_file_is_a_skip(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{"landmarks": None, "pts_path": "a.pts"}])
    (tmp_path / "a.pts").write_text("version: 1\nn_points: 3\n{\n1 2\n3 4\n5 6\n}\n")
    assert run(csv_path, tmp_path / "out") == 0
    (skip,) = tfrecord.read_manifest(tmp_path / "out")["skipped"]
    assert skip["reason"] == "landmark file a.pts has 3 points, expected 68"


def test_strict_turns_the_first_skip_into_an_error(tmp_path, capsys):
    csv_path, _ = write_dataset(tmp_path, [{}, {"expression": "joy"}])
    assert run(csv_path, tmp_path / "out", "--strict") == 2
    message = capsys.readouterr().err
    assert message.startswith(
        "fermtl-prep: error: labels.csv line 3 (images/001.png): expression 'joy'")


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file"),
        ("", "empty file"),
        ("image_path,expression\n", "no input rows"),
        ("path,expression\na.png,happiness\n", "no 'image_path' column"),
        ("image_path,x0,y0,x1,y1\na.png,1,2,3,4\n", "landmark columns cover 2 points"),
    ],
)
def test_malformed_csv_gives_one_line_naming_the_file(tmp_path, capsys, content, expected):
    if content is not None:
        (tmp_path / "bad.csv").write_text(content)
    assert run(tmp_path / "bad.csv", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("fermtl-prep: error: ") and "bad.csv" in err and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_output_folder_with_another_dataset_is_refused_unless_overwrite(tmp_path, capsys):
    csv_path, _ = write_dataset(tmp_path, [{}, {}])
    assert run(csv_path, tmp_path / "out") == 0
    assert run(csv_path, tmp_path / "out", "--size", "32") == 2
    assert "holds a different dataset" in capsys.readouterr().err
    assert run(csv_path, tmp_path / "out", "--size", "32", "--overwrite") == 0
    assert tfrecord.read_manifest(tmp_path / "out")["image_size"] == [32, 32]


def test_rerunning_a_finished_command_keeps_every_byte(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{}, {}, {}])
    out = tmp_path / "out"
    assert run(csv_path, out, "--records-per-shard", "2") == 0
    before = {p: (out / p).read_bytes() for p in sorted(os.listdir(out))}
    assert run(csv_path, out, "--records-per-shard", "2") == 0
    assert {p: (out / p).read_bytes() for p in sorted(os.listdir(out))} == before


def test_rerun_rewrites_a_damaged_shard_to_the_same_bytes(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{}, {}, {}])
    out = tmp_path / "out"
    assert run(csv_path, out, "--records-per-shard", "2") == 0
    before = {p: (out / p).read_bytes() for p in sorted(os.listdir(out))}
    shard = out / "shard-00001-of-00002.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-5])
    assert run(csv_path, out, "--records-per-shard", "2") == 0
    assert {p: (out / p).read_bytes() for p in sorted(os.listdir(out))} == before


@pytest.mark.parametrize(
    "options, key",
    [({"sizes": 64}, "'sizes'"), ({"size": "64"}, "'size'"), ({"align": 1}, "'align'")],
)
def test_prep_options_refuse_unknown_keys_and_wrong_types(options, key):
    with pytest.raises(PrepError, match=key):
        PrepOptions.from_dict(options, origin="prep.yaml")


def test_registry_lists_builtin_sources_and_rejects_unknown_names(capsys):
    names = [name for name, _ in list_sources()]
    assert {"manifest", "synthface"} <= set(names) and names == sorted(names)
    with pytest.raises(PrepError, match="unknown source 'affectnet9'"):
        get_source("affectnet9")
    assert main(["--list"]) == 0
    printed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert printed == names


def test_identity_folds_are_disjoint_and_balanced_by_identity_count():
    identities = ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"] * 1 + [-1]
    folds = protocols.identity_folds(identities, 2)
    # by hand (identities, images per fold): a->0 (1,5 | 0,0); b->1 (fewer ids);
    # c->1 (ids tie, fewer images); d->0 (fewer ids); e->0 (all tie, lowest index)
    assert folds == {"a": 0, "b": 1, "c": 1, "d": 0, "e": 0}


def test_select_frames_last_middle_and_every():
    sequences = ["s"] * 6 + ["", "t", "t"]
    frames = [5, 4, 3, 2, 1, 0, 0, 0, 1]
    last = protocols.select_frames(sequences, frames, "last", 2)
    middle = protocols.select_frames(sequences, frames, "middle", 2)
    every = protocols.select_frames(sequences, frames, "every", 4)
    assert last.tolist() == [True, True, False, False, False, False, True, True, True]
    assert middle.tolist() == [False, False, True, True, False, False, True, True, True]
    assert every.tolist() == [False, True, False, False, False, True, True, True, False]


def _prep_command(csv_path, out):
    return [sys.executable, "-m", "fermtl_tf.cli.prep", "manifest", "--csv", str(csv_path),
            "--out", str(out), "--quiet", "--records-per-shard", "2", "--size", "64",
            "--crop-from", "landmarks"]


def test_run_killed_mid_way_resumes_to_identical_output(tmp_path):
    # half the rows are cropped from landmarks, the other half go through MTCNN
    csv_path, _ = write_dataset(tmp_path, [{}, {"landmarks": None}] * 12, shape=(240, 240))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert main(_prep_command(csv_path, reference)[3:]) == 0
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(_prep_command(csv_path, resumed), env=env)
    progress = resumed / "progress.json"
    while process.poll() is None and not (
        progress.exists() and json.loads(progress.read_text())["shards"]
    ):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (resumed / "manifest.json").exists()
    assert main(_prep_command(csv_path, resumed)[3:]) == 0
    files = sorted(os.listdir(reference))
    assert sorted(os.listdir(resumed)) == files
    for name in files:
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name


def test_align_puts_the_five_points_on_the_template(tmp_path):
    from fermtl_tf.data.face import ALIGNMENT_TEMPLATE
    from fermtl_tf.knowledge.landmarks import FIVE_POINT_SOURCES

    # landmarks whose five points are the template rotated by 20 deg, scaled and shifted
    angle = np.deg2rad(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    five = 50 * ALIGNMENT_TEMPLATE @ rotation.T + [20.0, 15.0]
    points = np.full((68, 2), 40.0)
    for target, indices in zip(five, FIVE_POINT_SOURCES, strict=True):
        points[list(indices)] = target
    csv_path, _ = write_dataset(tmp_path, [{"landmarks": points}])
    assert run(csv_path, tmp_path / "out", "--align", "--box-extension", "0.25") == 0
    _, (record,) = read_records(tmp_path / "out")
    mapped = record["landmarks"].reshape(68, 2)[[36, 42, 30, 48, 54]]
    # template shrunk by 1 / 1.25 about the centre of the 64-pixel crop
    expected = 64 * (0.5 + (ALIGNMENT_TEMPLATE - 0.5) / 1.25)
    np.testing.assert_allclose(mapped, expected, atol=1e-3)


@pytest.fixture(scope="module")
def synthface_run(tmp_path_factory):
    """A tiny SynthFace set prepared with MTCNN detection: (output folder, manifest)."""
    out = tmp_path_factory.mktemp("synthface") / "prepared"
    status = main(["synthface", "--out", str(out), "--identities", "3",
                   "--sequences-per-identity", "1", "--frames-per-sequence", "2",
                   "--quiet", "--size", "64"])
    assert status == 0
    return out, tfrecord.read_manifest(out)


def test_synthface_source_generates_then_imports(synthface_run):
    out, manifest = synthface_run
    assert manifest["source"] == "synthface" and manifest["seed"] == 0
    counts = manifest["counts"]
    assert counts["inputs"] == 6 == counts["written"] + counts["skipped"]
    assert os.path.exists(out / "raw" / "labels.csv")


def test_synthface_split_fractions_make_a_test_only_folder(tmp_path):
    """``--split-fractions 0 0 1``: every identity in the test split (a held-out test set)."""
    out = tmp_path / "prepared"
    assert main(["synthface", "--out", str(out), "--identities", "4", "--size", "32",
                 "--sequences-per-identity", "1", "--frames-per-sequence", "1",
                 "--crop-from", "landmarks", "--quiet", "--split-fractions", "0", "0", "1"]) == 0
    assert tfrecord.read_manifest(out)["splits"] == {"test": 4}
    assert main(["synthface", "--out", str(tmp_path / "bad"), "--identities", "4", "--quiet",
                 "--split-fractions", "0.5", "0", "0"]) != 0


def test_mtcnn_keypoints_match_synthface_ground_truth(synthface_run):
    from fermtl_tf.data import face
    from fermtl_tf.data.image_io import read_image
    from fermtl_tf.data.sources.manifest_csv import load_manifest_csv
    from fermtl_tf.knowledge.landmarks import five_points

    dataset = load_manifest_csv(synthface_run[0] / "raw" / "labels.csv")
    images = [read_image(item.image_path) for item in dataset.inputs]
    detections = face.detect_faces(images, batch_size=4)
    errors = []
    for item, image, found in zip(dataset.inputs, images, detections, strict=True):
        chosen = face.choose_face(found, image.shape)
        if chosen is not None:
            truth = five_points(item.landmarks)
            interocular = np.linalg.norm(truth[1] - truth[0])
            errors.append(np.linalg.norm(chosen.keypoints - truth, axis=1).mean() / interocular)
    assert len(errors) >= 4
    assert np.median(errors) < 0.2  # MTCNN's own accuracy; swapped x/y would give > 1


def test_row_with_more_fields_than_the_header_is_a_skip(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{}])
    with open(csv_path, "a") as handle:
        handle.write("images/000.png" + ",1" * 136 + ",surplus\n")
    assert run(csv_path, tmp_path / "out") == 0
    (skip,) = tfrecord.read_manifest(tmp_path / "out")["skipped"]
    assert skip["where"] == "labels.csv line 3 (images/000.png)"
    assert skip["reason"].startswith("malformed row: more fields than the 137 header columns")


def test_select_frames_keeps_the_last_frame_of_each_sequence(tmp_path):
    rows = [{"sequence_id": s, "frame_index": str(f)} for s in "ab" for f in range(3)]
    csv_path, _ = write_dataset(tmp_path, rows)
    assert run(csv_path, tmp_path / "out", "--select-frames", "last:1") == 0
    manifest, records = read_records(tmp_path / "out")
    assert manifest["counts"]["not_selected"] == 4 and manifest["counts"]["inputs"] == 2
    assert [(r["sequence_id"], r["frame_index"]) for r in records] == [(b"a", 2), (b"b", 2)]


def test_folds_option_assigns_identity_independent_folds(tmp_path):
    rows = [{"identity": name} for name in "aabbbc"]
    csv_path, _ = write_dataset(tmp_path, rows)
    assert run(csv_path, tmp_path / "out", "--folds", "2") == 0
    _, records = read_records(tmp_path / "out")
    # b (3 images) -> fold 0; a (2) -> fold 1; c (1) -> fold 1 (identities tie, fewer images)
    assert [int(r["fold"]) for r in records] == [1, 1, 0, 0, 0, 1]


# --- issue 13 item 1: the annotated face is the face that is cropped ---------------------

def _fake_detector(monkeypatch, boxes):
    """Make MTCNN 'find' ``boxes`` (x0, y0, x1, y1) in every image, without running it."""
    from fermtl_tf.data import face

    found = [face.Detection(np.asarray(b, float), 0.99, np.zeros((5, 2))) for b in boxes]
    monkeypatch.setattr(face, "build_detector", lambda: None)
    monkeypatch.setattr(face, "detect_faces",
                        lambda images, *args, **kwargs: [list(found) for _ in images])


def _square_landmarks(x0, y0, side):
    """68 points spread over the square (x0, y0, x0 + side, y0 + side), corners included."""
    grid = np.linspace(0, side, 9)
    points = np.array([(x0 + u, y0 + v) for u in grid for v in grid])[:68]
    points[-1] = (x0 + side, y0 + side)
    return points


def run_detect(csv_path, out, *extra):
    return main(["manifest", "--csv", str(csv_path), "--out", str(out), "--quiet",
                 "--size", "64", *extra])


def test_detect_mode_crops_the_detection_that_overlaps_the_landmarks(tmp_path, monkeypatch):
    points = _square_landmarks(140.0, 60.0, 40.0)  # annotated face at the right
    bystander, annotated = (40, 40, 140, 140), (136, 50, 184, 104)
    _fake_detector(monkeypatch, [bystander, annotated])
    csv_path, _ = write_dataset(tmp_path, [{"landmarks": points}], shape=(200, 200))
    assert run_detect(csv_path, tmp_path / "out") == 0
    manifest, (record,) = read_records(tmp_path / "out")
    assert manifest["crops"] == {"detected": 1}
    assert record["face_box_source"] == b"detected"
    np.testing.assert_allclose(record["face_box"], annotated)
    # independent: square of side 1.2 * 54 about the detection's centre (160, 77), to 64 px
    side = 1.2 * 54
    expected = (points - [160 - side / 2, 77 - side / 2]) * 64 / side
    np.testing.assert_allclose(record["landmarks"].reshape(68, 2), expected, atol=1e-3)


def test_detect_mode_falls_back_to_the_landmark_box_when_no_face_overlaps(tmp_path, monkeypatch):
    points = _square_landmarks(140.0, 60.0, 40.0)
    _fake_detector(monkeypatch, [(10, 10, 100, 100)])  # only a bystander (IoU 0)
    csv_path, _ = write_dataset(tmp_path, [{"landmarks": points}, {"landmarks": None}],
                                shape=(200, 200))
    assert run_detect(csv_path, tmp_path / "out") == 0
    manifest, (annotated, plain) = read_records(tmp_path / "out")
    assert manifest["crops"] == {"annotation-fallback": 1, "detected": 1}
    assert annotated["face_box_source"] == b"annotation-fallback"
    np.testing.assert_allclose(annotated["face_box"], [140, 60, 180, 100])
    # the row without landmarks keeps the usual choice: the only detection
    assert plain["face_box_source"] == b"detected"
    np.testing.assert_allclose(plain["face_box"], [10, 10, 100, 100])


def test_landmarks_outside_the_crop_are_a_named_skip(tmp_path):
    points = _square_landmarks(140.0, 60.0, 40.0)
    # the given box is another face: every landmark falls right of its crop
    rows = [{"landmarks": points, "face_x": "10", "face_y": "60", "face_w": "40", "face_h": "40"}]
    csv_path, _ = write_dataset(tmp_path, rows, shape=(200, 200))
    assert run(csv_path, tmp_path / "out", "--crop-from", "box") == 0
    manifest = tfrecord.read_manifest(tmp_path / "out")
    (skip,) = manifest["skipped"]
    assert skip["reason"].startswith("68 of 68 landmarks lie more than 0.1 x the crop side "
                                     "outside the given crop")
    # a wider margin accepts nothing more here (they are 2 crop sides away) ...
    assert run(csv_path, tmp_path / "out2", "--crop-from", "box",
               "--landmark-margin", "1") == 0
    assert tfrecord.read_manifest(tmp_path / "out2")["counts"]["written"] == 0
    # ... while the landmarks' own box keeps them all inside
    assert run(csv_path, tmp_path / "out3", "--crop-from", "landmarks") == 0
    assert tfrecord.read_manifest(tmp_path / "out3")["crops"] == {"annotation": 1}


def _two_face_photo():
    """A large SynthFace face at the left and a smaller one at the right (the annotated
    one): ``(RGB image, the right face's 68 landmarks)``."""
    from fermtl_tf.data.synthface import SynthFaceConfig, SynthFaceGenerator

    def render(size, identity, seed):
        gen = SynthFaceGenerator(SynthFaceConfig(seed=0, image_size=size, domain="lab"))
        return gen.render(identity, "happiness", rng=np.random.default_rng([0, seed]))

    (big, _), (small, labels) = render(192, 0, 1), render(128, 1, 2)
    canvas = np.zeros((192, 320, 3), np.uint8)
    canvas[:, :192], canvas[32:160, 192:] = big, small
    return canvas, labels["landmarks"] + [192, 32]


def test_real_mtcnn_crops_the_smaller_annotated_face_of_two(tmp_path):
    from fermtl_tf.data.face import box_iou, tight_box

    image, points = _two_face_photo()
    os.makedirs(tmp_path / "images")
    cv2.imwrite(str(tmp_path / "images" / "pair.png"), image[..., ::-1])
    cells = dict(zip(LANDMARK_COLUMNS, (f"{v:.3f}" for v in points.ravel()), strict=True))
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image_path", *LANDMARK_COLUMNS])
        writer.writeheader()
        writer.writerow({"image_path": "images/pair.png", **cells})
    assert run_detect(tmp_path / "labels.csv", tmp_path / "out") == 0
    _, (record,) = read_records(tmp_path / "out")
    assert record["face_box_source"] == b"detected"
    assert record["face_box"][0] > 192  # the right-hand face, not the larger left one
    assert box_iou(record["face_box"], tight_box(points)) > 0.5
    crop_points = record["landmarks"].reshape(68, 2)
    assert crop_points.min() >= 0 and crop_points.max() <= 64


def test_rows_without_split_are_unassigned_in_records_and_manifest(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{"split": "train"}, {}])
    assert run(csv_path, tmp_path / "out") == 0
    manifest, records = read_records(tmp_path / "out")
    assert manifest["splits"] == {"train": 1, "unassigned": 1}
    assert [r["split"] for r in records] == [b"train", b"unassigned"]


# --- issue 13 item 5: nothing of the user's is deleted or silently replaced ---------------

def test_the_users_files_in_out_survive_runs_and_overwrites(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{}, {}])
    out = tmp_path / "out"
    out.mkdir()
    users = {"notes.tmp": b"mine", "shard-1-of-2.tfrecord": b"mine too"}
    for name, data in users.items():
        (out / name).write_bytes(data)
    assert run(csv_path, out) == 0
    assert run(csv_path, out, "--size", "32", "--overwrite") == 0
    for name, data in users.items():
        assert (out / name).read_bytes() == data
    assert sorted(os.listdir(out)) == sorted(
        [*users, "manifest.json", "progress.json", "shard-00000-of-00001.tfrecord"])


@pytest.mark.parametrize("name, content, expected", [
    ("manifest.json", b'{"my": "own manifest"}', "manifest.json was not written by fermtl-prep"),
    ("progress.json", b"not json", "progress.json was not written by fermtl-prep"),
    ("shard-00000-of-00003.tfrecord", b"x", "1 file(s) named like fermtl-prep shards"),
])
def test_files_of_our_names_that_we_did_not_write_are_refused_not_removed(
        tmp_path, capsys, name, content, expected):
    csv_path, _ = write_dataset(tmp_path, [{}])
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(content)
    assert run(csv_path, out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert err.startswith("fermtl-prep: error: ") and expected in err and err.count("\n") == 1
    assert sorted(os.listdir(out)) == [name] and (out / name).read_bytes() == content


def test_a_second_run_on_a_locked_folder_fails_at_once(tmp_path, capsys):
    csv_path, _ = write_dataset(tmp_path, [{}])
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(out / '.fermtl-prep.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nos.write(fd, b'4242\\n')\n"
         "print('locked', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        assert run(csv_path, out) == 2
        assert time.monotonic() - started < 10
        err = capsys.readouterr().err
        assert "another fermtl-prep run (pid 4242) is writing to" in err and str(out) in err
    finally:
        holder.kill()
        holder.wait()
    assert run(csv_path, out) == 0  # the lock died with its process
    assert ".fermtl-prep.lock" not in os.listdir(out)


def test_fifo_and_corrupt_jpeg_inputs_are_named_skips(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{}, {}, {}])
    images = tmp_path / "images"
    os.remove(images / "001.png")
    os.mkfifo(images / "001.png")  # opening it would wait for a writer forever
    rng = np.random.default_rng(1)
    ok, buffer = cv2.imencode(".jpg", rng.integers(0, 255, (90, 100, 3), dtype=np.uint8))
    data = buffer.tobytes()
    middle = len(data) // 2  # zeros in the entropy-coded data: libjpeg warns, decodes
    (images / "002.png").write_bytes(data[:middle] + bytes(200) + data[middle + 200:])
    assert run(csv_path, tmp_path / "out") == 0
    manifest = tfrecord.read_manifest(tmp_path / "out")
    reasons = {s["input"]: s["reason"] for s in manifest["skipped"]}
    assert manifest["counts"]["written"] == 1 and len(reasons) == 2
    assert reasons["images/001.png"].startswith("not a regular file (a FIFO")
    assert reasons["images/002.png"].startswith("corrupt JPEG data (libjpeg: Corrupt JPEG data:")
    assert reasons["images/002.png"].endswith(str(images / "002.png"))


def test_the_same_image_in_two_splits_is_reported_as_leakage(tmp_path, capsys):
    csv_path, _ = write_dataset(tmp_path, [{"split": "train"}, {"split": "test"}, {}])
    csv_path.write_text(csv_path.read_text().replace("images/001.png", "images/000.png"))
    assert main(["manifest", "--csv", str(csv_path), "--out", str(tmp_path / "out"),
                 "--crop-from", "landmarks", "--size", "32"]) == 0
    expected = f"leakage: {os.path.realpath(tmp_path / 'images' / '000.png')} is in splits test, train"
    assert tfrecord.read_manifest(tmp_path / "out")["warnings"] == [expected]
    assert f"fermtl-prep: warning: {expected}" in capsys.readouterr().err


# --- issue 13 item 4: a dataset rebuilds when its inputs change -----------------------------

def _shard_files(out):
    """{shard name: (inode, mtime_ns)}: a rewritten shard (os.replace) gets a new inode."""
    return {name: (os.stat(out / name).st_ino, os.stat(out / name).st_mtime_ns)
            for name in sorted(os.listdir(out)) if name.startswith("shard-")}


def test_replacing_a_bad_image_rebuilds_only_its_shard(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{}, {}, {}, {}])
    good = (tmp_path / "images" / "003.png").read_bytes()
    (tmp_path / "images" / "003.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert run(csv_path, out, "--records-per-shard", "2") == 0
    assert [s["input"] for s in tfrecord.read_manifest(out)["skipped"]] == ["images/003.png"]
    before = _shard_files(out)
    (tmp_path / "images" / "003.png").write_bytes(good)
    assert run(csv_path, out, "--records-per-shard", "2") == 0
    manifest = tfrecord.read_manifest(out)
    assert manifest["skipped"] == [] and manifest["counts"]["written"] == 4
    after = _shard_files(out)
    assert after["shard-00000-of-00002.tfrecord"] == before["shard-00000-of-00002.tfrecord"]
    assert after["shard-00001-of-00002.tfrecord"] != before["shard-00001-of-00002.tfrecord"]
    # the same as a first run on the fixed data
    assert run(csv_path, tmp_path / "fresh", "--records-per-shard", "2") == 0
    for name in after:
        assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()


def test_an_edited_label_rebuilds_its_shard_and_overwrite_rebuilds_all(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{"expression": "happiness"}] * 4)
    out = tmp_path / "out"
    assert run(csv_path, out, "--records-per-shard", "2") == 0
    before = _shard_files(out)
    lines = csv_path.read_text().splitlines()
    lines[1] = lines[1].replace("happiness", "sadness")  # the first row: shard 0
    csv_path.write_text("\n".join(lines) + "\n")
    assert run(csv_path, out, "--records-per-shard", "2") == 0
    after = _shard_files(out)
    assert after["shard-00000-of-00002.tfrecord"] != before["shard-00000-of-00002.tfrecord"]
    assert after["shard-00001-of-00002.tfrecord"] == before["shard-00001-of-00002.tfrecord"]
    _, records = read_records(out)
    assert records[0]["expression"] == BASIC7.index("sadness")
    contents = {name: (out / name).read_bytes() for name in after}
    assert run(csv_path, out, "--records-per-shard", "2", "--overwrite") == 0
    rebuilt = _shard_files(out)
    assert all(rebuilt[name] != after[name] for name in after)  # every shard rewritten ...
    assert {name: (out / name).read_bytes() for name in rebuilt} == contents  # ... the same


def test_hash_inputs_ignores_a_touched_but_unchanged_image(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{}, {}])
    image = tmp_path / "images" / "000.png"
    assert run(csv_path, tmp_path / "stat", "--quiet") == 0
    assert run(csv_path, tmp_path / "hash", "--hash-inputs") == 0
    before = {kind: _shard_files(tmp_path / kind) for kind in ("stat", "hash")}
    os.utime(image, ns=(os.stat(image).st_atime_ns, os.stat(image).st_mtime_ns + 10**9))
    assert run(csv_path, tmp_path / "stat") == 0
    assert run(csv_path, tmp_path / "hash", "--hash-inputs") == 0
    assert _shard_files(tmp_path / "stat") != before["stat"]  # size + mtime: "changed"
    assert _shard_files(tmp_path / "hash") == before["hash"]  # same bytes: kept


# --- issue 13 item 3: fast and bounded on real photo sizes ---------------------------------

def test_images_above_the_pixel_budget_are_named_skips(tmp_path):
    csv_path, _ = write_dataset(tmp_path, [{}], shape=(90, 100))
    assert run(csv_path, tmp_path / "out", "--max-pixels", "8999") == 0
    (skip,) = tfrecord.read_manifest(tmp_path / "out")["skipped"]
    assert skip["reason"].startswith("image is 100x90 = 0.0 MP, above the pixel budget "
                                     "--max-pixels 8999")
    assert run(csv_path, tmp_path / "fits", "--max-pixels", "9000") == 0
    assert tfrecord.read_manifest(tmp_path / "fits")["counts"]["written"] == 1


@pytest.mark.slow
def test_two_workers_write_the_same_bytes_as_one(tmp_path):
    # 1280x720 frames with a face (MTCNN on the 640-px copy); detect batch 1 -> chunks of
    # 4 inputs, so 6 inputs make 2 chunks shared by the two workers.
    from fermtl_tf.data.synthface import SynthFaceConfig, SynthFaceGenerator

    gen = SynthFaceGenerator(SynthFaceConfig(seed=0, image_size=480, domain="wild"))
    os.makedirs(tmp_path / "images")
    names = []
    for i in range(6):
        image, _ = gen.render(i, "happiness", rng=np.random.default_rng([0, i]))
        frame = np.full((720, 1280, 3), 80, np.uint8)
        frame[120:600, 100 + 120 * i : 580 + 120 * i] = image
        names.append(f"images/{i}.jpg")
        cv2.imwrite(str(tmp_path / names[-1]), frame[..., ::-1])
    (tmp_path / "labels.csv").write_text("image_path\n" + "\n".join(names) + "\n")
    outs = {}
    for workers in (1, 2):
        outs[workers] = tmp_path / f"out{workers}"
        assert run_detect(tmp_path / "labels.csv", outs[workers], "--workers", str(workers),
                          "--detect-batch-size", "1", "--records-per-shard", "3") == 0
    assert tfrecord.read_manifest(outs[1])["counts"]["written"] >= 4
    files = sorted(os.listdir(outs[1]))
    assert sorted(os.listdir(outs[2])) == files
    for name in files:
        assert (outs[1] / name).read_bytes() == (outs[2] / name).read_bytes(), name


ASTRONAUT = os.path.join(os.path.dirname(__file__), "data", "astronaut_256.jpg")


def test_a_real_photograph_is_cropped_at_the_face_and_its_corrupt_copy_skipped(tmp_path):
    import shutil

    os.makedirs(tmp_path / "images")
    shutil.copy(ASTRONAUT, tmp_path / "images" / "astronaut.jpg")
    data = (tmp_path / "images" / "astronaut.jpg").read_bytes()
    middle = len(data) // 2
    (tmp_path / "images" / "damaged.jpg").write_bytes(
        data[:middle] + bytes(300) + data[middle + 300 :])
    (tmp_path / "labels.csv").write_text("image_path\nimages/astronaut.jpg\nimages/damaged.jpg\n")
    assert run_detect(tmp_path / "labels.csv", tmp_path / "out") == 0
    manifest, (record,) = read_records(tmp_path / "out")
    x0, y0, x1, y1 = record["face_box"]
    # located by eye (tests/data/README.md): face centre about (113, 58), ~40 px wide
    assert abs((x0 + x1) / 2 - 113) < 12 and abs((y0 + y1) / 2 - 58) < 15
    assert 25 < x1 - x0 < 80 and record["face_box_source"] == b"detected"
    (skip,) = manifest["skipped"]
    assert skip["input"] == "images/damaged.jpg"
    assert skip["reason"].startswith("corrupt JPEG data (libjpeg: Corrupt JPEG data")
