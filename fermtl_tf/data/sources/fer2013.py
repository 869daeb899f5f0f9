"""The ``fer2013`` source: the FER2013 challenge CSV (Goodfellow et al. 2013).

The images exist only as pixel strings in ``fer2013.csv``, while the orchestrator reads
image files, so every row is decoded here and written as a lossless 48x48 grey PNG into
a cache folder (``--cache``, default ``<out>/decoded-cache/fer2013/<Usage>/<line>.png``;
the same CSV gives the same bytes). The images are already face crops: the face box is
the whole image, shrunk so that ``--box-extension`` brings it back to 48x48.
Splits: Training -> train, PublicTest -> val, PrivateTest -> test (the usual use; Liu et
al. 2017, Sec. 4, pre-train on FER2013).
"""

import csv
import hashlib
import os

import numpy as np

from fermtl_tf.data.sources import _lab_common as common
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC7

#: FER2013 emotion codes 0..6 -> package class names.
FER_CODES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
USAGE_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SIDE = 48


def parse_row(row):
    """(class name, split, (48, 48) uint8 pixels) of one CSV row; ValueError says why."""
    code = (row.get("emotion") or "").strip()
    if not code.isdigit() or int(code) >= len(FER_CODES):
        raise ValueError(f"emotion must be an integer 0-6, got {code!r}")
    usage = (row.get("Usage") or "").strip()
    if usage not in USAGE_SPLITS:
        raise ValueError(f"Usage must be one of {', '.join(USAGE_SPLITS)}, got {usage!r}")
    try:
        values = [int(v) for v in (row.get("pixels") or "").split()]
    except ValueError:
        raise ValueError("pixels must be space-separated integers") from None
    if len(values) != SIDE * SIDE or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"pixels must be {SIDE * SIDE} values in 0-255, got {len(values)}")
    return FER_CODES[int(code)], USAGE_SPLITS[usage], np.array(values, np.uint8).reshape(
        SIDE, SIDE)


def find_csv(root):
    if os.path.isfile(root):
        return root
    for name in ("fer2013.csv", os.path.join("fer2013", "fer2013.csv")):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise PrepError(f"fer2013: no fer2013.csv at {root} (give the file or its folder)")


class FER2013Source(Source):
    name = "fer2013"
    description = "FER2013: 48x48 grey faces from one CSV; Training / PublicTest / PrivateTest"
    layout = """\
Expected input: --root is fer2013.csv or the folder holding it (or fer2013/fer2013.csv).
  header: emotion,pixels,Usage
  emotion  0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
  pixels   2304 space-separated grey values (48x48, row-major)
  Usage    Training -> train, PublicTest -> val, PrivateTest -> test
Rows are decoded into lossless PNGs under --cache (default <out>/decoded-cache/fer2013);
the whole 48x48 image is the face (no detection). A bad row is listed as skipped with
its CSV line."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="fer2013.csv or its folder")
        parser.add_argument("--cache", help="folder for the decoded PNGs "
                                            "(default <out>/decoded-cache/fer2013)")

    def load(self, args):
        path = find_csv(os.path.abspath(args.root))
        cache = common.cache_folder(args, self.name)
        digest = hashlib.sha256()
        inputs = []
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
                if missing:
                    raise PrepError(f"{path}: missing column(s) {', '.join(sorted(missing))} "
                                    "(expected header emotion,pixels,Usage)")
                for row in reader:
                    inputs.append(self._input(row, reader.line_num, cache, args, digest))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise PrepError(f"{path}: cannot read the CSV ({error})") from None
        if not inputs:
            raise PrepError(f"{path}: no rows after the header")
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7", vocabulary=BASIC7,
            domains=[self.name], fingerprint={"csv_sha256": digest.hexdigest()},
            info={"csv": path, "cache": cache},
        )

    @staticmethod
    def _input(row, line, cache, args, digest):
        digest.update(repr(sorted((k, v) for k, v in row.items() if k)).encode())
        face = FaceInput(image_path="", image_id=f"line{line:05d}",
                         where=f"fer2013.csv line {line}")
        try:
            if None in row:
                raise ValueError("more fields than the 3 header columns")
            expression, split, pixels = parse_row(row)
        except ValueError as error:
            face.error = str(error)
            return face
        face.image_path = common.write_png(
            os.path.join(cache, (row.get("Usage") or "").strip(), f"{line:05d}.png"),
            np.repeat(pixels[:, :, None], 3, axis=2))
        face.expression, face.split = BASIC7.index(expression), split
        half = SIDE / 2 / (1 + args.box_extension)
        face.face_box = np.array([SIDE / 2 - half, SIDE / 2 - half,
                                  SIDE / 2 + half, SIDE / 2 + half])
        return face


SOURCE = FER2013Source()
