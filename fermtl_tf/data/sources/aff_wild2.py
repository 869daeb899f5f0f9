"""The ``aff_wild2`` source: Aff-Wild2 (ABAW) frames with VA, AU and EXPR annotations.

Each task ships one text file per video and split: a header line, then one line per
video frame (line k after the header = frame k, the 1-based image
``cropped_aligned/<video>/0000k.jpg``). Invalid frames hold -5 (VA) or -1 (AU, EXPR).
The three tasks' files are merged per frame, so one record carries every label the
frame has. EXPR follows the ABAW order Neutral, Anger, Disgust, Fear, Happiness,
Sadness, Surprise, Other, mapped by name to basic7; ``Other`` has no basic7 class and is
masked. Protocol (Kollias et al., FaceBehaviorNet, §5.2 "Data Subsampling"): keep one
training frame in five per video; validation is the test set; predictions are median
filtered per video at evaluation (not here).
"""

import os
import re

import numpy as np

from fermtl_tf.data.protocols import select_frames
from fermtl_tf.data.sources._au_video_common import (
    RowError,
    au_vectors,
    find_dir,
    fingerprint_files,
    index_frames,
    number,
    read_lines,
    require_root,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC7

SPLITS = {"Training_Set": "train", "Train_Set": "train", "Validation_Set": "val"}
TASKS = ("va", "au", "expr")
VA_INVALID = -5.0
#: ABAW EXPR class order (used when a file's header does not name the classes).
ABAW_EXPRESSIONS = ("neutral", "anger", "disgust", "fear", "happiness", "sadness",
                    "surprise", "other")
_AU_HEADER = re.compile(r"^AU(\d+)$")


def task_of(folder_name):
    """``VA_Set`` / ``VA_Estimation_Challenge`` -> ``va``; ``None`` for other folders."""
    head = folder_name.split("_")[0].lower()
    return head if head in TASKS else None


def find_annotation_files(root):
    """``[(task, split, video, path)]`` of every annotation file under ``root``.

    Accepts ``annotations/<Task>_Set/<Training_Set|Validation_Set>/<video>.txt`` and
    ``<Task>_<...>_Challenge/<Train_Set|Validation_Set>/<video>.txt``, under any
    wrapping folders (depth up to 4).
    """
    found = []
    for folder, subfolders, files in os.walk(root):
        depth = os.path.relpath(folder, root).count(os.sep)
        if depth >= 4:
            subfolders[:] = []
        split = SPLITS.get(os.path.basename(folder))
        task = task_of(os.path.basename(os.path.dirname(folder)))
        if split and task:
            found += [(task, split, os.path.splitext(f)[0], os.path.join(folder, f))
                      for f in sorted(files) if f.endswith(".txt")]
        subfolders.sort()
    return found


def _cells(line, count, where):
    cells = [c.strip() for c in line.split(",")]
    if len(cells) != count:
        raise RowError(f"{where}: expected {count} comma-separated values, got {len(cells)}")
    return cells


def parse_va(cells, where):
    valence, arousal = (number(c, where) for c in cells)
    if VA_INVALID in (valence, arousal):
        return None
    for value in (valence, arousal):
        number(value, where, -1.0, 1.0)
    return valence, arousal


def expression_map(header):
    """ABAW class index -> basic7 index (``None`` for Other), read from the header names."""
    names = [c.strip().lower() for c in header.split(",")]
    if len(names) < 2:  # no class names in the header: the documented ABAW order
        names = list(ABAW_EXPRESSIONS)
    return {i: (BASIC7.index(n) if n in BASIC7 else None) for i, n in enumerate(names)}


def parse_expr(cells, where, mapping):
    value = number(cells[0], where)
    if value == -1:
        return None
    if value != int(value) or int(value) not in mapping:
        raise RowError(f"{where}: expression must be -1 or 0..{len(mapping) - 1}, "
                       f"got {cells[0]!r}")
    return ("other",) if mapping[int(value)] is None else (mapping[int(value)],)


def parse_au(cells, where, numbers):
    values = {}
    for au, cell in zip(numbers, cells, strict=True):
        value = number(cell, where)
        if value not in (-1.0, 0.0, 1.0):
            raise RowError(f"{where}: AU{au} must be -1, 0 or 1, got {cell!r}")
        if value != -1.0:
            values[au] = value
    return values or None


def au_header(header, where):
    numbers = []
    for cell in header.split(","):
        match = _AU_HEADER.match(cell.strip())
        if match is None:
            raise RowError(f"{where}: AU header must list AU<n> names, got {header!r}")
        numbers.append(int(match.group(1)))
    return numbers


class _Merged:
    """Per-frame labels of all tasks plus the split each task gives the video."""

    def __init__(self):
        self.frames = {}  # (video, frame) -> {task: value}
        self.splits = {}  # video -> {task: split}
        self.au_numbers = []
        self.other = 0
        self.errors = []  # FaceInput with error

    def read(self, task, split, video, path, root):
        rel = os.path.relpath(path, root)
        try:
            lines = read_lines(path)
            if not lines:
                raise RowError(f"{rel}: empty file, expected a header line")
            parse, extra = self._parser(task, lines[0], f"{rel} line 1")
        except RowError as error:
            self.errors.append(FaceInput(image_path=path, image_id=rel, where=rel,
                                         error=str(error)))
            return
        self.splits.setdefault(video, {})[task] = split
        for k, line in enumerate(lines[1:], start=1):
            where = f"{rel} line {k + 1}"
            if not line.strip():
                continue
            try:
                value = parse(_cells(line, extra, where), where)
            except RowError as error:
                self.errors.append(FaceInput(image_path=path, image_id=f"{rel}:{k + 1}",
                                             where=where, error=str(error)))
                continue
            if value == ("other",):
                self.other += 1
            elif value is not None:
                self.frames.setdefault((video, k), {})[task] = value

    def _parser(self, task, header, where):
        if task == "va":
            return parse_va, 2
        if task == "expr":
            mapping = expression_map(header)
            return (lambda cells, w: parse_expr(cells, w, mapping)), 1
        numbers = au_header(header, where)
        for au in numbers:
            if au not in self.au_numbers:
                self.au_numbers.append(au)
        return (lambda cells, w: parse_au(cells, w, numbers)), len(numbers)


def _frame_split(tasks_splits):
    """One split per video: ``val`` when any task validates on it (no val frame is
    ever trained on); labels of tasks that list it for training are then dropped."""
    return "val" if "val" in tasks_splits.values() else "train"


def _image_size(path):
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError) as error:
        raise RowError(f"cannot read image {path}: {error}") from None


class AffWild2Source(Source):
    name = "aff_wild2"
    description = "Aff-Wild2 / ABAW: cropped-aligned video frames with VA, 12 AUs, 7 expressions"
    layout = """\
Expected layout under --root (either annotation layout, any wrapping folders):
  annotations/VA_Set/Training_Set/<video>.txt      header "valence,arousal", -5 = invalid
  annotations/AU_Set/Validation_Set/<video>.txt    header "AU1,AU2,AU4,...", -1 = invalid
  annotations/EXPR_Set/Training_Set/<video>.txt    header "Neutral,Anger,...,Other", -1 = invalid
    or VA_Estimation_Challenge/Train_Set/, AU_Detection_Challenge/Validation_Set/, ...
  cropped_aligned/<video>/00001.jpg                 line k after the header = frame k
The three tasks are merged per frame; EXPR "Other" is masked (no basic7 class).
Kept: one training frame in five per video (--train-every 5); validation = test set.
The frames are already cropped: the face box is the whole frame (--face-box whole),
kept as shipped (--box-extension defaults to 0 for this source)."""
    # cropped_aligned frames are the face already: extending the whole-frame box would
    # only add a black border. With --face-box detect, pass --box-extension 0.2.
    prep_defaults = {"box_extension": 0.0}

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="the Aff-Wild2 folder")
        parser.add_argument("--images", default=None,
                            help="folder of <video>/<frame>.jpg (default: the first "
                                 "'cropped_aligned' folder under --root)")
        parser.add_argument("--tasks", default="va,au,expr",
                            help="comma list of va, au, expr to import (default all three)")
        parser.add_argument("--train-every", type=int, default=5,
                            help="keep one training frame in N per video (default 5, "
                                 "FaceBehaviorNet); 1 keeps all")
        parser.add_argument("--face-box", default="whole", choices=("whole", "detect"),
                            help="whole: the frame is the face box (cropped_aligned); "
                                 "detect: leave the face to --crop-from")

    def load(self, args):
        root = require_root(args.root, self.name)
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        if not tasks or set(tasks) - set(TASKS):
            raise PrepError(f"--tasks: expected a comma list of {', '.join(TASKS)}, "
                            f"got {args.tasks!r}")
        if args.train_every < 1:
            raise PrepError(f"--train-every must be >= 1, got {args.train_every}")
        files = [f for f in find_annotation_files(root) if f[0] in tasks]
        if not files:
            raise PrepError(f"{root}: no annotation files found (expected e.g. annotations/"
                            "VA_Set/Training_Set/<video>.txt or VA_Estimation_Challenge/"
                            "Train_Set/<video>.txt)")
        images = os.path.abspath(args.images) if args.images else find_dir(
            root, {"cropped_aligned"})
        if images and os.path.isdir(os.path.join(images, "cropped_aligned")):
            images = os.path.join(images, "cropped_aligned")  # some copies nest it
        if not images or not os.path.isdir(images):
            raise PrepError(f"{root}: no cropped_aligned/ folder of frames found "
                            "(give it with --images)")
        merged = _Merged()
        for task, split, video, path in files:
            merged.read(task, split, video, path, root)
        inputs, counts = self._inputs(merged, images, root, args)
        return ImportedDataset(
            source=self.name,
            inputs=merged.errors + inputs,
            vocabulary_name="basic7",
            vocabulary=BASIC7,
            au_names=[f"AU{n}" for n in merged.au_numbers],
            identities=self._identities(merged),
            domains=[self.name],
            fingerprint=fingerprint_files([f[3] for f in files], root, {
                "tasks": tasks, "train_every": args.train_every, "face_box": args.face_box}),
            info={"root": root, "images": images, "annotation_files": len(files),
                  "expr_other_masked": merged.other, **counts},
        )

    @staticmethod
    def _identities(merged):
        return {video: i for i, video in enumerate(sorted(merged.splits))}

    def _inputs(self, merged, images, root, args):
        identities = self._identities(merged)
        rows, dropped, conflicts = [], 0, set()
        for (video, frame), labels in sorted(merged.frames.items()):
            tasks_splits = merged.splits[video]
            split = _frame_split(tasks_splits)
            kept = {t: v for t, v in labels.items() if tasks_splits[t] == split}
            if len(kept) < len(labels):
                conflicts.add(video)
                dropped += 1
            if kept:
                rows.append((video, frame, split, kept))
        keep = select_frames([f"{v}/{s}" if s == "train" else "" for v, _, s, _ in rows],
                             [f for _, f, _, _ in rows], "every", args.train_every)
        frame_index = {}
        inputs = []
        for (video, frame, split, labels), kept in zip(rows, keep, strict=True):
            if not kept:
                continue
            if video not in frame_index:
                frame_index[video] = index_frames(os.path.join(images, video))
            inputs.append(self._face(video, frame, split, labels, frame_index[video],
                                     images, root, identities[video], merged, args))
        return inputs, {"frames_with_labels": len(rows),
                        "train_frames_not_kept": int(len(rows) - keep.sum()),
                        "videos_split_conflict": sorted(conflicts),
                        "labels_dropped_for_split_conflict": dropped}

    @staticmethod
    def _face(video, frame, split, labels, frames, images, root, identity, merged, args):
        path = frames.get(frame, os.path.join(images, video, f"{frame:05d}.jpg"))
        face = FaceInput(image_path=path, image_id=os.path.relpath(path, root),
                         where=f"{video} frame {frame}", identity=identity,
                         sequence_id=video, frame_index=frame, split=split)
        if frame not in frames:
            face.error = f"frame image missing: {path}"
            return face
        if "va" in labels:
            face.valence, face.arousal = labels["va"]
        if "expr" in labels:
            face.expression = labels["expr"][0]
        if merged.au_numbers:
            face.au, face.au_intensity, face.au_mask = au_vectors(
                merged.au_numbers, labels.get("au") or {})
        if args.face_box == "whole":
            try:
                width, height = _image_size(path)
            except RowError as error:
                face.error = str(error)
                return face
            face.face_box = np.array([0.0, 0.0, width, height], dtype=np.float64)
        return face


SOURCE = AffWild2Source()
