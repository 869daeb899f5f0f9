"""Parts shared by the AU and video benchmark importers (Aff-Wild2, AFEW-VA, BP4D, DISFA,
EmotioNet, GFT): AU subsets and label vectors, frame-image indexes, OpenCV frame
extraction from videos, raw-data fingerprints and small parsing helpers.

Frame extraction writes ``<frames>/<video stem>/<frame number>.<ext>`` once and records
what it wrote in ``.extracted.json`` beside the frames, so a rerun (or a resumed
``fermtl-prep``) reuses the files instead of decoding the video again.
"""

import hashlib
import json
import os
import re

import numpy as np

from fermtl_tf.data.sources.base import PrepError
from fermtl_tf.knowledge.vocabularies import au_name

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".wmv", ".mpg", ".mpeg")
EXTRACTION_MARKER = ".extracted.json"

#: AU subsets of the benchmark protocols (FaceBehaviorNet, Kollias et al., §5.1).
AU_SUBSETS = {
    "fera2015": (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23),  # BP4D in FERA 2015
    "fera2017": (1, 4, 6, 7, 10, 12, 14, 15, 17, 23),  # BP4D+ in FERA 2017
    "bp4d12": (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24),  # common BP4D 3-fold subset
    "disfa12": (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26),  # all AUs DISFA codes
    "disfa8": (1, 2, 4, 6, 9, 12, 25, 26),  # common DISFA 3-fold subset
    "gft10": (1, 2, 4, 6, 10, 12, 14, 15, 23, 24),  # GFT occurrence AUs
    "emotionet11": (1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26),  # EmotioNet challenge AUs
}


class RowError(ValueError):
    """A problem with one label line or file; becomes an input's skip reason."""


def parse_au_list(text, default_subset=None):
    """``--aus`` value -> tuple of AU numbers: a subset name, ``all`` or ``1,2,4``.

    ``all`` returns ``None`` (every AU the label files code).
    """
    text = (text or default_subset or "all").strip()
    if text == "all":
        return None
    if text in AU_SUBSETS:
        return AU_SUBSETS[text]
    try:
        numbers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise PrepError(f"--aus: expected all, one of {', '.join(AU_SUBSETS)} or a list "
                        f"like 1,2,4; got {text!r}") from None
    if not numbers or min(numbers) < 1:
        raise PrepError(f"--aus: AU numbers must be positive integers, got {text!r}")
    return numbers


def au_names(numbers):
    """``(1, 12)`` -> ``["AU1", "AU12"]`` (package naming)."""
    return [au_name(n) for n in numbers]


def au_vectors(numbers, occurrence, intensity=None):
    """Occurrence, intensity and mask arrays in ``numbers`` order.

    ``occurrence`` maps AU number -> 0/1 (absent or ``None``: not annotated, mask 0);
    ``intensity`` optionally maps AU number -> 0-5.
    """
    intensity = intensity or {}
    occ, inten, mask = (np.zeros(len(numbers), np.float32) for _ in range(3))
    for k, number in enumerate(numbers):
        value = occurrence.get(number)
        if value is not None:
            occ[k], mask[k] = float(value), 1.0
            inten[k] = float(intensity.get(number) or 0.0)
    return occ, inten, mask


def frame_number(name):
    """Integer frame number of a file name (``00012.jpg`` -> 12), or ``None``."""
    stem, extension = os.path.splitext(name)
    if extension.lower() not in IMAGE_EXTENSIONS or not stem.isdigit():
        return None
    return int(stem)


def index_frames(folder):
    """``{frame number: path}`` of the numbered images in ``folder`` (empty if absent).

    Any zero padding is accepted (``12.jpg``, ``0012.jpg``, ``00012.png``).
    """
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    frames = {}
    for name in sorted(names):
        number = frame_number(name)
        if number is not None:
            frames.setdefault(number, os.path.join(folder, name))
    return frames


def find_dir(root, names, max_depth=3):
    """First folder (breadth first, sorted) under ``root`` whose name is in ``names``."""
    level = [root]
    for _ in range(max_depth + 1):
        following = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir():
                    if entry.name in names:
                        return entry.path
                    following.append(entry.path)
        level = following
    return None


def require_root(root, source):
    """The absolute ``--root`` folder; PrepError naming it when missing."""
    if not root:
        raise PrepError(f"{source}: --root is required")
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise PrepError(f"{source}: dataset folder not found: {root}")
    return root


def id_map(names):
    """Sorted unique non-empty names -> 0..n-1."""
    return {name: index for index, name in enumerate(sorted({n for n in names if n}))}


def read_lines(path):
    """The file's lines without line ends; RowError when it cannot be read."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        raise RowError(f"label file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RowError(f"cannot read label file {path}: {error}") from None


def number(text, what, low=-np.inf, high=np.inf):
    """``text`` as a finite float in [low, high]; RowError naming ``what``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise RowError(f"{what}: expected a number, got {text!r}") from None
    if not np.isfinite(value) or not low <= value <= high:
        raise RowError(f"{what}: expected a number in [{low}, {high}], got {text!r}")
    return value


def fingerprint_files(paths, root, options):
    """Raw-data fingerprint: SHA-256 of every label file's bytes plus importer options."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        try:
            with open(path, "rb") as handle:
                content = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            content = "unreadable"
        digest.update(f"{os.path.relpath(path, root)}\0{content}\n".encode())
    return {"labels_sha256": digest.hexdigest(), "importer_options": options}


def find_video(folder, stem_patterns):
    """Path of the first video in ``folder`` whose stem matches one of the regexes."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    for pattern in stem_patterns:
        for name in names:
            stem, extension = os.path.splitext(name)
            if extension.lower() in VIDEO_EXTENSIONS and re.fullmatch(pattern, stem):
                return os.path.join(folder, name)
    return None


def _read_marker(folder):
    try:
        with open(os.path.join(folder, EXTRACTION_MARKER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def extract_frames(video, folder, wanted, image_format="jpg", first_number=1):
    """Write the frames of ``video`` whose numbers are in ``wanted``; return their paths.

    Frame numbers start at ``first_number`` for the video's first frame (DISFA and GFT
    labels count from 1). Returns ``({number: path}, frames decoded)``; numbers past
    the end of the video are absent. Raises RowError when the video cannot be opened.
    Already extracted frames (recorded in ``.extracted.json``, same video size) are
    reused.
    """
    import cv2

    wanted = sorted(set(int(n) for n in wanted))
    size = os.path.getsize(video) if os.path.exists(video) else -1
    marker = _read_marker(folder)
    if marker and marker.get("video_bytes") == size and marker.get("format") == image_format:
        done = {int(k): os.path.join(folder, v) for k, v in marker.get("frames", {}).items()}
        past_end = first_number + marker["decoded"] if marker.get("ended") else None
        if all(n in done or (past_end is not None and n >= past_end) for n in wanted):
            return {n: done[n] for n in wanted if n in done}, marker["decoded"]
    capture = cv2.VideoCapture(video)
    if not capture.isOpened():
        raise RowError(f"cannot open video {video} (missing, unreadable or an unknown codec)")
    os.makedirs(folder, exist_ok=True)
    targets, written, decoded, ended = set(wanted), {}, 0, False
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else []
    last = max(targets) if targets else first_number - 1
    try:
        while first_number + decoded <= last:
            if not capture.grab():
                ended = True
                break
            current = first_number + decoded
            decoded += 1
            if current not in targets:
                continue
            ok, frame = capture.retrieve()
            if not ok:
                continue
            name = f"{current:05d}.{image_format}"
            temporary = os.path.join(folder, f".{name}.tmp.{image_format}")
            cv2.imwrite(temporary, frame, params)
            os.replace(temporary, os.path.join(folder, name))
            written[current] = name
    finally:
        capture.release()
    with open(os.path.join(folder, EXTRACTION_MARKER), "w", encoding="utf-8") as handle:
        json.dump({"video": os.path.basename(video), "video_bytes": size,
                   "format": image_format, "decoded": decoded, "ended": ended,
                   "frames": {str(k): v for k, v in sorted(written.items())}}, handle)
    return {n: os.path.join(folder, v) for n, v in written.items()}, decoded


def add_frame_source_arguments(parser, default_frames_dir):
    """``--frames-dir`` and ``--frame-format`` for sources that ship video."""
    parser.add_argument("--frames-dir", default=None,
                        help=f"where extracted video frames go (default {default_frames_dir})")
    parser.add_argument("--frame-format", default="jpg", choices=("jpg", "png"),
                        help="image format of extracted frames (default jpg, quality 95)")


def _au_column(cell):
    """AU number of an occurrence-table header cell (``12``, ``AU12``, ``AU 12``), or None."""
    match = re.fullmatch(r"(?:AU\s*)?(\d+)", cell.strip(), re.IGNORECASE)
    return int(match.group(1)) if match else None


def read_occurrence_table(path, rel, unknown=(9,)):
    """Parse a BP4D/GFT-style AU occurrence table: header row, then ``frame,v1,v2,...``.

    The first column is the frame number; the other header cells name AUs (``1`` or
    ``AU1``). Values are 0/1; ``unknown`` values (9 = not codeable) are ``None``.
    Returns ``(au numbers, [(line, frame, {au: value})], [(line, message)])``; raises
    RowError when the file or its header cannot be used.
    """
    lines = read_lines(path)
    if not lines:
        raise RowError(f"{rel}: empty file, expected a header row")
    header = [c.strip() for c in lines[0].split(",")]
    numbers = [_au_column(c) for c in header[1:]]
    if len(header) < 2 or None in numbers:
        raise RowError(f"{rel} line 1: header must be the frame column then AU numbers, "
                       f"got {lines[0][:80]!r}")
    rows, errors = [], []
    for line_number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        try:
            if len(cells) != len(header):
                raise RowError(f"expected {len(header)} comma-separated values, "
                               f"got {len(cells)}")
            frame = number(cells[0], "frame")
            values = {}
            for au, cell in zip(numbers, cells[1:], strict=True):
                value = number(cell, f"AU{au}")
                if value in unknown:
                    values[au] = None
                elif value in (0.0, 1.0):
                    values[au] = value
                else:
                    raise RowError(f"AU{au} must be 0, 1 or {unknown[0]}, got {cell!r}")
            rows.append((line_number, int(frame), values))
        except RowError as error:
            errors.append((line_number, str(error)))
    return numbers, rows, errors
