"""The ``aff_wild`` source: the original Aff-Wild videos with per-frame valence and arousal.

Aff-Wild (Kollias et al., IJCV 2019; Zafeiriou et al., CVPRW 2017) ships videos
(``videos/{train,test}/<video>.mp4|avi``) and, per video, two annotation files
``annotations/{train,test}/{valence,arousal}/<video>.txt`` holding one value in [-1, 1]
per line: line k = the k-th frame of the video. Per-frame face boxes (4-point ``.pts``)
and 68 landmarks (``.pts``) come in ``bboxes/<split>/<video>/<frame>.pts`` and
``landmarks/<split>/<video>/<frame>.pts``, frames numbered from ``--first-frame`` (1 by
default). Frames are decoded with OpenCV (label line k = decoded frame k) and written
once to ``--frames-dir``. Protocol (Kollias et al., FaceBehaviorNet, §4.3 "Data
Subsampling"): keep one training frame in five per video; identity = video.
"""

import os

import numpy as np

from fermtl_tf.data.protocols import select_frames
from fermtl_tf.data.sources._au_video_common import (
    VIDEO_EXTENSIONS,
    RowError,
    add_frame_source_arguments,
    extract_frames,
    find_dir,
    fingerprint_files,
    id_map,
    index_frames,
    number,
    read_lines,
    require_root,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.data.sources.manifest_csv import read_pts
from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS
from fermtl_tf.knowledge.vocabularies import BASIC7

SPLITS = ("train", "test")
DIMENSIONS = ("valence", "arousal")


def _split_of(path, root):
    """``train``/``test``: the last path component under ``root`` naming a split."""
    parts = os.path.relpath(path, root).split(os.sep)
    found = [p.lower() for p in parts if p.lower() in SPLITS]
    return found[-1] if found else "train"


def find_annotations(root):
    """``{video: {"split": s, "valence": path, "arousal": path}}`` under ``root``.

    Any folder named ``valence`` or ``arousal`` (depth <= 5) holds ``<video>.txt`` files;
    the split is the nearest ``train``/``test`` folder on its path (``train`` if none),
    so ``annotations/train/valence/`` and ``annotations/train/train/valence/`` both work.
    """
    found = {}
    for folder, subfolders, files in os.walk(root):
        if os.path.relpath(folder, root).count(os.sep) >= 5:
            subfolders[:] = []
        subfolders.sort()
        dimension = os.path.basename(folder).lower()
        if dimension not in DIMENSIONS:
            continue
        for name in sorted(files):
            if name.endswith(".txt"):
                entry = found.setdefault(os.path.splitext(name)[0], {})
                entry[dimension] = os.path.join(folder, name)
                entry["split"] = _split_of(folder, root)
    return found


def index_files(folder, extensions, max_depth=3):
    """``{stem: path}`` of the files under ``folder`` with one of ``extensions``."""
    index = {}
    for current, subfolders, files in os.walk(folder):
        if os.path.relpath(current, folder).count(os.sep) >= max_depth:
            subfolders[:] = []
        subfolders.sort()
        for name in sorted(files):
            stem, extension = os.path.splitext(name)
            if extension.lower() in extensions:
                index.setdefault(stem, os.path.join(current, name))
    return index


def index_pts_folders(folder, max_depth=3):
    """``{video: folder}`` of the folders under ``folder`` holding ``<frame>.pts`` files."""
    index = {}
    if folder is None:
        return index
    for current, subfolders, files in os.walk(folder):
        if os.path.relpath(current, folder).count(os.sep) >= max_depth:
            subfolders[:] = []
        subfolders.sort()
        if any(name.endswith(".pts") for name in files):
            index.setdefault(os.path.basename(current), current)
    return index


def read_values(path, rel):
    """``({frame k: value}, [(line, message)])`` of one one-value-per-line file.

    A first line that is not a number (a ``valence`` header) is skipped; line k after it
    is frame k (1-based position in the video).
    """
    lines = read_lines(path)
    start = 1
    if lines and not _is_number(lines[0]):
        lines, start = lines[1:], 2
    values, errors = {}, []
    for k, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            values[k] = number(line.strip(), f"{rel} line {k + start - 1}", -1.0, 1.0)
        except RowError as error:
            errors.append((k + start - 1, str(error)))
    return values, errors


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_box(path):
    """(x0, y0, x1, y1) of a 4-point ``.pts`` box file (the corners, in any order)."""
    points = read_pts(path)
    if len(points) != 4:
        raise RowError(f"box file {path} has {len(points)} points, expected 4 corners")
    return np.concatenate([points.min(0), points.max(0)])


def read_landmarks(path):
    points = read_pts(path)
    if len(points) != NUM_LANDMARKS:
        raise RowError(f"landmark file {path} has {len(points)} points, "
                       f"expected {NUM_LANDMARKS}")
    return points


class AffWildSource(Source):
    name = "aff_wild"
    description = "Aff-Wild (2017): in-the-wild videos with per-frame valence/arousal in [-1, 1]"
    layout = """\
Expected layout under --root (any wrapping folders; train/train nesting accepted):
  videos/train/<video>.mp4|.avi                     (videos/test/ likewise)
  annotations/train/valence/<video>.txt             one value in [-1, 1] per line;
  annotations/train/arousal/<video>.txt             line k = decoded frame k of the video
  bboxes/train/<video>/<frame>.pts                  optional: 4 corner points
  landmarks/train/<video>/<frame>.pts               optional: 68 points
  .pts frame numbers start at --first-frame (default 1; 0 for 0-based copies).
or already extracted frames with --images DIR:     DIR/<video>/<frame>.jpg|png
Kept: one training frame in five per video (--train-every 5); identity = video.
Landmarks are given, so --crop-from defaults to landmarks (then the box, then MTCNN)."""
    prep_defaults = {"crop_from": "landmarks"}

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="the Aff-Wild folder")
        parser.add_argument("--images", default=None,
                            help="already extracted frames, <DIR>/<video>/<frame>.jpg")
        parser.add_argument("--train-every", type=int, default=5,
                            help="keep one training frame in N per video (default 5, "
                                 "FaceBehaviorNet); 1 keeps all")
        parser.add_argument("--first-frame", type=int, default=1, choices=(0, 1),
                            help="number of a video's first frame in .pts and --images "
                                 "file names (default 1)")
        add_frame_source_arguments(parser, "<out>/frames")

    def load(self, args):
        root = require_root(args.root, self.name)
        if args.train_every < 1:
            raise PrepError(f"--train-every must be >= 1, got {args.train_every}")
        annotations = find_annotations(root)
        if not annotations:
            raise PrepError(f"{root}: no annotation files found (expected "
                            "annotations/train/valence/<video>.txt and .../arousal/)")
        videos_dir = find_dir(root, {"videos"})
        videos = index_files(videos_dir, VIDEO_EXTENSIONS) if videos_dir else {}
        if not videos and not args.images:
            raise PrepError(f"{root}: no videos/ folder of <video>.mp4|avi found "
                            "(or give extracted frames with --images)")
        boxes = index_pts_folders(find_dir(root, {"bboxes"}))
        landmarks = index_pts_folders(find_dir(root, {"landmarks"}))
        identities = id_map(annotations)
        frames_dir = args.frames_dir or os.path.join(args.out, "frames")
        inputs, warnings, labelled = [], [], []
        for video in sorted(annotations):
            skips, rows = self._labels(video, annotations[video], root, warnings)
            inputs += skips
            labelled += rows
        keep = select_frames([v if s == "train" else "" for v, _, s, _ in labelled],
                             [k for _, k, _, _ in labelled], "every", args.train_every)
        kept = [row for row, chosen in zip(labelled, keep, strict=True) if chosen]
        for video in sorted({row[0] for row in kept}):
            rows = [row for row in kept if row[0] == video]
            inputs += self._video(video, rows, videos, boxes, landmarks, root, frames_dir,
                                  identities[video], args)
        paths = [p for a in annotations.values() for d, p in a.items() if d in DIMENSIONS]
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7", vocabulary=BASIC7,
            identities=identities, domains=[self.name], warnings=warnings,
            fingerprint=fingerprint_files(paths, root, {
                "train_every": args.train_every, "first_frame": args.first_frame,
                "images": bool(args.images), "frame_format": args.frame_format}),
            info={"root": root, "videos": len(annotations), "frames_dir": frames_dir,
                  "frames_with_labels": len(labelled),
                  "train_frames_not_kept": int(len(labelled) - keep.sum())},
        )

    @staticmethod
    def _labels(video, files, root, warnings):
        """Skips and ``[(video, k, split, (valence, arousal))]`` of one video's files."""
        skips, values = [], {}
        for dimension in DIMENSIONS:
            path = files.get(dimension)
            if path is None:
                other = files[DIMENSIONS[dimension == "valence"]]
                rel = os.path.relpath(other, root)
                return [FaceInput(image_path=other, image_id=rel, where=rel,
                                  error=f"no {dimension} file for video {video} "
                                        f"(expected beside {rel})")], []
            rel = os.path.relpath(path, root)
            try:
                values[dimension], errors = read_values(path, rel)
            except RowError as error:
                return [FaceInput(image_path=path, image_id=rel, where=rel,
                                  error=str(error))], []
            skips += [FaceInput(image_path=path, image_id=f"{rel}:{line}",
                                where=f"{rel} line {line}", error=message)
                      for line, message in errors]
        valence, arousal = values["valence"], values["arousal"]
        if len(valence) != len(arousal):
            warnings.append(f"{video}: {len(valence)} valence and {len(arousal)} arousal "
                            "values; only frames with both are used")
        rows = [(video, k, files["split"], (valence[k], arousal[k]))
                for k in sorted(set(valence) & set(arousal))]
        return skips, rows

    def _video(self, video, rows, videos, boxes, landmarks, root, frames_dir, identity,
               args):
        """One input per kept frame, its image taken from the video (or --images)."""
        numbers = [args.first_frame + k - 1 for _, k, _, _ in rows]
        try:
            images = self._frame_images(video, numbers, videos, frames_dir, args)
        except RowError as error:
            return [FaceInput(image_path=video, image_id=video, where=video,
                              error=str(error), identity=identity)]
        faces = []
        for (_, _, split, (valence, arousal)), frame in zip(rows, numbers, strict=True):
            path = images.get(frame)
            face = FaceInput(image_path=path or "", where=f"{video} frame {frame}",
                             image_id=os.path.relpath(path, root) if path else
                             f"{video}/{frame}", identity=identity, sequence_id=video,
                             frame_index=frame, split=split, valence=valence,
                             arousal=arousal)
            try:
                self._geometry(face, video, frame, boxes, landmarks)
            except RowError as error:
                face.error = str(error)
            if path is None:
                face.error = (f"no image for labelled frame {frame} of {video} (past the "
                              "end of the video, or missing from --images)")
            faces.append(face)
        return faces

    @staticmethod
    def _geometry(face, video, frame, boxes, landmarks):
        for index, reader, field in ((boxes, read_box, "face_box"),
                                     (landmarks, read_landmarks, "landmarks")):
            if video in index:
                path = os.path.join(index[video], f"{frame}.pts")
                if os.path.isfile(path):
                    setattr(face, field, reader(path))

    @staticmethod
    def _frame_images(video, numbers, videos, frames_dir, args):
        if args.images:
            return index_frames(os.path.join(args.images, video))
        if video not in videos:
            raise RowError(f"no video for {video}: expected videos/<split>/{video}.mp4 "
                           "or .avi")
        paths, _ = extract_frames(videos[video], os.path.join(frames_dir, video), numbers,
                                  args.frame_format, first_number=args.first_frame)
        return paths


SOURCE = AffWildSource()
