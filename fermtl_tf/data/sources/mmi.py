"""The ``mmi`` source: the MMI Facial Expression Database (Pantic et al. 2005).

Protocol by default (FERSNet, Zhao et al., Sec. IV-B; Liu et al. 2017, Sec. 4.1): the
frontal sequences labelled with one of the six basic emotions, the three middle frames
of each (the apex of an onset-apex-offset sequence; 624 images), 6 classes (vocabulary
``basic6``, no neutral; ``--classes basic7`` for the 7-class vocabulary with an unused
neutral), 10 identity-independent folds. Frames of a video are decoded with OpenCV and written as PNG into a cache folder
(``--cache``, default ``<out>/decoded-cache/mmi``) because the orchestrator reads image
files. AU occurrence comes from the onset/apex/offset coding when present: an AU is on
from its onset frame to its offset frame (inclusive).

The selection is checked against FERSNet's Table I (208 frontal sequences and their
per-class counts): a difference is a warning (stderr and the manifest's ``warnings``)
that also says how many sessions had no view tag and were assumed frontal; both counts
are in ``source_info`` (``sequences_per_class``, ``assumed_frontal_sessions``).
"""

import os
import re
import xml.etree.ElementTree as ET

import cv2
import numpy as np

from fermtl_tf.data.sources import _lab_common as common
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC6, vocabulary

#: MMI's emotion codes (Metatag "Emotion") -> package class names; names are accepted too.
MMI_CODES = {"1": "anger", "2": "disgust", "3": "fear", "4": "happiness", "5": "sadness",
             "6": "surprise"}
MMI_NAMES = {"anger": "anger", "angry": "anger", "disgust": "disgust", "fear": "fear",
             "happiness": "happiness", "happy": "happiness", "sadness": "sadness",
             "sad": "sadness", "surprise": "surprise"}
VIEW_TAGS = ("view", "pose", "camera")
#: Zhao et al. (FERSNet), Table I: frontal MMI sequences per class (208 in all).
FERSNET_TABLE_I = {"anger": 33, "disgust": 32, "fear": 28, "happiness": 42, "sadness": 32,
                   "surprise": 41}
VIDEO_EXTENSIONS = (".avi", ".wmv", ".mp4", ".mov", ".mpg")


class SessionError(ValueError):
    """A bad session file; the message names it."""


def read_metatags(path):
    """``{name lower-case: value}`` of the ``<Metatag Name=... Value=...>`` elements."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as error:
        raise SessionError(f"{path}: cannot parse the session XML ({error})") from None
    tags = {}
    for element in tree.iter():
        if element.tag.lower() == "metatag" and element.get("Name") is not None:
            tags[element.get("Name").strip().lower()] = (element.get("Value") or "").strip()
    return tags


def read_au_coding(path):
    """``{AU number: [(onset, offset), ...]}`` of an ``*-oao_aucs.xml`` file.

    Each ``<ActionUnit Number="n">`` holds ``<Marker Frame="f" Type="t">`` with type 1
    onset, 2 apex, 3 offset; an AU is on from each onset to the next offset.
    """
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as error:
        raise SessionError(f"{path}: cannot parse the AU coding XML ({error})") from None
    spans = {}
    for unit in tree.iter():
        if unit.tag.lower() != "actionunit":
            continue
        try:
            number = int(re.sub(r"\D", "", unit.get("Number", "")))
            markers = sorted((int(m.get("Frame")), int(m.get("Type"))) for m in unit
                             if m.tag.lower() == "marker")
        except (TypeError, ValueError):
            raise SessionError(f"{path}: ActionUnit {unit.get('Number')!r} has a marker "
                               "without integer Frame/Type") from None
        onset = None
        for frame, kind in markers:
            if kind == 1:
                onset = frame
            elif kind == 3 and onset is not None:
                spans.setdefault(number, []).append((onset, frame))
                onset = None
    return spans


class _Session:
    """Files of one session folder: the video or frames, the metadata and AU XML."""

    def __init__(self, folder):
        self.folder = folder
        names = sorted(os.listdir(folder))
        self.videos = [n for n in names if n.lower().endswith(VIDEO_EXTENSIONS)]
        self.aus = next((n for n in names if n.lower().endswith("aucs.xml")), None)
        self.meta = next((n for n in names if n.lower().endswith(".xml")
                          and not n.lower().endswith("aucs.xml")), None)
        stem = os.path.splitext(self.videos[0] if self.videos else (self.meta or ""))[0]
        self.stem = stem or os.path.basename(folder)
        frames_folder = common.child(folder, self.stem)
        self.frames_folder = frames_folder if frames_folder and os.path.isdir(
            frames_folder) else folder
        self.frames = common.image_files(self.frames_folder)


def count_frames(path):
    """Number of frames OpenCV can decode from a video (grabbing, not decoding, each)."""
    capture = cv2.VideoCapture(path)
    count = 0
    while capture.isOpened() and capture.grab():
        count += 1
    capture.release()
    return count


def extract_frames(path, wanted, target_for):
    """Decode the frames of ``wanted`` (0-based) and write them as PNG via ``target_for``."""
    capture = cv2.VideoCapture(path)
    index, last = 0, max(wanted, default=-1)
    while index <= last and capture.grab():
        if index in wanted:
            ok, frame = capture.retrieve()
            if ok:
                common.write_png(target_for(index), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()


def sequences_per_class(kept, classes):
    """``{class name: number of labelled sequences}`` of the kept inputs, every class of the
    FERSNet table listed (0 when absent)."""
    labels = {f.sequence_id: classes[f.expression] for f in kept if f.expression is not None}
    counts = dict.fromkeys(FERSNET_TABLE_I, 0)
    for name in labels.values():
        counts[name] = counts.get(name, 0) + 1
    return counts


def _describe(counts):
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def table_i_warnings(per_class, assumed_frontal, listed):
    """One warning when ``per_class`` differs from FERSNet's Table I, else none.

    The warning gives both counts and how many selected sessions have no View/Pose/Camera
    metatag (kept as frontal: the usual cause of a larger selection); ``listed`` says
    whether ``--sessions`` chose the sessions.
    """
    if per_class == FERSNET_TABLE_I:
        return []
    how = ("selected by --sessions" if listed else
           "assumed frontal; give --sessions with the papers' frontal list")
    return [f"mmi: {sum(per_class.values())} sequences selected ({_describe(per_class)}), "
            f"FERSNet Table I has {sum(FERSNET_TABLE_I.values())} frontal sequences "
            f"({_describe(FERSNET_TABLE_I)}); {assumed_frontal} of the selected sessions "
            f"have no View/Pose/Camera metatag ({how}); --expected-counts none turns this "
            f"check off"]


class MMISource(Source):
    name = "mmi"
    description = "MMI: frontal basic-emotion sequences, 3 middle frames, 10 subject folds"
    layout = """\
Expected layout under --root (the MMI download):
  Sessions/<n>/S001-002.avi          the video (or its frames: image files in the session
                                      folder or in Sessions/<n>/S001-002/)
  Sessions/<n>/S001-002.xml          <Metatag Name="Emotion" Value="4"/> (1 anger,
        2 disgust, 3 fear, 4 happiness, 5 sadness, 6 surprise; names accepted too),
        optionally <Metatag Name="Subject" .../> and a View/Pose tag
  Sessions/<n>/S001-002-oao_aucs.xml  optional AU coding: <ActionUnit Number="12">
        <Marker Frame="f" Type="1|2|3"/> (onset, apex, offset)
--root may also be the Sessions folder. The subject is the Subject metatag, else the
number after S in the file name. Video frames are decoded with OpenCV into --cache.
Default protocol (FERSNet, Liu et al.): frontal sessions with a basic emotion, the 3
middle frames, 10 identity-independent folds. Sessions whose View/Pose tag does not say
frontal are left out; give --sessions FILE (one session name or stem per line) to use
the papers' exact list when your copy has no such tag. A selection whose sequences per
class differ from FERSNet's Table I (208) is a warning (--expected-counts none: no check)."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="folder holding Sessions/")
        parser.add_argument("--sessions", help="text file listing the sessions to use")
        parser.add_argument("--cache", help="folder for decoded video frames "
                                            "(default <out>/decoded-cache/mmi)")
        parser.add_argument("--expected-counts", default="fersnet", choices=("fersnet", "none"),
                            help="warn when the selected sequences per class differ from "
                                 "FERSNet's Table I (default fersnet; none: no check)")
        common.add_protocol_arguments(parser, "middle:3", 10, "FERSNet",
                                      classes=("basic6", ("basic6", "basic7")))

    def load(self, args):
        root = common.require_folder(os.path.abspath(args.root), "mmi --root")
        sessions_root = common.child(root, "Sessions") or root
        wanted = self._session_list(args.sessions)
        inputs, paths, identities, left_out = [], [], {}, []
        videos, spans, assumed_frontal = {}, {}, []
        for name in common.sub_folders(sessions_root):
            session = _Session(os.path.join(sessions_root, name))
            if not (session.videos or session.frames) or (
                    wanted is not None and name not in wanted and session.stem not in wanted):
                continue
            paths.extend(os.path.join(session.folder, n) for n in os.listdir(session.folder))
            inputs.extend(self._session_inputs(session, name, args, left_out, videos, spans,
                                               assumed_frontal))
        identities = {str(f.identity): f.identity for f in inputs}
        if not inputs:
            raise PrepError(f"mmi: no usable session (video or frames with an emotion) "
                            f"under {sessions_root}")
        kept, dropped, other_classes = common.apply_protocol(
            inputs, args.frames, args.folds or 10, BASIC6, args.classes)
        au_numbers = sorted({n for coding in spans.values() for n in coding})
        self._set_aus(kept, spans, au_numbers)
        self._extract(kept, videos)
        options = {k: getattr(args, k) for k in ("sessions", "frames", "folds", "classes")}
        per_class = sequences_per_class(kept, vocabulary(args.classes))
        frontal_guesses = len({f.sequence_id for f in kept} & set(assumed_frontal))
        warnings = [] if args.expected_counts == "none" else table_i_warnings(
            per_class, frontal_guesses, args.sessions is not None)
        return ImportedDataset(
            source=self.name, inputs=kept, vocabulary_name=args.classes,
            vocabulary=vocabulary(args.classes),
            au_names=[f"AU{n}" for n in au_numbers], identities=identities,
            domains=[self.name],
            fingerprint={"listing": common.listing_fingerprint(root, paths, options)},
            info={"root": root, "protocol": options, "not_selected": dropped,
                  "other_classes": other_classes, "left_out_sessions": left_out,
                  "sequences_per_class": per_class,
                  "assumed_frontal_sessions": frontal_guesses},
            warnings=warnings,
        )

    @staticmethod
    def _session_list(path):
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                return {line.strip() for line in handle if line.strip()}
        except OSError as error:
            raise PrepError(f"mmi --sessions: cannot read {path}: {error.strerror}") from None

    def _session_inputs(self, session, name, args, left_out, videos, spans, assumed_frontal):
        """FaceInputs of one session (every frame), or [] when it is outside the protocol.

        A session whose XML has no view tag is kept as frontal; its stem is appended to
        ``assumed_frontal``.
        """
        error, expression = None, None
        where = f"Sessions/{name}"
        try:
            if session.meta is None:
                raise SessionError(f"{where}: no session XML with the Emotion metatag")
            tags = read_metatags(os.path.join(session.folder, session.meta))
            view = next((tags[t] for t in VIEW_TAGS if t in tags), None)
            if view is None:
                view = "frontal"
                assumed_frontal.append(session.stem)
            value = tags.get("emotion", "")
            expression = MMI_CODES.get(value) or MMI_NAMES.get(value.lower())
            if "frontal" not in view.lower() or expression is None:
                left_out.append(name)
                return []
            if session.aus is not None:
                spans[session.stem] = read_au_coding(os.path.join(session.folder, session.aus))
        except SessionError as problem:
            error, tags = str(problem), {}
        subject = self._subject(tags, session.stem)
        if session.frames:
            frames = [(os.path.join(session.frames_folder, n), n) for n in session.frames]
        else:
            video = os.path.join(session.folder, session.videos[0])
            count = count_frames(video)
            if count == 0:
                error = error or f"{where}/{session.videos[0]}: OpenCV decodes no frame"
                count = 1
            cache = os.path.join(common.cache_folder(args, self.name), session.stem)
            frames = [(os.path.join(cache, f"{i:05d}.png"), f"{session.stem}:{i}")
                      for i in range(count)]
            videos[session.stem] = video
        faces = []
        for position, (path, image_id) in enumerate(frames):
            faces.append(FaceInput(
                image_path=path, image_id=image_id, where=f"{where} frame {position}",
                error=error, identity=subject, sequence_id=session.stem,
                frame_index=position, expression=None if error else BASIC6.index(expression)))
        return faces

    @staticmethod
    def _subject(tags, stem):
        """The Subject metatag's number, else the number after ``S`` in the file stem."""
        match = re.search(r"\d+", tags.get("subject", "")) or re.match(r"[Ss](\d+)", stem)
        return int(match.group(1) if match.groups() else match.group(0)) if match else -1

    @staticmethod
    def _set_aus(kept, spans, au_numbers):
        """AU occurrence of every kept frame of a coded session (frames counted from 1)."""
        for face in kept:
            coding = spans.get(face.sequence_id)
            if coding is not None and face.error is None:
                frame = face.frame_index + 1
                face.au = np.array([float(any(a <= frame <= b for a, b in coding.get(n, [])))
                                    for n in au_numbers])
                face.au_mask = np.ones(len(au_numbers))

    @staticmethod
    def _extract(kept, videos):
        """Decode the kept frames of each video into the cache."""
        by_video = {}
        for face in kept:
            if face.sequence_id in videos and face.error is None:
                by_video.setdefault(face.sequence_id, {})[face.frame_index] = face.image_path
        for stem, wanted in by_video.items():
            extract_frames(videos[stem], set(wanted), wanted.get)


SOURCE = MMISource()
