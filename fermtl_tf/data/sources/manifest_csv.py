"""The ``manifest`` source: bring your own dataset as one CSV file.

The format is specified in ``data_prep/README.md`` ("Manifest CSV"). Parsing is strict
and local: a bad cell makes that row an input with ``error`` set (listed as skipped,
naming the CSV line), while a problem with the file itself (missing, no header, no
``image_path`` column, an incomplete set of landmark columns, no rows) raises
:class:`PrepError`.
"""

import csv
import hashlib
import math
import os
import re

import numpy as np

from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS
from fermtl_tf.knowledge.vocabularies import VOCABULARIES, vocabulary

AU_COLUMN = re.compile(r"^AU(\d+)([LR]?)$")
AU_INTENSITY_COLUMN = re.compile(r"^(AU\d+[LR]?)_intensity$")
LANDMARK_COLUMN = re.compile(r"^([xy])(\d+)$")
BOX_COLUMNS = ("face_x", "face_y", "face_w", "face_h")
PLAIN_COLUMNS = (
    "image_path", "identity", "sequence_id", "frame_index", "split", "fold", "domain",
    "expression", "pts_path", "valence", "arousal",
) + BOX_COLUMNS
LANDMARK_COLUMNS = tuple(f"{axis}{i}" for i in range(NUM_LANDMARKS) for axis in "xy")


class RowError(ValueError):
    """A bad cell; becomes the row's skip reason."""


def _float(row, column, low=-math.inf, high=math.inf):
    """The cell as a finite float in [low, high], or ``None`` when empty."""
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise RowError(f"{column} must be a number, got {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise RowError(f"{column} must be a finite number in [{low}, {high}], got {text!r}")
    return value


def _int(row, column, low=0):
    value = _float(row, column)
    if value is None:
        return None
    if value != int(value) or value < low:
        raise RowError(f"{column} must be an integer >= {low}, got {row[column].strip()!r}")
    return int(value)


def _binary(row, column):
    value = _float(row, column)
    if value not in (None, 0.0, 1.0):
        raise RowError(f"{column} must be 0 or 1, got {row[column].strip()!r}")
    return value


#: Subtracted from every ``.pts`` coordinate, on every route that reads one (``300w``,
#: the manifest CSV's ``pts_path``, Aff-Wild boxes and landmarks). 300-W files count
#: pixel centres from 1 (Matlab); menpo's ``pts_importer`` (menpo 0.11, which reads the
#: 300-W/Menpo files) subtracts 1 to reach its 0-based grid with pixel centres at
#: integers, and this package puts the centre of pixel ``i`` at ``i + 0.5``
#: (data_prep/README.md), so ``v - 1 + 0.5 = v - 0.5``.
PTS_OFFSET = 0.5


def read_pts(path, offset=PTS_OFFSET):
    """Read a 300-W ``.pts`` file into an (N, 2) array in this package's pixel convention.

    ``offset`` is subtracted from every coordinate (:data:`PTS_OFFSET`, the 300-W
    convention, unless a source's ``--pts-offset`` says otherwise). Raises RowError on
    bad content.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise RowError(f"cannot read landmark file {path}: {error}") from None
    match = re.search(r"\{(.*)\}", text, re.S)
    if match is None:
        raise RowError(f"landmark file {path} has no '{{ ... }}' block of points")
    try:
        lines = [line for line in match.group(1).split("\n") if line.strip()]
        points = np.array([[float(v) for v in line.split()] for line in lines], dtype=np.float64)
    except ValueError:
        raise RowError(f"landmark file {path} holds a non-numeric point") from None
    if points.ndim != 2 or points.shape[1] != 2:
        raise RowError(f"landmark file {path}: every point needs exactly 2 numbers")
    return points - offset


class _Columns:
    """The CSV header sorted into the groups of the format; checks the file-level rules."""

    def __init__(self, header, csv_name):
        self.au_names = []
        self.attribute_names = []
        self.ignored = []
        landmark_columns = []
        for column in header:
            intensity = AU_INTENSITY_COLUMN.match(column)
            name = intensity.group(1) if intensity else column
            if AU_COLUMN.match(name):
                if name not in self.au_names:
                    self.au_names.append(name)
            elif column.startswith("attr_") and len(column) > 5:
                self.attribute_names.append(column[5:])
            elif LANDMARK_COLUMN.match(column):
                landmark_columns.append(column)
            elif column not in PLAIN_COLUMNS:
                self.ignored.append(column)
        if "image_path" not in header:
            raise PrepError(f"{csv_name}: no 'image_path' column (header: {', '.join(header)})")
        if landmark_columns and sorted(landmark_columns) != sorted(LANDMARK_COLUMNS):
            points = len({int(LANDMARK_COLUMN.match(c).group(2)) for c in landmark_columns})
            raise PrepError(
                f"{csv_name}: landmark columns cover {points} points ({len(landmark_columns)} "
                f"columns); the format needs all {NUM_LANDMARKS} points, x0, y0, ..., "
                f"x{NUM_LANDMARKS - 1}, y{NUM_LANDMARKS - 1}"
            )
        present_box = [c for c in BOX_COLUMNS if c in header]
        if present_box and len(present_box) != len(BOX_COLUMNS):
            raise PrepError(f"{csv_name}: face box needs all of {', '.join(BOX_COLUMNS)}")
        self.has_landmarks = bool(landmark_columns)
        self.header = header


def _landmarks(row, columns, folder, pts_offset):
    """(68, 2) landmarks from the 136 columns or the ``.pts`` file, or ``None``."""
    cells = None
    if columns.has_landmarks:
        cells = [(row.get(c) or "").strip() for c in LANDMARK_COLUMNS]
        filled = sum(bool(c) for c in cells)
        if filled == 0:
            cells = None
        elif filled != len(cells):
            raise RowError(f"landmarks: {filled} of {len(cells)} coordinate cells filled, "
                           "need all or none")
    pts = (row.get("pts_path") or "").strip()
    if cells is not None and pts:
        raise RowError("both landmark columns and pts_path are filled; give one")
    if cells is not None:
        points = np.array([_float(row, c) for c in LANDMARK_COLUMNS]).reshape(NUM_LANDMARKS, 2)
    elif pts:
        points = read_pts(os.path.join(folder, pts), pts_offset)
        if len(points) != NUM_LANDMARKS:
            raise RowError(
                f"landmark file {pts} has {len(points)} points, expected {NUM_LANDMARKS}")
    else:
        return None
    return points


def _face_box(row):
    values = [_float(row, c) for c in BOX_COLUMNS]
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        raise RowError(f"face box: fill all of {', '.join(BOX_COLUMNS)} or none")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise RowError(f"face box width and height must be > 0, got {w} x {h}")
    return np.array([x, y, x + w, y + h])


def _aus(row, au_names):
    count = len(au_names)
    occurrence, intensity, mask = np.zeros(count), np.zeros(count), np.zeros(count)
    for k, name in enumerate(au_names):
        present = _binary(row, name)
        strength = _float(row, f"{name}_intensity", 0.0, 5.0)
        if present is None and strength is not None:
            present = float(strength > 0)
        if present is not None:
            occurrence[k], mask[k] = present, 1.0
            intensity[k] = strength or 0.0
    return occurrence, intensity, mask


def _parse_row(row, columns, folder, vocab, vocab_name, pts_offset):
    """Labels of one CSV row as FaceInput keyword arguments; raises RowError."""
    if None in row:
        raise RowError(f"malformed row: more fields than the {len(columns.header)} header columns")
    if any(row[c] is None for c in columns.header):
        raise RowError(f"malformed row: fewer fields than the {len(columns.header)} header columns")
    labels = {}
    expression = (row.get("expression") or "").strip()
    if expression:
        if expression not in vocab:
            raise RowError(f"expression {expression!r} is not in vocabulary {vocab_name} "
                           f"({', '.join(vocab)})")
        labels["expression"] = vocab.index(expression)
    for column in ("frame_index", "fold"):
        value = _int(row, column)
        if value is not None:
            labels[column] = value
    for column in ("sequence_id", "split"):
        labels[column] = (row.get(column) or "").strip()
    valence, arousal = _float(row, "valence", -1, 1), _float(row, "arousal", -1, 1)
    if (valence is None) != (arousal is None):
        raise RowError("valence and arousal must be given together")
    labels["valence"], labels["arousal"] = valence, arousal
    labels["landmarks"] = _landmarks(row, columns, folder, pts_offset)
    labels["face_box"] = _face_box(row)
    labels["au"], labels["au_intensity"], labels["au_mask"] = _aus(row, columns.au_names)
    attributes = [_binary(row, f"attr_{name}") for name in columns.attribute_names]
    labels["attributes"] = np.array([a or 0.0 for a in attributes])
    labels["attributes_mask"] = np.array([float(a is not None) for a in attributes])
    return labels


def _id_map(values):
    """Sorted unique non-empty strings -> 0..n-1 (numeric order if all are integers)."""
    unique = {v for v in values if v}
    numeric = all(re.fullmatch(r"-?\d+", v) for v in unique)
    ordered = sorted(unique, key=int) if numeric else sorted(unique)
    return {value: index for index, value in enumerate(ordered)}


def _read_rows(csv_path):
    """(header, [(line number, row dict)]) of the CSV; PrepError if it cannot be read."""
    if os.path.isdir(csv_path):
        raise PrepError(f"{csv_path} is a folder; --csv needs the manifest CSV file "
                        "(see fermtl-prep manifest --help)")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            rows = [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise PrepError(f"{csv_path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PrepError(f"{csv_path}: cannot read the CSV ({error})") from None
    if not header:
        raise PrepError(f"{csv_path}: empty file, expected a header row with 'image_path'")
    header = [h.strip() for h in header]
    rows = [(line, {k.strip() if k else k: v for k, v in row.items()}) for line, row in rows]
    if not rows:
        raise PrepError(f"{csv_path}: no input rows after the header")
    return header, rows


def _sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def load_manifest_csv(csv_path, vocabulary_name="basic7", source="manifest",
                      pts_offset=PTS_OFFSET):
    """Parse a manifest CSV into an :class:`ImportedDataset` (no image is opened).

    Identities and domains are mapped to integers in sorted order (the mappings go to
    the manifest); rows without a domain get the domain named ``source``. ``pts_path``
    files are read with :func:`read_pts` (``pts_offset`` subtracted); landmark columns
    are taken as they are (this package's convention).
    """
    try:
        vocab = vocabulary(vocabulary_name)
    except KeyError as error:
        raise PrepError(error.args[0]) from None
    csv_path = os.fspath(csv_path)
    header, rows = _read_rows(csv_path)
    csv_name = os.path.basename(csv_path)
    columns = _Columns(header, csv_name)
    folder = os.path.dirname(os.path.abspath(csv_path))
    identities = _id_map([(row.get("identity") or "").strip() for _, row in rows])
    domain_names = {(row.get("domain") or "").strip() or source for _, row in rows}
    domains = sorted(domain_names)
    inputs = []
    for line, row in rows:
        image = (row.get("image_path") or "").strip()
        face = FaceInput(
            image_path=os.path.join(folder, image),
            image_id=image,
            where=f"{csv_name} line {line}" + (f" ({image})" if image else ""),
            identity=identities.get((row.get("identity") or "").strip(), -1),
            domain=domains.index((row.get("domain") or "").strip() or source),
        )
        try:
            if not image:
                raise RowError("empty image_path")
            labels = _parse_row(row, columns, folder, vocab, vocabulary_name, pts_offset)
            for key, value in labels.items():
                setattr(face, key, value)
        except RowError as error:
            face.error = str(error)
        inputs.append(face)
    warnings = []
    if columns.ignored:
        warnings.append(f"{csv_name}: ignored unknown column(s) {', '.join(columns.ignored)} "
                        "(see the Manifest CSV format in data_prep/README.md)")
    return ImportedDataset(
        source=source,
        inputs=inputs,
        vocabulary_name=vocabulary_name,
        vocabulary=vocab,
        au_names=columns.au_names,
        attribute_names=columns.attribute_names,
        identities=identities,
        domains=domains,
        fingerprint={"csv_sha256": _sha256(csv_path)},
        info={"csv": os.path.abspath(csv_path), "ignored_columns": columns.ignored},
        warnings=warnings,
    )


class ManifestSource(Source):
    name = "manifest"
    description = "bring your own dataset: one CSV row per image (data_prep/README.md)"
    layout = """\
Expected input: one CSV file (--csv), one row per image, header row first.
  image_path                  required; relative to the CSV's folder or absolute
  identity, sequence_id, frame_index, split, fold, domain
  expression                  a class name of --vocabulary
  x0,y0,...,x67,y67 | pts_path  68 landmarks in image pixels, centre of pixel i at
                              i + 0.5 (or a 300-W .pts file: --pts-offset subtracted)
  AU<n>[L|R], AU<n>[L|R]_intensity   AU occurrence 0/1 and intensity 0-5
  valence, arousal            in [-1, 1], both or neither
  attr_<name>                 binary attributes 0/1
  face_x, face_y, face_w, face_h   optional given face box
Every label column is optional and an empty cell means "not annotated" (mask 0).
A row with a bad cell is skipped and listed in manifest.json with its CSV line."""

    def add_arguments(self, parser):
        parser.add_argument("--csv", required=True, help="the manifest CSV file")
        add_vocabulary_argument(parser)
        add_pts_offset_argument(parser)

    def load(self, args):
        return load_manifest_csv(args.csv, args.vocabulary, source=self.name,
                                 pts_offset=args.pts_offset)


def add_vocabulary_argument(parser):
    parser.add_argument("--vocabulary", default="basic7", choices=sorted(VOCABULARIES),
                        help="expression vocabulary of the expression column (default basic7)")


def add_pts_offset_argument(parser):
    parser.add_argument("--pts-offset", type=float, default=PTS_OFFSET,
                        help=f"subtracted from .pts coordinates (default {PTS_OFFSET}: 300-W "
                             "counts pixel centres from 1, this package puts them at i + 0.5)")


SOURCE = ManifestSource()
