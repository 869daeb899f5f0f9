"""The ``multipie`` source: CMU Multi-PIE (Gross et al. 2010) as identity-labelled FER data.

Liu et al. (2017, Sec. 5, "Implementation") pre-train the metric-learning branch of the
(N+M)-tuple network on "204,156 frontal viewpoints (-45° to 45°) face images selected
from the CMU Multi-pie dataset ... 337 people displaying disgust, happy, surprise and
neutron". So the default keeps the expressions neutral, smile (-> happiness), surprise
and disgust and the head-height views with ``|yaw| <= --max-yaw 45``; squint and scream
have no basic7 class. The raised cameras 08_1 and 19_1 (above the face, looking down)
are not "frontal viewpoints" and are kept only when ``--cameras`` names them;
``--cameras`` replaces the yaw rule by a list of cameras and ``--illuminations`` keeps
some of the 20 flash conditions (00-19). ``data_prep/multipie.md`` works out how close
these selections come to the paper's 204,156 images. Everything lands in split
``train`` (pre-training data). Labels are written in ``basic7`` by default (the 7-class
head Liu et al. pre-train on FER2013 and keep); ``--classes multipie4`` writes them in
the 4-class vocabulary of exactly these expressions
(:data:`~fermtl_tf.knowledge.vocabularies.MULTIPIE4`).

Input, one of:

* a list CSV ``--csv`` (format defined by fermtl-tf, ``data_prep/multipie.md``):
  ``image_path,subject,expression,view`` (+ optional ``illumination``, ``face_x,
  face_y, face_w, face_h``); ``view`` is a camera label (``05_1`` or ``051``) or a yaw
  in degrees;
* the distributed tree, ``<root>/data/session0N/multiview/SSS/RR/CC_C/
  SSS_NN_RR_CCC_II.png``, scanned when no list is given: the expression follows from
  session and recording (:data:`RECORDING_EXPRESSIONS`), the view from the camera.
"""

import dataclasses
import hashlib
import os
import re

from fermtl_tf.data.sources._listfile_common import (
    box_from_row,
    id_map,
    read_csv_rows,
    require_root,
    sha256,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import vocabulary

#: Yaw in degrees of each camera (13 at head height, 08_1 / 19_1 above at +-30 degrees).
CAMERA_YAW = {
    "11_0": -90, "12_0": -75, "09_0": -60, "08_0": -45, "13_0": -30, "14_0": -15,
    "05_1": 0, "05_0": 15, "04_1": 30, "19_0": 45, "20_0": 60, "01_0": 75, "24_0": 90,
    "08_1": -30, "19_1": 30,
}
#: The two cameras above the face (at about +-30 degrees of yaw, looking down).
RAISED_CAMERAS = ("08_1", "19_1")
#: Illumination (flash) numbers of a Multi-PIE recording: 00 and 19 without flash.
ILLUMINATIONS = tuple(range(20))
#: Expression of each (session, recording) of the Multi-PIE capture protocol.
RECORDING_EXPRESSIONS = {
    (1, 1): "neutral", (1, 2): "smile",
    (2, 1): "neutral", (2, 2): "surprise", (2, 3): "squint",
    (3, 1): "neutral", (3, 2): "smile", (3, 3): "disgust",
    (4, 1): "neutral", (4, 2): "neutral", (4, 3): "scream",
}
#: Multi-PIE expression names -> basic7 names (squint, scream have none).
TO_BASIC7 = {"neutral": "neutral", "smile": "happiness", "happiness": "happiness",
             "happy": "happiness", "surprise": "surprise", "disgust": "disgust"}
MULTIPIE_EXPRESSIONS = ("neutral", "smile", "surprise", "squint", "disgust", "scream")
_FILE = re.compile(r"^(\d{3})_(\d{2})_(\d{2})_(\d{2})(\d)_(\d{2})\.png$")
_CAMERA = re.compile(r"^(\d{2})_?(\d)$")


class RowError(ValueError):
    """A bad list row; becomes the row's skip reason."""


def camera_label(text):
    """``05_1`` from ``05_1`` or ``051``; None when ``text`` is not shaped like a camera."""
    text = text.strip()
    match = _CAMERA.match(text)
    if match and len(text) >= 3:
        return f"{match.group(1)}_{match.group(2)}"
    return None


def parse_view(text):
    """``(camera label or None, yaw in degrees)`` of a view cell: ``05_1`` / ``051`` or a
    number of degrees."""
    camera = camera_label(text)
    if camera is not None:
        if camera not in CAMERA_YAW:
            raise RowError(f"unknown Multi-PIE camera {text.strip()!r}")
        return camera, CAMERA_YAW[camera]
    try:
        return None, float(text)
    except ValueError:
        raise RowError(f"view {text!r} is neither a camera label (05_1) nor degrees") from None


@dataclasses.dataclass(frozen=True)
class ViewSelection:
    """Which views and flashes to keep: ``cameras`` (a set of labels, or None for the
    head-height cameras with ``|yaw| <= max_yaw``), ``illuminations`` (a set, or None
    for all)."""

    max_yaw: float = 45.0
    cameras: frozenset | None = None
    illuminations: frozenset | None = None

    def exclusion(self, view, illumination):
        """None when the view and illumination are selected, else the reason."""
        camera, yaw = parse_view(view)
        if self.cameras is not None:
            if camera not in self.cameras:
                return "camera not in --cameras" if camera else "view in degrees, not a camera"
        elif camera in RAISED_CAMERAS:
            return f"raised camera {camera} (name it in --cameras)"
        elif abs(yaw) > self.max_yaw:
            return f"view beyond +-{self.max_yaw:g} degrees"
        if self.illuminations is not None and illumination not in self.illuminations:
            return "illumination not in --illuminations"
        return None

    def protocol(self):
        return {"max_yaw": self.max_yaw,
                "cameras": None if self.cameras is None else sorted(self.cameras),
                "illuminations": (None if self.illuminations is None
                                  else sorted(self.illuminations))}


def scan_tree(root):
    """``[(relative path, subject, expression, view, illumination)]`` of the distributed
    tree, sorted."""
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            match = _FILE.match(name)
            if match:
                subject, session, recording, cam_a, cam_b, flash = match.groups()
                expression = RECORDING_EXPRESSIONS.get((int(session), int(recording)), "")
                rel = os.path.relpath(os.path.join(folder, name), root)
                found.append((rel, str(int(subject)), expression, f"{cam_a}_{cam_b}",
                              str(int(flash))))
    return sorted(found)


class MultiPieSource(Source):
    name = "multipie"
    description = "Multi-PIE: identity-labelled expressions, frontal +-45 deg views ((N+M)-tuple)"
    layout = """\
Either a list CSV (--csv, relative to --root; format defined by fermtl-tf):
  image_path,subject,expression,view[,illumination][,face_x,face_y,face_w,face_h]
  expression: neutral, smile, surprise, squint, disgust, scream (or basic7 names);
  view: camera label (05_1 or 051) or yaw in degrees
or, without --csv, the distributed tree scanned under --root:
  data/session01/multiview/001/01/05_1/001_01_01_051_00.png
  (subject_session_recording_camera_illumination; expression from session+recording)
Selection (Liu et al. 2017): --expressions neutral,smile,surprise,disgust and the
head-height cameras with |yaw| <= --max-yaw 45 (not the raised 08_1, 19_1), or the
cameras of --cameras; all 20 illuminations unless --illuminations.
Split: train. Faces: given box, else MTCNN.
Labels: vocabulary basic7 (default) or multipie4 (--classes multipie4)."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="the Multi-PIE folder")
        parser.add_argument("--csv", default="",
                            help="list CSV relative to --root (default: scan the tree)")
        parser.add_argument("--expressions", default="neutral,smile,surprise,disgust",
                            help="Multi-PIE expressions to keep (default: Liu et al.'s four)")
        parser.add_argument("--max-yaw", type=float, default=45.0,
                            help="keep head-height views with |yaw| <= this many degrees "
                                 "(default 45; never the raised cameras 08_1, 19_1)")
        parser.add_argument("--cameras", default="",
                            help="comma list of cameras to keep instead of --max-yaw, e.g. "
                                 "13_0,14_0,05_1,05_0,04_1 (raised: 08_1, 19_1)")
        parser.add_argument("--illuminations", default="",
                            help="comma list of illuminations (flashes) 0-19 to keep "
                                 "(default all); the list CSV then needs an "
                                 "'illumination' column")
        parser.add_argument("--classes", default="basic7", choices=("basic7", "multipie4"),
                            help="vocabulary of the labels: basic7 (default) or multipie4, "
                                 "the 4 expressions of Liu et al. 2017 Sec. 5")

    def load(self, args):
        root = require_root(args.root, self.name)
        keep = self._expressions(args.expressions)
        selection = ViewSelection(args.max_yaw, self._cameras(args.cameras),
                                  self._illuminations(args.illuminations))
        if args.csv:
            path = os.path.join(root, args.csv)
            if not os.path.isfile(path):
                raise PrepError(f"{self.name}: list CSV {path} not found")
            header, rows = read_csv_rows(path)
            missing = [c for c in ("image_path", "subject", "expression", "view")
                       if c not in header]
            if missing:
                raise PrepError(f"{path}: missing column(s) {', '.join(missing)}")
            if selection.illuminations is not None and "illumination" not in header:
                raise PrepError(f"{path}: --illuminations needs an 'illumination' column")
            where = os.path.basename(path)
            fingerprint = {"list_sha256": sha256(path)}
        else:
            columns = ("image_path", "subject", "expression", "view", "illumination")
            rows = [(0, dict(zip(columns, r, strict=True))) for r in scan_tree(root)]
            names = "\n".join(r["image_path"] for _, r in rows)
            where = "tree"
            fingerprint = {"files_sha256": hashlib.sha256(names.encode()).hexdigest()}
        if not rows:
            raise PrepError(f"{self.name}: no images listed or found under {root}")
        subjects = id_map([(row.get("subject") or "").strip() for _, row in rows])
        inputs, excluded = [], {}
        for line, row in rows:
            face, reason = self._face(root, where, line, row, keep, selection, subjects,
                                      vocabulary(args.classes))
            if reason:
                excluded[reason] = excluded.get(reason, 0) + 1
            else:
                inputs.append(face)
        if not inputs:
            raise PrepError(f"{self.name}: every image under {root} was excluded by the "
                            f"selection ({excluded})")
        protocol = {"expressions": sorted(keep), **selection.protocol(),
                    "classes": args.classes}
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name=args.classes,
            vocabulary=vocabulary(args.classes),
            identities=subjects, fingerprint=fingerprint | protocol,
            info={"root": os.path.abspath(root), "input": where,
                  "excluded": dict(sorted(excluded.items())), **protocol},
        )

    @staticmethod
    def _expressions(text):
        names = {n.strip().lower() for n in text.split(",") if n.strip()}
        unknown = names - set(MULTIPIE_EXPRESSIONS) - set(TO_BASIC7)
        unmapped = names & {"squint", "scream"}
        if unknown or unmapped or not names:
            raise PrepError(f"multipie: --expressions must name some of neutral, smile, "
                            f"surprise, disgust (squint and scream have no basic7 class), "
                            f"got {text!r}")
        return {TO_BASIC7[n] for n in names}

    @staticmethod
    def _cameras(text):
        """The set of cameras of ``--cameras``, or None (select by yaw) when empty."""
        if not text.strip():
            return None
        cameras = {camera_label(n) or n.strip() for n in text.split(",") if n.strip()}
        unknown = sorted(cameras - set(CAMERA_YAW))
        if unknown:
            raise PrepError(f"multipie: --cameras: unknown camera(s) {', '.join(unknown)}; "
                            f"known: {', '.join(CAMERA_YAW)}")
        return frozenset(cameras)

    @staticmethod
    def _illuminations(text):
        """The set of ``--illuminations`` (ints 0-19), or None (all) when empty."""
        if not text.strip():
            return None
        try:
            values = {int(n) for n in text.split(",") if n.strip()}
        except ValueError:
            values = {-1}
        if not values or not values <= set(ILLUMINATIONS):
            raise PrepError(f"multipie: --illuminations must be a comma list of 0-19, "
                            f"got {text!r}")
        return frozenset(values)

    @staticmethod
    def _face(root, where, line, row, keep, selection, subjects, classes):
        """``(FaceInput, None)`` or ``(None, exclusion reason)`` for one row."""
        image = (row.get("image_path") or "").strip()
        label = f"{where} line {line} ({image})" if line else f"{image}"
        face = FaceInput(image_path=os.path.join(root, image), image_id=image, where=label,
                         split="train")
        try:
            if "" in row or None in row:
                raise RowError("more fields than header columns")
            subject = (row.get("subject") or "").strip()
            if not subject or not image:
                raise RowError("empty image_path or subject")
            face.identity = subjects[subject]
            expression = (row.get("expression") or "").strip().lower()
            if expression not in MULTIPIE_EXPRESSIONS and expression not in TO_BASIC7:
                raise RowError(f"unknown expression {expression!r}")
            basic = TO_BASIC7.get(expression)
            if basic not in keep:
                return None, f"expression {expression} not selected"
            illumination = _illumination(row.get("illumination"))
            excluded = selection.exclusion(row.get("view") or "", illumination)
            if excluded:
                return None, excluded
            face.expression = classes.index(basic)
            face.face_box = box_from_row(row)
        except (RowError, ValueError) as error:
            face.error = str(error)
        return face, None


def _illumination(cell):
    """The illumination number of a row (None when the list has no such cell)."""
    if cell is None or not cell.strip():
        return None
    try:
        return int(cell)
    except ValueError:
        raise RowError(f"illumination {cell!r} is not a number 0-19") from None


SOURCE = MultiPieSource()
