"""The ``affectnet`` source: AffectNet manually annotated images (Mollahosseini et al. 2017).

``Manually_Annotated_file_lists/{training,validation}.csv`` give per image the face box,
68 landmarks (136 ``;``-separated values x0;y0;x1;y1...), the expression (0 neutral,
1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust, 6 anger, 7 contempt, 8 none,
9 uncertain, 10 no-face) and valence/arousal in [-1, 1] (-2 where not given, i.e. for
uncertain and no-face). The test set is not released; as in FaceBehaviorNet (Kollias
et al., Sec. 4.1), ``validation.csv`` is the test set and a part of training can be held
out as validation (``--val-fraction``; AffectNet has no identities, so by image).

Expressions are remapped to basic7 (``--classes 7``, FaceBehaviorNet's 7 basic
expressions; contempt images then keep only their valence/arousal) or basic8.
Images with neither a usable expression nor valence/arousal (uncertain, no-face) are
excluded by the protocol and counted in ``source_info.excluded``.

``--clean facebehaviornet`` applies the data cleaning of Kollias et al. Sec. 4.3,
removing images whose valence/arousal contradict the expression: (i) neutral needs
``sqrt(v^2 + a^2) < 0.15``; (ii) sad, disgusted, fearful need ``v < 0``; (iii) angry
needs ``v < 0`` and ``a > 0``; (iv) happy needs ``v > 0``.
"""

import csv
import math
import os

import numpy as np

from fermtl_tf.data.sources._listfile_common import (
    add_split_seed_argument,
    find_file,
    holdout,
    read_csv_rows,
    require_root,
    sha256,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC7, BASIC8

#: Native AffectNet expression codes 0..7 in basic8 names (8, 9, 10 have no class).
NATIVE_ORDER = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger",
                "contempt")
NONE, UNCERTAIN, NO_FACE = 8, 9, 10
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
LIST_FOLDERS = ("Manually_Annotated_file_lists", "")
IMAGE_FOLDERS = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")
INVALID_VA = -2.0


class RowError(ValueError):
    """A bad CSV cell; becomes the row's skip reason."""


def cleaning_violation(expression, valence, arousal):
    """The FaceBehaviorNet rule (Kollias et al. Sec. 4.3) a labelled image breaks, or None."""
    if expression == "neutral" and not math.hypot(valence, arousal) < 0.15:
        return "i (neutral needs |(valence, arousal)| < 0.15)"
    if expression in ("sadness", "disgust", "fear") and not valence < 0:
        return "ii (sad/disgusted/fearful need negative valence)"
    if expression == "anger" and not (valence < 0 and arousal > 0):
        return "iii (angry needs negative valence and positive arousal)"
    if expression == "happiness" and not valence > 0:
        return "iv (happy needs positive valence)"
    return None


def _number(row, column):
    text = (row.get(column) or "").strip()
    try:
        return float(text)
    except ValueError:
        raise RowError(f"{column} is not a number: {text!r}") from None


def _landmarks(text):
    values = [v for v in (text or "").strip().split(";") if v.strip()]
    if not values:
        return None
    if len(values) != 136:
        raise RowError(f"facial_landmarks has {len(values)} values, expected 136 (68 x, y)")
    try:
        return np.array([float(v) for v in values]).reshape(68, 2)
    except ValueError:
        raise RowError("facial_landmarks holds a non-numeric value") from None


def _read_table(path):
    """Rows of one list CSV; a file without the header row is read in the known order."""
    with open(path, encoding="utf-8-sig") as handle:
        first = handle.readline()
    if first.split(",")[0].strip() == COLUMNS[0]:
        header, rows = read_csv_rows(path)
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise PrepError(f"{path}: missing column(s) {', '.join(missing)}")
        return rows
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        rows = []
        for cells in reader:
            if cells:
                row = dict(zip(COLUMNS, cells, strict=False))
                if len(cells) > len(COLUMNS):
                    row[None] = cells[len(COLUMNS):]
                rows.append((reader.line_num, row))
        return rows


class AffectNetSource(Source):
    name = "affectnet"
    description = "AffectNet: 8 expressions + valence/arousal, given boxes and 68 landmarks"
    layout = """\
Expected layout under --root:
  Manually_Annotated_file_lists/training.csv     header subDirectory_filePath,face_x,
  Manually_Annotated_file_lists/validation.csv   face_y,face_width,face_height,
      facial_landmarks (136 ';'-separated values),expression (0 neutral, 1 happy, 2 sad,
      3 surprise, 4 fear, 5 disgust, 6 anger, 7 contempt, 8 none, 9 uncertain,
      10 no-face),valence,arousal (-2 = not given)
  Manually_Annotated_Images/<subDirectory_filePath>
Also accepted: the CSVs directly under --root, a CSV without its header row (the
columns in the order above), images under Manually_Annotated/Manually_Annotated_Images.
Splits: training.csv -> train (--val-fraction held out as val), validation.csv -> test.
Faces are cropped with the given box (use --crop-from landmarks for the 68 points)."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="the AffectNet folder")
        parser.add_argument("--classes", type=int, default=7, choices=(7, 8),
                            help="7 basic expressions (default, FaceBehaviorNet; contempt "
                                 "keeps only valence/arousal) or 8 with contempt")
        parser.add_argument("--clean", default="none", choices=("none", "facebehaviornet"),
                            help="drop images whose valence/arousal contradict the expression "
                                 "(Kollias et al. Sec. 4.3)")
        parser.add_argument("--require-expression", action="store_true",
                            help="drop images without an expression of the vocabulary "
                                 "(default: keep them for valence/arousal)")
        parser.add_argument("--val-fraction", type=float, default=0.0,
                            help="fraction of training.csv held out as split val (default 0)")
        add_split_seed_argument(parser, "seed of the validation hold-out (default 0)")

    def load(self, args):
        root = require_root(args.root, self.name)
        vocab_name, vocab = ("basic7", BASIC7) if args.classes == 7 else ("basic8", BASIC8)
        folder = next((os.path.join(root, f) for f in IMAGE_FOLDERS
                       if os.path.isdir(os.path.join(root, f))), root)
        inputs, excluded, fingerprint = [], {}, {}
        for split, stem in (("train", "training"), ("test", "validation")):
            path = find_file(root, [os.path.join(f, f"{stem}.csv") for f in LIST_FOLDERS],
                             self.name, f"{stem}.csv list")
            fingerprint[f"{stem}_sha256"] = sha256(path)
            for line, row in _read_table(path):
                face, reason = self._face(row, line, path, folder, split, vocab, args)
                if reason:
                    excluded[reason] = excluded.get(reason, 0) + 1
                else:
                    inputs.append(face)
        if not inputs:
            raise PrepError(f"{self.name}: no usable rows in the list CSVs under {root}")
        train = [f.image_id for f in inputs if f.split == "train" and not f.error]
        held = holdout(train, args.val_fraction, args.split_seed)
        for face in inputs:
            if face.image_id in held:
                face.split = "val"
        protocol = {"classes": args.classes, "clean": args.clean, "val_fraction":
                    args.val_fraction, "split_seed": args.split_seed,
                    "require_expression": args.require_expression}
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name=vocab_name, vocabulary=vocab,
            fingerprint=fingerprint | protocol, seed=args.split_seed,
            info={"root": os.path.abspath(root), "excluded": dict(sorted(excluded.items())),
                  **protocol},
        )

    def _face(self, row, line, path, folder, split, vocab, args):
        """``(FaceInput, None)`` or ``(None, exclusion reason)`` for one CSV row."""
        relative = (row.get(COLUMNS[0]) or "").strip()
        face = FaceInput(image_path=os.path.join(folder, relative), image_id=relative,
                         where=f"{os.path.basename(path)} line {line} ({relative})", split=split)
        try:
            if None in row or "" in row or any(row.get(c) is None for c in COLUMNS):
                raise RowError(f"expected {len(COLUMNS)} fields ({', '.join(COLUMNS)})")
            code = _number(row, "expression")
            if code != int(code) or not 0 <= code <= NO_FACE:
                raise RowError(f"expression {code:g} is not an integer in 0..10")
            code = int(code)
            valence, arousal = _number(row, "valence"), _number(row, "arousal")
            has_va = valence != INVALID_VA and arousal != INVALID_VA
            if has_va and not (-1 <= valence <= 1 and -1 <= arousal <= 1):
                raise RowError(f"valence/arousal ({valence}, {arousal}) outside [-1, 1]")
            name = NATIVE_ORDER[code] if code < NONE else None
            if code == NO_FACE:
                return None, "expression 10 (no face)"
            if name not in vocab and (args.require_expression or not has_va):
                label = name or ("none" if code == NONE else "uncertain")
                return None, (f"expression {code} ({label}): no {len(vocab)}-class label"
                              + ("" if has_va else " and no valence/arousal"))
            if args.clean == "facebehaviornet" and name in vocab and has_va:
                rule = cleaning_violation(name, valence, arousal)
                if rule:
                    return None, f"cleaning rule {rule}"
            face.expression = vocab.index(name) if name in vocab else None
            if has_va:
                face.valence, face.arousal = valence, arousal
            x, y, w, h = (_number(row, c) for c in COLUMNS[1:5])
            if w <= 0 or h <= 0:
                raise RowError(f"face box width/height must be > 0, got {w:g} x {h:g}")
            face.face_box = np.array([x, y, x + w, y + h])
            face.landmarks = _landmarks(row.get("facial_landmarks"))
        except RowError as error:
            face.error = str(error)
        return face, None


SOURCE = AffectNetSource()
